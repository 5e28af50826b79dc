"""The n + 1-pass training loss: thoughts on a KV cache, gradients through every thought.

For a batch of sequences with n >= 1 thoughts (same n; `batch_loss` groups by n):

* pass 0: prompt + <bot>, **left-padded** so every row's <bot> is the last column; an
  attention mask hides the padding and explicit position ids restart at 0 on each row's first
  real token, so a padded row computes exactly what it computes alone (tested);
* passes 1..n-1: one thought position each, fed the previous pass's final hidden state (after
  the final norm) through the engine's feedback transform (`identity`: unscaled, as
  `inputs_embeds`; transformers 5 applies Gemma's scale inside the embedding module, so the
  first decoder layer sees the hidden state as is -- the engine's invariant);
* pass n: the last thought, <eot> and the target tokens (right-padded) with logits.

No tensor that needs grad is detached or edited in place: the cache concatenates new
keys/values, so the loss back-propagates through every thought into the prompt.

Stage 0 (no markers, no thoughts) is one pass over prompt + target, the prompts left-padded and
the targets right-padded.

The pause-token control (`feedback="pause"`) feeds every thought position the pause token's
embedding: its inputs do not depend on any hidden state, so the n + 1 passes collapse to one pass
over prompt + <bot> + n pause tokens + <eot> + target (`pause_loss`; tests compare it with the
n + 1-pass loss and gradients).

The loss is the sum of token cross-entropies over target tokens (remaining steps, answer,
<eos>) plus the count, so callers can average over all target tokens of a batch regardless of
padding or grouping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..engine import LatentRunner
from .curriculum import IGNORE, TrainSequence


@dataclass
class LossSum:
    total: torch.Tensor  # summed cross-entropy (float32, scalar)
    tokens: int


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp(min=0)


def language_loss(runner: LatentRunner, seqs: list[TrainSequence], pad_id: int) -> LossSum:
    """Stage-0 loss: prompt + target in one pass, prompts left-padded and targets right-padded, so
    every row's target starts in the same column and the LM head runs over the target columns only
    (one column before them predicts the first target token). With right padding it ran from the
    shortest prompt's end, over every longer prompt's tail end too: on ProsQA-sized batches about
    twice the target columns, each a 262k-wide logit row for Gemma 3."""
    dev = runner.device
    width = max(len(s.prompt) for s in seqs)
    tail_width = max(len(s.tail) for s in seqs)
    rows = [
        [pad_id] * (width - len(s.prompt)) + s.prompt + s.tail + [pad_id] * (tail_width - len(s.tail)) for s in seqs
    ]
    mask = [
        [0] * (width - len(s.prompt)) + [1] * (len(s.prompt) + len(s.tail)) + [0] * (tail_width - len(s.tail))
        for s in seqs
    ]
    ids = torch.tensor(rows, device=dev)
    mask = torch.tensor(mask, device=dev)
    # One IGNORE past every row's end: the last column predicts nothing.
    targets = torch.tensor([s.tail_labels + [IGNORE] * (tail_width + 1 - len(s.tail)) for s in seqs], device=dev)
    # The last tail_width + 1 columns start at width - 1: column j there predicts tail[j].
    inputs = dict(inputs_embeds=runner.embed(ids), attention_mask=mask, position_ids=_positions(mask), use_cache=False)
    return _tail_loss(runner, inputs, targets)


def latent_loss(
    runner: LatentRunner,
    seqs: list[TrainSequence],
    pad_id: int,
    feedback: str = "identity",
    detach_feedback: bool = False,
    prompt_embeds: torch.Tensor | None = None,
) -> LossSum:
    """Loss of sequences that share the thought count n >= 1 (see the module docstring).

    `detach_feedback` cuts the gradient through the thoughts (for tests only);
    `prompt_embeds` replaces the embedded, left-padded prompt (tests take its gradient).
    """
    n = seqs[0].num_thoughts
    assert n >= 1 and all(s.num_thoughts == n and s.markers for s in seqs)
    dev = runner.device
    width = max(len(s.prompt) for s in seqs)
    ids = torch.tensor([[pad_id] * (width - len(s.prompt)) + s.prompt for s in seqs], device=dev)
    mask = torch.tensor([[0] * (width - len(s.prompt)) + [1] * len(s.prompt) for s in seqs], device=dev)
    cache = runner.new_cache()
    embeds = runner.embed(ids) if prompt_embeds is None else prompt_embeds
    hidden = _hidden(runner, embeds, mask, _positions(mask), cache)
    batch = len(seqs)
    ones = torch.ones(batch, 1, dtype=mask.dtype, device=dev)
    for _ in range(n - 1):
        vec = _feed(runner, hidden, feedback, detach_feedback)
        mask = torch.cat([mask, ones], dim=1)
        hidden = _hidden(runner, vec[:, None, :], mask, _positions(mask)[:, -1:], cache)
    last = _feed(runner, hidden, feedback, detach_feedback)
    tail_width = max(len(s.tail) for s in seqs)
    tail = torch.tensor([s.tail + [pad_id] * (tail_width - len(s.tail)) for s in seqs], device=dev)
    # One IGNORE past every row's end, for the logit column of the last tail position.
    labels = torch.tensor([s.tail_labels + [IGNORE] * (tail_width + 1 - len(s.tail)) for s in seqs], device=dev)
    tail_mask = torch.tensor([[1] * len(s.tail) + [0] * (tail_width - len(s.tail)) for s in seqs], device=dev)
    inputs = torch.cat([last[:, None, :], runner.embed(tail)], dim=1)
    mask = torch.cat([mask, ones, tail_mask], dim=1)
    positions = _positions(mask)[:, -(tail_width + 1) :]
    kwargs = dict(inputs_embeds=inputs, attention_mask=mask, position_ids=positions, use_cache=True)
    kwargs[runner.cache_kw] = cache
    # Column j of this pass predicts tail[j]: column 0 is the last thought (predicting <eot>, ignored).
    return _tail_loss(runner, kwargs, labels)


def _tail_loss(runner: LatentRunner, inputs: dict, labels: torch.Tensor) -> LossSum:
    """Summed cross-entropy of the forward pass `inputs` against `labels` (batch, k), which label
    the pass's last k columns. Where the model's logits are its LM head on the backbone's states,
    the head runs on the labelled positions only: the padding after shorter targets and the
    ignored positions get no 262k-wide logit row (on ProsQA batches about a third of the target
    columns). Otherwise the model's own forward computes the logits of the last k columns."""
    k = labels.shape[1]
    keep = labels != IGNORE
    if runner.head_is_separable():
        hidden = runner.backbone(**inputs).last_hidden_state[:, -k:]
        total = F.cross_entropy(runner.next_token_logits(hidden[keep]), labels[keep], reduction="sum")
    else:
        # flattened as they come (a view, where slicing a column off first copied the whole tensor)
        logits = runner.model(**inputs, logits_to_keep=k).logits.float()
        total = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")
    return LossSum(total, int(keep.sum()))


