"""`lgemma chat`: multi-turn prompts, slash commands, piped use (one message per line) and a real
terminal session under a pseudo-terminal."""

from __future__ import annotations

import os
import sys
import time

import pytest
from typer.testing import CliRunner

from latent_gemma_cli.cli import app

runner = CliRunner()


def test_conversation_carries_the_history_through_the_template_and_the_transcript(tiny_gemma2, tiny_base):
    from latent_gemma_cli.chat import Conversation
    from latent_gemma_cli.loading import load_model

    for model_dir, templated in ((tiny_gemma2, True), (tiny_base, False)):
        tok = load_model(str(model_dir), device="cpu").tokenizer
        conv = Conversation(tok)
        assert conv.templated is templated
        first = conv.prompt_ids("Is Tom a lempus?")
        conv.add_turn("Is Tom a lempus?", "Tom is a lempus.")
        second = tok.decode(conv.prompt_ids("And Max?"))
        assert (
            "Is Tom a lempus?" in second
            and "Tom is a lempus." in second
            and second.rstrip().endswith(("model", "Assistant:"))
        )
        assert len(conv.prompt_ids("And Max?")) > len(first)
        conv.reset()
        assert conv.prompt_ids("Is Tom a lempus?") == first
        assert bool(conv.stop_ids()) is (not templated)  # a base model's answer ends at the newline


def test_piped_chat_answers_each_line_and_applies_slash_commands(tiny_gemma2):
    script = "hello\n/mode soft\n/thoughts 2\nIs Tom a lempus?\n/paths 0\n/bogus\n/mode coconut\nthird\n/mode off\n/reset\nfourth\n"
    result = runner.invoke(app, ["chat", "--model", str(tiny_gemma2), "--max-new-tokens", "4"], input=script)
    assert result.exit_code == 0, result.stderr
    answers = result.stdout.split("\n")[:-1]
    assert len(answers) == 3  # hello, "Is Tom a lempus?", fourth; "third" failed in coconut mode
    err = result.stderr
    assert "mode soft, thoughts 2" in err
    assert "error: --paths 0 is out of range" in err
    assert "error: unknown command /bogus" in err
    assert "no latent description" in err  # /mode coconut on an untrained model: one error, the session goes on
    assert "conversation cleared" in err
    assert "Traceback" not in err


def test_piped_chat_answers_equal_ask_for_the_first_turn(tiny_gemma2):
    chat = runner.invoke(
        app, ["chat", "--model", str(tiny_gemma2), "--max-new-tokens", "5", "--mode", "off"], input="Is Tom a lempus?\n"
    )
    from latent_gemma_cli.chat import Conversation
    from latent_gemma_cli.loading import load_model
    from latent_gemma_cli.settings import Settings

    loaded = load_model(str(tiny_gemma2), device="cpu")
    conv = Conversation(loaded.tokenizer)
    gen = loaded.engine.generate(
        conv.prompt_ids("Is Tom a lempus?"), Settings(mode="off", max_new_tokens=5, stop_ids=conv.stop_ids())
    )
    assert chat.stdout == gen.answer + "\n"


@pytest.mark.slow
def test_terminal_session_under_a_pty(tiny_gemma2):
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: lgemma chat on the pseudo-terminal
        env = {**os.environ, "NO_COLOR": "1"}
        os.execve(
            sys.executable,
            [sys.executable, "-m", "latent_gemma_cli", "chat", "--model", str(tiny_gemma2), "--max-new-tokens", "4"],
            env,
        )
    seen = b""

    def read_until(marker: bytes, timeout: float = 90.0) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(fd, 4096)
                except OSError:
                    break

    read_until(b"> ")
    assert b"/help for commands" in seen
    os.write(fd, b"/thoughts 3\r")
    read_until(b"thoughts 3")
    seen = b""
    os.write(fd, b"hello\r")
    read_until(b"> ")  # the answer, then the next prompt
    os.write(fd, b"\x04")  # Ctrl-D
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_ctrl_c_during_an_answer_cancels_it_and_the_session_goes_on(tiny_gemma2, monkeypatch):
    from latent_gemma_cli.engine import Engine

    real = Engine.generate
    calls = {"n": 0}

    def interrupted_once(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "generate", interrupted_once)
    result = runner.invoke(app, ["chat", "--model", str(tiny_gemma2), "--max-new-tokens", "3"], input="first\nsecond\n")
    assert result.exit_code == 0, result.stderr
    assert "answer cancelled" in result.stderr
    assert calls["n"] == 2 and len(result.stdout.split("\n")[:-1]) == 2  # the cancelled line, then one answer
