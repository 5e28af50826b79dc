"""The Typer app of lgemma and its registration table: one line per command.

No model code here, and no heavy import at module level: every command lives in
`commands/<name>.py`, imports torch and transformers inside its function, and is wrapped by the
one error guard (`commands/_shared.guarded`), so `lgemma --help` and shell completion start fast.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from . import __version__
from .commands import _shared
from .commands import ask as _ask
from .commands import chat as _chat
from .commands import config_cmd as _config
from .commands import doctor as _doctor
from .commands import download as _download
from .commands import eval as _eval
from .commands import keepalive_cmd as _keepalive
from .commands import logs as _logs
from .commands import serve as _serve
from .commands import synth as _synth
from .commands import train as _train
from .commands import translate as _translate
from .errors import EXIT_BROKEN_PIPE, EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated

guarded = _shared.guarded  # kept importable from here for library users and older tests


def _with_exit_codes(command) -> None:
    """Give every command and group the exit-code epilog, so each `--help` lists them."""
    if not command.epilog:
        command.epilog = EXIT_CODES_HELP
    for sub in getattr(command, "commands", {}).values():
        _with_exit_codes(sub)


class _RootGroup(typer.core.TyperGroup):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _with_exit_codes(self)


app = typer.Typer(
    name="lgemma",
    cls=_RootGroup,
    help="Gemma with continuous latent reasoning (COCONUT) for Japanese-English QA and translation.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    # Plain help everywhere: Rich help panels import Markdown and syntax highlighting, which made
    # `lgemma --help` start 2.6-2.9x slower than `import typer, rich` on a terminal (target: < 2x).
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lgemma {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """Gemma with continuous latent reasoning (COCONUT) for Japanese-English QA and translation."""


# The registration table: one line per command or group, every command guarded the same way.
app.command("ask")(guarded(_ask.ask))
app.command("chat")(guarded(_chat.chat))
app.command("translate")(guarded(_translate.translate))
app.command("download")(guarded(_download.download))
app.add_typer(_download.build_models_app(guarded), name="models")
app.command("train", help=_train.TRAIN_HELP)(guarded(_train.train))
app.command("eval")(guarded(_eval.eval_command))
app.command("synth")(guarded(_synth.synth))
app.add_typer(_config.build_config_app(guarded), name="config")
app.command("doctor")(guarded(_doctor.doctor))
app.add_typer(_logs.build_logs_app(guarded), name="logs")
app.command("serve")(guarded(_serve.serve))
app.command("ps")(guarded(_keepalive.ps))
app.command("stop")(guarded(_keepalive.stop))


def _terminate(signum, frame) -> None:
    raise Terminated()


def main() -> None:
    """The command line; raises SystemExit like any Click program (`entry` is the console script)."""
    import signal

    # SIGTERM takes the Ctrl-C path (temporary files removed, training checkpointed), exit 143.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        # A fixed program name keeps usage lines and the completion variable (_LGEMMA_COMPLETE)
        # the same under `python -m latent_gemma_cli`.
        app(prog_name="lgemma")
    except Terminated:
        sys.stderr.write("error: terminated\n")
        raise SystemExit(EXIT_TERMINATED) from None
    except KeyboardInterrupt:  # interrupted outside a guarded command (e.g. during import)
        sys.stderr.write("error: interrupted\n")
        raise SystemExit(EXIT_INTERRUPTED) from None


def entry() -> None:
    """Console script and `python -m latent_gemma_cli`: `main`, then an exit without the
    interpreter's teardown once torch is loaded. Tearing down torch's modules and freeing a loaded
    model took 1.2-1.5 s after the answer of a 6.5 s cold `lgemma ask` on Gemma 3 270M (2 CPU
    cores); the operating system frees a process's memory at once. atexit handlers (temporary
    files, logging) still run and the streams are flushed; a live non-daemon thread, or torch not
    loaded, takes Python's ordinary exit."""
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):  # what Python does with SystemExit("message")
        sys.stderr.write(f"{code}\n")
        code = 1
    _exit_now(code)


def _exit_now(code: int) -> None:
    import threading

    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    watched = sys.getprofile() is not None or sys.gettrace() is not None  # a profiler writes at exit
    monitoring = getattr(sys, "monitoring", None)  # Python 3.12+: cProfile, debuggers, coverage
    if monitoring is not None:
        watched = watched or any(monitoring.get_tool(i) is not None for i in range(6))
    if "torch" not in sys.modules or others or watched or not hasattr(os, "_exit"):
        raise SystemExit(code)
    import atexit

    atexit._run_exitfuncs()
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:  # the reader went away: what the guarded commands report too
        code = EXIT_BROKEN_PIPE
    except (OSError, ValueError):
        pass
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
    except (OSError, ValueError):
        pass
    try:  # what C code wrote through stdio's buffers
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):
        pass
    os._exit(code)
