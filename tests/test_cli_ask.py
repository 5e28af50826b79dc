"""`lgemma ask` through Typer's CliRunner and one real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from latent_gemma_cli.cli import app
from latent_gemma_cli.latent_spec import LatentSpec

runner = CliRunner()
FAST = ["--max-new-tokens", "4", "--thoughts", "2"]


def _ask(model_dir, *args, input=None):
    return runner.invoke(app, ["ask", "--model", str(model_dir), *FAST, *args], input=input)


def test_argument_answer_on_stdout_trace_on_stderr(tiny_gemma2):
    result = _ask(tiny_gemma2, "東京は日本の首都ですか？", "--paths", "2")
    assert result.exit_code == 0, result.stderr
    data = json.loads(_ask(tiny_gemma2, "東京は日本の首都ですか？", "--paths", "2", "--json").stdout)
    assert result.stdout.strip() == data["answer"].strip()
    assert "languages: input ja" in result.stderr
    assert "path 0" in result.stderr and "path 1" in result.stderr
    assert "languages" not in result.stdout


def test_dash_reads_question_from_stdin(tiny_gemma2):
    piped = _ask(tiny_gemma2, "-", "--json", input="Is Tokyo the capital of Japan?")
    assert piped.exit_code == 0, piped.stderr
    data = json.loads(piped.stdout)
    assert data["question"] == "Is Tokyo the capital of Japan?"
    assert data["languages"]["input"]["code"] == "en"


def test_piped_stdin_is_context_and_argument_is_instruction(tiny_gemma2):
    result = _ask(tiny_gemma2, "summarize", "--json", input="猫は暖かい屋根の上で寝ています。")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["question"] == "猫は暖かい屋根の上で寝ています。\n\nsummarize"


def test_json_schema_allows_replay(tiny_gemma2):
    result = _ask(tiny_gemma2, "Is Tom a lempus?", "--json", "--mode", "soft", "--paths", "3", "--seed", "5")
    data = json.loads(result.stdout)
    assert set(data) >= {
        "answer",
        "mode",
        "num_thoughts",
        "chosen_path",
        "paths",
        "prompt_token_ids",
        "seed",
        "languages",
        "model",
        "device",
        "timings",
    }
    assert data["seed"] == 5 and data["mode"] == "soft" and data["num_thoughts"] == 2
    assert data["settings"] == {
        "mode": "soft",
        "num_thoughts": 2,
        "paths": 3,
        "max_new_tokens": 4,
        "temperature": 0.0,
        "top_p": 1.0,
        "soft_top_p": 0.95,
        "seed": 5,
        "answer_language": None,
        "lens_top": 0,
    }
    assert len(data["paths"]) == 3
    for p in data["paths"]:
        assert set(p) == {"text", "confidence", "num_tokens", "finished", "token_ids"}
        assert all(isinstance(t, int) for t in p["token_ids"])
    assert data["answer"] == data["paths"][data["chosen_path"]]["text"]
    assert data["device"]["dtype"] == "float32" and "CPU" in data["device"]["dtype_reason"]
    assert result.stderr == ""
    # Replaying the prompt ids through the engine gives the same paths.
    from latent_gemma_cli import engine
    from latent_gemma_cli.loading import load_model

    loaded = load_model(str(tiny_gemma2))
    gen = engine.generate(
        loaded.model,
        loaded.tokenizer,
        data["prompt_token_ids"],
        engine.Settings(mode="soft", num_thoughts=2, paths=3, max_new_tokens=4),
    )
    assert [p.token_ids for p in gen.paths] == [p["token_ids"] for p in data["paths"]]


def test_quiet_and_no_trace(tiny_gemma2):
    for flag in ("--quiet", "--no-trace"):
        result = _ask(tiny_gemma2, "Is Tom a lempus?", flag)
        assert result.exit_code == 0
        assert result.stderr == ""


@pytest.mark.parametrize(
    "args,input,code,needle",
    [
        (["   "], None, 2, "empty input"),
        (["-"], "", 2, "empty input"),
        (["--mode", "coconut", "hi"], None, 2, "latent description"),
        (["--mode", "bogus", "hi"], None, 2, "unknown mode"),
        (["--paths", "0", "hi"], None, 2, "--paths"),
    ],
)
def test_usage_errors_are_one_line_without_traceback(tiny_gemma2, args, input, code, needle):
    result = _ask(tiny_gemma2, *args, input=input)
    assert result.exit_code == code
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")


def test_missing_model_exit_3_names_download():
    result = runner.invoke(app, ["ask", "--model", "no-such-model", "hi"])
    assert result.exit_code == 3
    assert "lgemma download no-such-model" in result.stderr


def test_pickle_only_checkpoint_refused(tiny_gemma2, tmp_path):
    bad = tmp_path / "pickled"
    bad.mkdir()
    for name in os.listdir(tiny_gemma2):
        if not name.endswith(".safetensors"):
            shutil.copy(tiny_gemma2 / name, bad / name)
    (bad / "pytorch_model.bin").write_bytes(b"not really")
    result = runner.invoke(app, ["ask", "--model", str(bad), "hi"])
    assert result.exit_code == 1
    assert "pickle" in result.stderr and "--allow-pickle" in result.stderr


def test_coconut_mode_with_latent_description(tiny_gemma2, tmp_path):
    trained = tmp_path / "trained"
    shutil.copytree(tiny_gemma2, trained)
    LatentSpec(num_thoughts=3).save(trained)
    result = runner.invoke(
        app,
        ["ask", "--model", str(trained), "--mode", "coconut", "--max-new-tokens", "3", "--json", "Is Tom a lempus?"],
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["mode"] == "coconut" and data["num_thoughts"] == 3 and data["markers"] == ["<unused0>", "<unused1>"]


def test_config_file_and_env_give_defaults(tiny_gemma2, monkeypatch):
    monkeypatch.setenv("LGEMMA_MODEL", str(tiny_gemma2))
    monkeypatch.setenv("LGEMMA_PATHS", "2")
    result = runner.invoke(app, ["ask", "--max-new-tokens", "2", "--json", "hi there"])
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)["paths"]) == 2
    flag = runner.invoke(app, ["ask", "--paths", "1", "--max-new-tokens", "2", "--json", "hi there"])
    assert len(json.loads(flag.stdout)["paths"]) == 1


def test_subprocess_pipe_has_no_escape_codes(tiny_gemma2):
    """A real process with pipes: plain stderr trace, answer alone on stdout."""
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "latent_gemma_cli", "ask", "--model", str(tiny_gemma2), *FAST],
        input="東京は日本の首都ですか？".encode(),
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"\x1b" not in proc.stdout and b"\x1b" not in proc.stderr
    assert b"languages: input ja" in proc.stderr
    assert proc.stdout.count(b"\n") >= 1


def test_unexpected_failure_is_one_line_unless_debugging(tiny_gemma2, monkeypatch):
    from latent_gemma_cli import ask as ask_module

    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke\nsecond line")

    monkeypatch.setattr(ask_module, "ask", broken)
    result = _ask(tiny_gemma2, "hi")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "error: unexpected RuntimeError: something inside broke"
    assert "LGEMMA_DEBUG" in result.stderr and "Traceback" not in result.stderr
    monkeypatch.setenv("LGEMMA_DEBUG", "1")
    debug = _ask(tiny_gemma2, "hi")
    assert isinstance(debug.exception, RuntimeError)
