"""`lgemma train`: curriculum layout, the n+1-pass loss against a naive recompute, resume, CLI, launch.

Tolerances (float32): mean token loss within 1e-5, gradients within 1e-4 of the naive
implementation (max abs difference, relative to the largest gradient when that exceeds 1).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from latent_gemma_cli.answers import format_target
from latent_gemma_cli.cli import app
from latent_gemma_cli.datasets import Dataset, Example
from latent_gemma_cli.engine import LatentRunner
from latent_gemma_cli.latent_spec import LatentSpec
from latent_gemma_cli.loading import load_model
from latent_gemma_cli.prompting import prompt_ids
from latent_gemma_cli.training import curriculum as cur
from latent_gemma_cli.training.curriculum import IGNORE, Curriculum, build_sequence, plan
from latent_gemma_cli.training.forward import (
    batch_loss,
    enable_mlp_checkpointing,
    latent_loss,
    padding_chunks,
)
from latent_gemma_cli.training.prepare import LoraSettings, apply_lora, final_model
from latent_gemma_cli.training.trainer import TrainConfig, Trainer

STEPS = ["Tom is a wumpus.", "Every wumpus is a yumpus.", "Every yumpus is a lempus."]
LOSS_TOL, GRAD_TOL = 1e-5, 1e-4


# --- the stage schedule -------------------------------------------------------------------------


def test_stage_schedule_three_steps():
    c = Curriculum(max_stage=2, thoughts_per_step=2)
    assert c.stages() == [0, 1, 2, 3]
    got = {s: plan(STEPS, s, c) for s in c.stages() + [7]}
    assert (got[0].removed, got[0].num_thoughts, got[0].markers, got[0].remaining) == (0, 0, False, tuple(STEPS))
    assert (got[1].removed, got[1].num_thoughts, got[1].remaining) == (1, 2, tuple(STEPS[1:]))
    assert (got[2].removed, got[2].num_thoughts, got[2].remaining) == (2, 4, tuple(STEPS[2:]))
    # Past the last stage every step goes and the thoughts stay at N * c.
    for s in (3, 7):
        assert (got[s].removed, got[s].num_thoughts, got[s].markers, got[s].remaining) == (3, 4, True, ())
    c3 = Curriculum(max_stage=3, thoughts_per_step=1, final_epochs=0)
    assert c3.stages() == [0, 1, 2, 3]
    assert [plan(STEPS, s, c3).remaining for s in (1, 2, 3)] == [tuple(STEPS[1:]), tuple(STEPS[2:]), ()]
    # Rows without steps still get s * c thoughts, with nothing to remove.
    assert (plan([], 2, c).removed, plan([], 2, c).num_thoughts) == (0, 4)
    assert c.inference_thoughts == 4
    # --stages 0 is the language stage alone (chain of thought as text), no all-latent stage.
    assert Curriculum(max_stage=0).stages() == [0]
    assert Curriculum(max_stage=0, final_epochs=2).stages() == [0]
    # --first-stage 1: a CoT-trained base skips the language stage.
    assert Curriculum(max_stage=2, first_stage=1).stages() == [1, 2, 3]
    with pytest.raises(ValueError, match="first stage"):
        Curriculum(max_stage=2, first_stage=3).validate()
    # stage 0 may have its own length (the paper's GSM8k recipe: a longer initial stage)
    c0 = Curriculum(max_stage=2, steps_per_stage=4, final_epochs=2, stage0_length=9)
    assert [c0.stage_length(s) for s in c0.stages()] == [9, 4, 4, 2]
    assert "stage0_length" not in Curriculum().to_dict()  # absent at its default: old checkpoints resume
    with pytest.raises(ValueError, match="language stage"):
        Curriculum(stage0_length=0).validate()


def test_stage_mixing_is_deterministic_and_earlier():
    c = Curriculum(max_stage=3, mix_prob=0.5)
    draws = [cur.mixed_stage(2, 0, 5, i, c) for i in range(200)]
    assert draws == [cur.mixed_stage(2, 0, 5, i, c) for i in range(200)]
    assert set(draws) == {0, 1, 2} and 60 < draws.count(2) < 140
    assert all(cur.mixed_stage(0, 0, 5, i, c) == 0 for i in range(20))


def test_stage_mixing_from_any_stage_follows_the_reference():
    """The reference code's `uniform_prob`: 0..len(steps), later stages included, stage 0 too;
    a draw past N is the final all-latent stage."""
    c = Curriculum(max_stage=2, mix_prob=0.5, mix_from="any")
    draws = [cur.mixed_stage(1, 0, 5, i, c, num_steps=4) for i in range(400)]
    assert draws == [cur.mixed_stage(1, 0, 5, i, c, num_steps=4) for i in range(400)]
    assert set(draws) == {0, 1, 2, 3}  # 3 = the final stage N + 1 (draws of 3 and 4 steps)
    assert draws.count(3) > draws.count(2)  # two step counts map onto the final stage
    from_zero = {cur.mixed_stage(0, 0, 5, i, c, num_steps=2) for i in range(100)}
    assert from_zero == {0, 1, 2}  # stage 0 mixes too, bounded by the row's step count
    with pytest.raises(ValueError, match="mixing"):
        Curriculum(mix_from="later").validate()
    # The default leaves the checkpoint fingerprint as it was before the option existed.
    assert "mix_from" not in Curriculum().to_dict() and Curriculum(mix_from="any").to_dict()["mix_from"] == "any"


# --- sequences and labels -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def g2(tiny_gemma2):
    loaded = load_model(str(tiny_gemma2), device="cpu", dtype="float32")
    loaded.model.train()
    return loaded


@pytest.fixture(scope="module")
def g3(tiny_gemma3):
    loaded = load_model(str(tiny_gemma3), device="cpu", dtype="float32")
    loaded.model.train()
    return loaded


def _markers(tok):
    return tok.convert_tokens_to_ids("<unused0>"), tok.convert_tokens_to_ids("<unused1>")


def _seq(loaded, question, stage, c=Curriculum(max_stage=2, thoughts_per_step=2), steps=STEPS, answer="yes"):
    tok = loaded.tokenizer
    return build_sequence(prompt_ids(tok, question), list(steps), answer, stage, c, tok, _markers(tok))


def test_labels_mask_question_markers_and_thoughts(g2):
    tok = g2.tokenizer
    bot, eot = _markers(tok)
    question = "Is Tom a lempus?"
    q = prompt_ids(tok, question)
    for stage, remaining, n in [(1, STEPS[1:], 2), (2, STEPS[2:], 4), (3, [], 4)]:
        seq = _seq(g2, question, stage)
        target = tok(format_target(remaining, "yes"), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert seq.prompt == q + [bot] and seq.num_thoughts == n and seq.tail == [eot] + target
        labels = seq.full_labels()
        assert len(labels) == len(q) + 1 + n + 1 + len(target)
        masked = len(q) + 1 + n + 1  # question, <bot>, thoughts, <eot>
        assert labels[:masked] == [IGNORE] * masked
        assert labels[masked:] == target and IGNORE not in labels[masked:]
    seq0 = _seq(g2, question, 0)
    target0 = tok(format_target(STEPS, "yes"), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert seq0.prompt == q and seq0.num_thoughts == 0 and not seq0.markers and bot not in seq0.tail
    assert seq0.full_labels() == [IGNORE] * len(q) + target0


def test_stage0_bot_puts_bot_after_the_prompt_of_language_rows_only(g2):
    tok = g2.tokenizer
    bot, eot = _markers(tok)
    question = "Is Tom a lempus?"
    q = prompt_ids(tok, question)
    c = Curriculum(max_stage=2, thoughts_per_step=2, stage0_bot=True)
    target0 = tok(format_target(STEPS, "yes"), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    seq0 = _seq(g2, question, 0, c)
    # the language stage: [prompt] <bot> steps ### answer <eos>, no <eot>, <bot> not a label
    assert seq0.prompt == q + [bot] and seq0.num_thoughts == 0 and not seq0.markers
    assert seq0.tail == target0 and eot not in seq0.tail
    assert seq0.full_labels() == [IGNORE] * (len(q) + 1) + target0
    # latent stages are laid out exactly as without the option
    plain = Curriculum(max_stage=2, thoughts_per_step=2)
    for stage in (1, 2, 3):
        a, b = _seq(g2, question, stage, c), _seq(g2, question, stage, plain)
        assert (a.prompt, a.num_thoughts, a.tail, a.tail_labels) == (b.prompt, b.num_thoughts, b.tail, b.tail_labels)
    # recorded only when on, so older checkpoints' fingerprints still match
    assert c.to_dict()["stage0_bot"] is True and "stage0_bot" not in plain.to_dict()


# --- the n + 1-pass loss ------------------------------------------------------------------------


def naive_loss(model, seq, feedback="identity"):
    """Recompute the whole sequence with inputs_embeds for every thought (no cache)."""
    emb = model.get_input_embeddings()
    x = emb(torch.tensor([seq.prompt]))
    # the embedding scale as the module applies it (not an attribute a wrapper might hide)
    scale = (emb(torch.tensor([[5]]))[0, 0].norm() / emb.weight[5].norm()).detach()
    for _ in range(seq.num_thoughts):
        h = model.base_model(inputs_embeds=x, use_cache=False).last_hidden_state[:, -1:]
        if feedback == "embed_norm":  # rescaled to the mean norm of what the embedding module outputs
            target = (emb.weight.norm(dim=-1).mean() * scale).detach()
            h = h * target / h.norm(dim=-1, keepdim=True)
        if feedback == "token_mix":  # softmax(LM head) over the vocabulary times the embedding table
            logits = model.get_output_embeddings()(h).float()
            cap = getattr(model.config, "final_logit_softcapping", None)
            logits = torch.tanh(logits / cap) * cap if cap else logits
            h = (torch.softmax(logits, dim=-1) @ emb.weight) * scale
        if feedback == "pause":  # the pause token's embedding, whatever the hidden state
            h = emb(torch.tensor([[PAUSE]]))
        x = torch.cat([x, h], dim=1)
    x = torch.cat([x, emb(torch.tensor([seq.tail]))], dim=1)
    logits = model(inputs_embeds=x, use_cache=False).logits[0].float()
    labels = torch.tensor(seq.full_labels())
    return F.cross_entropy(logits[:-1], labels[1:], ignore_index=IGNORE, reduction="sum")


def _grads(model):
    out = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


def _close_grads(a, b):
    assert a.keys() == b.keys() and a
    scale = max(1.0, max(float(g.abs().max()) for g in b.values()))
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= GRAD_TOL * scale, worst


def _assert_loss_and_grads_equal_naive(model, seqs):
    """batch_loss's mean token loss and gradients equal the naive recompute's, sequence by sequence."""
    model.zero_grad(set_to_none=True)
    got = batch_loss(LatentRunner(model), seqs, pad_id=0)
    (got.total / got.tokens).backward()
    got_grads = _grads(model)
    want = sum(naive_loss(model, s) for s in seqs)
    tokens = sum(s.target_tokens for s in seqs)
    (want / tokens).backward()
    assert got.tokens == tokens
    assert abs(float(got.total / got.tokens) - float(want / tokens)) < LOSS_TOL
    _close_grads(got_grads, _grads(model))


@pytest.mark.parametrize("which", ["g2", "g3"])
@pytest.mark.parametrize("stage", [0, 1, 3])
def test_cached_loss_and_grads_equal_naive(request, which, stage):
    loaded = request.getfixturevalue(which)
    model = loaded.model
    seqs = [
        _seq(loaded, "Is Tom a lempus?", stage),
        _seq(loaded, "Every wumpus is a yumpus. Is Tom a lempus or a gorpus?", stage),
    ]
    assert seqs[0].length > 8 + seqs[0].num_thoughts  # longer than the sliding window
    _assert_loss_and_grads_equal_naive(model, seqs)


@pytest.mark.parametrize("which", ["g2", "g3"])
def test_token_mix_feedback_loss_and_grads_equal_naive(request, which):
    g = request.getfixturevalue(which)  # g2: Gemma 2's final logit soft-capping is part of it
    model = g.model
    seqs = [_seq(g, "Is Tom a lempus?", 2), _seq(g, "Every wumpus is a yumpus. Is Tom a lempus or a gorpus?", 3)]
    model.zero_grad(set_to_none=True)
    got = batch_loss(LatentRunner(model), seqs, pad_id=0, feedback="token_mix")
    (got.total / got.tokens).backward()
    got_grads = _grads(model)
    want = sum(naive_loss(model, s, "token_mix") for s in seqs)
    (want / got.tokens).backward()
    want_grads = _grads(model)
    assert abs(float(got.total - want)) / got.tokens < LOSS_TOL
    _close_grads(got_grads, want_grads)
    with torch.no_grad():
        plain = batch_loss(LatentRunner(model), seqs, pad_id=0)
        normed = batch_loss(LatentRunner(model), seqs, pad_id=0, feedback="embed_norm")
    assert min(abs(float(plain.total - got.total)), abs(float(normed.total - got.total))) > 1e-3  # really applied


def test_embed_norm_feedback_loss_and_grads_equal_naive(g3):
    model = g3.model
    seqs = [_seq(g3, "Is Tom a lempus?", 2), _seq(g3, "Every wumpus is a yumpus. Is Tom a lempus or a gorpus?", 3)]
    model.zero_grad(set_to_none=True)
    got = batch_loss(LatentRunner(model), seqs, pad_id=0, feedback="embed_norm")
    (got.total / got.tokens).backward()
    got_grads = _grads(model)
    want = sum(naive_loss(model, s, "embed_norm") for s in seqs)
    (want / got.tokens).backward()
    want_grads = _grads(model)
    assert abs(float(got.total - want)) / got.tokens < LOSS_TOL
    _close_grads(got_grads, want_grads)
    with torch.no_grad():
        plain = batch_loss(LatentRunner(model), seqs, pad_id=0)
    assert abs(float(plain.total - got.total)) > 1e-3  # the transform is really applied


PAUSE = 4  # any id of the tiny vocabulary stands in for <pause> here


@pytest.mark.parametrize("which", ["g2", "g3"])
def test_pause_control_one_pass_loss_and_grads_equal_naive(request, which):
    """The pause control's single pass equals the n + 1-pass loss with the pause feedback and a
    naive recompute that feeds the pause embedding at every thought position."""
    loaded = request.getfixturevalue(which)
    model = loaded.model
    seqs = [_seq(loaded, "Is Tom a lempus?", 1), _seq(loaded, "Every wumpus is a yumpus. Is Tom a gorpus?", 3)]
    runner = LatentRunner(model)
    runner.pause_id = PAUSE
    model.zero_grad(set_to_none=True)
    got = batch_loss(runner, seqs, pad_id=0, feedback="pause")
    (got.total / got.tokens).backward()
    got_grads = _grads(model)
    passes = sum(latent_loss(runner, [s], pad_id=0, feedback="pause").total for s in seqs)
    (passes / got.tokens).backward()
    pass_grads = _grads(model)
    want = sum(naive_loss(model, s, "pause") for s in seqs)
    (want / got.tokens).backward()
    want_grads = _grads(model)
    assert abs(float(got.total - want)) / got.tokens < LOSS_TOL
    assert abs(float(passes - want)) / got.tokens < LOSS_TOL
    _close_grads(got_grads, want_grads)
    _close_grads(pass_grads, want_grads)
    with torch.no_grad():
        coconut = batch_loss(LatentRunner(model), seqs, pad_id=0)
    assert abs(float(coconut.total - got.total)) > 1e-3  # a different function from fed-back states


def test_pause_control_feeds_one_learned_vector_never_the_hidden_state(g3):
    """At every thought position, in training and at inference, the first decoder layer sees the
    pause token's embedding: the same vector for every thought and every prompt."""
    from latent_gemma_cli.engine import run_prefix_batch

    model = g3.model
    runner = LatentRunner(model)
    runner.pause_id = PAUSE
    pause = model.get_input_embeddings()(torch.tensor([PAUSE])).detach()[0]
    seen = []
    hook = model.base_model.layers[0].register_forward_pre_hook(
        lambda m, args, kwargs: seen.append((args[0] if args else kwargs["hidden_states"]).detach().clone()),
        with_kwargs=True,
    )
    finals = []
    out_hook = model.base_model.register_forward_hook(lambda m, a, out: finals.append(out.last_hidden_state[:, -1]))
    try:
        with torch.no_grad():
            prompts = [g3.tokenizer("Is Tom a lempus?")["input_ids"], g3.tokenizer("Every cat is a dog.")["input_ids"]]
            prefix = run_prefix_batch(runner, prompts, "coconut", 3, _markers(g3.tokenizer), "pause")
            inference = seen[1:4]  # thoughts 1..3 follow the prefill, one position each
            for x in inference:
                assert torch.equal(x[0, -1], pause) and torch.equal(x[1, -1], pause)
            assert not torch.allclose(inference[0][0, -1], finals[0][0])  # not the fed-back state
            assert torch.equal(prefix.thought_inputs, pause.expand(2, 3, -1))
            seen.clear()
            seq = _seq(g3, "Is Tom a lempus?", 2)  # 4 thoughts
            batch_loss(runner, [seq], pad_id=0, feedback="pause")
            start = len(seq.prompt)
            thoughts = seen[-1][0, start : start + seq.num_thoughts]  # the loss's one pass
            assert torch.equal(thoughts, pause.expand(seq.num_thoughts, -1))
    finally:
        hook.remove()
        out_hook.remove()


