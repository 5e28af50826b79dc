"""Training rows vs evaluation rows: the one owner of `train_fingerprints.json`.

`lgemma train` writes the fingerprints of its rows into the trained directory
(`training_fingerprints`); `lgemma eval` reads them back (`check_contamination`) and warns
loudly when the evaluated rows are training rows. Both sides use `datasets.row_fingerprint`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .datasets import Dataset, Example, row_fingerprint

FINGERPRINTS_FILE = "train_fingerprints.json"


def training_fingerprints(data: Any) -> dict:
    """What a trained directory records about its training rows (data: `training.data.TrainData`)."""
    return {
        "data_sha256": data.sha256,
        "data_path": str(data.path),
        "rows": [row_fingerprint(e) for e in data.examples],
    }


@dataclass
class Contamination:
    """Whether the evaluated rows are (some of) the model's training rows."""

    checked: bool
    source: str | None = None
    training_data_sha256: str | None = None
    training_data_path: str | None = None
    same_file: bool = False
    overlapping_rows: int = 0
    rows_checked: int = 0
    error: str | None = None

    @property
    def warning(self) -> str | None:
        parts = []
        if self.same_file:
            parts.append(f"the data file IS the model's training data (sha256 {self.training_data_sha256[:12]}...)")
        if self.overlapping_rows:
            parts.append(f"{self.overlapping_rows} of {self.rows_checked} evaluated rows are training rows")
        if not parts:
            return None
        return "EVALUATING ON TRAINING DATA: " + "; ".join(parts) + ". These figures do not measure generalisation."

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "source": self.source,
            "training_data_sha256": self.training_data_sha256,
            "training_data_path": self.training_data_path,
            "same_file": self.same_file,
            "overlapping_rows": self.overlapping_rows,
            "rows_checked": self.rows_checked,
            "error": self.error,
            "warning": self.warning,
        }


def check_contamination(model_dir: str | Path | None, dataset: Dataset, examples: list[Example]) -> Contamination:
    """Compare the data with what the model directory says it was trained on.

    Reads `train_fingerprints.json` ({"data_sha256", "data_path", "rows": [row_fingerprint]})
    and the latent description's `training_data_sha256`. Translation rows also count when the
    training row is the same pair in the other direction.
    """
    if model_dir is None:
        return Contamination(checked=False)
    from .latent_spec import LatentSpec

    directory = Path(model_dir)
    result = Contamination(checked=False, rows_checked=len(examples))
    hashes: set[str] = set()
    try:
        spec = LatentSpec.load(directory)
    except (ValueError, TypeError, OSError) as exc:
        spec = None
        result.error = f"latent description unreadable: {exc}"
    if spec is not None and spec.training_data_sha256:
        hashes.add(spec.training_data_sha256)
        result.checked = True
        result.source = str(directory / "lgemma_latent.json")
        result.training_data_sha256 = spec.training_data_sha256
    rows: set[str] = set()
    fp_file = directory / FINGERPRINTS_FILE
    if fp_file.is_file():
        try:
            data = json.loads(fp_file.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if isinstance(data.get("data_sha256"), str):
                hashes.add(data["data_sha256"])
                result.training_data_sha256 = data["data_sha256"]
            result.training_data_path = data.get("data_path")
            rows = {r for r in data.get("rows") or [] if isinstance(r, str)}
            result.checked = True
            result.source = str(fp_file)
        except (ValueError, OSError) as exc:
            result.error = f"{fp_file}: unreadable ({exc})"
    result.same_file = dataset.sha256 in hashes
    if rows:
        for ex in examples:
            keys = {row_fingerprint(ex)}
            if ex.task == "translate":
                keys.add(row_fingerprint(Example(question=ex.answer, answer=ex.question)))
            if keys & rows:
                result.overlapping_rows += 1
    return result
