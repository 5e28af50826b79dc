"""The latent engine against a naive full-recompute implementation and against `generate`."""

from __future__ import annotations

import math

import pytest
import torch
from reference import naive_decode, naive_prefix

from latent_gemma_cli import engine
from latent_gemma_cli.latent_spec import LatentSpec
from latent_gemma_cli.loading import load_model
from latent_gemma_cli.prompting import prompt_ids

SPEC = LatentSpec(bot="<unused0>", eot="<unused1>", num_thoughts=3)
TOL = 1e-4


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_model(str(tiny_model_dir), device="cpu", dtype="float32")


def _ids(loaded, text="東京は日本の首都ですか？ Is Tokyo the capital?"):
    return prompt_ids(loaded.tokenizer, text)


def _markers(loaded):
    tok = loaded.tokenizer
    return tok.convert_tokens_to_ids("<unused0>"), tok.convert_tokens_to_ids("<unused1>")


@pytest.mark.parametrize("mode,markers", [("coconut", True), ("soft", True), ("soft", False)])
def test_cached_prefix_equals_full_recompute(loaded, mode, markers):
    runner = engine.LatentRunner(loaded.model)
    ids = _ids(loaded)
    marker_ids = _markers(loaded) if markers else None
    with torch.inference_mode():
        prefix = engine.run_prefix(runner, ids, mode, 4, marker_ids, soft_top_p=0.9)
        ref_logits, ref_thoughts, _ = naive_prefix(loaded.model, ids, mode, 4, marker_ids, soft_top_p=0.9)
    assert prefix.thought_inputs.shape == (4, loaded.model.config.hidden_size)
    for got, want in zip(prefix.thought_inputs, ref_thoughts):
        assert (got - want).abs().max().item() < TOL
    assert (prefix.logits - ref_logits).abs().max().item() < TOL
    assert prefix.length == len(ids) + 4 + (2 if markers else 0)


@pytest.mark.parametrize("mode", ["coconut", "soft", "off"])
def test_generate_equals_naive_greedy(loaded, mode):
    settings = engine.Settings(mode=mode, num_thoughts=3, max_new_tokens=8, soft_top_p=0.9)
    ids = _ids(loaded)
    gen = engine.generate(loaded.model, loaded.tokenizer, ids, settings, spec=SPEC)
    marker_ids = _markers(loaded) if mode != "off" else None
    with torch.inference_mode():
        logits, _, seq = naive_prefix(loaded.model, ids, mode, 3 if mode != "off" else 0, marker_ids, 0.9)
        want, conf = naive_decode(
            loaded.model, seq, int(logits.argmax(-1)), 8, engine.eos_token_ids(loaded.model, loaded.tokenizer)
        )
    path = gen.paths[0]
    assert path.token_ids == want
    assert path.confidence == pytest.approx(conf, abs=1e-5)


def test_off_mode_matches_transformers_generate(loaded):
    ids = _ids(loaded, "What is the capital of Japan?")
    gen = engine.generate(loaded.model, loaded.tokenizer, ids, engine.Settings(mode="off", max_new_tokens=12))
    with torch.inference_mode():
        out = loaded.model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=12, pad_token_id=0)
    assert gen.paths[0].token_ids == out[0, len(ids) :].tolist()


@pytest.mark.parametrize("mode", ["soft", "coconut"])
def test_batched_paths_equal_separate_runs(loaded, mode):
    ids = _ids(loaded)
    runner = engine.LatentRunner(loaded.model)
    marker_ids = _markers(loaded)
    eos = engine.eos_token_ids(loaded.model, loaded.tokenizer)
    with torch.inference_mode():
        prefix = engine.run_prefix(runner, ids, mode, 2, marker_ids)
        firsts = prefix.logits[0].topk(4).indices.tolist()
        batched = engine.decode_paths(runner, prefix, 4, 10, eos)
        for first, (tokens, conf, finished) in zip(firsts, batched):
            alone = engine.decode_paths(
                runner, engine.run_prefix(runner, ids, mode, 2, marker_ids), 1, 10, eos, first_tokens=[first]
            )
            assert alone[0][0] == tokens
            assert alone[0][1] == pytest.approx(conf, abs=1e-5)
            assert alone[0][2] == finished
    assert [t[0][0] for t in batched] == firsts