def test_embed_norm_target_follows_the_embedding_while_it_trains(g3):
    runner = LatentRunner(g3.model)
    weight = g3.model.get_input_embeddings().weight
    h = torch.randn(2, weight.shape[1])
    before = runner.feedback(h, "embed_norm").norm(dim=-1)
    saved = weight.detach().clone()
    with torch.no_grad():
        weight.mul_(2.0)
    try:
        after = runner.feedback(h, "embed_norm").norm(dim=-1)  # grad enabled, weight trainable: recomputed
        assert torch.allclose(after, 2 * before, rtol=1e-4)
        with torch.no_grad():  # inference: computed once, then cached
            first = runner.feedback(h, "embed_norm")
            weight.mul_(0.5)
            assert torch.equal(runner.feedback(h, "embed_norm"), first)
    finally:
        with torch.no_grad():
            weight.copy_(saved)


def test_padding_does_not_change_the_loss(g3):
    runner = LatentRunner(g3.model)
    short = _seq(g3, "Tom?", 2)
    long = _seq(g3, "Every wumpus is a yumpus, and every yumpus is a zumpus. Is Tom a lempus?", 2, steps=STEPS[:1])
    with torch.no_grad():
        alone = [latent_loss(runner, [s], pad_id=0) for s in (short, long)]
        together = latent_loss(runner, [short, long], pad_id=0)
    assert together.tokens == alone[0].tokens + alone[1].tokens
    assert abs(float(together.total) - float(alone[0].total + alone[1].total)) < 1e-4


