"""CPU weight quantization: the quantized engine against the naive full-recompute reference run on
the same quantized model, row independence of the int8 kernel, and the `--quantize` surface."""

from __future__ import annotations

import json

import pytest
import torch
from reference import naive_decode, naive_prefix
from typer.testing import CliRunner

from latent_gemma_cli import engine
from latent_gemma_cli.cli import app
from latent_gemma_cli.latent_spec import LatentSpec
from latent_gemma_cli.loading import load_model
from latent_gemma_cli.prompting import prompt_ids
from latent_gemma_cli.quantize import Int4Linear, Int8Linear, quantize_model

SPEC = LatentSpec(bot="<unused0>", eot="<unused1>", num_thoughts=3)
runner = CliRunner()


@pytest.fixture(scope="module", params=["int8", "int4"])
def quantized(request, tiny_model_dir):
    return load_model(str(tiny_model_dir), device="cpu", dtype="float32", quantize=request.param)


def _ids(loaded, text="東京は日本の首都ですか？ Is Tokyo the capital?"):
    return prompt_ids(loaded.tokenizer, text)


def _markers(loaded):
    tok = loaded.tokenizer
    return tok.convert_tokens_to_ids("<unused0>"), tok.convert_tokens_to_ids("<unused1>")


def test_every_linear_layer_and_the_lm_head_are_quantized_and_the_embedding_stays_exact(tiny_model_dir):
    plain = load_model(str(tiny_model_dir), device="cpu", dtype="float32")
    table = plain.model.get_input_embeddings().weight.detach().clone()
    linears = sum(isinstance(m, torch.nn.Linear) for m in plain.model.modules())
    assert plain.model.get_output_embeddings().weight is plain.model.get_input_embeddings().weight  # tied
    replaced = quantize_model(plain.model, "int8")
    assert replaced == linears and not any(isinstance(m, torch.nn.Linear) for m in plain.model.modules())
    assert isinstance(plain.model.get_output_embeddings(), Int8Linear)
    assert torch.equal(plain.model.get_input_embeddings().weight, table)


@pytest.mark.parametrize("cls", [Int8Linear, Int4Linear])
def test_a_rows_result_does_not_depend_on_what_it_is_batched_with(cls):
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48, bias=True)
    q = cls(linear)
    x = torch.randn(9, 64)
    x[3] *= 50  # an outlier row must not coarsen the others' quantization
    together = q(x)
    alone = torch.cat([q(x[i : i + 1]) for i in range(9)])
    assert torch.equal(together, alone)
    want = linear(x)
    rel = ((together - want).norm(dim=1) / want.norm(dim=1)).max().item()
    assert rel < (0.03 if cls is Int8Linear else 0.1), rel


