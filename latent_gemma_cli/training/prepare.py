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

GEMMA_MARKERS = ("<unused0>", "<unused1>")
NEW_MARKERS = ("<bot>", "<eot>")
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


def setup_markers(model: Any, tokenizer: Any) -> tuple[tuple[str, str], tuple[int, int], bool]:
    """Pick (or add) the marker tokens. Returns (strings, ids, whether the vocabulary grew)."""
    ids = [_token_id(tokenizer, t) for t in GEMMA_MARKERS]
    if all(i is not None for i in ids):
        return GEMMA_MARKERS, (ids[0], ids[1]), False
    tokenizer.add_special_tokens({"additional_special_tokens": list(NEW_MARKERS)})
    embedding = model.get_input_embeddings()
    old = embedding.weight.shape[0]
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        weight = model.get_input_embeddings().weight
        weight[old:] = weight[:old].mean(dim=0, keepdim=True)
    new_ids = tuple(int(tokenizer.convert_tokens_to_ids(t)) for t in NEW_MARKERS)
    return NEW_MARKERS, new_ids, True


def apply_lora(model: Any, marker_ids: tuple[int, int], settings: LoraSettings) -> Any:
    """Wrap the model with LoRA adapters and trainable marker embeddings."""
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
    return get_peft_model(model, config)


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