def _spread(loaded, stage):
    """Six sequences whose prompts run from a few tokens to ~20x as many."""
    words = "Every wumpus is a yumpus and every yumpus is a zumpus".split()
    return [_seq(loaded, " ".join(words * k) + " Is Tom a lempus?", stage) for k in (0, 0, 1, 4, 9, 10)]


def test_padding_chunks_split_a_spread_batch_into_fewer_padded_positions(g3):
    seqs = _spread(g3, 0)
    chunks = padding_chunks(seqs, "cpu")

    def positions(groups):
        return sum(len(g) * (max(len(s.prompt) for s in g) + max(len(s.tail) for s in g)) for g in groups)

    assert len(chunks) > 1 and positions(chunks) < positions([seqs])
    assert sorted(map(id, (s for c in chunks for s in c))) == sorted(map(id, seqs))  # each row once
    # similar lengths stay one pass (a pass costs more than the padding it saves); so does a GPU
    assert len(seqs[2].prompt) - len(seqs[1].prompt) >= 10
    assert padding_chunks(seqs[1:3], "cpu") == [seqs[1:3]]
    # a latent chunk runs n + 1 passes, so the same rows split less readily
    assert len(padding_chunks(seqs, "cpu", passes=50)) < len(chunks)
    assert padding_chunks(seqs, "cuda") == [seqs] and padding_chunks(seqs, "meta") == [seqs]


