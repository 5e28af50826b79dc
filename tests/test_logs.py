"""`lgemma logs`: ask, chat and translate runs recorded in SQLite (mode 0600), queried, switched
off, skipped with --no-log, and a logging failure never fails a run."""

from __future__ import annotations

import json
import sqlite3
import stat

from typer.testing import CliRunner

from latent_gemma_cli.cli import app

runner = CliRunner()


def lgemma(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def logged():
    result = lgemma("logs", "--json", "-n", "100")
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.split("\n") if line]


def test_ask_chat_and_translate_are_recorded_and_queried(tiny_gemma2, tmp_path):
    from latent_gemma_cli.runlog import log_path

    ask = lgemma(
        "ask",
        "--model",
        tiny_gemma2,
        "--max-new-tokens",
        "3",
        "--json",
        "--temperature",
        "0.8",
        "東京は日本の首都ですか？",
    )
    answer = json.loads(ask.stdout)
    assert lgemma("chat", "--model", tiny_gemma2, "--max-new-tokens", "3", input="Is Tom a lempus?\n").exit_code == 0
    src = tmp_path / "in.txt"
    src.write_text("猫は寝ています。\n", encoding="utf-8")
    assert lgemma("translate", "-m", tiny_gemma2, "--max-new-tokens", "3", "--to", "en", src).exit_code == 0
    runs = logged()
    assert [r["command"] for r in runs] == ["ask", "chat", "translate"]
    first = runs[0]
    assert first["input"] == "東京は日本の首都ですか？" and first["output"] == answer["answer"]
    assert (
        first["seed"] == answer["seed"] is not None
        and first["settings"] == answer["settings"]
        and first["mode"] == "off"
    )
    assert runs[2]["input"] == "猫は寝ています。\n" and runs[2]["settings"]["to"] == "en"
    assert stat.S_IMODE(log_path().stat().st_mode) == 0o600
    assert [
        r["command"]
        for r in json.loads("[" + ",".join(lgemma("logs", "--json", "-q", "lempus").stdout.split("\n")[:-1]) + "]")
    ] == ["chat"]
    assert len(logged()[-2:]) == 2 and [
        r["command"] for r in [json.loads(x) for x in lgemma("logs", "--json", "-n", "1").stdout.split("\n") if x]
    ] == ["translate"]
    text = lgemma("logs").stdout
    assert "ask" in text and "> 東京は日本の首都ですか？" in text
    assert lgemma("logs", "path").stdout.strip() == str(log_path())


def test_no_log_and_logs_off_record_nothing(tiny_gemma2):
    assert lgemma("ask", "--model", tiny_gemma2, "--max-new-tokens", "2", "--no-log", "hi").exit_code == 0
    assert logged() == []
    assert lgemma("logs", "off").exit_code == 0
    assert lgemma("ask", "--model", tiny_gemma2, "--max-new-tokens", "2", "hi").exit_code == 0
    assert logged() == [] and "logging is off" in lgemma("logs").stderr
    assert lgemma("logs", "on").exit_code == 0
    assert lgemma("ask", "--model", tiny_gemma2, "--max-new-tokens", "2", "hi").exit_code == 0
    assert len(logged()) == 1


def test_a_locked_or_broken_log_is_a_warning_and_the_run_succeeds(tiny_gemma2):
    from latent_gemma_cli.runlog import log_path

    assert lgemma("ask", "--model", tiny_gemma2, "--max-new-tokens", "2", "hi").exit_code == 0
    holder = sqlite3.connect(log_path())
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        locked = lgemma("ask", "--model", tiny_gemma2, "--max-new-tokens", "2", "hi")
    finally:
        holder.rollback()
        holder.close()
    assert locked.exit_code == 0 and "warning: run not logged" in locked.stderr and locked.stdout.endswith("\n")
    log_path().write_bytes(b"this is not a database" * 100)
    broken = lgemma("ask", "--model", tiny_gemma2, "--max-new-tokens", "2", "hi")
    assert broken.exit_code == 0 and "warning: run not logged" in broken.stderr
