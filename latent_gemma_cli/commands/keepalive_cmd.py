"""`lgemma ps` and `lgemma stop`: the keep-alive servers `--keep-alive` started. Typer surface only."""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer

from ..completion import complete_model
from ..options import JsonOpt


def ps(json_out: JsonOpt = False) -> None:
    """List the running keep-alive servers (`ask`/`translate --keep-alive`): model, settings, URL."""
    from ..keepalive import describe, running
    from ..render import Output

    out = Output()
    servers = [describe(info) for info in running()]
    if json_out:
        for server in servers:
            out.json(server)
        return
    if not servers:
        out.info("no keep-alive servers are running")
        return
    rows = [
        [s["model"], s["settings"], s["url"], str(s["pid"]), s["idle_exit"] if s["responding"] else "not responding"]
        for s in servers
    ]
    out.table("keep-alive servers", ["model", "settings", "url", "pid", "exits when idle"], rows)
    if not all(s["responding"] for s in servers):
        out.warn("a server that does not answer can be ended with `lgemma stop MODEL --force`")


def stop(
    model: Annotated[
        Optional[str], typer.Argument(autocompletion=complete_model, help="Stop this model's servers.")
    ] = None,
    all_servers: Annotated[bool, typer.Option("--all", help="Stop every keep-alive server.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="End them at once (SIGKILL), requests in flight and all.")
    ] = False,
) -> None:
    """Stop keep-alive servers now (each finishes the request it is answering first, unless --force)."""
    from ..errors import ModelNotFoundError, UsageError
    from ..keepalive import describe, pid_alive, running, target_for
    from ..keepalive import stop as stop_one
    from ..render import Output

    out = Output()
    if (model is None) == (not all_servers):
        raise UsageError("name a model, or give --all")
    servers = running()
    if model is not None:
        reference = target_for(model, None, None, None).model
        servers = [s for s in servers if reference in s.get("models", [])]
        if not servers:
            raise ModelNotFoundError(f"no keep-alive server is running for {model}", hint="`lgemma ps` lists them")
    for info in servers:
        stop_one(info, force=force)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(pid_alive(s["pid"]) for s in servers):
        time.sleep(0.1)
    for info in servers:
        if pid_alive(info["pid"]):
            out.info(
                f"stopping {describe(info)['model']} ({info['url']}): it finishes the requests it holds first"
                " (--force ends it now)"
            )
        else:
            out.info(f"stopped {describe(info)['model']} ({info['url']})")
