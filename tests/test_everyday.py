"""Everyday use of `ask`: the default mode, streaming, seeds that are always recorded, the soft
nucleus as a flag, and a run repeatable from its JSON (issue 18, first part)."""

from __future__ import annotations

import io
import json
import shutil
import sys

import pytest
from typer.testing import CliRunner

from latent_gemma_cli.cli import app
from latent_gemma_cli.latent_spec import LatentSpec
from latent_gemma_cli.models_registry import latent_trained

runner = CliRunner()


def ask(model, *args, input=None):
    return runner.invoke(app, ["ask", "--model", str(model), "--max-new-tokens", "6", *map(str, args)], input=input)


def test_default_mode_is_off_untrained_and_coconut_for_a_latent_model(tiny_gemma2, tmp_path):
    plain = json.loads(ask(tiny_gemma2, "--json", "hello").stdout)
    assert plain["mode"] == "off" and plain["num_thoughts"] == 0
    latent = tmp_path / "latent"
    shutil.copytree(tiny_gemma2, latent)
    LatentSpec(num_thoughts=3).save(latent)
    data = json.loads(ask(latent, "--json", "hello").stdout)
    assert data["mode"] == "coconut" and data["num_thoughts"] == 3
    assert json.loads(ask(latent, "--json", "--mode", "soft", "hello").stdout)["mode"] == "soft"


def test_a_model_trained_at_stage_0_only_runs_without_thoughts_by_default(tiny_gemma2, tmp_path):
    # it learned [prompt] answer with no markers: `auto` must not wrap its prompt in <bot><eot>
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(json.dumps({"question": f"Is Tom a lempus {i}?", "answer": "yes"}) + "\n" for i in range(4)),
        encoding="utf-8",
    )
    plain = tmp_path / "plain"
    args = ["train", "--model", str(tiny_gemma2), "--data", str(rows), "--out", str(plain), "--stages", "0"]
    trained = runner.invoke(app, [*args, "--steps-per-stage", "1", "--batch-size", "2", "--device", "cpu", "-q"])
    assert trained.exit_code == 0, trained.stderr
    assert LatentSpec.load(plain).mode == "off"
    assert not latent_trained(plain) and not latent_trained(tiny_gemma2)  # `lgemma models`: latent "no"
    data = json.loads(ask(plain, "--json", "hello").stdout)
    assert data["mode"] == "off" and data["num_thoughts"] == 0
    assert json.loads(ask(plain, "--json", "--mode", "coconut", "hello").stdout)["mode"] == "coconut"
    # files written before the mode was recorded this way said `coconut` for such a model
    older = tmp_path / "older"
    shutil.copytree(tiny_gemma2, older)
    LatentSpec(num_thoughts=0, mode="coconut", curriculum={"stages": [0], "max_stage": 0}).save(older)
    assert json.loads(ask(older, "--json", "hello").stdout)["mode"] == "off"
    LatentSpec(num_thoughts=0, curriculum={"stages": [0], "stage0_bot": True}).save(older)  # trained with <bot>
    assert json.loads(ask(older, "--json", "hello").stdout)["mode"] == "coconut" and latent_trained(older)


def test_an_unknown_mode_or_bad_stages_in_the_latent_file_is_one_line_and_exit_1(tiny_gemma2, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_gemma2, broken)
    for spec, needle in (
        (LatentSpec(mode="telepathy"), "unknown mode 'telepathy'"),
        (LatentSpec(curriculum={"stages": 3}), "curriculum stages must be a list"),
        (LatentSpec(curriculum={"stages": [0, "x"]}), "curriculum stages must be a list"),
    ):
        spec.save(broken)
        result = ask(broken, "hello")
        assert result.exit_code == 1
        assert needle in result.stderr and "Traceback" not in result.stderr
        assert latent_trained(broken)  # `lgemma models` lists it without failing; loading names the problem


