"""Writing the user's files safely: the one owner of atomic replacement.

Every file lgemma writes for the user (translations, eval reports, synthetic data, the config
file) goes through `atomic_write`: the text goes to a temporary file beside the target and is
renamed over it only when complete, so an error, Ctrl-C or SIGTERM never leaves a partial file
in place of an existing one, and the temporary file is removed. An existing target keeps its
permission bits; a symlink is written through to the file it points to (the link stays a link).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

from .errors import DiskFullError


def _default_mode() -> int:
    """What `open(path, "w")` would give a new file: 0o666 minus the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_write(path: str | Path, mode: int | None = None, binary: bool = False) -> Iterator[TextIO]:
    """A text handle (with `binary`, a bytes one) whose content replaces `path` only when the block
    ends without an exception. The file gets `mode` if given (it is private while being written),
    else the existing file's permission bits, else what `open` would give."""
    target = Path(os.path.realpath(path))  # through a symlink to its target
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            mode = _default_mode()
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:  # name the file the user asked for, not the temporary one
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                f"disk full while writing {path}", hint="free some space and run the command again"
            ) from None
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                f"disk full while writing {path}; the previous file (if any) is unchanged",
                hint="free some space and run the command again",
            ) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace `path` with `text` atomically (see `atomic_write`)."""
    with atomic_write(path) as handle:
        handle.write(text)