def test_paths_report_every_path_and_choose_most_confident(loaded):
    gen = engine.generate(
        loaded.model, loaded.tokenizer, _ids(loaded), engine.Settings(mode="soft", paths=3, max_new_tokens=6)
    )
    assert len(gen.paths) == 3
    assert len({p.token_ids[0] for p in gen.paths}) == 3
    assert gen.paths[gen.chosen].confidence == max(p.confidence for p in gen.paths)
    for p in gen.paths:
        assert 0.0 <= p.confidence <= 1.0


def test_single_path_equals_first_of_k(loaded):
    ids = _ids(loaded)
    one = engine.generate(loaded.model, loaded.tokenizer, ids, engine.Settings(mode="soft", paths=1, max_new_tokens=6))
    many = engine.generate(loaded.model, loaded.tokenizer, ids, engine.Settings(mode="soft", paths=4, max_new_tokens=6))
    assert one.paths[0].token_ids == many.paths[0].token_ids


def _layer0_inputs(model):
    seen = []

    def hook(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        seen.append(hidden.detach().clone())

    return seen, model.base_model.layers[0].register_forward_pre_hook(hook, with_kwargs=True)


def test_coconut_feeds_previous_hidden_state_unscaled(loaded):
    """Invariant: the first decoder layer sees exactly the previous position's final hidden state."""
    model = loaded.model
    finals = []
    out_hook = model.base_model.register_forward_hook(
        lambda m, a, out: finals.append(out.last_hidden_state[:, -1].clone())
    )
    seen, in_hook = _layer0_inputs(model)
    try:
        with torch.inference_mode():
            engine.run_prefix(engine.LatentRunner(model), _ids(loaded), "coconut", 3, _markers(loaded))
    finally:
        out_hook.remove()
        in_hook.remove()
    # Calls: prefill, thought 1, thought 2, thought 3 (backbone only), then <eot> via the LM.
    for i in range(3):
        assert torch.equal(seen[i + 1][0, -1], finals[i][0])
    # The scale is not applied twice: a fed-back state differs from scale * state.
    scale = math.sqrt(model.config.hidden_size)
    assert not torch.allclose(seen[1][0, -1], finals[0][0] * scale)


def test_soft_thought_is_what_the_embedding_module_outputs(loaded):
    """With a one-token nucleus a soft thought equals the embedding module's output for that token."""
    model = loaded.model
    runner = engine.LatentRunner(model)
    seen, hook = _layer0_inputs(model)
    try:
        with torch.inference_mode():
            prefix = engine.run_prefix(runner, _ids(loaded), "soft", 1, None, soft_top_p=1e-9)
            first_logits = engine.run_prefix(runner, _ids(loaded), "off", 0, None).logits
    finally:
        hook.remove()
    token = int(first_logits.argmax(-1))
    expected = model.get_input_embeddings()(torch.tensor([[token]]))[0, 0]
    assert torch.allclose(seen[1][0, -1], expected, atol=1e-6)
    assert runner.embed_scale == pytest.approx(math.sqrt(model.config.hidden_size))
    assert prefix.thought_inputs.shape[0] == 1


def test_sampling_is_seeded(loaded):
    ids = _ids(loaded)
    s = dict(mode="soft", max_new_tokens=8, temperature=1.5, top_p=0.95)
    a = engine.generate(loaded.model, loaded.tokenizer, ids, engine.Settings(seed=7, **s))
    b = engine.generate(loaded.model, loaded.tokenizer, ids, engine.Settings(seed=7, **s))
    assert a.paths[0].token_ids == b.paths[0].token_ids
    outcomes = {
        tuple(engine.generate(loaded.model, loaded.tokenizer, ids, engine.Settings(seed=i, **s)).paths[0].token_ids)
        for i in range(6)
    }
    assert len(outcomes) > 1


def test_coconut_refuses_untrained_model(loaded):
    from latent_gemma_cli.errors import NotLatentTrainedError

    with pytest.raises(NotLatentTrainedError, match="coconut") as info:
        engine.generate(loaded.model, loaded.tokenizer, _ids(loaded), engine.Settings(mode="coconut"), spec=None)
    assert "lgemma train" in info.value.hint and "--mode soft" in info.value.hint


def test_overlong_input_is_an_input_error(loaded):
    from latent_gemma_cli.errors import InputError

    ids = [5] * loaded.model.config.max_position_embeddings
    with pytest.raises(InputError, match="context"):
        engine.generate(loaded.model, loaded.tokenizer, ids, engine.Settings(mode="off"))


@pytest.mark.parametrize("mode", ["coconut", "soft", "off"])
def test_padded_batch_equals_one_prompt_at_a_time(loaded, mode):
    """Left padding changes nothing a row computes: same paths, same confidences."""
    texts = ["東京は日本の首都ですか？", "Is Tom a lempus or a gorpus? Every wumpus is a yumpus.", "猫"]
    prompts = [_ids(loaded, t) for t in texts]
    assert len({len(p) for p in prompts}) == 3
    settings = engine.Settings(mode=mode, num_thoughts=2, paths=2, max_new_tokens=6)
    batched = engine.generate_batch(loaded.model, loaded.tokenizer, prompts, settings, spec=SPEC)
    for prompt, got in zip(prompts, batched):
        alone = engine.generate(loaded.model, loaded.tokenizer, prompt, settings, spec=SPEC)
        assert [p.token_ids for p in got.paths] == [p.token_ids for p in alone.paths]
        for a, b in zip(got.paths, alone.paths):
            assert a.confidence == pytest.approx(b.confidence, abs=1e-5)
        assert got.prompt_ids == prompt


def test_padded_prefix_logits_match(loaded):
    runner = engine.LatentRunner(loaded.model)
    prompts = [_ids(loaded, "猫"), _ids(loaded, "東京は日本の首都ですか？ Is Tokyo the capital?")]
    with torch.inference_mode():
        batch = engine.run_prefix_batch(runner, prompts, "soft", 3, _markers(loaded))
        for row, prompt in enumerate(prompts):
            alone = engine.run_prefix(runner, prompt, "soft", 3, _markers(loaded))
            assert (batch.logits[row] - alone.logits[0]).abs().max().item() < TOL
            assert (batch.thought_inputs[row] - alone.thought_inputs).abs().max().item() < TOL


class ScriptedRunner:
    """A stand-in runner whose next-token logits follow a script, to test decoding rules exactly."""

    device = torch.device("cpu")

    def __init__(self, script, vocab=10):
        self.script, self.vocab, self.calls = list(script), vocab, 0

    def embed(self, ids):
        return ids.float()

    def logits(self, embeds, cache, **_):
        token = self.script[self.calls]
        self.calls += 1
        out = torch.zeros(embeds.shape[0], self.vocab)
        out[:, token] = 5.0
        return out


def _scripted(script, first, **kwargs):
    runner = ScriptedRunner(script)
    logits = torch.zeros(1, runner.vocab)
    logits[0, first] = 5.0
    prefix = engine.LatentPrefix(cache=None, logits=logits, thought_inputs=torch.empty(0), length=1)
    return engine.decode_paths(runner, prefix, 1, 8, **kwargs)[0]


def test_stop_tokens_end_an_answer_only_once_it_has_begun():
    newline, eos = 7, 1
    # "\n" "\n" "a" "b" "\n" ...: the leading newlines do not end it, the one after text does.
    tokens, _, finished = _scripted([7, 3, 4, 7, 5, 5, 5], first=newline, eos_ids={eos}, stop_ids={newline})
    assert tokens == [7, 7, 3, 4, 7] and finished
    # eos ends it at once, even first; without stop ids a newline is just a token.
    assert _scripted([3], first=eos, eos_ids={eos}, stop_ids={newline})[0] == [1]
    assert _scripted([3, 7, 4, 4, 4, 4, 4], first=3, eos_ids={eos})[0] == [3, 3, 7, 4, 4, 4, 4, 4]


def test_soft_mix_sparse_gather_equals_dense_product(loaded):
    runner = engine.LatentRunner(loaded.model)
    logits = torch.randn(3, loaded.model.config.vocab_size) * 4
    for top_p in (0.3, 0.9, 1.0):
        probs = engine.top_p_filter(torch.softmax(logits, dim=-1), top_p)
        dense = (probs @ loaded.model.get_input_embeddings().weight) * runner.embed_scale
        assert torch.allclose(runner.soft_embedding(logits, top_p), dense, atol=1e-5)
