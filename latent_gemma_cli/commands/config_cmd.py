"""`lgemma config show|set|unset|path`: the user's defaults file.

Precedence: built-in < config file < `LGEMMA_*` environment < command-line flags.
"""

from __future__ import annotations

from typing import Annotated, Callable

import typer


def _complete_key(incomplete: str) -> list[str]:
    from ..config import KEYS

    return [k for k in KEYS if k.startswith(incomplete)]


ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help='The section for this model ([models."NAME"]): its defaults win over the file\'s.'),
]
KeyArg = Annotated[str, typer.Argument(help="Config key (see `lgemma config show`).", autocompletion=_complete_key)]


def _plain(value) -> str:
    return "unset" if value is None else str(value)


def show(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object: path and every key with value and source.")
    ] = False,
    model: ModelOpt = None,
) -> None:
    """Print every key as `key = value  (source)` on stdout."""
    from .. import config
    from ..render import Output

    values = config.effective(model)
    out = Output()
    if json_out:
        out.json(
            {
                "path": str(config.config_file()),
                "keys": {k: {"value": v, "source": src, "help": config.KEYS[k].help} for k, (v, src) in values.items()},
            }
        )
        return
    width = max(len(k) for k in values)
    out.result(
        "\n".join(f"{k:<{width}} = {_plain(config.KEYS[k].written(v))}  ({src})" for k, (v, src) in values.items())
    )


def set_(
    key: KeyArg,
    value: Annotated[str, typer.Argument(help="New value, checked before it is written.")],
    model: ModelOpt = None,
) -> None:
    """Write KEY = VALUE to the config file (with --model, to that model's section)."""
    import os

    from .. import config
    from ..render import Output

    path = config.write_value(key, value, model)
    out = Output()
    written = config.model_values(model) if model else config.read_file_values()
    where = f" for model {model}" if model else ""
    out.info(f"{key} = {_plain(written.get(key))}{where} written to {path}")
    env_name = f"LGEMMA_{key.upper()}"
    if os.environ.get(env_name):
        out.warn(f"{env_name} is set and takes precedence over the file")


def unset(key: KeyArg, model: ModelOpt = None) -> None:
    """Remove KEY from the config file or a model's section (back to the next default)."""
    from .. import config
    from ..render import Output

    had = key in (config.model_values(model) if model else config.read_file_values())
    path = config.write_value(key, None, model)
    where = f" for model {model}" if model else ""
    Output().info(f"{key}{where} removed from {path}" if had else f"{key}{where} was not set in {path}")


def path() -> None:
    """Print the config file's path (it may not exist yet)."""
    from .. import config
    from ..render import Output

    Output().result(str(config.config_file()))


def build_config_app(guarded: Callable) -> typer.Typer:
    """The `lgemma config` group, each subcommand wrapped by the one error guard."""
    app = typer.Typer(
        help="Show and change defaults: built-in < config file < LGEMMA_* environment < flags.", no_args_is_help=True
    )
    app.command("show")(guarded(show))
    app.command("set")(guarded(set_))
    app.command("unset")(guarded(unset))
    app.command("path")(guarded(path))
    return app
