"""Getting a base model ready to train: marker tokens, LoRA or full fine-tuning, and saving it back.

Markers: a Gemma vocabulary has spare `<unused0>` / `<unused1>` pieces, which become <bot> /
<eot> (no resize, so the saved model keeps the base's vocabulary). A tokenizer without them gets
new special tokens `<bot>` / `<eot>`, and the embeddings are resized with the new rows set to the
mean embedding. Either way the LatentSpec records the strings, never ids.

LoRA (peft): adapters on the attention and MLP projections, plus `trainable_token_indices` on
the input embedding for the two marker ids, so the marker embeddings train although the rest of
the embedding is frozen (peft ties the delta to Gemma's tied LM head and applies the embedding
scale). The final directory holds the merged model, a normal Hugging Face checkpoint that
`loading.load_model` loads unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import UsageError

# <bot>, <eot> and, for the pause-token control (`--feedback pause`), <pause>.
GEMMA_MARKERS = ("<unused0>", "<unused1>", "<unused2>")
NEW_MARKERS = ("<bot>", "<eot>", "<pause>")
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0


def _token_id(tokenizer: Any, token: str) -> int | None:
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or (
        tokenizer.unk_token_id is not None and tid == tokenizer.unk_token_id and token != tokenizer.unk_token
    ):
        return None
    return int(tid)


def setup_markers(model: Any, tokenizer: Any, count: int = 2) -> tuple[tuple[str, ...], tuple[int, ...], bool]:
    """Pick (or add) the first `count` marker tokens (<bot>, <eot>, and <pause> with 3).

    Returns (strings, ids, whether the vocabulary grew)."""
    ids = [_token_id(tokenizer, t) for t in GEMMA_MARKERS[:count]]
    if all(i is not None for i in ids):
        return GEMMA_MARKERS[:count], tuple(ids), False
    wanted = list(NEW_MARKERS[:count])
    tokenizer.add_special_tokens({"additional_special_tokens": wanted})
    embedding = model.get_input_embeddings()
    old = embedding.weight.shape[0]
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        weight = model.get_input_embeddings().weight
        weight[old:] = weight[:old].mean(dim=0, keepdim=True)
    new_ids = tuple(int(tokenizer.convert_tokens_to_ids(t)) for t in wanted)
    return tuple(wanted), new_ids, True


def apply_lora(model: Any, marker_ids: tuple[int, ...], settings: LoraSettings) -> Any:
    """Wrap the model with LoRA adapters and trainable marker embeddings (the pause token's too)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:  # pragma: no cover - peft is an optional extra
        raise UsageError("--lora needs the `peft` package", hint="pip install 'latent-gemma-cli[lora]'") from exc
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=LORA_TARGETS,
        trainable_token_indices=list(marker_ids),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    sparse_trainable_tokens(peft_model)
    return peft_model


def sparse_trainable_tokens(model: Any) -> int:
    """Compute peft's trainable marker tokens without a full copy of the embedding matrix.

    peft's `TrainableTokensLayer` builds `W.index_copy(rows, deltas)` at every call: a copy of the
    whole 262k x 640 matrix for the embedding and again for the tied LM head, and through the
    head a full weight gradient in the backward pass (profiled: about a third of a LoRA step of
    Gemma 3 270M at batch 8). Here the frozen matrix is used as it is and only the marker rows
    (embedding) or columns (logits) are replaced by the trainable ones: the same function and the
    same gradients (tests/test_training.py compares both). Returns how many layers were switched;
    layers in a state this does not cover (merged, disabled, several adapters) keep peft's path."""
    import types

    try:
        from peft.tuners.trainable_tokens.layer import TrainableTokensLayer
    except ImportError:  # pragma: no cover - peft is optional, and its layout may change
        return 0
    switched = 0
    for module in model.modules():
        if isinstance(module, TrainableTokensLayer) and isinstance(
            getattr(module, "base_layer", None), (torch.nn.Embedding, torch.nn.Linear)
        ):
            module.forward = types.MethodType(_sparse_trainable_tokens_forward, module)
            switched += 1
    return switched


def _sparse_trainable_tokens_forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    import torch.nn.functional as F

    from ..engine import token_rows

    replaced = token_rows(self)
    if replaced is None or args or kwargs:
        return type(self).forward(self, x, *args, **kwargs)
    base = self.base_layer
    index = replaced[0].to(base.weight.device)
    delta = replaced[1].to(base.weight)
    if isinstance(base, torch.nn.Embedding):
        out = F.embedding(
            x,
            base.weight,
            padding_idx=base.padding_idx,
            max_norm=base.max_norm,
            norm_type=base.norm_type,
            scale_grad_by_freq=base.scale_grad_by_freq,
            sparse=base.sparse,
        )
        hits = x[..., None] == index
        marked = hits.any(dim=-1)
        if bool(marked.any()):
            rows = F.embedding(hits.to(torch.int64).argmax(dim=-1), delta)
            out = torch.where(marked[..., None], rows, out)
        scale = self._get_embed_scale()
        return out if scale is None else out * scale.to(out.dtype)
    # a tied LM head: peft computes F.linear(x, W with the marker rows replaced), without a bias.
    # The marker columns get the difference added in place: an out-of-place `index_copy` copied
    # the whole logits tensor forward and its gradient backward (hundreds of MB at 262k columns),
    # an in-place add's gradient is the incoming one as it is.
    correction = F.linear(x, delta - base.weight.index_select(0, index))
    return F.linear(x, base.weight).index_add_(-1, index, correction)


def hf_model(model: Any) -> Any:
    """The transformers model inside (a PeftModel's base with the adapters injected)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """The parameters that train, by name: everything for full fine-tuning, adapters for LoRA."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: Any, state: dict[str, torch.Tensor]) -> None:
    """Put saved trainable parameters back; every trainable parameter must be present."""
    params = dict(model.named_parameters())
    wanted = {n for n, p in params.items() if p.requires_grad}
    missing = wanted - set(state)
    unexpected = set(state) - set(params)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint does not match the model (missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))


def final_model(model: Any) -> Any:
    """A plain transformers model to save: LoRA merged in, or the model itself."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model