@pytest.mark.parametrize("stage", [0, 2])
def test_a_batch_split_by_length_keeps_the_loss_and_gradients(g2, stage):
    model = g2.model
    seqs = _spread(g2, stage)
    assert len(padding_chunks(seqs, "cpu")) > 1
    _assert_loss_and_grads_equal_naive(model, seqs)


@pytest.mark.parametrize("stage", [0, 2])
def test_the_lm_head_runs_on_target_tokens_only(g3, stage):
    """One logit row per labelled token: none for the padding after shorter targets."""
    seqs = [_seq(g3, "Tom?", stage), _seq(g3, "Is Tom a lempus?", stage, steps=STEPS[:1])]
    assert len({len(s.tail) for s in seqs}) == 2
    runner = LatentRunner(g3.model)
    assert runner.head_is_separable()
    rows = []
    hook = g3.model.get_output_embeddings().register_forward_hook(lambda m, a, out: rows.append(out.shape[:-1].numel()))
    try:
        with torch.no_grad():
            out = batch_loss(runner, seqs, pad_id=0)
    finally:
        hook.remove()
    # thought passes use no head with the identity feedback; the one head call is the loss's
    assert rows == [out.tokens] and out.tokens == sum(s.target_tokens for s in seqs)


def test_a_model_without_a_separate_backbone_is_not_separable(g3):
    runner = LatentRunner(g3.model)
    runner.backbone = g3.model  # as for a model class without `base_model_prefix`
    assert not runner.head_is_separable()


@pytest.mark.parametrize("stage", [0, 2])
def test_a_model_that_scales_its_logits_keeps_its_exact_loss(g2, stage):
    """A head that is not the LM head alone (here the logits are doubled after it, as Cohere's
    `logit_scale` does) is detected, and the loss runs the model's own forward."""
    model = g2.model
    hook = model.register_forward_hook(lambda m, a, out: out.__setitem__("logits", out.logits * 2) or out)
    try:
        runner = LatentRunner(model)
        assert not runner.head_is_separable()
        assert all(m.training for m in model.modules())  # the check ran in eval mode and put them back
        seqs = [_seq(g2, "Is Tom a lempus?", stage), _seq(g2, "Tom?", stage)]
        with torch.no_grad():
            got = batch_loss(runner, seqs, pad_id=0)
            want = sum(naive_loss(model, s) for s in seqs)
    finally:
        hook.remove()
    assert abs(float(got.total / got.tokens) - float(want / got.tokens)) < LOSS_TOL
    with torch.no_grad():  # and the doubling mattered: without it the loss differs
        assert abs(float(batch_loss(LatentRunner(model), seqs, pad_id=0).total - got.total)) > 1e-3


