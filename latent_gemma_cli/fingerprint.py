"""A fingerprint of a model's weights, so a recorded run names exactly what it ran on.

The fingerprint is the sha256 of the weight files' own sha256s (with their names). A file in the
Hugging Face cache is a link to a blob named by its sha256, which is used as it is; any other file
is hashed once and the result kept in `<lgemma home>/fingerprints.json`, keyed by the file's
resolved path, size and modification time, so later runs cost a `stat`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _cache_file() -> Path:
    from .paths import home

    return home() / "fingerprints.json"


def _read_cache() -> dict:
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def file_sha256(path: Path, cache: dict | None = None) -> str:
    """sha256 of one weight file: a hub blob's name, a cached digest, or a fresh hash."""
    resolved = path.resolve()
    if resolved.parent.name == "blobs" and _SHA256.fullmatch(resolved.name):
        return resolved.name
    stat = resolved.stat()
    key = str(resolved)
    entry = (cache or {}).get(key)
    if isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return str(entry["sha256"])
    digest = hashlib.sha256()
    with resolved.open("rb") as f:
        for block in iter(lambda: f.read(8 << 20), b""):
            digest.update(block)
    if cache is not None:
        cache[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}
    return digest.hexdigest()


def weights_fingerprint(model_dir: str | Path) -> str | None:
    """The fingerprint of the weights in `model_dir` (None when it holds none)."""
    files = sorted(p for p in Path(model_dir).iterdir() if p.name.endswith(WEIGHT_SUFFIXES))
    if not files:
        return None
    cache = _read_cache()
    before = dict(cache)
    lines = [f"{p.name}:{file_sha256(p, cache)}\n" for p in files]
    if cache != before:  # a file was hashed: keep its digest for the next run
        try:
            from .files import write_text_atomic

            write_text_atomic(_cache_file(), json.dumps(cache, indent=1, sort_keys=True))
        except OSError:  # an unwritable home only costs the next run the hashing again
            pass
    return hashlib.sha256("".join(lines).encode()).hexdigest()
