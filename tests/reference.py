"""A naive latent engine for equivalence tests: the whole sequence is recomputed at every step.

It shares no code with `latent_gemma_cli.engine`: no cache, its own soft-thought mixture with the
scale written as sqrt(hidden_size), its own top-p and margins.
"""

from __future__ import annotations

import math

import torch


def _mix(model, logits, top_p):
    probs = torch.softmax(logits.double(), dim=-1)[0]
    order = torch.argsort(probs, descending=True)
    keep, mass = [], 0.0
    for idx in order.tolist():
        keep.append(idx)
        mass += float(probs[idx])
        if mass >= top_p:
            break
    weights = probs[keep] / probs[keep].sum()
    table = model.get_input_embeddings().weight.double()
    scale = math.sqrt(model.config.hidden_size)
    return (scale * (weights[:, None] * table[keep]).sum(0)).float()[None, None, :]


def _full(model, seq):
    return model(inputs_embeds=seq, use_cache=False).logits[:, -1, :].float()


def _hidden(model, seq):
    return model.base_model(inputs_embeds=seq, use_cache=False).last_hidden_state[:, -1:, :]


def naive_prefix(model, prompt_ids, mode, n, marker_ids=None, soft_top_p=0.95):
    """Return (logits of the first answer token, thought inputs, the embedded sequence)."""
    emb = model.get_input_embeddings()
    ids = list(prompt_ids) + ([marker_ids[0]] if marker_ids and mode != "off" else [])
    seq = emb(torch.tensor([ids]))
    thoughts = []
    for _ in range(n if mode != "off" else 0):
        vec = _hidden(model, seq) if mode == "coconut" else _mix(model, _full(model, seq), soft_top_p)
        thoughts.append(vec[0, 0])
        seq = torch.cat([seq, vec], dim=1)
    if marker_ids and mode != "off":
        seq = torch.cat([seq, emb(torch.tensor([[marker_ids[1]]]))], dim=1)
    return _full(model, seq), thoughts, seq


def naive_decode(model, seq, first_token, steps, eos_ids):
    """Greedy continuation from `first_token`, recomputing everything; returns (tokens, confidence)."""
    emb = model.get_input_embeddings()
    logits0 = _full(model, seq)
    probs0 = torch.softmax(logits0.double(), -1)[0].sort(descending=True).values
    margins = [float(probs0[0] - probs0[1])]
    tokens = [first_token]
    while len(tokens) < steps and tokens[-1] not in eos_ids:
        seq = torch.cat([seq, emb(torch.tensor([[tokens[-1]]]))], dim=1)
        logits = _full(model, seq)
        probs = torch.softmax(logits.double(), -1)[0].sort(descending=True).values
        margins.append(float(probs[0] - probs[1]))
        tokens.append(int(logits.argmax(-1)))
    return tokens, sum(margins) / len(margins)