def _feed(runner: LatentRunner, hidden: torch.Tensor, feedback: str, detach: bool) -> torch.Tensor:
    vec = runner.feedback(hidden, feedback)
    return vec.detach() if detach else vec


def _hidden(runner: LatentRunner, embeds, mask, positions, cache) -> torch.Tensor:
    out = runner.backbone(
        inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True, **{runner.cache_kw: cache}
    )
    return out.last_hidden_state[:, -1, :]


def pause_loss(runner: LatentRunner, seqs: list[TrainSequence], pad_id: int) -> LossSum:
    """`latent_loss` with the pause feedback, as one pass: each thought position is the pause
    token itself (its embedding is the constant fed back), so the sequence is plain tokens."""
    if runner.pause_id is None:
        raise ValueError("the pause feedback needs the pause token's id (LatentRunner.pause_id)")
    flat = [
        TrainSequence(s.prompt + [runner.pause_id] * s.num_thoughts, 0, s.tail, s.tail_labels, False, s.stage)
        for s in seqs
    ]
    return language_loss(runner, flat, pad_id)


def batch_loss(runner: LatentRunner, seqs: list[TrainSequence], pad_id: int, feedback: str = "identity") -> LossSum:
    """Summed target-token loss of a batch, one padded forward per thought count."""
    groups: dict[tuple[int, bool], list[TrainSequence]] = {}
    for s in seqs:
        groups.setdefault(s.key(), []).append(s)
    total, tokens = None, 0
    for (n, markers), group in sorted(groups.items()):
        # passes per chunk: one for prompt + target, n + 1 for the thought passes
        passes = 1 if not markers or feedback == "pause" else n + 1
        for chunk in padding_chunks(group, runner.device, passes):
            if not markers:
                part = language_loss(runner, chunk, pad_id)
            elif feedback == "pause":
                part = pause_loss(runner, chunk, pad_id)
            else:
                part = latent_loss(runner, chunk, pad_id, feedback)
            total = part.total if total is None else total + part.total
            tokens += part.tokens
    return LossSum(total, tokens)


