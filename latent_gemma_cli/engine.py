"""The latent engine: continuous thoughts on a KV cache, then k reasoning paths decoded in one batch.

Sequence per path (method.md section 1):

    [prompt] <bot> [n thought positions] <eot> [answer] <eos>

* `coconut`: the input at thought position t+1 is the final (post-norm) hidden state at
  position t, handed to the first decoder layer unscaled.
* `soft`: the input is what the embedding module would output for the probability mix of the
  top-p set of the next-token distribution at t: scale * sum_i p_i E[i].
* `off`: plain decoding, no markers, no thoughts.

The prompt is prefilled once; each thought is one single-position forward on the cache; the
answer continues on the same cache. With several paths (CoT-decoding, Wang and Zhou 2024) the
top-k first answer tokens start k branches that run in one batch on a k-fold copy of the cache;
a path's confidence is the mean over its answer tokens (the terminating <eos> included) of
p(top1) - p(top2) at that step. The engine works on token ids and tensors and prints nothing.

Soft mode on a model without a latent description has no trained markers, so none are inserted:
the thoughts follow the prompt directly. transformers >= 5 applies Gemma's sqrt(hidden) scale
inside the embedding module (`embed_scale`), so `inputs_embeds` reach the first decoder layer as
given; that is the invariant the tests check with a hook.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

from .errors import InputError, NotLatentTrainedError, UsageError
from .latent_spec import LatentSpec
from .sampling import margins, select_next, top_p_filter

# Settings live in a module without torch, so config and the command layer can use them.
from .settings import DEFAULT_SOFT_THOUGHTS, MAX_PATHS, MAX_SEED, MODES, Settings, for_model  # noqa: F401


@dataclass
class PathResult:
    """One decoded reasoning path."""

    text: str
    token_ids: list[int]
    confidence: float
    finished: bool

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


@dataclass
class Timings:
    prefill_s: float = 0.0
    thoughts_s: float = 0.0
    decode_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.prefill_s + self.thoughts_s + self.decode_s


@dataclass
class Generation:
    """What one engine call produced: every path, the chosen one, and how it got there."""

    paths: list[PathResult]
    chosen: int
    prompt_ids: list[int]
    mode: str
    num_thoughts: int
    markers: tuple[str, str] | None
    seed: int | None
    timings: Timings = field(default_factory=Timings)
    # With `Settings.lens_top`: per thought, the top tokens of the LM head on its input, (id, p).
    thought_lens: list[list[tuple[int, float]]] | None = None

    @property
    def answer(self) -> str:
        return self.paths[self.chosen].text


@dataclass
class LatentPrefix:
    """State after prompt, markers and thoughts: the cache and the logits of the first answer token."""

    cache: Any
    logits: torch.Tensor  # (1, vocab), float32
    thought_inputs: torch.Tensor  # (n, hidden): what the first decoder layer saw at each thought
    length: int
    prefill_s: float = 0.0
    thoughts_s: float = 0.0
    stream: "Stream | None" = None
    # coconut: the final hidden state each thought was made from (prompts, n, hidden)
    thought_states: torch.Tensor | None = None


def token_rows(layer: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(token ids, their rows) that an unmerged, enabled peft trainable-token layer with one
    active adapter puts in place of the frozen table's rows; None for anything else."""
    deltas = getattr(layer, "trainable_tokens_delta", None)
    indices = getattr(layer, "token_indices", None)
    if (
        deltas is None
        or indices is None
        or getattr(layer, "merged", False)
        or getattr(layer, "disable_adapters", False)
    ):
        return None
    active = layer.active_adapters
    if len(active) != 1 or active[0] not in indices:
        return None
    return torch.as_tensor(indices[active[0]]), deltas[active[0]]