def test_gradient_reaches_the_prompt_through_the_thoughts(g2):
    runner = LatentRunner(g2.model)
    seq = _seq(g2, "Is Tom a lempus?", 2)  # 4 thoughts
    base = runner.embed(torch.tensor([seq.prompt])).detach()
    grads = {}
    for detach in (False, True):
        x = base.clone().requires_grad_(True)
        out = latent_loss(runner, [seq], pad_id=0, detach_feedback=detach, prompt_embeds=x)
        out.total.backward()
        grads[detach] = (float(out.total), x.grad.clone())
        g2.model.zero_grad(set_to_none=True)
    assert grads[False][0] == pytest.approx(grads[True][0], abs=1e-5)  # same forward
    through = grads[False][1] - grads[True][1]  # the part that flows through the thoughts
    assert grads[False][1].abs().sum() > 0
    assert float(through.abs().max()) > 1e-3 * float(grads[False][1].abs().max())


def test_mlp_checkpointing_keeps_loss_and_grads(tiny_gemma2):
    loaded = load_model(str(tiny_gemma2), device="cpu", dtype="float32")
    model = loaded.model
    model.train()
    seqs = [_seq(loaded, "Is Tom a lempus?", 1)]
    out = batch_loss(LatentRunner(model), seqs, 0)
    out.total.backward()
    plain = _grads(model)
    assert enable_mlp_checkpointing(model) == model.config.num_hidden_layers
    out2 = batch_loss(LatentRunner(model), seqs, 0)
    out2.total.backward()
    assert abs(float(out.total) - float(out2.total)) < 1e-5
    _close_grads(_grads(model), plain)


@pytest.mark.parametrize("feedback", ["identity", "embed_norm", "token_mix"])
def test_lora_merge_keeps_the_function_and_trains_markers(tiny_gemma3, feedback):
    """The model LoRA trains (peft-wrapped, marker rows trainable) computes what the merged model
    computes, thought feedback included: embed_norm and token_mix read Gemma's embedding scale,
    which peft's trainable-token wrapper hides (it was read as 1.0 in training)."""
    loaded = load_model(str(tiny_gemma3), device="cpu", dtype="float32")
    scale = float(loaded.model.get_input_embeddings().embed_scale)
    assert scale != 1.0
    ids = _markers(loaded.tokenizer)
    peft_model = apply_lora(loaded.model, ids, LoraSettings(r=4, alpha=8))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("trainable_tokens" in n for n in trainable) and any("lora_" in n for n in trainable)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    seq = _seq(loaded, "Is Tom a lempus?", 2)
    with torch.no_grad():
        training = LatentRunner(peft_model.get_base_model())
        assert training.embed_scale == scale
        before = batch_loss(training, [seq], 0, feedback)
        merged = final_model(peft_model)
        after = batch_loss(LatentRunner(merged), [seq], 0, feedback)
    assert abs(float(before.total) - float(after.total)) < 1e-3


@pytest.mark.parametrize("which", ["tiny_gemma2", "tiny_gemma3"])
@pytest.mark.parametrize("stage", [0, 2])
def test_sparse_trainable_tokens_equal_peft_in_loss_and_gradients(request, which, stage):
    """The marker rows and logit columns swapped in without copying the embedding matrix give
    peft's own loss and gradients, marker prompts and marker logits included."""
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    loaded = load_model(str(request.getfixturevalue(which)), device="cpu", dtype="float32")
    torch.manual_seed(0)
    peft_model = apply_lora(loaded.model, _markers(loaded.tokenizer), LoraSettings(r=4, alpha=8))
    layers = [m for m in peft_model.modules() if isinstance(m, TrainableTokensLayer)]
    assert layers and all("forward" in vars(m) for m in layers)  # every one switched
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    seqs = [_seq(loaded, "Is Tom a lempus?", stage), _seq(loaded, "猫は何ですか？ Every wumpus is a yumpus.", stage)]
    runner = LatentRunner(peft_model.get_base_model())
    assert runner.head_is_separable()  # the labelled-rows head, under peft's wrappers
    sparse = batch_loss(runner, seqs, 0)
    sparse.total.backward()
    sparse_grads = _grads(peft_model)
    for m in layers:
        del m.forward  # back to peft's own forward
    dense = batch_loss(runner, seqs, 0)
    dense.total.backward()
    assert abs(float(sparse.total) - float(dense.total)) < 1e-4
    _close_grads(sparse_grads, _grads(peft_model))
    assert any("trainable_tokens" in k for k in sparse_grads)


# --- the training loop --------------------------------------------------------------------------


def _rows(n=6):
    return [
        Example(question=f"Is Tom a lempus {i}?", answer="yes" if i % 2 else "no", steps=STEPS[: i % 4], id=str(i))
        for i in range(n)
    ]


def _dataset(rows=None):
    return Dataset(rows or _rows(), [], "rows.jsonl", "jsonl", "0" * 64)


def _config(model_dir, out, **kw):
    base = dict(
        model=str(model_dir),
        data="rows.jsonl",
        out=str(out),
        device="cpu",
        batch_size=2,
        grad_accum=1,
        max_length=96,
        curriculum=Curriculum(max_stage=1, thoughts_per_step=2, steps_per_stage=3, final_epochs=0, mix_prob=0.5),
        lr=1e-3,
    )
    base.update(kw)
    return TrainConfig(**base)


def _weights(directory):
    from safetensors.torch import load_file

    return load_file(str(Path(directory) / "model.safetensors"))