def test_an_int8_layer_packed_in_row_blocks_equals_one_pack(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from latent_gemma_cli import quantize

    torch.manual_seed(1)
    linear = torch.nn.Linear(61, 100, bias=False)  # a width that needs padding to a multiple of 8
    x = torch.randn(5, 61)
    whole = Int8Linear(linear)(x)
    monkeypatch.setattr(quantize, "BLOCK_ROWS", 16)
    with ThreadPoolExecutor(2) as pool:
        blocked = Int8Linear(linear, pool=pool)
    assert len(blocked._packed) == 7 and torch.equal(blocked(x), whole)


@pytest.mark.parametrize("mode", ["coconut", "soft", "off"])
def test_quantized_generate_equals_naive_greedy_on_the_quantized_model(quantized, mode):
    settings = engine.Settings(mode=mode, num_thoughts=3, max_new_tokens=8, soft_top_p=0.9)
    ids = _ids(quantized)
    gen = engine.generate(quantized.model, quantized.tokenizer, ids, settings, spec=SPEC)
    marker_ids = _markers(quantized) if mode != "off" else None
    with torch.inference_mode():
        logits, _, seq = naive_prefix(quantized.model, ids, mode, 3 if mode != "off" else 0, marker_ids, 0.9)
        want, conf = naive_decode(
            quantized.model, seq, int(logits.argmax(-1)), 8, engine.eos_token_ids(quantized.model, quantized.tokenizer)
        )
    assert gen.paths[0].token_ids == want
    assert gen.paths[0].confidence == pytest.approx(conf, abs=0.02)


@pytest.mark.parametrize("mode", ["coconut", "soft"])
def test_quantized_cached_prefix_equals_full_recompute(quantized, mode):
    runner_ = engine.LatentRunner(quantized.model)
    ids = _ids(quantized)
    with torch.inference_mode():
        prefix = engine.run_prefix(runner_, ids, mode, 4, _markers(quantized), soft_top_p=0.9)
        ref_logits, ref_thoughts, _ = naive_prefix(quantized.model, ids, mode, 4, _markers(quantized), soft_top_p=0.9)
    for got, want in zip(prefix.thought_inputs, ref_thoughts):
        assert ((got - want).norm() / want.norm()).item() < 0.02
    assert int(prefix.logits.argmax()) == int(ref_logits.argmax())


@pytest.mark.parametrize("mode", ["coconut", "off"])
def test_quantized_padded_batch_equals_one_prompt_at_a_time(quantized, mode):
    texts = ["東京は日本の首都ですか？", "Is Tom a lempus or a gorpus? Every wumpus is a yumpus.", "猫"]
    prompts = [_ids(quantized, t) for t in texts]
    settings = engine.Settings(mode=mode, num_thoughts=2, max_new_tokens=6)
    batched = engine.generate_batch(quantized.model, quantized.tokenizer, prompts, settings, spec=SPEC)
    for prompt, got in zip(prompts, batched):
        alone = engine.generate(quantized.model, quantized.tokenizer, prompt, settings, spec=SPEC)
        assert got.paths[0].token_ids == alone.paths[0].token_ids


def test_ask_reports_the_quantization_and_replays_it(tiny_gemma2, tmp_path):
    result = runner.invoke(
        app, ["ask", "--model", str(tiny_gemma2), "--quantize", "int8", "--max-new-tokens", "3", "--json", "猫"]
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["device"]["quantize"] == "int8" and data["device"]["quantize_reason"] == "requested"
    record = tmp_path / "run.json"
    record.write_text(result.stdout, encoding="utf-8")
    again = runner.invoke(app, ["ask", "--replay", str(record), "--json"])
    assert again.exit_code == 0, again.stderr
    replayed = json.loads(again.stdout)
    assert replayed["device"]["quantize"] == "int8" and replayed["answer"] == data["answer"]


def test_auto_leaves_a_tiny_model_in_full_precision_and_says_why(tiny_gemma2):
    result = runner.invoke(app, ["ask", "--model", str(tiny_gemma2), "--max-new-tokens", "2", "--json", "猫"])
    assert result.exit_code == 0, result.stderr
    device = json.loads(result.stdout)["device"]
    assert device["quantize"] == "none" and "too few" in device["quantize_reason"]


def test_the_environment_and_config_choose_the_quantization(tiny_gemma2, monkeypatch):
    monkeypatch.setenv("LGEMMA_QUANTIZE", "int4")
    result = runner.invoke(app, ["ask", "--model", str(tiny_gemma2), "--max-new-tokens", "2", "--json", "猫"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["device"]["quantize"] == "int4"
    monkeypatch.setenv("LGEMMA_QUANTIZE", "int3")
    bad = runner.invoke(app, ["ask", "--model", str(tiny_gemma2), "猫"])
    assert bad.exit_code == 2 and "LGEMMA_QUANTIZE" in bad.stderr


@pytest.mark.parametrize("command", ["ask", "chat", "translate", "eval"])
def test_a_bad_quantize_value_exits_2_with_one_line(tiny_gemma2, tmp_path, command):
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"question": "猫?", "answer": "猫"}) + "\n", encoding="utf-8")
    args = {
        "ask": ["ask", "猫"],
        "chat": ["chat"],
        "translate": ["translate", "--to", "en"],
        "eval": ["eval", "--task", "qa", "--data", str(data)],
    }[command]
    result = runner.invoke(app, [*args, "--model", str(tiny_gemma2), "--quantize", "int3"], input="猫\n")
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert "int3" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # the message and its hint


def test_an_eval_report_records_the_quantization(tiny_gemma2, tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"question": "猫?", "answer": "猫"}) + "\n", encoding="utf-8")
    args = ["eval", "--model", str(tiny_gemma2), "--data", str(data), "--task", "qa", "--max-new-tokens", "2"]
    result = runner.invoke(app, [*args, "--quantize", "int8", "--json"])
    assert result.exit_code == 0, result.stderr
    model = json.loads(result.stdout)["model"]
    assert model["quantize"] == "int8" and model["quantize_reason"] == "requested"


def test_auto_quantizes_where_the_tokens_pay_for_it_and_not_for_one_short_answer(tiny_gemma2, tmp_path, monkeypatch):
    from latent_gemma_cli import quantize

    monkeypatch.setattr(quantize, "AUTO_MIN_PARAMETERS", 0)  # the tiny model counts as big enough
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"question": "猫?", "answer": "猫"}) + "\n", encoding="utf-8")
    ev = runner.invoke(app, ["eval", "--model", str(tiny_gemma2), "--data", str(data), "--task", "qa", "--json"])
    assert ev.exit_code == 0, ev.stderr
    assert json.loads(ev.stdout)["model"]["quantize"] == "int8"
    ask = runner.invoke(app, ["ask", "--model", str(tiny_gemma2), "--max-new-tokens", "2", "--json", "猫"])
    assert ask.exit_code == 0, ask.stderr
    device = json.loads(ask.stdout)["device"]
    assert device["quantize"] == "none" and "one answer of at most 2 tokens" in device["quantize_reason"]
    # One answer that may be long enough to pay back the load (the default limit, 256, included).
    limit = str(quantize.AUTO_MIN_ANSWER_TOKENS)
    for extra in (["--max-new-tokens", limit], []):
        ask = runner.invoke(app, ["ask", "--model", str(tiny_gemma2), *extra, "--json", "猫"])
        assert ask.exit_code == 0, ask.stderr
        device = json.loads(ask.stdout)["device"]
        assert device["quantize"] == "int8" and "up to" in device["quantize_reason"], extra
