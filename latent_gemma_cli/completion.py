"""Shell-completion callbacks. They run on every Tab press: standard library only, no torch."""

from __future__ import annotations

from .settings import AUTO, MODES

# Model names come from the store (standard library only, like everything here); re-exported.
from .store import hub_cache, model_entries  # noqa: F401

LANGUAGES = ("ja", "en")


def model_names() -> list[str]:
    """Catalogue names, lgemma's registered models and hub models in the cache."""
    return list(dict.fromkeys(name for name, _ in model_entries()))


def complete_model(incomplete: str) -> list[str]:
    return [n for n in model_names() if n.startswith(incomplete)]


def complete_language(incomplete: str) -> list[str]:
    return [code for code in LANGUAGES if code.startswith(incomplete)]


def complete_mode(incomplete: str) -> list[str]:
    return [m for m in (AUTO, *MODES) if m.startswith(incomplete)]
