"""`lgemma chat`: an interactive session on one loaded model. Typer surface and the input loop.

On a terminal: a `> ` prompt with line editing and history (readline), answers streamed as they
are generated, Ctrl-C cancels the answer being generated (or the line being typed), Ctrl-D
exits. With stdin not a terminal it reads one message per line and prints one answer per line.
Slash commands change settings between turns.
"""

from __future__ import annotations

import sys
from typing import Any

from ..options import (
    DeviceOpt,
    DtypeOpt,
    MaxNewOpt,
    ModelOpt,
    ModeOpt,
    NoLogOpt,
    PathsOpt,
    QuantizeOpt,
    QuietOpt,
    SeedOpt,
    ShowThoughtsOpt,
    SoftTopPOpt,
    TempOpt,
    ThoughtsOpt,
    TopPOpt,
)

HELP = """commands:
  /mode auto|coconut|soft|off   latent mode
  /thoughts N|default           continuous thoughts (default: the model's own, 4 in soft mode)
  /paths K                      reasoning paths (several: the most confident answer is printed)
  /lang ja|en|auto              answer language (auto: no instruction)
  /show-thoughts on|off         each thought's top tokens under the LM head, on stderr
  /reset                        forget the conversation
  /help                         this list
Ctrl-C cancels an answer; Ctrl-D (or /exit) ends the session."""


def chat(
    model: ModelOpt = None,
    mode: ModeOpt = None,
    thoughts: ThoughtsOpt = None,
    paths: PathsOpt = None,
    max_new_tokens: MaxNewOpt = None,
    temperature: TempOpt = None,
    top_p: TopPOpt = None,
    soft_top_p: SoftTopPOpt = None,
    seed: SeedOpt = None,
    show_thoughts: ShowThoughtsOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    quantize: QuantizeOpt = None,
    no_log: NoLogOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Chat with one loaded model: multi-turn, streamed answers, slash commands (/help)."""
    from .. import config
    from ..chat import Conversation
    from ..render import Output
    from ..settings import build_settings
    from ._shared import load

    out = Output(quiet=quiet)
    model = config.resolve("model", model)  # once: its config section feeds the settings
    settings = build_settings(
        model=model,
        mode=mode,
        thoughts=thoughts,
        paths=paths,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        lens_top=5 if config.resolve("show_thoughts", show_thoughts, model) else 0,
        **({"soft_top_p": soft_top_p} if soft_top_p is not None else {}),
    )
    loaded = load(model, device, dtype, quantize=quantize)
    conversation = Conversation(loaded.tokenizer)
    interactive = sys.stdin is not None and sys.stdin.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:  # pragma: no cover - not on every platform
            pass
        out.info(f"lgemma chat with {loaded.reference} ({settings.mode} mode); /help for commands, Ctrl-D to leave")
    session = _Session(loaded, conversation, settings, out, log=not no_log)
    for message in _messages(interactive):
        if message.startswith("/"):
            if not session.command(message):
                break
            continue
        if message.strip():
            session.turn(message)


def _messages(interactive: bool):
    """The user's messages: typed at a prompt on a terminal, else one per line of stdin."""
    from ..errors import Terminated

    if not interactive:
        if sys.stdin is None:
            return
        for line in sys.stdin:
            yield line.rstrip("\n").rstrip("\r")
        return
    while True:
        try:
            yield input("> ")
        except Terminated:  # SIGTERM ends the session (exit 143), it is not a Ctrl-C
            raise
        except KeyboardInterrupt:  # Ctrl-C at the prompt drops the line, as shells do
            sys.stderr.write("\n")
            continue
        except EOFError:  # Ctrl-D
            sys.stderr.write("\n")
            return


class _Session:
    def __init__(self, loaded: Any, conversation: Any, settings: Any, out: Any, log: bool = True):
        self.loaded, self.conversation, self.settings, self.out, self.log = loaded, conversation, settings, out, log

    def turn(self, message: str) -> None:
        from dataclasses import replace

        from ..errors import LgemmaError, Terminated
        from ..render import TokenStream

        ids = self.conversation.prompt_ids(message)
        settings = replace(self.settings, stop_ids=self.conversation.stop_ids())
        printer = TokenStream(self.loaded.tokenizer) if settings.paths == 1 else None
        try:
            gen = self.loaded.engine.generate(ids, settings, on_token=printer)
        except Terminated:
            raise
        except KeyboardInterrupt:  # cancel this answer, keep the session
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.out.warn("answer cancelled (not kept in the conversation)")
            return
        except LgemmaError as exc:  # e.g. /mode coconut on an untrained model: say so, keep going
            self.out.error(exc.message, exc.hint)
            return
        if printer is not None:
            printer.finish(gen.answer)
        else:
            self.out.result(gen.answer)
        if gen.thought_lens:
            for j, top in enumerate(gen.thought_lens):
                shown = ", ".join(f"{self.loaded.tokenizer.decode([t])!r} {p:.2f}" for t, p in top)
                self.out.info(f"thought {j + 1}: {shown}")
        self.conversation.add_turn(message, gen.answer)
        if self.log:
            from ..ask import lens_tokens
            from ..runlog import record

            warning = record(
                "chat",
                model=self.loaded.reference,
                mode=gen.mode,
                input_text=message,
                output=gen.answer,
                seed=gen.seed,
                seconds=gen.timings.total_s,
                settings={
                    "paths": settings.paths,
                    "num_thoughts": gen.num_thoughts,
                    "temperature": settings.temperature,
                    "top_p": settings.top_p,
                },
                thoughts=lens_tokens(self.loaded.tokenizer, gen.thought_lens),
            )
            if warning:
                self.out.warn(warning)

    def command(self, line: str) -> bool:
        """Apply a slash command; False ends the session. Bad values are one line, never an exit."""
        from dataclasses import replace

        from ..errors import UsageError

        name, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        try:
            if name in ("/exit", "/quit"):
                return False
            if name == "/help":
                self.out.info(HELP)
            elif name == "/reset":
                self.conversation.reset()
                self.out.info("conversation cleared")
            elif name == "/mode":
                self._set(replace(self.settings, mode=arg))
            elif name == "/thoughts":
                self._set(replace(self.settings, num_thoughts=None if arg == "default" else _int(arg, name)))
            elif name == "/paths":
                self._set(replace(self.settings, paths=_int(arg, name)))
            elif name == "/lang":
                if arg not in ("ja", "en", "auto"):
                    raise UsageError(f"/lang {arg!r}: use ja, en or auto")
                self.conversation.answer_language = None if arg == "auto" else arg
                self.out.info(f"answer language: {arg}")
            elif name == "/show-thoughts":
                if arg not in ("on", "off"):
                    raise UsageError(f"/show-thoughts {arg!r}: use on or off")
                self._set(replace(self.settings, lens_top=5 if arg == "on" else 0))
            else:
                raise UsageError(f"unknown command {name}", hint="/help lists the commands")
        except UsageError as exc:
            self.out.error(exc.message, exc.hint)
        return True

    def _set(self, settings: Any) -> None:
        settings.validate()
        self.settings = settings
        thoughts = "the model's own" if settings.num_thoughts is None else settings.num_thoughts
        self.out.info(
            f"mode {settings.mode}, thoughts {thoughts}, paths {settings.paths}, show-thoughts {'on' if settings.lens_top else 'off'}"
        )


def _int(text: str, name: str) -> int:
    from ..errors import UsageError

    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{name} {text!r}: not a whole number") from None