def trainable_rows(module: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`token_rows` of the first such layer inside an embedding module, else None."""
    for sub in module.modules():
        if (rows := token_rows(sub)) is not None:
            return rows
    return None


def plain_module(module: Any) -> Any:
    """The module a wrapper (peft's trainable-token or LoRA layers) wraps, else the module itself.

    Reading `.weight` of peft's `TrainableTokensWrapper` builds the merged matrix, a copy of the
    whole embedding (262k x 640 for Gemma 3) per read: the device, dtype and vocabulary size are
    read from the wrapped module instead (profiled: validation during LoRA training spent most of
    its time copying the embedding for `runner.device`)."""
    while True:
        modules = module.__dict__.get("_modules") or {}
        # peft keeps the wrapped module as `base_layer` (LoRA, trainable tokens) and, in its
        # trainable-token wrapper, inside `token_adapter` (`original_module` may be None there)
        inner = modules.get("original_module") or modules.get("token_adapter") or modules.get("base_layer")
        if inner is None:
            return module
        module = inner


class LatentRunner:
    """Adapter over a Hugging Face causal LM that takes `inputs_embeds` and a cache."""

    def __init__(self, model: Any):
        self.model = model
        self.embedding = model.get_input_embeddings()
        self._plain_embedding = plain_module(self.embedding)
        self.backbone = model.base_model  # decoder without LM head: hidden states after the final norm
        params = inspect.signature(model.forward).parameters
        # transformers 5.x renamed the forward's `past_key_values` to `cache`.
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        # Read from the wrapped module: peft's trainable-token wrapper (LoRA training with marker
        # tokens) has no `embed_scale` of its own, and reading it there gave 1.0 instead of
        # Gemma's sqrt(hidden), so embed_norm and token_mix thoughts were ~25x too small in
        # training and right after the merge (RESULTS.md part 11).
        scale = getattr(self._plain_embedding, "embed_scale", None)
        self.embed_scale = float(scale) if scale is not None else 1.0
        self._mean_embed_norm: torch.Tensor | None = None
        # The pause token's id for the `pause` feedback (the pause-as-thought control).
        self.pause_id: int | None = None
        self._separable: bool | None = None

    @property
    def device(self) -> torch.device:
        return self._plain_embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self._plain_embedding.weight.dtype

    def new_cache(self):
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """What the embedding module outputs for `ids` (Gemma's scale included)."""
        return self.embedding(ids)

    def soft_embedding(self, logits: torch.Tensor, top_p: float) -> torch.Tensor:
        """scale * sum_i p_i E[i] over the top-p set of softmax(logits); (batch, hidden)."""
        probs = top_p_filter(torch.softmax(logits.float(), dim=-1), top_p)
        weight = self.embedding.weight
        rows = []
        for row in probs:
            # The nucleus is usually a handful of tokens: gathering their rows reads kilobytes
            # where a dense product would read the whole embedding table again (GBs for Gemma).
            idx = row.nonzero().squeeze(-1)
            if idx.numel() * 4 < row.numel():
                rows.append(row[idx].to(self.dtype) @ weight.index_select(0, idx))
            else:
                rows.append(row.to(self.dtype) @ weight)
        return torch.stack(rows) * torch.tensor(self.embed_scale, dtype=self.dtype, device=self.device)

    def next_token_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head on final hidden states (the model's final logit soft-capping included), float32."""
        logits = self.model.get_output_embeddings()(hidden).float()
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits

    def head_is_separable(self) -> bool:
        """Whether the model's logits are `next_token_logits` of the backbone's hidden states (true
        of Gemma, Llama, Qwen and most causal LMs; not of one that scales its logits after the
        head, such as Cohere's `logit_scale`). Checked once, on three tokens in eval mode and in
        the model's own precision, so the training loss may run the LM head on its labelled
        positions only and stay exact in float32 (under bf16 autocast Gemma 2's soft-capping is
        then applied in float32). A model whose parts cannot be called this way is not separable.
        The check calls the model's forward hooks once more and sets `training` back directly."""
        if self._separable is None:
            self._separable = self._check_separable()
        return self._separable

    def _check_separable(self) -> bool:
        if self.backbone is self.model or self.model.get_output_embeddings() is None:
            return False
        modes = {m: m.training for m in self.model.modules()}
        vocab = int(getattr(self._plain_embedding, "num_embeddings", 3))
        ids = torch.arange(3, device=self.device)[None] % vocab
        self.model.eval()
        try:  # in the model's own precision: an autocast region around the call is not the model
            with torch.no_grad(), torch.autocast(self.device.type, enabled=False):
                whole = self.model(input_ids=ids, use_cache=False).logits.float()
                split = self.next_token_logits(self.backbone(input_ids=ids, use_cache=False).last_hidden_state)
        except (AttributeError, TypeError, ValueError, RuntimeError):
            return False
        finally:
            for module, training in modes.items():
                module.training = training
        scale = max(1.0, float(whole.abs().max()))
        return whole.shape == split.shape and bool((whole - split).abs().max() <= 1e-4 * scale)

    def token_mixture(self, logits: torch.Tensor) -> torch.Tensor:
        """scale * softmax(logits) @ E over the whole vocabulary; (batch, hidden), differentiable.

        E is the embedding the model uses: under LoRA training the marker rows are peft's
        trainable ones, added as a correction (reading the wrapper's `.weight` would copy the
        whole table at every thought)."""
        weight = self._plain_embedding.weight
        probs = torch.softmax(logits, dim=-1)[..., : weight.shape[0]].to(weight.dtype)
        out = probs @ weight
        replaced = trainable_rows(self.embedding)
        if replaced is not None:
            index, rows = replaced
            index = index.to(weight.device)
            out = out + probs[..., index] @ (rows.to(weight) - weight.index_select(0, index))
        return out * self.embed_scale

    def feedback(self, hidden: torch.Tensor, transform: str) -> torch.Tensor:
        """Turn a final hidden state into the next thought's input (`identity` is the paper's)."""
        if transform == "identity":
            return hidden
        if transform == "embed_norm":
            # The target norm is a constant (no gradient). While the embedding trains it is
            # recomputed every call, so training and inference see the same rule; otherwise
            # it is computed once (a pass over the whole table, GBs for Gemma).
            training = torch.is_grad_enabled() and any(p.requires_grad for p in self.embedding.parameters())
            target = None if training else self._mean_embed_norm
            if target is None:
                with torch.no_grad():  # a 0-d tensor on the device: no host sync per thought
                    target = self.embedding.weight.float().norm(dim=-1).mean() * self.embed_scale
                if not training:
                    self._mean_embed_norm = target
            return hidden * (target / hidden.float().norm(dim=-1, keepdim=True)).to(hidden.dtype)
        if transform == "token_mix":
            # The expected input embedding under the model's next-token distribution at this
            # position: softmax over the whole vocabulary (temperature 1, no nucleus, so it is
            # differentiable and the same in training and inference) times the embedding table.
            # A pretrained model's layers read token embeddings; a raw final hidden state is
            # far from any (its top-1 decode can be the right token while its direction is not).
            return self.token_mixture(self.next_token_logits(hidden))
        if transform == "pause":
            # The paper's "pause as thought" control: one fixed (learned) vector at every thought
            # position, whatever the hidden state; it is what the embedding module outputs for
            # the pause token, so a trained pause embedding is used exactly as a token would be.
            if self.pause_id is None:
                raise ValueError("the pause feedback needs the pause token (LatentSpec.pause)")
            ids = torch.full((hidden.shape[0],), self.pause_id, dtype=torch.long, device=hidden.device)
            return self.embed(ids).to(hidden.dtype)
        raise ValueError(f"unknown feedback transform {transform!r}")

    def hidden(self, inputs_embeds: torch.Tensor, cache: Any, **positions: Any) -> torch.Tensor:
        """Final hidden state at the last position, skipping the LM head."""
        out = self.backbone(inputs_embeds=inputs_embeds, use_cache=True, **{self.cache_kw: cache}, **positions)
        return out.last_hidden_state[:, -1, :]

    def logits(self, inputs_embeds: torch.Tensor, cache: Any, **positions: Any) -> torch.Tensor:
        """Next-token logits (float32) at the last position."""
        out = self.model(
            inputs_embeds=inputs_embeds, use_cache=True, logits_to_keep=1, **{self.cache_kw: cache}, **positions
        )
        return out.logits[:, -1, :].float()

    def token_ids(self, tokenizer: Any, token: str) -> int:
        tid = tokenizer.convert_tokens_to_ids(token)
        if tid is None or tid == tokenizer.unk_token_id:
            raise UsageError(f"marker token {token!r} is not in the tokenizer's vocabulary")
        return int(tid)


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every id that ends an answer: the generation config's and the tokenizer's."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def resolve_thoughts(settings: Settings, spec: LatentSpec | None) -> tuple[int, tuple[str, str] | None, str]:
    """Number of thoughts, marker tokens and feedback transform for this call."""
    if settings.mode == "off":
        return 0, None, "identity"
    if settings.mode == "coconut" and spec is None:
        raise NotLatentTrainedError(
            "this model has no latent description (lgemma_latent.json): it was not trained for coconut mode",
            hint="train one with `lgemma train`, or use --mode soft (training-free) or --mode off",
        )
    n = settings.num_thoughts
    if n is None:
        n = spec.num_thoughts if spec is not None else DEFAULT_SOFT_THOUGHTS
    markers = (spec.bot, spec.eot) if spec is not None else None
    return n, markers, spec.feedback if spec is not None else "identity"


class Stream:
    """Attention mask and positions of a left-padded batch, grown one position at a time.

    Prompts of equal length need neither (positions follow the cache), so a single prompt runs
    exactly the unpadded path; padded rows get an explicit mask and per-row positions, so
    padding changes nothing a row computes.
    """

    def __init__(self, lengths: list[int], device: torch.device):
        width = max(lengths)
        self.mask: torch.Tensor | None = None
        self.next_pos: torch.Tensor | None = None
        if any(n != width for n in lengths):
            self.mask = torch.zeros(len(lengths), width, dtype=torch.long, device=device)
            for row, n in enumerate(lengths):
                self.mask[row, width - n :] = 1
            self.next_pos = torch.tensor(lengths, device=device)

    def prefill(self) -> dict:
        if self.mask is None:
            return {}
        return {"attention_mask": self.mask, "position_ids": (self.mask.cumsum(-1) - 1).clamp(min=0)}

    def step(self) -> dict:
        """Keyword arguments for feeding one more position to every row."""
        if self.mask is None:
            return {}
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], dim=1)
        positions = self.next_pos[:, None].clone()
        self.next_pos = self.next_pos + 1
        return {"attention_mask": self.mask, "position_ids": positions}

    def repeat(self, k: int) -> None:
        if self.mask is not None:
            self.mask = self.mask.repeat_interleave(k, dim=0)
            self.next_pos = self.next_pos.repeat_interleave(k, dim=0)


def run_prefix_batch(
    runner: LatentRunner,
    prompts: list[list[int]],
    mode: str,
    num_thoughts: int,
    marker_ids: tuple[int, int] | None,
    feedback: str = "identity",
    soft_top_p: float = 0.95,
    pad_id: int = 0,
) -> LatentPrefix:
    """Prefill each prompt (+ <bot>), run the thoughts one position at a time, then <eot>.

    Prompts are left-padded into one batch; `logits` has one row per prompt and
    `thought_inputs` is (prompts, thoughts, hidden).
    """
    dev = runner.device
    with_markers = marker_ids is not None and mode != "off"
    rows = [list(p) + ([marker_ids[0]] if with_markers else []) for p in prompts]
    width = max(len(r) for r in rows)
    stream = Stream([len(r) for r in rows], dev)
    cache = runner.new_cache()
    start = time.perf_counter()
    embeds = runner.embed(torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], device=dev))
    thought_inputs: list[torch.Tensor] = []
    states: list[torch.Tensor] = []
    hidden_size = embeds.shape[-1]
    if mode == "off" or (num_thoughts == 0 and not with_markers):
        logits = runner.logits(embeds, cache, **stream.prefill())
        empty = embeds.new_empty(len(rows), 0, hidden_size)
        return LatentPrefix(cache, logits, empty, width, time.perf_counter() - start, 0.0, stream)
    if mode == "coconut":
        if not with_markers:
            raise NotLatentTrainedError("coconut mode needs the marker tokens of a latent description")
        state = runner.hidden(embeds, cache, **stream.prefill())
        prefilled = time.perf_counter()
        for i in range(num_thoughts):
            vec = runner.feedback(state, feedback)
            thought_inputs.append(vec)
            states.append(state)
            # The last thought's output state is unused (<eot> follows); its forward fills the cache.
            state = runner.hidden(vec[:, None, :], cache, **stream.step())
    else:  # soft
        logits = runner.logits(embeds, cache, **stream.prefill())
        prefilled = time.perf_counter()
        for _ in range(num_thoughts):
            vec = runner.soft_embedding(logits, soft_top_p)
            thought_inputs.append(vec)
            logits = runner.logits(vec[:, None, :], cache, **stream.step())
    if with_markers:
        eot = torch.full((len(rows), 1), marker_ids[1], device=dev)
        logits = runner.logits(runner.embed(eot), cache, **stream.step())
    length = width + num_thoughts + (1 if with_markers else 0)
    stacked = torch.stack(thought_inputs, dim=1) if thought_inputs else embeds.new_empty(len(rows), 0, hidden_size)
    sources = torch.stack(states, dim=1) if states else None
    return LatentPrefix(
        cache, logits, stacked, length, prefilled - start, time.perf_counter() - prefilled, stream, sources
    )


