"""`lgemma logs`: the record of past ask, chat and translate runs (runlog.py). Typer surface only."""

from __future__ import annotations

from typing import Annotated, Callable, Optional

import typer


def logs_list(
    ctx: typer.Context,
    number: Annotated[int, typer.Option("-n", "--number", min=1, help="Show the newest N runs.")] = 20,
    query: Annotated[
        Optional[str], typer.Option("-q", "--query", help="Only runs whose input or answer contains TEXT.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per run (JSON Lines).")] = False,
) -> None:
    """Show past runs: time, command, model, mode, input and answer (newest last)."""
    if ctx.invoked_subcommand is not None:
        return
    from ..render import Output
    from ..runlog import enabled, log_path
    from ..runlog import query as run_query

    out = Output()
    runs = run_query(number, query)
    if json_out:
        for run in runs:
            out.json(run)
        return
    if not runs:
        state = "" if enabled() else " (logging is off: `lgemma logs on`)"
        out.info(f"no runs recorded in {log_path()}{state}")
        return
    lines = []
    for run in runs:
        seed = f" seed {run['seed']}" if run["seed"] is not None else ""
        lines.append(f"#{run['id']} {run['time']} {run['command']} {run['model']} {run['mode'] or '-'}{seed}")
        lines.append(f"  > {_one_line(run['input'])}")
        lines.append(f"  < {_one_line(run['output'])}")
    out.result("\n".join(lines))


def _one_line(text: str | None, width: int = 200) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def logs_off() -> None:
    """Stop recording runs (what is recorded stays)."""
    from ..render import Output
    from ..runlog import set_enabled

    set_enabled(False)
    Output().info("run logging is off")


def logs_on() -> None:
    """Record runs again."""
    from ..render import Output
    from ..runlog import set_enabled

    set_enabled(True)
    Output().info("run logging is on")


def logs_path() -> None:
    """Print the log database's path."""
    from ..render import Output
    from ..runlog import log_path

    Output().result(str(log_path()))


def build_logs_app(guarded: Callable) -> typer.Typer:
    app = typer.Typer(
        help="Past ask, chat and translate runs (an SQLite file in lgemma's data directory).", no_args_is_help=False
    )
    app.callback(invoke_without_command=True)(guarded(logs_list))
    app.command("off")(guarded(logs_off))
    app.command("on")(guarded(logs_on))
    app.command("path")(guarded(logs_path))
    return app
