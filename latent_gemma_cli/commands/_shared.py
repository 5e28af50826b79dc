"""What every command shares: the error guard, loading the model, quieting the libraries.

Below the command modules and above the library: `cli.py` (the app and its registration table)
and every `commands/*.py` import from here, and nothing here imports them, so there is no cycle.
Only typer and the standard library at module level.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import typer

from ..errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_RUNTIME,
    EXIT_TERMINATED,
    LgemmaError,
    Terminated,
    from_os_error,
)


def guarded(func: Callable) -> Callable:
    """Map project errors to one-line messages and exit codes; Ctrl-C to 130, SIGTERM to 143.
    The one place that does, for every command."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from ..render import Output

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
        except BrokenPipeError:
            # The reader went away (`lgemma synth | head`): nothing to report, as for any Unix
            # filter; stdout is pointed at /dev/null so the exit flush cannot fail again.
            import sys

            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except OSError as exc:
            known = from_os_error(exc)
            if known is None:
                raise _unexpected(exc) from None
            Output().error(known.message, known.hint)
            raise typer.Exit(known.exit_code) from None
        except Exception as exc:  # a bug or an unforeseen failure: one line, unless debugging
            raise _unexpected(exc) from None

    return wrapper


def _unexpected(exc: Exception) -> typer.Exit:
    from ..render import Output

    if os.environ.get("LGEMMA_DEBUG"):
        raise exc
    Output().error(
        f"unexpected {type(exc).__name__}: {exc}".splitlines()[0],
        hint="set LGEMMA_DEBUG=1 to see the traceback, and please report it",
    )
    return typer.Exit(EXIT_RUNTIME)


def load(
    model: str | None,
    device: str | None,
    dtype: str | None,
    *,
    allow_pickle: bool = False,
    quantize: str | None = None,
    answer_tokens: int | None = None,
) -> Any:
    """Load the model named by flag or config for inference, quietly (no library progress bars on
    our streams), quantized as the flag or config say."""
    from .. import config
    from ..loading import load_model

    quiet_libraries()
    reference = config.resolve("model", model)
    return load_model(
        reference,
        device=config.resolve("device", device, reference),
        dtype=config.resolve("dtype", dtype, reference),
        allow_pickle=allow_pickle,
        quantize=config.resolve("quantize", quantize, reference),
        answer_tokens=answer_tokens,
    )


def quiet_libraries() -> None:
    """No transformers/accelerate logging or progress bars on lgemma's streams."""
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="transformers")


def keep_alive_server(keep_alive, model: str, device, dtype, quantize, out, allow_pickle: bool = False):
    """(endpoint, seconds, model as the server knows it) of the keep-alive server this run goes
    through (started if needed), or None to run here: no keep-alive (flag, LGEMMA_KEEP_ALIVE,
    config), or --allow-pickle, which a server does not take."""
    from .. import client, config, keepalive

    if keep_alive is not None:
        seconds = config.parse_value("keep_alive", keep_alive, "--keep-alive")
    else:
        seconds = config.resolve("keep_alive", None, model)
    if not seconds or allow_pickle:
        return None
    target = keepalive.target_for(model, device, dtype, quantize)
    endpoint = keepalive.ensure(
        target, seconds, on_start=lambda: out.info(f"starting a keep-alive server for {model} ...")
    )
    client.use_key(endpoint.url, endpoint.api_key, hint="the keep-alive server stopped; run again to start a new one")
    return endpoint, seconds, target.model


def refuse_local_flags(local_only: dict, keep_alive) -> None:
    """With a server named (--server, LGEMMA_SERVER, config): the flags a server decides for itself,
    given a value, and --keep-alive, which would start a second server, are usage errors."""
    from ..errors import UsageError

    given = [flag for flag, value in local_only.items() if value is not None]
    if given:
        raise UsageError(f"{', '.join(given)} apply to a local run; the server decides them (lgemma serve)")
    if keep_alive is not None:
        raise UsageError("--keep-alive starts a server of its own: drop it, or drop --server / LGEMMA_SERVER")
