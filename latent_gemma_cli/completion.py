"""Shell-completion callbacks. They run on every Tab press: standard library only, no torch."""

from __future__ import annotations

import os
from pathlib import Path

LANGUAGES = ("ja", "en")


def hub_cache() -> Path:
    """The Hugging Face hub cache directory (`HF_HUB_CACHE`, else `HF_HOME/hub`)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(hf_home) / "hub"


def model_entries() -> list[tuple[str, str]]:
    """(name, source) for every model name lgemma accepts: `catalogue`, `registered` or `hub-cache`."""
    from .catalogue import CATALOGUE
    from .paths import models_dir

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


def model_names() -> list[str]:
    """Catalogue names, lgemma's registered models and hub models in the cache."""
    return list(dict.fromkeys(name for name, _ in model_entries()))


def complete_model(incomplete: str) -> list[str]:
    return [n for n in model_names() if n.startswith(incomplete)]


def complete_language(incomplete: str) -> list[str]:
    return [code for code in LANGUAGES if code.startswith(incomplete)]


def complete_mode(incomplete: str) -> list[str]:
    return [m for m in ("coconut", "soft", "off") if m.startswith(incomplete)]
