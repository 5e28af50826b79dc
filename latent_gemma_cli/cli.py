"""The Typer surface of lgemma: parse arguments, call the library, hand results to the renderer.

No model code here, and no heavy import at module level: torch and transformers are imported
inside the command functions so `lgemma --help` and shell completion start fast.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Annotated, Callable, Optional

import typer

from . import __version__
from .completion import complete_language
from .errors import EXIT_INTERRUPTED, EXIT_RUNTIME, EXIT_TERMINATED, LgemmaError, Terminated
from .options import (
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    MaxNewOpt,
    ModelOpt,
    ModeOpt,
    PathsOpt,
    QuietOpt,
    SeedOpt,
    TempOpt,
    ThoughtsOpt,
    TopPOpt,
    TraceOpt,
)

EXIT_CODES_HELP = (
    "Exit codes: 0 success, 1 runtime error, 2 usage error or bad input, "
    "3 model not available locally, 4 authentication or licence needed, 5 network unreachable, "
    "6 disk full, 7 model or revision not found on the hub, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM)."
)


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


def guarded(func: Callable) -> Callable:
    """Map project errors to one-line messages and exit codes; Ctrl-C to 130. The one place that does."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from .render import Output

        try:
            return func(*args, **kwargs)
        except LgemmaError as exc:
            Output().error(exc.message, exc.hint)
            raise typer.Exit(exc.exit_code) from None
        except Terminated:
            Output().error("terminated")
            raise typer.Exit(EXIT_TERMINATED) from None
        except KeyboardInterrupt:
            Output().error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort, typer.BadParameter):
            raise
        except OSError as exc:
            known = os_error(exc)
            if known is None:
                raise _unexpected(exc) from None
            Output().error(known.message, known.hint)
            raise typer.Exit(known.exit_code) from None
        except Exception as exc:  # a bug or an unforeseen failure: one line, unless debugging
            raise _unexpected(exc) from None

    return wrapper


def _unexpected(exc: Exception) -> typer.Exit:
    from .render import Output

    if os.environ.get("LGEMMA_DEBUG"):
        raise exc
    Output().error(f"unexpected {type(exc).__name__}: {exc}".splitlines()[0], hint="set LGEMMA_DEBUG=1 to see the traceback, and please report it")
    return typer.Exit(EXIT_RUNTIME)


def os_error(exc: OSError) -> LgemmaError | None:
    """A project error for the file-system failures anyone can run into (disk full, read-only or
    missing directories, permissions), naming the file; None for anything else."""
    import errno

    from .errors import DiskFullError

    where = exc.filename or "a file"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"disk full while writing {where}", hint="free some space and run the command again")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOENT, errno.ENAMETOOLONG):
        return LgemmaError(f"{where}: {exc.strerror}", hint="check the path and its permissions (lgemma's own files live under LGEMMA_HOME)")
    return None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lgemma {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """Gemma with continuous latent reasoning (COCONUT) for Japanese-English QA and translation."""


def generation_settings(mode, thoughts, paths, max_new_tokens, temperature, top_p, seed):
    """Engine settings from flags, filled from config for what the user did not give."""
    from . import config
    from .engine import Settings

    return Settings(
        mode=config.resolve("mode", mode),
        num_thoughts=config.resolve("thoughts", thoughts),
        paths=config.resolve("paths", paths),
        max_new_tokens=config.resolve("max_new_tokens", max_new_tokens),
        temperature=config.resolve("temperature", temperature),
        top_p=config.resolve("top_p", top_p),
        seed=seed,
    )


def load(model: str | None, device: str | None, dtype: str | None, allow_pickle: bool = False):
    """Load the model named by flag or config, quietly (no library progress bars on our streams)."""
    from . import config
    from .loading import load_model

    _quiet_libraries()
    return load_model(
        config.resolve("model", model),
        device=config.resolve("device", device),
        dtype=config.resolve("dtype", dtype),
        allow_pickle=allow_pickle,
    )


def _quiet_libraries() -> None:
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="transformers")


@app.command()
@guarded
def ask(
    question: Annotated[Optional[str], typer.Argument(help="The question; `-` reads it from stdin. Piped stdin plus a question: stdin is the context.")] = None,
    model: ModelOpt = None,
    mode: ModeOpt = None,
    thoughts: ThoughtsOpt = None,
    paths: PathsOpt = None,
    max_new_tokens: MaxNewOpt = None,
    temperature: TempOpt = None,
    top_p: TopPOpt = None,
    seed: SeedOpt = None,
    lang: Annotated[Optional[str], typer.Option("--lang", autocompletion=complete_language, help="Answer language (ja | en). [default: the question's]")] = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help="Allow pickle (.bin) weights from a source you trust.")] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    trace: TraceOpt = True,
) -> None:
    """Answer a question with latent reasoning. The answer goes to stdout, the trace to stderr."""
    from .errors import UsageError
    from .inputs import question_from
    from .prompting import compose_question
    from .render import Output, ask_trace_rows

    out = Output(quiet=quiet, show_trace=trace and not json_out)
    if lang is not None and lang not in ("ja", "en"):
        raise UsageError(f"unknown answer language {lang!r}", hint="use --lang ja or --lang en")
    instruction, context = question_from(question)
    text = compose_question(instruction, context)
    settings = generation_settings(mode, thoughts, paths, max_new_tokens, temperature, top_p, seed)
    settings.validate()
    loaded = load(model, device, dtype, allow_pickle)

    from .ask import ask as run_ask

    result = run_ask(loaded, text, settings, answer_language=lang)
    data = result.to_dict()
    if json_out:
        out.json(data)
        return
    out.trace_rows("lgemma ask", ask_trace_rows(data), data["paths"], data["chosen_path"])
    out.result(result.answer)


# Commands contributed by other modules register here; each module imports only typer at top level.
# (registration block: keep one line per command)
from .commands import download as _download  # noqa: E402
app.command("download", epilog=_download.DOWNLOAD_EPILOG)(guarded(_download.download))
app.add_typer(_download.build_models_app(guarded), name="models")
from .commands import translate as _translate  # noqa: E402
app.command("translate")(guarded(_translate.translate))
from .commands import synth as _synth  # noqa: E402
app.command("synth")(guarded(_synth.synth))
from .commands import config_cmd as _config  # noqa: E402
app.add_typer(_config.config_app, name="config")
from .commands import doctor as _doctor  # noqa: E402
app.command("doctor")(guarded(_doctor.doctor))
from .commands import eval as _eval  # noqa: E402
app.command("eval")(guarded(_eval.eval_command))
from .commands import train as _train  # noqa: E402
app.command("train", help=_train.TRAIN_HELP)(guarded(_train.train))


def _terminate(signum, frame) -> None:
    raise Terminated()


def main() -> None:
    """Console-script entry point."""
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
