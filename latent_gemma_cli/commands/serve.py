"""`lgemma serve`: keep models loaded and answer over an OpenAI-compatible HTTP API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..completion import complete_model
from ..options import DeviceOpt, DtypeOpt, QuantizeOpt, QuietOpt

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind. Anything but loopback exposes the models to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (0 picks a free one, printed at start).")] = 8642,
    models: Annotated[
        Optional[list[str]],
        typer.Option(
            "--model",
            "-m",
            autocompletion=complete_model,
            help="A model to serve (repeatable); the first is the default. [default: any local model, config `model` as default]",
        ),
    ] = None,
    api_key: Annotated[
        Optional[str],
        typer.Option(
            "--api-key",
            envvar="LGEMMA_API_KEY",
            show_envvar=True,
            help="Require `Authorization: Bearer KEY` on every request. Never printed.",
        ),
    ] = None,
    idle_unload: Annotated[
        Optional[float],
        typer.Option("--idle-unload", help="Unload a model after this many idle minutes. [default: keep loaded]"),
    ] = None,
    idle_exit: Annotated[
        Optional[float],
        typer.Option(
            "--idle-exit", help="Exit after this many minutes without a request (what --keep-alive servers do)."
        ),
    ] = None,
    ready_file: Annotated[
        Optional[Path],
        typer.Option("--ready-file", hidden=True, help="Write URL, pid and key here once listening (keep-alive)."),
    ] = None,
    max_models: Annotated[int, typer.Option("--max-models", help="Models kept loaded at once (LRU).")] = 2,
    queue: Annotated[
        int, typer.Option("--queue", help="Requests that may wait per model behind the one generating; more get 503.")
    ] = 4,
    max_body: Annotated[int, typer.Option("--max-body", help="Largest request body in bytes (413 beyond).")] = 1 << 20,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    quantize: QuantizeOpt = None,
    preload: Annotated[
        bool, typer.Option("--preload/--no-preload", help="Load the default model before accepting requests.")
    ] = True,
    quiet: QuietOpt = False,
) -> None:
    """Serve models over the OpenAI HTTP API (/v1/models, /v1/chat/completions, /v1/completions,
    streaming with server-sent events) plus /v1/lgemma/translate; each response has an `lgemma`
    object with the thoughts, paths and confidences. Ctrl-C or SIGTERM finishes the requests in
    flight, then exits."""
    import socket

    from .. import config as lg_config
    from .. import keepalive
    from ..errors import LgemmaError, UsageError
    from ..render import Output

    out = Output(quiet=quiet)
    for flag, value, low in (("--queue", queue, 0), ("--max-models", max_models, 1), ("--max-body", max_body, 1024)):
        if value < low:
            raise UsageError(f"{flag} {value} is not valid: use {low} or more")
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port")
    for flag, value in (("--idle-unload", idle_unload), ("--idle-exit", idle_exit)):
        if value is not None and not value > 0:
            raise UsageError(f"{flag} must be a positive number of minutes")
    try:
        import uvicorn  # noqa: F401
        from starlette.applications import Starlette  # noqa: F401
    except ImportError as exc:  # pragma: no cover - both are dependencies
        raise UsageError(
            f"lgemma serve needs {exc.name}", hint="pip install 'uvicorn>=0.30' 'starlette>=0.40'"
        ) from None
    from ..serve import ServerConfig, create_app, load_for_serving
    from ._shared import quiet_libraries

    quiet_libraries()
    names = list(dict.fromkeys(models or []))
    default = names[0] if names else lg_config.resolve("model")
    cfg = ServerConfig(
        models=names,
        default_model=default,
        api_key=api_key or None,
        queue=queue,
        max_body=max_body,
        max_models=max_models,
        idle_unload_s=idle_unload * 60 if idle_unload else None,
        idle_exit_s=idle_exit * 60 if idle_exit else None,
        device=device,
        dtype=dtype,
        quantize=quantize,
    )
    app = create_app(cfg)
    model_path = weights = None
    if preload:
        out.info(f"loading {default} ...")
        if ready_file is not None:  # what a keep-alive run compares: the files as they were before the load
            from ..loading import resolve_model_path

            try:
                model_path = str(resolve_model_path(default).resolve())
                weights = keepalive.weights_stamp(model_path)
            except LgemmaError:
                pass  # the load below reports it
        slot = app.state.pool.admit(default)
        try:
            slot.loaded = load_for_serving(default, cfg)
        finally:
            app.state.pool.release(slot)
    if host not in LOOPBACK and not api_key:
        out.warn(f"serving on {host} without --api-key: anyone who can reach this address can use the models")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)  # connections queue from now on, before uvicorn's loop accepts them
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}"
    # The URL on stdout (scripts read it, e.g. with --port 0); everything else on stderr.
    typer.echo(url, err=False)
    out.info(
        f"lgemma serve: {', '.join(names) if names else 'any local model'} (default {default}), queue {queue}, "
        f"api key {'required' if api_key else 'off'}"
        + (f", exits after {idle_exit:g} idle minutes" if idle_exit else "")
        + "; Ctrl-C stops"
    )
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=300, lifespan="on")
    )
    app.state.request_exit = lambda: setattr(server, "should_exit", True)

    def publish(idle_exit_s) -> None:
        keepalive.write_state(
            ready_file,
            url,
            names or [default],
            api_key or None,
            idle_exit_s,
            {"device": device, "dtype": dtype, "quantize": quantize},
            model_path,
            weights,
        )

    if ready_file is not None:
        publish(cfg.idle_exit_s)
        app.state.on_keep_alive = publish
    try:
        server.run(sockets=[sock])
    finally:
        if ready_file is not None:
            keepalive.remove_state(ready_file)