# What one more padded pass costs besides its tokens, in token positions, on a CPU: the passes'
# fixed work (one call per layer and op, for forward and backward) is small beside a position's.
CHUNK_OVERHEAD_TOKENS = {"cpu": 64}


def padding_chunks(seqs: list[TrainSequence], device: torch.device | str, passes: int = 1) -> list[list[TrainSequence]]:
    """Split sequences that share a layout into passes of similar lengths, where that computes
    fewer padded positions: each row computes exactly what it computes alone (padding is masked
    and positions restart on each row), so the summed loss and its gradients are the same.

    A CPU computes every padded position at full cost: a ProsQA batch of 8 prompts of 218-377
    tokens is 20% padding in one pass. Positions are rows x (longest prompt + longest tail) per
    chunk, plus CHUNK_OVERHEAD_TOKENS for each of the chunk's `passes` (a latent chunk runs n + 1);
    the cheapest split into runs of the length-sorted rows is found exactly (dynamic programming
    over the split points); on the CPU the rows come back sorted even as one chunk. Other devices
    (a GPU runs padding in parallel) keep the rows as one chunk, in their order."""
    overhead = CHUNK_OVERHEAD_TOKENS.get(torch.device(device).type)
    if overhead is None or len(seqs) < 2:
        return [seqs]
    overhead *= passes
    rows = sorted(seqs, key=lambda s: (len(s.prompt), len(s.tail)))
    best = [0.0] + [float("inf")] * len(rows)  # best[i]: cheapest cost of rows[:i]
    cut = [0] * (len(rows) + 1)
    for i in range(1, len(rows) + 1):
        prompt = tail = 0
        for j in range(i - 1, -1, -1):  # the last pass is rows[j:i]
            prompt, tail = max(prompt, len(rows[j].prompt)), max(tail, len(rows[j].tail))
            cost = best[j] + (i - j) * (prompt + tail) + overhead
            if cost < best[i]:
                best[i], cut[i] = cost, j
    chunks, i = [], len(rows)
    while i > 0:
        chunks.append(rows[cut[i] : i])
        i = cut[i]
    return chunks[::-1]


class LatentLossModule(torch.nn.Module):
    """The whole n + 1-pass loss as one module call, so DDP sees one forward per backward."""

    def __init__(
        self,
        model: torch.nn.Module,
        hf_model: torch.nn.Module,
        pad_id: int,
        feedback: str = "identity",
        pause_id: int | None = None,
    ):
        super().__init__()
        self.model = model  # what holds the trainable parameters (a PeftModel with LoRA)
        self.pad_id = pad_id
        self.feedback = feedback
        self._runner = [LatentRunner(hf_model)]  # a list keeps it out of the module tree
        self._runner[0].pause_id = pause_id

    def forward(self, seqs: list[TrainSequence]) -> tuple[torch.Tensor, torch.Tensor]:
        out = batch_loss(self._runner[0], seqs, self.pad_id, self.feedback)
        return out.total, torch.tensor(out.tokens, device=out.total.device)


def enable_mlp_checkpointing(hf_model: torch.nn.Module) -> int:
    """Recompute every decoder layer's MLP in the backward pass; returns how many were wrapped.

    transformers' own gradient checkpointing drops the KV cache inside checkpointed layers (a
    replay would write the cache twice), which the thought passes depend on. The MLP holds the
    largest activations and touches no cache, so it is what we checkpoint; attention is kept.
    """
    count = 0
    for module in hf_model.modules():
        mlp = getattr(module, "mlp", None)
        if mlp is None or getattr(mlp, "_lgemma_checkpointed", False) or not hasattr(module, "self_attn"):
            continue
        inner = mlp.forward

        def wrapped(x, _inner=inner):
            if torch.is_grad_enabled() and x.requires_grad:
                return checkpoint(_inner, x, use_reentrant=False)
            return _inner(x)

        mlp.forward = wrapped
        mlp._lgemma_checkpointed = True
        count += 1
    return count
