"""Reading user text from arguments, `-`, files and pipes, with clear errors for bad input."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO

from .errors import InputError, UsageError

# Above this a file is refused: a translation or question of 10 MB is almost surely a mistake,
# and the model's context is far smaller anyway. Override with LGEMMA_MAX_INPUT_BYTES.
DEFAULT_MAX_INPUT_BYTES = 10 * 1024 * 1024


def max_input_bytes() -> int:
    """The input size limit: LGEMMA_MAX_INPUT_BYTES (a positive number of bytes) or 10 MB."""
    import os

    value = os.environ.get("LGEMMA_MAX_INPUT_BYTES", "").strip()
    if not value:
        return DEFAULT_MAX_INPUT_BYTES
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise UsageError(
            f"LGEMMA_MAX_INPUT_BYTES={value!r} is not a positive whole number of bytes",
            hint="e.g. LGEMMA_MAX_INPUT_BYTES=20000000 for 20 MB, or unset it for the 10 MB default",
        )
    return int(value)


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 text of `data`, refusing binary content and invalid bytes with a message naming `name`."""
    # The whole input, not a prefix: it is at most the input limit, and a NUL anywhere is binary.
    if b"\x00" in data:
        raise InputError(f"{name}: looks like a binary file (NUL bytes); lgemma reads UTF-8 text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not valid UTF-8 (byte {exc.start}: {data[exc.start : exc.start + 1]!r})") from exc
    return text


def read_stream(stream: BinaryIO, name: str = "<stdin>") -> str:
    limit = max_input_bytes()
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{name}: input is larger than the {limit:,}-byte limit (LGEMMA_MAX_INPUT_BYTES)")
    return decode_text(data, name)


def read_file(path: str | Path) -> str:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a text file")
    size = p.stat().st_size
    limit = max_input_bytes()
    if size > limit:
        raise InputError(f"{p}: {size:,} bytes is over the {limit:,}-byte limit (LGEMMA_MAX_INPUT_BYTES)")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot be read ({exc.strerror})") from exc
    return decode_text(data, str(p))


def stdin_is_piped() -> bool:
    try:
        return not sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def question_from(
    argument: str | None, stdin: BinaryIO | None = None, piped: bool | None = None
) -> tuple[str | None, str | None]:
    """(instruction, context) from an argument and/or piped stdin.

    `-` as the argument means "read the question from stdin". With both a pipe and an argument,
    stdin is the context and the argument the instruction. Never waits on a terminal.
    """
    if piped is None:
        piped = stdin_is_piped()
    # With stdin closed (`lgemma ask "..." <&-`) Python sets sys.stdin to None: an argument alone
    # still works, and reading the question from stdin is a usage error, not a crash.
    stream = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
    if stream is None and (argument is None or argument == "-"):
        raise UsageError(
            "no question given and stdin is closed", hint='pass the question as an argument: lgemma ask "..."'
        )
    if argument == "-":
        text = read_stream(stream)
        return _non_empty(text, "<stdin>"), None
    if argument is None:
        if not piped:
            raise UsageError("no question given", hint='pass one as an argument (lgemma ask "...") or pipe text in')
        return _non_empty(read_stream(stream), "<stdin>"), None
    context = None
    if piped:
        data = read_stream(stream)
        context = data if data.strip() else None
    return _non_empty(argument, "question"), context


def _non_empty(text: str, name: str) -> str:
    if not text or not text.strip():
        raise InputError(f"{name}: empty input")
    return text