@pytest.mark.parametrize("lora", [None, LoraSettings(r=4, alpha=8)], ids=["full", "lora"])
def test_resume_continues_exactly(tiny_gemma2, tmp_path, lora):
    straight = Trainer(_config(tiny_gemma2, tmp_path / "a", lora=lora), dataset=_dataset()).run()
    assert straight.completed and straight.steps == 6
    first = Trainer(_config(tiny_gemma2, tmp_path / "b", lora=lora, max_steps=2), dataset=_dataset()).run()
    assert not first.completed and first.steps == 2
    state = json.loads((tmp_path / "b/checkpoints/step-00000002/state.json").read_text())
    assert (state["stage"], state["stage_step"]) == (0, 2)  # mid-stage: optimizer state matters
    second = Trainer(_config(tiny_gemma2, tmp_path / "b", lora=lora, resume="auto"), dataset=_dataset()).run()
    assert second.completed and second.steps == 6
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
    base = _weights(tiny_gemma2)
    emb = next(k for k in a if "embed_tokens" in k)
    bot, eot = _markers(load_model(str(tiny_gemma2), device="cpu").tokenizer)
    assert float((a[emb][bot] - base[emb][bot]).abs().max()) > 0  # the markers trained
    if lora is not None:  # LoRA leaves every other embedding row alone
        assert torch.equal(a[emb][3], base[emb][3])


def test_length_bucketing_orders_the_same_rows_with_less_padding_and_resumes_exactly(tiny_gemma2, tmp_path):
    import statistics

    from latent_gemma_cli.training import trainer as trainer_mod

    rows = [
        Example(
            question="Is Tom a lempus " + "and a wumpus " * (i % 7) + f"{i}?", answer="yes", steps=STEPS[:2], id=str(i)
        )
        for i in range(64)
    ]
    plain = Trainer(_config(tiny_gemma2, tmp_path / "p", batch_size=4), dataset=_dataset(rows))
    bucketed = Trainer(
        _config(tiny_gemma2, tmp_path / "q", batch_size=4, bucket_by_length=True), dataset=_dataset(rows)
    )
    plain._setup()
    bucketed._setup()
    a, b = plain._epoch_order(0, 0), bucketed._epoch_order(0, 0)
    assert sorted(a) == sorted(b) == list(range(64)) and a != b
    assert b == bucketed._epoch_order(0, 0) and b != bucketed._epoch_order(0, 1)  # seeded per epoch

    def padding(order):
        lengths = [[len(bucketed.data.prompts[i]) for i in order[k : k + 4]] for k in range(0, len(order), 4)]
        return statistics.mean(max(g) - min(g) for g in lengths)

    assert padding(b) < padding(a) / 2
    assert trainer_mod.TrainConfig(model="m", data="d", out="o", bucket_by_length=True).fingerprint()[
        "bucket_by_length"
    ]
    assert "bucket_by_length" not in plain.config.fingerprint()  # checkpoints from before the flag still resume

    straight = Trainer(_config(tiny_gemma2, tmp_path / "a", bucket_by_length=True), dataset=_dataset()).run()
    Trainer(_config(tiny_gemma2, tmp_path / "b", bucket_by_length=True, max_steps=2), dataset=_dataset()).run()
    second = Trainer(
        _config(tiny_gemma2, tmp_path / "b", bucket_by_length=True, resume="auto"), dataset=_dataset()
    ).run()
    assert straight.completed and second.completed and second.steps == straight.steps
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-6


def test_fresh_run_refuses_existing_checkpoints(tiny_gemma2, tmp_path):
    from latent_gemma_cli.errors import UsageError

    Trainer(_config(tiny_gemma2, tmp_path / "o", max_steps=1), dataset=_dataset()).run()
    with pytest.raises(UsageError, match="--resume auto|already holds"):
        Trainer(_config(tiny_gemma2, tmp_path / "o", max_steps=1), dataset=_dataset()).run()


def test_ctrl_c_saves_a_checkpoint(tiny_gemma2, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = Trainer._step

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Trainer, "_step", flaky)
    with pytest.raises(KeyboardInterrupt):
        Trainer(_config(tiny_gemma2, tmp_path / "o"), dataset=_dataset()).run()
    state = json.loads((tmp_path / "o/checkpoints/step-00000002/state.json").read_text())
    assert (state["global_step"], state["stage"], state["stage_step"]) == (2, 0, 2)


# --- the command line ---------------------------------------------------------------------------


def _write_jsonl(path, rows, bad=False):
    lines = [json.dumps({"question": r.question, "steps": r.steps, "answer": r.answer}) for r in rows]
    if bad:
        lines.insert(2, "{not json")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cli_train_lora_then_ask_coconut(tiny_gemma3, tmp_path):
    train = _write_jsonl(tmp_path / "train.jsonl", _rows(6))
    valid = _write_jsonl(tmp_path / "valid.jsonl", _rows(2))
    out = tmp_path / "trained"
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "train",
            "--model",
            str(tiny_gemma3),
            "--data",
            str(train),
            "--valid",
            str(valid),
            "--out",
            str(out),
            "--stages",
            "2",
            "-c",
            "1",
            "--steps-per-stage",
            "1",
            "--batch-size",
            "3",
            "--lora",
            "--lora-r",
            "4",
            "--device",
            "cpu",
            "--valid-max-new-tokens",
            "4",
            "--max-length",
            "128",
        ],
    )
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == str(out)
    loaded = load_model(str(out), device="cpu")
    spec = loaded.spec
    assert (spec.bot, spec.eot, spec.thoughts_per_step, spec.num_thoughts, spec.feedback) == (
        "<unused0>",
        "<unused1>",
        1,
        2,
        "identity",
    )
    assert spec.base_model == str(tiny_gemma3) and spec.curriculum["stages"] == [0, 1, 2, 3]
    import hashlib

    assert spec.training_data_sha256 == hashlib.sha256(train.read_bytes()).hexdigest()
    prints = json.loads((out / "train_fingerprints.json").read_text())
    assert prints["data_sha256"] == spec.training_data_sha256 and len(prints["rows"]) == 6
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2, 3, 4]
    ends = [m for m in metrics if m.get("event") == "stage_end"]
    assert [e["valid"]["mode"] for e in ends] == ["off", "coconut", "coconut", "coconut"]
    assert [e["valid"]["thoughts"] for e in ends] == [0, 1, 2, 2]
    ask = runner.invoke(
        app,
        [
            "ask",
            "--mode",
            "coconut",
            "--model",
            str(out),
            "--max-new-tokens",
            "3",
            "--device",
            "cpu",
            "Is Tom a lempus?",
        ],
    )
    assert ask.exit_code == 0, ask.output
    asked = runner.invoke(
        app,
        [
            "ask",
            "--mode",
            "coconut",
            "--model",
            str(out),
            "--max-new-tokens",
            "3",
            "--device",
            "cpu",
            "--json",
            "Is Tom a lempus?",
        ],
    )
    data = json.loads(asked.stdout)
    assert data["num_thoughts"] == 2 and data["markers"] == ["<unused0>", "<unused1>"]


