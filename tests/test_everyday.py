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
