"""Hub datasets for `train` and `eval`: `--data hf:OWNER/NAME[/CONFIG][@REVISION][:SPLIT]`.

Read with the `datasets` library, always streamed: rows come one by one and reading stops once
`--limit` examples are collected, so a 9M-row set costs what its first rows cost. Online, the
reference is first resolved to a commit through `huggingface_hub` (one request that also turns a
missing, gated or private repository into the project's exit codes 7 and 4), then streamed at that
commit. Offline (`--offline`, HF_HUB_OFFLINE=1) nothing is fetched: the dataset must be in the
standard Hugging Face cache, put there by `lgemma download --dataset OWNER/NAME`
(`download_dataset`, a verified `snapshot_download`), and is streamed from that snapshot; what is
missing is named (exit 3).

Every row goes through datasets.py's readers (after `--columns` renaming and `--filter-lang`), so
a hub dataset gives exactly the examples the same rows in a JSON Lines file would; bad rows are
reported as `hf:OWNER/NAME@COMMIT:SPLIT` and their row index. The Dataset's `sha256` is the hash
of the rows read (as canonical JSON), so a resumed training run notices a dataset that changed.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import LgemmaError, ModelNotFoundError, UsageError

PREFIX = "hf:"
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_REF = re.compile(
    rf"^hf:(?P<repo>{_NAME}/{_NAME})(?:/(?P<config>{_NAME}))?(?:@(?P<revision>[A-Za-z0-9._/-]+?))?(?::(?P<split>[A-Za-z0-9._-]+))?$"
)
# Files `lgemma download --dataset` fetches: the data and what describes it, no scripts.
DATA_PATTERNS = ["*.json", "*.jsonl", "*.json.gz", "*.jsonl.gz", "*.parquet", "*.csv", "*.tsv", "*.txt", "*.arrow"]
CARD_PATTERNS = ["README.md", ".huggingface.yaml", "dataset_infos.json"]


@dataclass(frozen=True)
class HubDataRef:
    """A parsed `hf:` reference."""

    repo: str
    config: str | None = None
    revision: str | None = None
    split: str | None = None

    def label(self, commit: str | None = None, split: str | None = None) -> str:
        rev = commit[:12] if commit else self.revision
        return (
            f"hf:{self.repo}"
            + (f"/{self.config}" if self.config else "")
            + (f"@{rev}" if rev else "")
            + (f":{split or self.split}" if split or self.split else "")
        )


def is_hub_ref(path: Any) -> bool:
    return isinstance(path, str) and path.startswith(PREFIX)


def parse_ref(text: str) -> HubDataRef:
    m = _REF.match(text.strip())
    if not m:
        raise UsageError(
            f"{text!r} is not a hub dataset reference",
            hint="use hf:OWNER/NAME, optionally /CONFIG, @REVISION and :SPLIT (e.g. hf:owner/name@main:test)",
        )
    return HubDataRef(m["repo"], m["config"], m["revision"], m["split"])


# --- resolving ------------------------------------------------------------------------------


def _error(exc: Exception, ref: HubDataRef, offline: bool, token: str | None) -> LgemmaError:
    from .download import _hub_error

    return _hub_error(exc, ref.repo, ref.repo, ref.revision, offline, token, kind="dataset")


def _offline_snapshot(ref: HubDataRef) -> Path:
    """The cached snapshot of `ref` (no network), or ModelNotFoundError naming what is missing."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(ref.repo, repo_type="dataset", revision=ref.revision, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):  # a broken cache is reported like a missing one
        pass
    rev = f" at revision {ref.revision!r}" if ref.revision else ""
    retry = f"lgemma download --dataset {shlex.quote(ref.repo)}" + (
        f" --revision {shlex.quote(ref.revision)}" if ref.revision else ""
    )
    raise ModelNotFoundError(
        f"dataset {ref.repo}{rev} is not in the Hugging Face cache, and offline mode allows no download",
        hint=f"run `{retry}` with network access first",
    )


def _resolve(ref: HubDataRef, offline: bool, token: str | None) -> tuple[str, str, str | None]:
    """(what load_dataset reads: the repository or the cached snapshot, the commit, revision to pass)."""
    if offline:
        path = _offline_snapshot(ref)
        return str(path), path.name, None
    from huggingface_hub import HfApi

    from .download import check_token

    check_token(token)
    try:
        info = HfApi().dataset_info(ref.repo, revision=ref.revision, token=token)
    except Exception as exc:  # every hub failure becomes one project error with its exit code
        raise _error(exc, ref, offline, token) from None
    return ref.repo, info.sha, info.sha


def _pick_split(ref: HubDataRef, splits: list[str], preferred: str | None) -> str:
    if ref.split:
        if ref.split not in splits:
            raise UsageError(
                f"{ref.label()}: no split {ref.split!r}; the dataset has {', '.join(splits) or 'none'}",
                hint=f"for example hf:{ref.repo}:{splits[0]}" if splits else None,
            )
        return ref.split
    if len(splits) == 1:
        return splits[0]
    if preferred in splits:
        return preferred
    raise UsageError(
        f"{ref.label()} has several splits ({', '.join(splits)}); name one",
        hint=f"for example hf:{ref.repo}:{splits[0]}",
    )


