"""Pure next-token selection: greedy at temperature 0, else temperature + nucleus with a seeded generator."""

from __future__ import annotations

import torch


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the tail of each row outside the smallest set whose mass reaches `top_p`; renormalise.

    The most probable token always survives, so `top_p` near 0 degenerates to greedy.
    """
    if top_p >= 1.0:
        return probs
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return kept / kept.sum(dim=-1, keepdim=True)


def select_next(
    logits: torch.Tensor,
    temperature: float = 0.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next token per row of `logits` (batch, vocab): argmax when temperature is 0."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    probs = top_p_filter(probs, top_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def margins(logits: torch.Tensor) -> torch.Tensor:
    """p(top1) - p(top2) per row, at temperature 1: the CoT-decoding confidence of a step."""
    top2 = torch.softmax(logits.float(), dim=-1).topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]