def test_sampling_without_a_seed_draws_one_records_it_and_the_json_replays_the_run(tiny_gemma2):
    first = ask(
        tiny_gemma2,
        "--json",
        "--mode",
        "soft",
        "--thoughts",
        "2",
        "--temperature",
        "1.3",
        "--top-p",
        "0.9",
        "Is Tom a lempus?",
    )
    assert first.exit_code == 0, first.stderr
    data = json.loads(first.stdout)
    seed = data["seed"]
    assert isinstance(seed, int) and data["settings"]["seed"] == seed
    s = data["settings"]
    again = ask(
        tiny_gemma2,
        "--json",
        "--mode",
        s["mode"],
        "--thoughts",
        s["num_thoughts"],
        "--temperature",
        s["temperature"],
        "--top-p",
        s["top_p"],
        "--soft-top-p",
        s["soft_top_p"],
        "--seed",
        seed,
        "--paths",
        s["paths"],
        "Is Tom a lempus?",
    )
    assert json.loads(again.stdout)["paths"][0]["token_ids"] == data["paths"][0]["token_ids"]
    trace = ask(tiny_gemma2, "--mode", "soft", "--temperature", "1.3", "Is Tom a lempus?")
    assert "seed: " in trace.stderr  # printed in the trace too
    greedy = json.loads(ask(tiny_gemma2, "--json", "hello").stdout)
    assert greedy["seed"] is None  # greedy decoding uses no randomness


def test_soft_top_p_is_a_flag_that_is_checked_and_recorded(tiny_gemma2):
    data = json.loads(ask(tiny_gemma2, "--json", "--mode", "soft", "--soft-top-p", "0.5", "hello").stdout)
    assert data["settings"]["soft_top_p"] == 0.5
    for bad in ("0", "1.5", "nan"):
        result = ask(tiny_gemma2, "--mode", "soft", "--soft-top-p", bad, "hello")
        assert result.exit_code == 2 and "--soft-top-p" in result.stderr


def test_streamed_answer_equals_the_answer_byte_for_byte(tiny_gemma2):
    for question in ("東京は日本の首都ですか？", "Is Tom a lempus or a gorpus?"):
        streamed = ask(tiny_gemma2, "--mode", "soft", "--thoughts", "2", question)
        whole = ask(tiny_gemma2, "--mode", "soft", "--thoughts", "2", "--no-stream", question)
        answer = json.loads(ask(tiny_gemma2, "--mode", "soft", "--thoughts", "2", "--json", question).stdout)["answer"]
        assert streamed.exit_code == 0 and whole.exit_code == 0
        assert streamed.stdout_bytes == whole.stdout_bytes == (answer + "\n").encode("utf-8")


class ByteTokenizer:
    """Token ids are UTF-8 bytes, so one Japanese character spans three tokens."""

    def decode(self, ids, skip_special_tokens=True):
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


def test_token_stream_never_prints_half_a_character_and_flushes_each_piece(monkeypatch):
    from latent_gemma_cli.render import TokenStream

    answer = "東京は日本の首都です。 Tokyo!"
    sink = io.StringIO()
    writes = []
    monkeypatch.setattr(sys, "stdout", sink)
    real_write = sink.write
    monkeypatch.setattr(sink, "write", lambda text: (writes.append(text), real_write(text))[1])
    stream = TokenStream(ByteTokenizer())
    for b in [*(" " + answer + "  ").encode("utf-8"), 256]:  # leading/trailing space, then <eos>
        stream(0, b)
    stream.finish(answer)
    assert sink.getvalue() == answer + "\n"
    assert all("\ufffd" not in w for w in writes)
    assert len(writes) > 10  # it streamed piece by piece


@pytest.mark.parametrize("flag", ["--json", "--paths"])
def test_json_and_several_paths_never_stream(tiny_gemma2, flag, monkeypatch):
    from latent_gemma_cli import render

    calls = []
    monkeypatch.setattr(render.TokenStream, "__call__", lambda self, path, tok: calls.append(tok))
    extra = ["--json"] if flag == "--json" else ["--paths", "3"]
    assert ask(tiny_gemma2, *extra, "hello").exit_code == 0
    assert calls == []