def test_cli_train_records_the_feedback_transform(tiny_gemma3, tmp_path):
    train = _write_jsonl(tmp_path / "train.jsonl", _rows(4))
    out = tmp_path / "trained"
    args = [
        "train",
        "--model",
        str(tiny_gemma3),
        "--data",
        str(train),
        "--out",
        str(out),
        "--stages",
        "1",
        "--steps-per-stage",
        "1",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--max-length",
        "128",
        "-q",
    ]
    res = CliRunner().invoke(app, args + ["--feedback", "embed_norm"])
    assert res.exit_code == 0, res.output
    assert load_model(str(out), device="cpu").spec.feedback == "embed_norm"
    mix = CliRunner().invoke(app, args + ["--out", str(tmp_path / "mix"), "--feedback", "token_mix"])
    assert mix.exit_code == 0, mix.output
    assert load_model(str(tmp_path / "mix"), device="cpu").spec.feedback == "token_mix"
    asked = CliRunner().invoke(
        app,
        ["ask", "-m", str(tmp_path / "mix"), "--json", "--max-new-tokens", "3", "--show-thoughts", "Is Tom a lempus?"],
    )
    assert asked.exit_code == 0 and json.loads(asked.stdout)["mode"] == "coconut", asked.stderr
    # --show-thoughts on a token_mix model shows the distribution each thought is mixed from:
    # recomputed naively (full forwards, no cache), thought j's input is sum_i p_i E_i * scale
    shown = json.loads(asked.stdout)
    mixed = load_model(str(tmp_path / "mix"), device="cpu")
    m, emb = mixed.model, mixed.model.get_input_embeddings()
    bot = mixed.tokenizer.convert_tokens_to_ids(mixed.spec.bot)
    with torch.no_grad():
        x = emb(torch.tensor([shown["prompt_token_ids"] + [bot]]))
        scale = x[0, -1].norm() / emb.weight[bot].norm()
        for thought in shown["thoughts"]:
            p = torch.softmax(m(inputs_embeds=x).logits[0, -1].float(), dim=-1)
            values, ids = p.topk(len(thought["top"]))
            assert [t["id"] for t in thought["top"]] == ids.tolist()
            assert [t["p"] for t in thought["top"]] == pytest.approx(values.tolist(), abs=1e-4)
            x = torch.cat([x, ((p @ emb.weight) * scale)[None, None]], dim=1)
    bad = CliRunner().invoke(app, args + ["--out", str(tmp_path / "other"), "--feedback", "double"])
    assert bad.exit_code == 2 and "--feedback" in bad.stderr
    # --stage0-epochs: the language stage gets its own length (3 steps here, the others 1)
    on = CliRunner().invoke(
        app, args + ["--out", str(tmp_path / "bot"), "--stage0-bot", "--valid", str(train), "--stage0-epochs", "3"]
    )
    assert on.exit_code == 0, on.output
    recorded = load_model(str(tmp_path / "bot"), device="cpu").spec.curriculum
    assert recorded["stage0_bot"] is True and recorded["stage0_layout"].startswith("[prompt] <bot>")
    ends = [json.loads(x) for x in (tmp_path / "bot" / "metrics.jsonl").read_text().split("\n") if '"stage_end"' in x]
    assert [(e["stage"], e["step"]) for e in ends] == [(0, 3), (1, 4), (2, 5)]
    for flag, value in (("--first-stage", "2"), ("--mix-from", "later"), ("--stage0-epochs", "0")):
        bad = CliRunner().invoke(app, args + ["--out", str(tmp_path / "other"), flag, value])
        assert bad.exit_code == 2 and flag in bad.stderr, bad.output
    assert not (tmp_path / "other").exists()


