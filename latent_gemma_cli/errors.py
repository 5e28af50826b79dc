"""Project exceptions. Each carries the exit code the CLI maps it to and a hint for the user.

Exit codes follow the project's command-line conventions:
0 success, 1 runtime error, 2 usage error, 3 model not available locally,
4 authentication or licence needed, 5 network unreachable, 6 disk full,
7 model or revision not found on the hub, 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_MODEL_MISSING = 3
EXIT_AUTH = 4
EXIT_NETWORK = 5
EXIT_DISK_FULL = 6
EXIT_REMOTE_NOT_FOUND = 7
EXIT_INTERRUPTED = 130


class LgemmaError(Exception):
    """Base error: a one-line message for the user, an optional hint and an exit code."""

    exit_code = EXIT_RUNTIME

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(LgemmaError):
    """The command line or the input is wrong (empty input, bad flag combination)."""

    exit_code = EXIT_USAGE


class InputError(UsageError):
    """Input text cannot be used: empty, binary, not UTF-8, too large, missing file."""


class ModelNotFoundError(LgemmaError):
    """The model is neither a local directory nor in the Hugging Face cache."""

    exit_code = EXIT_MODEL_MISSING


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
