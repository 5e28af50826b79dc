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
    """Write one process's share of a checkpoint; rank 0 writes weights, optimizer and state last.

    A disk that fills up mid-write (torch and safetensors report it as RuntimeError or their own
    error, not always as OSError) becomes DiskFullError; the partial directory is removed, and
    the previous checkpoints stay as they were.
    """
    from safetensors.torch import save_file

    existed = directory.exists()  # a re-save of a complete checkpoint must never delete it
    try:
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(rng, directory / f"rng-{rank}.pt")
        if rank == 0:
            save_file(trainable, str(directory / "trainable.safetensors"))
            torch.save(optimizer.state_dict(), directory / "optimizer.pt")
            torch.save(scheduler.state_dict(), directory / "scheduler.pt")
            tmp = directory / (STATE_FILE + ".tmp")
            tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
            tmp.replace(directory / STATE_FILE)
    except Exception as exc:
        if not disk_full(exc, directory):
            raise
        from ..errors import DiskFullError

        if rank == 0 and not existed:
            shutil.rmtree(directory, ignore_errors=True)
        raise DiskFullError(
            f"disk full while writing the checkpoint {directory}; earlier checkpoints are kept",
            hint="free some space, then continue with --resume auto",
        ) from None
    return directory


def disk_full(exc: BaseException, where: Path) -> bool:
    """Whether a failed write failed for lack of space (ENOSPC anywhere in the chain, or a write
    error from a library that hides the errno while the disk has under 1 MiB free)."""
    import errno

    seen, visited = exc, set()
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    if "no space left" in str(exc).lower():
        return True
    # torch.save on a full disk says only "unexpected pos 704 vs 598": ask the disk.
    if isinstance(exc, (OSError, RuntimeError)) or type(exc).__name__ == "SafetensorError":
        probe = Path(where)
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            return shutil.disk_usage(probe).free < (1 << 20)
        except OSError:
            return False
    return False


def truncate_metrics(out: Path, step: int) -> None:
    """Drop the records after `step` from OUT/metrics.jsonl: after kill -9 the file holds steps
    past the checkpoint being resumed, which the resumed run writes again."""
    path = Path(out) / "metrics.jsonl"
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut off by the kill
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] > step:
            continue
        kept.append(line)
    tmp = path.with_name(".metrics.jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    tmp.replace(path)


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