def test_cli_trains_the_pause_control_and_asks_with_it(tiny_gemma3, tmp_path):
    """`--feedback pause`: a <pause> token whose embedding trains (LoRA marks it trainable), recorded
    with the model; `ask --mode coconut` then runs the same number of thought positions."""
    train = _write_jsonl(tmp_path / "train.jsonl", _rows(4))
    out = tmp_path / "pause"
    args = ["train", "--model", str(tiny_gemma3), "--data", str(train), "--out", str(out), "--stages", "1"]
    args += ["--steps-per-stage", "2", "--batch-size", "2", "--device", "cpu", "--max-length", "128", "-q"]
    args += ["--feedback", "pause", "--lora", "--lr", "0.01", "--first-stage", "1"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    ends = [json.loads(x) for x in (out / "metrics.jsonl").read_text().split("\n") if '"stage_end"' in x]
    assert [e["stage"] for e in ends] == [1, 2]  # --first-stage 1: no language stage
    trained = load_model(str(out), device="cpu")
    spec = trained.spec
    assert (spec.feedback, spec.pause) == ("pause", "<pause>")
    assert len({spec.bot, spec.eot, spec.pause}) == 3
    pause_id = trained.tokenizer.convert_tokens_to_ids("<pause>")
    base = load_model(str(tiny_gemma3), device="cpu")
    emb = trained.model.get_input_embeddings().weight
    mean_init = base.model.get_input_embeddings().weight.mean(dim=0)  # new rows start at the mean
    assert pause_id >= base.model.get_input_embeddings().weight.shape[0]
    assert not torch.allclose(emb[pause_id], mean_init, atol=1e-4)  # it was learned
    asked = CliRunner().invoke(
        app,
        ["ask", "--model", str(out), "--mode", "coconut", "--max-new-tokens", "3", "--device", "cpu", "--json", "Tom?"],
    )
    assert asked.exit_code == 0, asked.output
    data = json.loads(asked.stdout)
    latent = data["model"]["latent"]
    assert data["num_thoughts"] == 1 and (latent["feedback"], latent["pause"]) == ("pause", "<pause>")


def test_cli_bad_records_fail_or_skip(tiny_gemma2, tmp_path):
    data = _write_jsonl(tmp_path / "train.jsonl", _rows(4), bad=True)
    runner = CliRunner()
    args = [
        "train",
        "--model",
        str(tiny_gemma2),
        "--data",
        str(data),
        "--stages",
        "1",
        "--steps-per-stage",
        "1",
        "--final-epochs",
        "0",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--max-steps",
        "1",
    ]
    failed = runner.invoke(app, args + ["--out", str(tmp_path / "f")])
    assert failed.exit_code == 2
    assert f"{data}:3" in failed.stderr
    skipped = runner.invoke(app, args + ["--out", str(tmp_path / "s"), "--on-bad-record", "skip"])
    assert skipped.exit_code == 0, skipped.output
    assert f"{data}:3" in skipped.stderr and "skipped" in skipped.stderr


def test_cli_ctrl_c_exits_130(tiny_gemma2, tmp_path, monkeypatch):
    monkeypatch.setattr(Trainer, "_step", lambda self, *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    data = _write_jsonl(tmp_path / "train.jsonl", _rows(4))
    res = CliRunner().invoke(
        app,
        ["train", "--model", str(tiny_gemma2), "--data", str(data), "--out", str(tmp_path / "o"), "--device", "cpu"],
    )
    assert res.exit_code == 130
    assert (tmp_path / "o/checkpoints/step-00000000/state.json").is_file()


# --- data parallel ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_launch_matches_one_process(tiny_gemma2, tmp_path):
    """Two CPU processes (gloo, torch.distributed.run) equal one process with the same global batch."""
    data = _write_jsonl(tmp_path / "train.jsonl", _rows(8))
    common = [
        "--model",
        str(tiny_gemma2),
        "--data",
        str(data),
        "--stages",
        "1",
        "-c",
        "1",
        "--steps-per-stage",
        "2",
        "--final-epochs",
        "0",
        "--grad-accum",
        "2",
        "--device",
        "cpu",
        "--lr",
        "1e-3",
        "--mix-prob",
        "0.5",
        "--quiet",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    # On GPUs `accelerate launch --multi_gpu` runs this same torch.distributed launcher; accelerate's
    # own CPU multi-process path needs MPI, so the CPU test calls torch.distributed.run directly.
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        "-m",
        "latent_gemma_cli",
        "train",
        "--out",
        str(tmp_path / "two"),
        "--batch-size",
        "1",
    ] + common
    proc = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = tmp_path / "two/checkpoints/step-00000004"
    assert json.loads((ckpt / "state.json").read_text())["world_size"] == 2
    assert (ckpt / "rng-0.pt").is_file() and (ckpt / "rng-1.pt").is_file()  # both ranks ran and saved
    one = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "one"), "--batch-size", "2"] + common)
    assert one.exit_code == 0, one.output
    a, b, base = _weights(tmp_path / "two"), _weights(tmp_path / "one"), _weights(tiny_gemma2)
    # 4 AdamW steps of lr 1e-3 move weights by ~4e-3; summation order differs between the runs.
    assert max(float((a[k] - base[k]).abs().max()) for k in a) > 1e-3
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
    assert LatentSpec.load(tmp_path / "two").curriculum["processes"] == 2


def test_generation_on_a_lora_model_never_builds_the_merged_embedding(tiny_gemma3, monkeypatch):
    """Validation during LoRA training decodes through peft's trainable-token wrappers: reading
    their `.weight` copies the whole embedding matrix, so the engine must never do it per step."""
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    from latent_gemma_cli import engine

    loaded = load_model(str(tiny_gemma3), device="cpu", dtype="float32")
    ids = _markers(loaded.tokenizer)
    model = apply_lora(loaded.model, ids, LoraSettings(r=2, alpha=4))
    hf = model.get_base_model()
    calls = []
    original = TrainableTokensLayer.get_merged_weights
    monkeypatch.setattr(
        TrainableTokensLayer, "get_merged_weights", lambda self, *a: calls.append(1) or original(self, *a)
    )
    spec = LatentSpec(num_thoughts=2)
    prompt = prompt_ids(loaded.tokenizer, "Is Tom a lempus?")
    with torch.no_grad():
        gen = engine.Engine(hf, loaded.tokenizer, spec).generate(
            prompt, engine.Settings(mode="coconut", max_new_tokens=4)
        )
    assert gen.paths[0].num_tokens >= 1
    assert calls == []
    runner = engine.LatentRunner(hf)
    assert (runner.device, runner.dtype) == (torch.device("cpu"), torch.float32) and calls == []
    hf.get_input_embeddings().weight  # what the engine avoids: the wrapper merges on every read
    assert calls == [1]
