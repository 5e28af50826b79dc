"""`lgemma doctor`: what lgemma sees on this machine, for bug reports and first-run checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

HUB_TIMEOUT_S = 2.0
_TRUE = {"1", "on", "yes", "true"}


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    import platform

    from .. import __version__

    return {
        "lgemma": __version__,
        "python": platform.python_version(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "huggingface_hub": _version("huggingface-hub"),
    }


def devices() -> dict[str, Any]:
    """Every device torch sees, with the dtype `--dtype auto` would pick there, and the auto choice."""
    import platform

    import torch

    from ..device import pick_device, pick_dtype
    from ..quantize import AUTO_MIN_ANSWER_TOKENS, AUTO_MIN_PARAMETERS, AUTO_SCHEME, available

    missing = available(AUTO_SCHEME) if AUTO_SCHEME != "none" else "auto never quantizes"
    cpu_quantize = (
        f"none ({missing})"
        if missing
        else f"{AUTO_SCHEME} in chat, translate, eval and serve for fp32 models with "
        f"{AUTO_MIN_PARAMETERS // 1_000_000}M+ linear parameters, and in ask from --max-new-tokens "
        f"{AUTO_MIN_ANSWER_TOKENS} on"
    )
    found = [
        {
            "device": "cpu",
            "name": platform.processor() or platform.machine(),
            "auto_dtype": pick_dtype("cpu")[0],
            "auto_quantize": cpu_quantize,
        }
    ]
    if torch.cuda.is_available():
        dtype = pick_dtype("cuda")[0]
        for i in range(torch.cuda.device_count()):
            found.append({"device": f"cuda:{i}", "name": torch.cuda.get_device_name(i), "auto_dtype": dtype})
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append({"device": "mps", "name": "Apple MPS", "auto_dtype": pick_dtype("mps")[0]})
    device, reason = pick_device("auto")
    dtype, dtype_reason = pick_dtype(device)
    return {
        "found": found,
        "auto": {"device": device, "device_reason": reason, "dtype": dtype, "dtype_reason": dtype_reason},
    }


def _free_bytes(path: Path) -> int | None:
    """Free space on the file system that holds `path`, or would hold it once created."""
    import shutil

    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def directories() -> dict[str, dict[str, Any]]:
    from .. import config, paths
    from ..store import hub_cache

    dirs = {
        "config_file": config.config_file(),
        "data": paths.home(),
        "models": paths.models_dir(),
        "hub_cache": hub_cache(),
    }
    return {
        name: {
            "path": str(p),
            "exists": p.exists(),
            "free_bytes": _free_bytes(p),
            "problem": _dir_problem(p, name != "config_file"),
        }
        for name, p in dirs.items()
    }


def _dir_problem(path: Path, is_dir: bool) -> str | None:
    """Why lgemma could not write `path` (or create it), or None when it can."""
    probe = path if is_dir else path.parent
    while not probe.exists() and probe != probe.parent:
        if probe.is_symlink():
            return f"{probe} is a broken link"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    if not is_dir and path.exists() and not os.access(path, os.W_OK):
        return f"{path} is not writable"
    return None


def models() -> list[dict[str, str]]:
    from ..store import model_entries

    return [{"name": name, "source": source} for name, source in model_entries()]


def hub(offline_flag: bool = False) -> dict[str, Any]:
    """Whether the hub can be reached; no network call at all in offline mode."""
    from ..errors import redact

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    offline = offline_flag or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE
    token = (
        bool(os.environ.get("HF_TOKEN"))
        or (Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "token").is_file()
    )
    info: dict[str, Any] = {"endpoint": redact(endpoint), "offline": offline, "token": token}
    if offline:
        info["status"] = "offline mode"
        return info
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=HUB_TIMEOUT_S):
            info["status"] = "reachable"
    except urllib.error.HTTPError:
        info["status"] = "reachable"  # the server answered, even if not with 200
    except (urllib.error.URLError, OSError, ValueError):
        info["status"] = "unreachable"
    return info


def report(offline: bool = False) -> dict[str, Any]:
    return {
        "versions": versions(),
        "devices": devices(),
        "directories": directories(),
        "models": models(),
        "hub": hub(offline),
    }


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return ""  # pragma: no cover


def as_text(data: dict[str, Any]) -> str:
    lines = ["versions:"]
    lines += [f"  {k}: {v or 'not installed'}" for k, v in data["versions"].items()]
    auto = data["devices"]["auto"]
    lines.append(f"devices (auto: {auto['device']}, {auto['dtype']}; {auto['device_reason']}):")
    lines += [
        f"  {d['device']}: {d['name']}, auto dtype {d['auto_dtype']}"
        + (f", auto quantization {d['auto_quantize']}" if d.get("auto_quantize") else "")
        for d in data["devices"]["found"]
    ]
    lines.append("directories:")
    for name, d in data["directories"].items():
        state = f"PROBLEM: {d['problem']}" if d.get("problem") else ("exists" if d["exists"] else "not created yet")
        lines.append(f"  {name}: {d['path']} ({state}, {_size(d['free_bytes'])} free)")
    lines.append("models:")
    lines += [f"  {m['name']} ({m['source']})" for m in data["models"]] or ["  none"]
    h = data["hub"]
    lines.append(f"hub: {h['endpoint']} {h['status']}, token {'found' if h['token'] else 'not found'}")
    return "\n".join(lines)


def doctor(
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
    offline: Annotated[bool, typer.Option("--offline", help="Do not contact the hub (as HF_HUB_OFFLINE=1).")] = False,
) -> None:
    """Check versions, devices and dtypes, directories and free space, models, and the hub."""
    from ..render import Output

    data = report(offline)
    out = Output()
    if json_out:
        out.json(data)
    else:
        out.result(as_text(data))
    problems = [f"{name}: {d['problem']}" for name, d in data["directories"].items() if d.get("problem")]
    if problems:
        out.error("; ".join(problems), hint="point LGEMMA_HOME (or HF_HOME) at a writable directory")
        raise typer.Exit(1)
