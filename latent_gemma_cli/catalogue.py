"""Short model names users can type instead of hub repository ids."""

from __future__ import annotations

CATALOGUE: dict[str, str] = {
    "gemma-2-2b-it": "google/gemma-2-2b-it",
    "gemma-2-2b": "google/gemma-2-2b",
    "gemma-3-270m-it": "google/gemma-3-270m-it",
    "gemma-3-270m": "google/gemma-3-270m",
}
DEFAULT_MODEL = "gemma-2-2b-it"