def test_show_thoughts_equals_the_lm_head_on_the_thought_inputs(tiny_gemma2, tmp_path, monkeypatch):
    import torch

    from latent_gemma_cli import engine
    from latent_gemma_cli.loading import load_model

    result = ask(tiny_gemma2, "--json", "--mode", "soft", "--thoughts", "3", "--show-thoughts", "Is Tom a lempus?")
    data = json.loads(result.stdout)
    assert [t["index"] for t in data["thoughts"]] == [0, 1, 2]
    loaded = load_model(str(tiny_gemma2), device="cpu")
    runner = engine.LatentRunner(loaded.model)
    with torch.inference_mode():
        prefix = engine.run_prefix(runner, data["prompt_token_ids"], "soft", 3, None, soft_top_p=0.95)
        probs = torch.softmax(loaded.model.lm_head(prefix.thought_inputs).float(), dim=-1)
    for j, thought in enumerate(data["thoughts"]):
        values, ids = probs[j].topk(5)
        assert [t["id"] for t in thought["top"]] == ids.tolist()
        assert [t["p"] for t in thought["top"]] == pytest.approx(values.tolist(), abs=1e-4)
        assert all(t["token"] == loaded.tokenizer.decode([t["id"]]) for t in thought["top"])
    trace = ask(tiny_gemma2, "--mode", "soft", "--thoughts", "3", "--show-thoughts", "Is Tom a lempus?")
    assert trace.stderr.count("thought ") >= 3
    assert "thoughts" not in json.loads(ask(tiny_gemma2, "--json", "--mode", "soft", "hello").stdout)
    monkeypatch.setenv("LGEMMA_SHOW_THOUGHTS", "true")  # the config key, here from the environment
    assert (
        len(json.loads(ask(tiny_gemma2, "--json", "--mode", "soft", "--thoughts", "2", "hello").stdout)["thoughts"])
        == 2
    )


