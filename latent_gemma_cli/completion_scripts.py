"""Write the committed shell-completion scripts (completions/) from the Typer app.

    python -m latent_gemma_cli.completion_scripts [DIR]          # write them (default: ./completions)
    python -m latent_gemma_cli.completion_scripts --check [DIR]  # exit 1 if the files are stale

The scripts are what `lgemma --show-completion SHELL` prints: thin shell functions that call
back into lgemma (`_LGEMMA_COMPLETE=complete_SHELL lgemma ...`), so the subcommands, options,
language codes and model names they offer always come from the installed program.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FILES = {"bash": "lgemma.bash", "zsh": "_lgemma", "fish": "lgemma.fish"}
# Typer's switch that makes `--show-completion` take the shell as its value instead of detecting it.
_NO_DETECTION = "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"


def script(shell: str) -> str:
    """The completion script for `shell`, as the app's own `--show-completion` prints it."""
    from typer.testing import CliRunner

    from .cli import app

    saved = os.environ.get(_NO_DETECTION)
    os.environ[_NO_DETECTION] = "1"  # read while the app's command is built, outside the runner's env
    try:
        result = CliRunner().invoke(app, ["--show-completion", shell], prog_name="lgemma")
    finally:
        if saved is None:
            del os.environ[_NO_DETECTION]
        else:
            os.environ[_NO_DETECTION] = saved
    if result.exit_code != 0 or not result.stdout.strip():
        raise RuntimeError(f"lgemma --show-completion {shell} failed ({result.exit_code}): {result.output}")
    return result.stdout.rstrip("\n") + "\n"


def scripts() -> dict[str, str]:
    """File name -> content for every supported shell."""
    return {name: script(shell) for shell, name in FILES.items()}


def stale(directory: Path) -> list[str]:
    """Names of the files in `directory` that are missing or differ from what the app generates."""
    return [
        name
        for name, text in scripts().items()
        if not (directory / name).is_file() or (directory / name).read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    directory = Path(args[0] if args else "completions")
    if check:
        names = stale(directory)
        for name in names:
            sys.stderr.write(f"stale: {directory / name} (run python -m latent_gemma_cli.completion_scripts)\n")
        return 1 if names else 0
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in scripts().items():
        (directory / name).write_text(text, encoding="utf-8")
        sys.stderr.write(f"wrote {directory / name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