def run_prefix(
    runner: LatentRunner,
    prompt_ids: list[int],
    mode: str,
    num_thoughts: int,
    marker_ids: tuple[int, int] | None,
    feedback: str = "identity",
    soft_top_p: float = 0.95,
) -> LatentPrefix:
    """`run_prefix_batch` for one prompt; `thought_inputs` is (thoughts, hidden)."""
    prefix = run_prefix_batch(runner, [prompt_ids], mode, num_thoughts, marker_ids, feedback, soft_top_p)
    prefix.thought_inputs = prefix.thought_inputs[0]
    return prefix


def decode_paths(
    runner: LatentRunner,
    prefix: LatentPrefix,
    k: int,
    max_new_tokens: int,
    eos_ids: set[int],
    temperature: float = 0.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    first_tokens: list[int] | None = None,
    stop_ids: set[int] | frozenset[int] = frozenset(),
    on_token: Callable[[int, int], None] | None = None,
) -> list[tuple[list[int], float, bool]]:
    """Decode k paths per prefix row in one batch: (token ids, confidence, finished) each, row-major.

    A path ends at any of `eos_ids`, or at any of `stop_ids` once it has produced another token.

    The first tokens are the top-k candidates of each row's first answer distribution (or
    `first_tokens`, for a one-row prefix); with k = 1 and temperature > 0 the first token is
    sampled like the rest.
    """
    dev = runner.device
    first_margins = margins(prefix.logits).tolist()
    if first_tokens is not None:
        first = torch.tensor(first_tokens, device=dev)
        k = len(first_tokens)
    elif k == 1:
        first = select_next(prefix.logits, temperature, top_p, generator)
    else:
        first = prefix.logits.topk(k, dim=-1).indices.reshape(-1)
    cache = prefix.cache
    if k > 1:
        cache.batch_repeat_interleave(k)
        if prefix.stream is not None:
            prefix.stream.repeat(k)
    n = first.shape[0]
    tokens: list[list[int]] = [[int(t)] for t in first]
    step_margins: list[list[float]] = [[first_margins[r // k]] for r in range(n)]
    started = [int(t) not in stop_ids for t in first]
    done = [int(t) in eos_ids for t in first]
    if on_token is not None:
        for r in range(n):
            on_token(r, tokens[r][0])
    current = first[:, None]
    pad = min(eos_ids) if eos_ids else 0
    step = prefix.stream.step if prefix.stream is not None else dict
    for _ in range(max_new_tokens - 1):
        if all(done):
            break
        logits = runner.logits(runner.embed(current), cache, **step())
        nxt = select_next(logits, temperature, top_p, generator)
        mg = margins(logits).tolist()
        for r in range(n):
            if done[r]:
                continue
            tok = int(nxt[r])
            tokens[r].append(tok)
            step_margins[r].append(mg[r])
            done[r] = tok in eos_ids or (started[r] and tok in stop_ids)
            started[r] = started[r] or tok not in stop_ids
            if on_token is not None:
                on_token(r, tok)
        # Finished rows keep decoding a pad token so the batch stays rectangular; it is discarded.
        current = torch.tensor([[pad] if done[r] else [tokens[r][-1]] for r in range(n)], device=dev)
    return [(tokens[r], sum(step_margins[r]) / len(step_margins[r]), done[r]) for r in range(n)]


def thought_lens(
    runner: "LatentRunner", thought_inputs: torch.Tensor, top: int, mixed_from: torch.Tensor | None = None
) -> list[list[list[tuple[int, float]]]]:
    """The logit lens on continuous thoughts: softmax of the LM head applied to what the first
    decoder layer saw at each thought (prompts x thoughts x `top` (token id, probability)).
    `mixed_from` (token_mix feedback): the hidden states the thoughts were mixed from; each
    thought is the expected embedding under their next-token distribution, which is shown."""
    if mixed_from is not None:
        probs = torch.softmax(runner.next_token_logits(mixed_from), dim=-1)
    else:
        head = runner.model.get_output_embeddings()
        dtype = head.weight.dtype if isinstance(head, torch.nn.Linear) else thought_inputs.dtype  # or quantized
        probs = torch.softmax(head(thought_inputs.to(dtype)).float(), dim=-1)
    values, ids = probs.topk(min(top, probs.shape[-1]), dim=-1)
    return [
        [list(zip(ids[r, t].tolist(), values[r, t].tolist())) for t in range(ids.shape[1])] for r in range(ids.shape[0])
    ]


def generate(
    model: Any,
    tokenizer: Any,
    prompt_ids: list[int],
    settings: Settings,
    spec: LatentSpec | None = None,
    runner: LatentRunner | None = None,
    *,
    on_token: Callable[[int, int], None] | None = None,
) -> Generation:
    """Run the latent engine on prompt token ids and return every path plus the chosen answer.
    `on_token(path, token_id)` sees each answer token as it is decoded."""
    return generate_batch(model, tokenizer, [prompt_ids], settings, spec, runner, on_token=on_token)[0]


def generate_batch(
    model: Any,
    tokenizer: Any,
    prompts: list[list[int]],
    settings: Settings,
    spec: LatentSpec | None = None,
    runner: LatentRunner | None = None,
    *,
    on_token: Callable[[int, int], None] | None = None,
) -> list[Generation]:
    """`generate` for several prompts in one left-padded batch (k paths each); timings are the batch's."""
    settings.validate()
    settings = for_model(settings, spec)
    runner = runner or LatentRunner(model)
    head = plain_module(model.get_output_embeddings())
    vocab = head.out_features if hasattr(head, "out_features") else head.weight.shape[0]
    if settings.paths > vocab:
        raise UsageError(
            f"--paths {settings.paths} is more than the model's vocabulary of {vocab} tokens: use 1 to {min(vocab, MAX_PATHS)}"
        )
    n, markers, feedback = resolve_thoughts(settings, spec)
    marker_ids = (runner.token_ids(tokenizer, markers[0]), runner.token_ids(tokenizer, markers[1])) if markers else None
    if feedback == "pause":
        runner.pause_id = runner.token_ids(tokenizer, spec.pause)
    context = getattr(model.config, "max_position_embeddings", None)
    longest = max(len(p) for p in prompts)
    needed = longest + n + (2 if marker_ids else 0)
    if context and needed >= context:
        raise InputError(
            f"the input is {longest} tokens; with {n} thoughts it exceeds the model's context of {context} tokens"
        )
    max_new = min(settings.max_new_tokens, context - needed) if context else settings.max_new_tokens
    generator = None
    if settings.seed is not None:
        generator = torch.Generator(device=runner.device).manual_seed(settings.seed)
    eos_ids = eos_token_ids(model, tokenizer)
    stops = set(settings.stop_ids) - eos_ids
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.inference_mode():
        prefix = run_prefix_batch(runner, prompts, settings.mode, n, marker_ids, feedback, settings.soft_top_p, pad_id)
        t1 = time.perf_counter()
        mixed_from = prefix.thought_states if feedback == "token_mix" and settings.mode == "coconut" else None
        lens = (
            thought_lens(runner, prefix.thought_inputs, settings.lens_top, mixed_from)
            if settings.lens_top > 0
            else None
        )
        decoded = decode_paths(
            runner,
            prefix,
            settings.paths,
            max_new,
            eos_ids,
            settings.temperature,
            settings.top_p,
            generator,
            stop_ids=stops,
            on_token=on_token,
        )
        decode_s = time.perf_counter() - t1
    timings = Timings(prefill_s=prefix.prefill_s, thoughts_s=prefix.thoughts_s, decode_s=decode_s)
    k = len(decoded) // len(prompts)
    results = []
    for i, prompt in enumerate(prompts):
        paths = []
        for ids, conf, finished in decoded[i * k : (i + 1) * k]:
            text_ids = [t for t in ids if t not in eos_ids]
            text = tokenizer.decode(text_ids, skip_special_tokens=True).strip()
            paths.append(PathResult(text=text, token_ids=ids, confidence=conf, finished=finished))
        chosen = max(range(len(paths)), key=lambda j: (paths[j].confidence, -j))
        results.append(
            Generation(
                paths=paths,
                chosen=chosen,
                prompt_ids=list(prompt),
                mode=settings.mode,
                num_thoughts=n,
                markers=markers,
                seed=settings.seed,
                timings=timings,
                thought_lens=lens[i] if lens is not None else None,
            )
        )
    return results


@dataclass
class StreamEvent:
    """One item of `Engine.stream`: an answer token of path `path` as it is decoded, or, last,
    the finished generation (`generation` set, `token_id` None)."""

    token_id: int | None = None
    path: int = 0
    generation: Generation | None = None


class Engine:
    """A model ready to generate: model, tokenizer, latent description and one `LatentRunner`.

    The seam every caller goes through (ask, translate, eval, training validation, the Python
    API): build it once per loaded model (`LoadedModel.engine` does) and call `generate`,
    `generate_batch` or `stream` with `Settings`.
    """

    def __init__(self, model: Any, tokenizer: Any, spec: LatentSpec | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec
        self.runner = LatentRunner(model)

    @classmethod
    def of(cls, loaded: Any) -> "Engine":
        """The engine of a `loading.LoadedModel` (or anything with model, tokenizer and spec)."""
        return cls(loaded.model, loaded.tokenizer, getattr(loaded, "spec", None))

    def generate(
        self, prompt_ids: list[int], settings: Settings, *, on_token: Callable[[int, int], None] | None = None
    ) -> Generation:
        return generate(self.model, self.tokenizer, prompt_ids, settings, self.spec, self.runner, on_token=on_token)

    def generate_batch(self, prompts: list[list[int]], settings: Settings) -> list[Generation]:
        return generate_batch(self.model, self.tokenizer, prompts, settings, self.spec, self.runner)

    def stream(self, prompt_ids: list[int], settings: Settings) -> Iterator[StreamEvent]:
        """Yield each answer token as it is decoded, then the finished `Generation`.

        Generation runs in a worker thread (torch releases the GIL); the caller's thread only
        waits on a queue, so Ctrl-C reaches it at once. Stopping early (closing the generator)
        lets the worker finish its current answer in the background and drops it.
        """
        import queue
        import threading

        events: queue.Queue = queue.Queue()

        def work() -> None:
            try:
                gen = self.generate(
                    prompt_ids, settings, on_token=lambda path, tok: events.put(StreamEvent(token_id=tok, path=path))
                )
                events.put(StreamEvent(generation=gen))
            except BaseException as exc:  # handed to the caller's thread
                events.put(exc)

        threading.Thread(target=work, name="lgemma-generate", daemon=True).start()
        while True:
            item = events.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.generation is not None:
                return
