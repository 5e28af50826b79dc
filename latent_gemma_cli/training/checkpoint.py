"""Training checkpoints: everything `--resume` needs to continue exactly.

A checkpoint is `OUT/checkpoints/step-XXXXXXXX/` with

* `trainable.safetensors`: the parameters that train (all of them, or LoRA adapters and the
  marker-token deltas), by name;
* `optimizer.pt`, `scheduler.pt`: their state dicts (our own files, loaded with
  `weights_only=True`);
* `rng-<rank>.pt`: each process's Python and torch (CPU, CUDA) RNG states as they were at the
  start of the next step;
* `state.json`, written last, so its presence marks a complete checkpoint: global step, stage,
  step within the stage (the data position: the epoch order is a function of seed, stage and
  epoch), and the settings that must not change on resume.

Writing needs no collective operation, so Ctrl-C (which reaches every process) can save too.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "state.json"


def checkpoints_dir(out: Path) -> Path:
    return Path(out) / "checkpoints"


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(
    directory: Path,
    rank: int,
    trainable: dict[str, torch.Tensor] | None,
    optimizer: Any,
    scheduler: Any,
    rng: dict[str, Any],
    state: dict[str, Any],
) -> Path:
    """Write one process's share of a checkpoint; rank 0 writes weights, optimizer and state last."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    torch.save(rng, directory / f"rng-{rank}.pt")
    if rank == 0:
        save_file(trainable, str(directory / "trainable.safetensors"))
        torch.save(optimizer.state_dict(), directory / "optimizer.pt")
        torch.save(scheduler.state_dict(), directory / "scheduler.pt")
        tmp = directory / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        tmp.replace(directory / STATE_FILE)
    return directory


def read_state(directory: Path) -> dict[str, Any]:
    return json.loads((Path(directory) / STATE_FILE).read_text(encoding="utf-8"))


def load_tensors(directory: Path, rank: int) -> dict[str, Any]:
    """Weights, optimizer, scheduler and this rank's RNG (rank 0's if it has none)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    rng_file = directory / f"rng-{rank}.pt"
    if not rng_file.exists():
        rng_file = directory / "rng-0.pt"
    return {
        "trainable": load_file(str(directory / "trainable.safetensors")),
        "optimizer": torch.load(directory / "optimizer.pt", weights_only=True),
        "scheduler": torch.load(directory / "scheduler.pt", weights_only=True),
        "rng": torch.load(rng_file, weights_only=False),
    }


def complete(out: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoints_dir(out)
    if not root.is_dir():
        return []
    return sorted((p for p in root.glob("step-*") if (p / STATE_FILE).is_file()), key=lambda p: p.name)


def latest(out: Path) -> Path | None:
    found = complete(out)
    return found[-1] if found else None


def prune(out: Path, keep: int) -> None:
    """Keep the newest `keep` complete checkpoints (0 keeps all)."""
    if keep <= 0:
        return
    for old in complete(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