def stream_rows(
    ref: HubDataRef, offline: bool = False, token: str | None = None, preferred_split: str | None = None
) -> tuple[Iterator[dict], dict]:
    """Rows of a hub dataset, streamed, and where they come from (repository, commit, split)."""
    from .download import hub_offline

    offline = hub_offline(offline)
    source, commit, revision = _resolve(ref, offline, token)
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        loaded = datasets.load_dataset(
            source, ref.config, revision=revision, streaming=True, token=token if not offline else None
        )
    except ValueError as exc:  # a config name that does not exist, files that cannot be read
        raise UsageError(f"{ref.label()}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # noqa: BLE001
        raise _error(exc, ref, offline, token) from None
    split = _pick_split(ref, list(loaded.keys()), preferred_split)
    where = {"repo": ref.repo, "config": ref.config, "revision": ref.revision, "commit": commit, "split": split}
    rows = loaded[split]

    def iterate() -> Iterator[dict]:
        try:
            yield from rows
        except (LgemmaError, GeneratorExit):
            raise
        except Exception as exc:  # noqa: BLE001 - a dropped connection mid-stream, an unreadable file
            raise _error(exc, ref, offline, token) from None

    return iterate(), where


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _jsonable(value.tolist())
    return str(value)


def read_hub_dataset(text: str, fmt: str, direction: str | None, strict: bool, limit: int | None, options) -> Any:
    """`datasets.read_dataset` for an `hf:` reference (see the module docstring)."""
    from .datasets import Dataset, _Collector, read_records, record_format, record_reader, rename_columns

    ref = parse_ref(text)
    rows, where = stream_rows(ref, options.offline, options.token, options.split)
    label = ref.label(where["commit"], where["split"])
    digest = hashlib.sha256()
    out = _Collector(label, strict, limit)
    first = next(rows, None)
    if first is None:
        raise UsageError(f"{label}: the split has no rows")
    if fmt == "auto":
        fmt = record_format(rename_columns(first, options.columns), label)
    if fmt == "jsquad":
        raise UsageError(f"{label}: the jsquad format is one SQuAD file; hub rows use --format squad")
    reader = record_reader(fmt, direction)

    def numbered() -> Iterator[tuple[int, Any]]:
        index = 0
        for row in _chain_first(first, rows):
            digest.update(json.dumps(_jsonable(row), sort_keys=True, ensure_ascii=False).encode())
            digest.update(b"\n")
            yield index, row
            index += 1

    read_records(
        numbered(), reader, out, fmt, options.columns, options.filter_lang, where=lambda i: (None, f"row {i}: ")
    )
    return Dataset(
        examples=out.examples,
        problems=out.problems,
        path=label,
        format=fmt,
        sha256=digest.hexdigest(),
        filtered=out.filtered,
        source=where,
    )


def _chain_first(first: dict, rest: Iterator[dict]) -> Iterator[dict]:
    yield first
    yield from rest


# --- `lgemma download --dataset` ---------------------------------------------------------------


def download_dataset(
    repo: str,
    revision: str | None = None,
    token: str | None = None,
    offline: bool = False,
    progress=None,
    endpoint: str | None = None,
) -> Any:
    """Fetch a hub dataset's data files into the HF cache for offline use, and verify them
    (a `download.DownloadResult` named `hf:OWNER/NAME`)."""
    from huggingface_hub import snapshot_download

    from .download import _progress_bridge, check_token, hub_offline, verified_download

    ref = parse_ref(repo if repo.startswith(PREFIX) else PREFIX + repo)
    if ref.split or ref.config:
        raise UsageError(
            f"download --dataset takes OWNER/NAME (and --revision), not a config or split: {repo!r}",
            hint=f"lgemma download --dataset {ref.repo}",
        )
    revision = revision or ref.revision
    ref = HubDataRef(ref.repo, revision=revision)
    offline = hub_offline(offline)
    if not offline:
        check_token(token)
    start = time.perf_counter()
    if offline:
        path = _offline_snapshot(ref)
    else:
        try:
            path = Path(
                snapshot_download(
                    ref.repo,
                    repo_type="dataset",
                    revision=revision,
                    token=token,
                    allow_patterns=DATA_PATTERNS + CARD_PATTERNS,  # fnmatch: "*" also matches folders
                    tqdm_class=_progress_bridge(progress),
                    endpoint=endpoint,
                    max_workers=4,
                )
            )
        except LgemmaError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _error(exc, ref, offline, token) from None
    files = sorted(str(p.relative_to(path)).replace("\\", "/") for p in path.rglob("*") if p.is_file())
    if not files:
        raise LgemmaError(f"dataset {ref.repo} has no data files lgemma can read ({', '.join(DATA_PATTERNS)})")
    return verified_download(
        path, files, progress, start, reference=ref.repo, name=f"hf:{ref.repo}", revision=revision, offline=offline
    )


def blobs_dir(repo: str) -> Path:
    """Where a download of `repo` writes its partial files in the hub cache."""
    from huggingface_hub import constants

    name = parse_ref(repo if repo.startswith(PREFIX) else PREFIX + repo).repo
    return Path(constants.HF_HUB_CACHE) / f"datasets--{name.replace('/', '--')}" / "blobs"
