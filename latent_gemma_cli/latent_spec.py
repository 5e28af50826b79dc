"""The latent description file (method.md section 6) that marks a model directory as trained.

A directory without it is an untrained model: `coconut` mode refuses it; `soft` and `off` work.
Markers are stored as token strings, never ids, because Gemma 2 and Gemma 3 vocabularies differ.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

LATENT_FILE = "lgemma_latent.json"
FORMAT_VERSION = 1
FEEDBACKS = ("identity", "embed_norm")


@dataclass
class LatentSpec:
    """What a trained directory says about its latent setup."""

    bot: str = "<unused0>"
    eot: str = "<unused1>"
    thoughts_per_step: int = 1
    num_thoughts: int = 1
    mode: str = "coconut"
    # How a final hidden state becomes the next thought's input: `identity` is the paper's
    # (fed unscaled to the first decoder layer); `embed_norm` rescales it to the mean
    # token-embedding norm. Recorded with the model, never applied silently.
    feedback: str = "identity"
    base_model: str | None = None
    curriculum: dict = field(default_factory=dict)
    training_data_sha256: str | None = None
    format_version: int = FORMAT_VERSION

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / LATENT_FILE
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "LatentSpec | None":
        """The spec of a model directory, or None when it has none (untrained)."""
        path = Path(directory) / LATENT_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        spec = cls(**known)
        if spec.feedback not in FEEDBACKS:
            raise ValueError(f"{path}: unknown feedback {spec.feedback!r}")
        return spec