def test_replay_reproduces_a_sampled_run_from_its_json(tiny_gemma2, tmp_path):
    first = ask(
        tiny_gemma2,
        "--json",
        "--mode",
        "soft",
        "--thoughts",
        "2",
        "--temperature",
        "1.2",
        "--paths",
        "2",
        "東京は日本の首都ですか？",
    )
    record = tmp_path / "run.json"
    record.write_text(first.stdout, encoding="utf-8")
    again = runner.invoke(app, ["ask", "--replay", str(record), "--json"])
    assert again.exit_code == 0, again.stderr
    a, b = json.loads(first.stdout), json.loads(again.stdout)
    assert [p["token_ids"] for p in b["paths"]] == [p["token_ids"] for p in a["paths"]]
    assert (b["seed"], b["settings"], b["question"]) == (a["seed"], a["settings"], a["question"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"answer": "x"}', encoding="utf-8")
    refused = runner.invoke(app, ["ask", "--replay", str(bad)])
    assert refused.exit_code == 2 and "not an `lgemma ask --json` record" in refused.stderr


@pytest.mark.parametrize(
    "fixture,question,lang,instruction",
    [
        ("tiny_gemma2", "東京は日本の首都ですか？", None, "ja"),  # chat template, Japanese question
        ("tiny_gemma2", "Is Tokyo the capital of Japan?", None, None),
        ("tiny_gemma2", "東京は日本の首都ですか？", "en", "en"),  # --lang wins
        ("tiny_base", "東京は日本の首都ですか？", None, "ja"),  # a base model gets the line too
        ("tiny_base", "Is Tokyo the capital of Japan?", None, None),
        ("tiny_base", "東京は日本の首都ですか？", "ja", "ja"),
    ],
)
def test_a_japanese_question_asks_for_a_japanese_answer_by_default(request, fixture, question, lang, instruction):
    import json

    from typer.testing import CliRunner

    from latent_gemma_cli.cli import app
    from latent_gemma_cli.loading import load_model
    from latent_gemma_cli.prompting import ANSWER_LANGUAGE_INSTRUCTIONS, prompt_ids

    path = request.getfixturevalue(fixture)
    args = ["ask", "--model", str(path), "--max-new-tokens", "2", "--json", question]
    result = CliRunner().invoke(app, args + (["--lang", lang] if lang else []))
    assert result.exit_code == 0, result.stderr
    tok = load_model(str(path)).tokenizer
    system = ANSWER_LANGUAGE_INSTRUCTIONS[instruction] if instruction else None
    assert json.loads(result.stdout)["prompt_token_ids"] == prompt_ids(tok, question, system=system)


def test_chat_asks_for_the_first_messages_language_as_ask_does(tiny_gemma2):
    from latent_gemma_cli.ask import ask
    from latent_gemma_cli.chat import Conversation
    from latent_gemma_cli.loading import load_model
    from latent_gemma_cli.settings import Settings

    loaded = load_model(str(tiny_gemma2))
    question = "東京は日本の首都ですか？"
    asked = ask(loaded, question, Settings(mode="off", max_new_tokens=2))
    assert Conversation(loaded.tokenizer).prompt_ids(question) == asked.generation.prompt_ids


def test_json_names_the_weights_and_replay_warns_when_they_changed(tiny_gemma2, tmp_path):
    import json
    import shutil

    import torch
    from safetensors.torch import load_file, save_file
    from typer.testing import CliRunner

    from latent_gemma_cli.cli import app
    from latent_gemma_cli.fingerprint import weights_fingerprint

    model = tmp_path / "model"
    shutil.copytree(tiny_gemma2, model)
    runner = CliRunner()
    result = runner.invoke(app, ["ask", "--model", str(model), "--max-new-tokens", "2", "--json", "猫"])
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    fingerprint = record["model"]["weights_sha256"]
    assert len(fingerprint) == 64 and fingerprint == weights_fingerprint(model)
    assert record["model"]["eos_token_ids"] == [1] and record["model"]["latent"] is None
    cache = json.loads((tmp_path / "lgemma-home" / "fingerprints.json").read_text(encoding="utf-8"))
    assert [entry["size"] for entry in cache.values()] == [(model / "model.safetensors").stat().st_size]
    run = tmp_path / "run.json"
    run.write_text(result.stdout, encoding="utf-8")
    same = runner.invoke(app, ["ask", "--replay", str(run), "--json"])
    assert same.exit_code == 0 and "differ" not in same.stderr, same.stderr

    weights = load_file(str(model / "model.safetensors"))
    name = next(iter(weights))
    weights[name] = weights[name] + torch.ones_like(weights[name])
    save_file(weights, str(model / "model.safetensors"), metadata={"format": "pt"})
    assert weights_fingerprint(model) != fingerprint  # a rewritten file is hashed again
    changed = runner.invoke(app, ["ask", "--replay", str(run), "--json"])
    assert changed.exit_code == 0, changed.stderr
    assert "weights differ from the recorded run" in changed.stderr


def test_a_models_section_in_the_config_sets_its_defaults(tiny_gemma2, tiny_gemma3, tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from latent_gemma_cli.cli import app

    runner = CliRunner()

    def mode_of(model, *extra):
        result = runner.invoke(app, ["ask", "--model", str(model), "--max-new-tokens", "2", "--json", *extra, "猫"])
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)["mode"]

    set_ = runner.invoke(app, ["config", "set", "--model", str(tiny_gemma2), "mode", "soft"])
    assert set_.exit_code == 0, set_.stderr
    runner.invoke(app, ["config", "set", "mode", "off"])
    assert mode_of(tiny_gemma2) == "soft"  # the model's section
    assert mode_of(tiny_gemma3) == "off"  # the file's top level
    assert mode_of(tiny_gemma2, "--mode", "off") == "off"  # a flag wins
    monkeypatch.setenv("LGEMMA_MODE", "off")
    assert mode_of(tiny_gemma2) == "off"  # and the environment
    monkeypatch.delenv("LGEMMA_MODE")
    shown = json.loads(runner.invoke(app, ["config", "show", "--json", "--model", str(tiny_gemma2)]).stdout)
    assert shown["keys"]["mode"]["value"] == "soft" and str(tiny_gemma2) in shown["keys"]["mode"]["source"]
    unset = runner.invoke(app, ["config", "unset", "--model", str(tiny_gemma2), "mode"])
    assert unset.exit_code == 0 and mode_of(tiny_gemma2) == "off"
    bad = runner.invoke(app, ["config", "set", "--model", str(tiny_gemma2), "mode", "sideways"])
    assert bad.exit_code == 2 and "sideways" in bad.stderr


def test_a_bad_models_section_is_one_line_and_exit_2(tiny_gemma2, tmp_path):
    from typer.testing import CliRunner

    from latent_gemma_cli.cli import app
    from latent_gemma_cli.config import config_file

    config_file().parent.mkdir(parents=True, exist_ok=True)
    config_file().write_text('[models."x"]\nmodel = "y"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["ask", "--model", str(tiny_gemma2), "猫"])
    assert result.exit_code == 2 and "unknown key 'model' for model 'x'" in result.stderr
