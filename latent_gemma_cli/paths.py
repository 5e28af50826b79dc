"""Where lgemma keeps its own state (config, converted and registered models).

Models downloaded from the hub stay in the Hugging Face cache, shared with other tools;
`LGEMMA_HOME` overrides the platformdirs base for everything lgemma writes itself.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Base directory for lgemma's own data."""
    env = os.environ.get("LGEMMA_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("lgemma", appauthor=False))


def config_dir() -> Path:
    env = os.environ.get("LGEMMA_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("lgemma", appauthor=False))


def cache_dir() -> Path:
    """Derived data lgemma can rebuild at any time (deleting it is always safe)."""
    env = os.environ.get("LGEMMA_HOME")
    if env:
        return Path(env).expanduser() / "cache"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("lgemma", appauthor=False))


def models_dir() -> Path:
    """Converted and registered local models, one directory (or link file) per name."""
    return home() / "models"
