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
    """A real terminal session. Each key is sent only once the `> ` prompt it answers is on the
    screen (typeahead sent while an answer is generated reaches readline through a mode switch that
    can drop a Ctrl-D), and the child is waited for with a deadline: this test fails, it never hangs."""
    import pty
    import select
    import signal

    pid, fd = pty.fork()
    if pid == 0:  # the child: lgemma chat on the pseudo-terminal
        try:
            env = {**os.environ, "NO_COLOR": "1"}
            argv = [sys.executable, "-m", "latent_gemma_cli", "chat", "--model", str(tiny_gemma2)]
            os.execve(sys.executable, [*argv, "--max-new-tokens", "4"], env)
        finally:
            os._exit(127)  # never run the rest of pytest in the child
    seen = b""

    def pump(until, timeout: float = 90.0) -> bool:
        """Read the terminal until `until(seen)` holds or the child closes it; False on a timeout."""
        nonlocal seen
        deadline = time.monotonic() + timeout
        while not until(seen):
            if time.monotonic() > deadline:
                return False
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    return until(seen)
                if not chunk:
                    return until(seen)
                seen += chunk
        return True

    def prompts(n: int):
        return lambda text: text.count(b"> ") >= n

    def exited(timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            pump(lambda _: False, timeout=0.2)  # keep draining, so the child never blocks on output
        return None

    try:
        assert pump(prompts(1)), seen.decode(errors="replace")
        assert b"/help for commands" in seen
        os.write(fd, b"/thoughts 3\r")
        assert pump(lambda text: b"thoughts 3" in text and prompts(2)(text)), seen.decode(errors="replace")
        os.write(fd, b"hello\r")
        assert pump(prompts(3)), seen.decode(errors="replace")  # the answer, then the next prompt
        os.write(fd, b"\x04")  # Ctrl-D at the prompt ends the session
        status = exited(60.0)
        assert status is not None, "chat did not end on Ctrl-D: " + seen.decode(errors="replace")
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, seen.decode(errors="replace")
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)


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
