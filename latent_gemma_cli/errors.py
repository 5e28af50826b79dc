"""Project exceptions. Each carries the exit code the CLI maps it to and a hint for the user.

Exit codes follow the project's command-line conventions:
0 success, 1 runtime error, 2 usage error, 3 model not available locally,
4 authentication or licence needed, 5 network unreachable, 6 disk full,
7 model or revision not found on the hub, 8 lgemma server unreachable or busy (--server),
130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import os
import re

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_MODEL_MISSING = 3
EXIT_AUTH = 4
EXIT_NETWORK = 5
EXIT_DISK_FULL = 6
EXIT_REMOTE_NOT_FOUND = 7
EXIT_SERVER = 8
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what shells report for a terminated process
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away (`| head`), nothing printed

# The one text of the exit codes, for every command's --help.
EXIT_CODES_HELP = (
    "Exit codes: 0 success, 1 runtime error (e.g. a corrupt file), 2 usage error or bad input, "
    "3 model not available locally, 4 authentication or licence needed, 5 network unreachable, "
    "6 disk full, 7 model or revision not found on the hub, 8 lgemma server unreachable or busy (--server), "
    "130 interrupted (Ctrl-C), 143 terminated (SIGTERM)."
)

# Credentials a URL may carry (`https://user:password@host/`), and Hugging Face access tokens.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s]*@")
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{8,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


def redact(text: str) -> str:
    """`text` without secrets: URL user:password parts, hub tokens and the HF_TOKEN value masked."""
    text = _URL_USERINFO.sub(r"\1***@", text)
    text = _HF_TOKEN.sub("hf_***", text)
    token = os.environ.get("HF_TOKEN", "").strip()
    if len(token) >= 8:
        text = text.replace(token, "***")
    return text


def one_line(text: str) -> str:
    """A message safe to print as one line: secrets masked, control characters (a newline in a
    file or model name could forge an `error:` line) shown escaped."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), redact(text))


class LgemmaError(Exception):
    """Base error: a one-line message for the user, an optional hint and an exit code."""

    exit_code = EXIT_RUNTIME

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so the same clean-up runs (temporary files
    removed, a training checkpoint saved); it exits 143 instead of 130."""


class UsageError(LgemmaError):
    """The command line or the input is wrong (empty input, bad flag combination)."""

    exit_code = EXIT_USAGE


class InputError(UsageError):
    """Input text cannot be used: empty, binary, not UTF-8, too large, missing file."""


class ModelNotFoundError(LgemmaError):
    """The model is neither a local directory nor in the Hugging Face cache."""

    exit_code = EXIT_MODEL_MISSING


class BrokenModelError(LgemmaError):
    """A model directory that cannot be used as it is: no tokenizer, corrupt weights, a malformed
    latent description. The message names the file; exit 1 (runtime error, e.g. a corrupt file)."""


class NotLatentTrainedError(UsageError):
    """`coconut` mode was asked of a model without a latent description file."""


class AuthError(LgemmaError):
    """The hub wants a token or an accepted licence."""

    exit_code = EXIT_AUTH


class UnsafeCheckpointError(LgemmaError):
    """The checkpoint only has pickle weights and the user did not allow them."""


class NetworkError(LgemmaError):
    """The hub could not be reached (no network, DNS, timeout, connection dropped, hub down)."""

    exit_code = EXIT_NETWORK


class DiskFullError(LgemmaError):
    """No space left on the device while writing a model."""

    exit_code = EXIT_DISK_FULL


class RemoteNotFoundError(LgemmaError):
    """The hub has no such repository or revision (or it is private and no token was given)."""

    exit_code = EXIT_REMOTE_NOT_FOUND


class ServerUnreachableError(LgemmaError):
    """The `lgemma serve` a command was told to use cannot be reached (or is too busy)."""

    exit_code = EXIT_SERVER


def from_os_error(exc: OSError) -> LgemmaError | None:
    """A project error for the file-system failures anyone can run into (disk full, read-only or
    missing directories, permissions), naming the file; None for anything else."""
    import errno

    where = exc.filename or "a file"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"disk full while writing {where}", hint="free some space and run the command again")
    if exc.errno in (
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.ENOENT,
        errno.ENAMETOOLONG,
    ):
        return LgemmaError(
            f"{where}: {exc.strerror}",
            hint="check the path and its permissions (lgemma's own files live under LGEMMA_HOME)",
        )
    return None
