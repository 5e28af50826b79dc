"""`--keep-alive`: `ask` and `translate` answered by a background `lgemma serve` that stays loaded.

A cold `lgemma ask` spends most of its wall time importing torch and transformers, parsing the
tokenizer and loading weights (`benchmarks/cpu_speed.py --cold-only` measures that floor); only a
process that stays loaded gets below it. This is ollama's answer, opt-in: with a keep-alive
(`--keep-alive 5m`, config `keep_alive`, `LGEMMA_KEEP_ALIVE`) the first run starts `lgemma serve`
for the model in its own session (127.0.0.1, a free port, a random API key) and waits until it has
loaded; later runs within the keep-alive find it and answer through it with the standard-library
client (no torch import); the server exits by itself once it has been idle that long.

One server per (model, device, dtype, quantization), found through a state file that the server
writes (mode 0600, it holds the key) once it listens with the model loaded, and removes when it
exits. A lock file makes concurrent runs start one server, not several. A server that fails to
start fails the run with the error and exit code a local run would give.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import secrets
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import LgemmaError, UsageError
from .files import atomic_write
from .paths import home

START_TIMEOUT_S = 600.0  # a first download-free load of a 2B model on a slow CPU stays well below this
# Requests that may wait behind the one generating: a user's own concurrent runs (a shell loop with
# `&`, a Makefile with -j) should queue, not get "busy" as a shared `lgemma serve` would answer.
QUEUE = 64
PROBE_HEADER = "X-Lgemma-Probe"  # a /v1/models request that does not count as activity (`lgemma ps`)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value) -> float:
    """Seconds of a keep-alive: `30s`, `5m`, `1h`, a bare number of seconds; 0 or `off`: none."""
    text = str(value).strip().lower().replace(" ", "")
    if text in ("", "0", "off", "none", "no", "false"):
        return 0.0
    match = _DURATION.match(text)
    if not match:
        raise ValueError("must be a duration such as 30s, 5m or 1h (0 or off: no keep-alive)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """A keep-alive as a user writes it, exactly (it parses back to the same seconds): 300 -> `5m`,
    7200 -> `2h`, 90 -> `90s`, 0.5 -> `0.5s`, 0 -> `0`. A larger unit only where it is exact."""
    from decimal import Decimal

    seconds = float(seconds)
    if not seconds:
        return "0"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds.is_integer() and seconds % size == 0:
            return f"{int(seconds) // size}{unit}"
    if seconds.is_integer():
        return f"{int(seconds)}s"
    return format(Decimal(repr(seconds)), "f") + "s"  # never an exponent, which parse_duration refuses


def state_dir() -> Path:
    return home() / "keepalive"


@dataclass(frozen=True)
class Target:
    """What a keep-alive server is for: its model and the load settings (already resolved)."""

    model: str
    device: str
    dtype: str
    quantize: str

    def key(self) -> str:
        text = json.dumps([self.model, self.device, self.dtype, self.quantize])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Endpoint:
    url: str
    api_key: str
    pid: int
    started: bool  # this run started the server (and waited for its load)


class KeepAliveStartError(LgemmaError):
    """The background server exited before it was ready; carries the exit code it exited with."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 1):
        super().__init__(message, hint)
        self.exit_code = exit_code


def target_for(model: str, device: str | None, dtype: str | None, quantize: str | None) -> Target:
    """The resolved target of a run: flags, then environment and config, as a local run resolves them."""
    from . import config
    from .store import looks_like_path

    # As `resolve_model_path` decides: an existing directory (`runs/exp1`, `./m`, `~/m`) is a path.
    as_path = Path(model).expanduser()
    reference = str(as_path.resolve()) if looks_like_path(model) or as_path.is_dir() else model
    return Target(
        model=reference,
        device=str(config.resolve("device", device, model)),
        dtype=str(config.resolve("dtype", dtype, model)),
        quantize=str(config.resolve("quantize", quantize, model)),
    )


def ensure(target: Target, keep_alive_s: float, on_start=None) -> Endpoint:
    """A running server for `target`: the one found, or one started now (waiting for its load).
    A server whose model files changed since it loaded them (a new `train` into the same
    directory, a re-download) is stopped and replaced."""
    if os.name != "posix":
        raise UsageError(
            "--keep-alive needs Linux or macOS (it detaches and finds its server with POSIX calls)",
            hint="run `lgemma serve` yourself and use --server",
        )
    directory = state_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)  # state files hold keys; nobody else may plant or read them
    except OSError as exc:
        raise _unusable(directory, exc.strerror) from None
    key = target.key()
    state = directory / f"{key}.json"
    with _locked(directory / f"{key}.lock"):
        for aside in directory.glob(f"{key}.*.json"):  # wedged servers replaced earlier, since gone
            if not pid_alive(_raw_pid(aside)):
                _forget(aside)
        info = _read(state)
        found = _alive(state, info, target)
        if found is not None:
            if _replaced(info, target):
                stop(info)
                if not _wait_gone(found.pid, 60.0):  # never two copies of the model in memory
                    stop(info, force=True)
                    _wait_gone(found.pid, 10.0)
                _forget(state)
            else:
                if info.get("idle_exit_s") != keep_alive_s:
                    _set_keep_alive(found, keep_alive_s)  # the latest run's keep-alive wins
                return found
        if on_start is not None:
            on_start()
        return _start(target, keep_alive_s, state, directory / f"{key}.log")


def running() -> list[dict]:
    """The keep-alive servers of the state files, each with `responding`: True for one that
    answers as its file says (key and model checked, not only a live pid, which the system may
    have given to another process), False for a live process whose command line shows it is
    that server but that does not answer (wedged); stale files removed."""
    out = []
    if not state_dir().is_dir():
        return out
    for path in sorted(state_dir().glob("*.json")):
        info = _read(path)
        if info is None:
            continue
        models = info.get("models") or []
        if not pid_alive(info.get("pid")):
            _forget(path)
        elif models and _serves(info, models[0], probe=True):
            out.append({**info, "state_file": str(path), "responding": True})
        elif _is_server(info.get("pid"), path) and not _superseded(path, info):
            out.append({**info, "state_file": str(path), "responding": False})
        elif _set_aside(path):  # its pid now belongs to another process, or to the current server
            _forget(path)
    return out


def _set_aside(path: Path) -> bool:
    """`path` is the state file of a wedged server that a new one replaced (`<key>.<pid>.json`)."""
    return path.name.count(".") == 2


def _first_state(path: Path) -> Path:
    """The state file a server was started with (`<key>.json`), for a set-aside one too."""
    return path.with_name(path.name.split(".")[0] + ".json")


def _superseded(path: Path, info: dict) -> bool:
    """A set-aside file whose pid is now the current server's (the number given again)."""
    if not _set_aside(path):
        return False
    current = _read(_first_state(path))
    return current is not None and current.get("pid") == info.get("pid")


def _is_server(pid, state: Path) -> bool:
    """The process `pid` is the keep-alive server that was started for `state` (its command line
    names that state file: a live pid alone may belong to anyone by now)."""
    ready = str(_first_state(state))
    try:
        args = Path(f"/proc/{int(pid)}/cmdline").read_bytes().split(b"\0")
        words = [a.decode("utf-8", "replace") for a in args]
        return any(a == "--ready-file" and b == ready for a, b in zip(words, words[1:]))
    except (OSError, ValueError, TypeError):  # no /proc (macOS): ask ps, which joins argv with spaces
        try:
            got = subprocess.run(
                ["ps", "-ww", "-o", "command=", "-p", str(int(pid))], capture_output=True, text=True, timeout=5
            )
        except (OSError, ValueError, TypeError, subprocess.SubprocessError):
            return False
        return f" --ready-file {ready} " in f" {got.stdout.strip()} "


def _replaced(info: dict, target: Target) -> bool:
    """The server's model is no longer what `target` names: its files changed since it loaded
    them, or the name now leads to another directory (a directory, a registered name, or a hub
    id whose cache now points to a newer snapshot)."""
    if info.get("weights") and info["weights"] != weights_stamp(info.get("path")):
        return True
    if not info.get("path"):
        return False
    as_path = Path(target.model).expanduser()
    if as_path.is_dir():
        current = as_path.resolve()
    else:
        from .store import registered

        try:
            own = registered(target.model)
        except (OSError, ValueError):  # a broken registration is the loader's to report
            own = None
        current = Path(own).resolve() if own is not None else _hub_snapshot(Path(info["path"]))
    return current is not None and str(current) != info["path"]


def _hub_snapshot(loaded: Path) -> Path | None:
    """For a server that loaded a hub cache snapshot (`.../models--o--n/snapshots/<commit>`), the
    snapshot a new load would take now: the one the same cache's refs/main names, read directly,
    without importing the hub library; None while that snapshot is still being downloaded (the
    hub library writes refs/main first), or for anything else."""
    if loaded.parent.name != "snapshots" or not loaded.parent.parent.name.startswith("models--"):
        return None
    folder = loaded.parent.parent
    try:
        commit = (folder / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    snapshot = folder / "snapshots" / commit
    if not commit or not (snapshot / "config.json").is_file() or any((folder / "blobs").glob("*.incomplete")):
        return None
    return snapshot.resolve()


def _unusable(directory: Path, why: str | None) -> LgemmaError:
    return UsageError(
        f"--keep-alive cannot keep private state files in {directory}" + (f": {why}" if why else ""),
        hint="its file system does not keep file modes (a shared or Windows drive?): set LGEMMA_HOME to a "
        "local directory, or run `lgemma serve` and use --server",
    )


def weights_stamp(path) -> list | None:
    """Name, size and modification time of each file in a model directory: what a server loaded
    (a changed stamp means the files were replaced since)."""
    try:
        directory = Path(path)
        return sorted([e.name, e.stat().st_size, e.stat().st_mtime_ns] for e in directory.iterdir() if e.is_file())
    except (OSError, TypeError):
        return None


def describe(info: dict) -> dict:
    """What `lgemma ps` shows of a state file: no key."""
    idle = info.get("idle_exit_s")
    return {
        "model": ", ".join(info.get("models") or []),
        "settings": " ".join(f"{k}={v}" for k, v in (info.get("settings") or {}).items()),
        "url": info.get("url"),
        "pid": info.get("pid"),
        "idle_exit": format_duration(idle) if idle else "never",
        "idle_exit_s": idle or None,
        "responding": info.get("responding", True),
    }


def stop(info: dict, force: bool = False) -> None:
    """Ask a keep-alive server to exit (SIGTERM: it finishes the request in flight first), or with
    `force` end it at once (SIGKILL)."""
    import signal

    try:
        os.kill(int(info["pid"]), signal.SIGKILL if force else signal.SIGTERM)
    except (ProcessLookupError, PermissionError, KeyError, ValueError, TypeError):
        pass


def write_state(
    path: Path,
    url: str,
    models: list[str],
    api_key: str | None,
    idle_exit_s: float | None,
    settings: dict,
    model_path: str | None = None,
    weights: list | None = None,
) -> None:
    """Called by the server once it listens with its model loaded; atomic, mode 0600 (the key)."""
    data = {
        "url": url,
        "pid": os.getpid(),
        "models": models,
        "settings": settings,
        "api_key": api_key,
        "idle_exit_s": idle_exit_s,
        "path": model_path,
        "weights": weights,
    }
    with atomic_write(path, mode=0o600) as fh:
        json.dump(data, fh)


def remove_state(path: Path) -> None:
    """Called by the server as it exits: remove the state file if it is still this process's."""
    info = _read(path)
    if info is not None and info.get("pid") == os.getpid():
        try:
            path.unlink()
        except OSError:
            pass


# --- internals -------------------------------------------------------------------------------------


def _read(path: Path) -> dict | None:
    """A state file's content, if it is this user's, private, and names a loopback URL."""
    try:
        st = path.stat()
        if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o077):
            return None
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not str(info.get("url", "")).startswith("http://127.0.0.1:"):
        return None
    return info


def _raw_pid(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("pid")
    except (OSError, ValueError, AttributeError):
        return None


def _forget(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _wait_gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def pid_alive(pid) -> bool:
    try:
        pid = int(pid)
    except (ValueError, TypeError):
        return False
    if os.name == "posix":
        try:  # a server this process started and that has exited is a zombie until reaped here
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return False
        except (ChildProcessError, OSError):
            pass  # not our child: the usual case, the run that started it has exited
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError, TypeError, OverflowError):
        return False
    except PermissionError:  # someone else's process now has that number
        return False
    return True


def _alive(state: Path, info: dict | None, target: Target) -> Endpoint | None:
    """The server that `info`, read from `state`, names, if it answers for `target`'s model; a
    state file whose server is gone is removed."""
    if info is None:
        return None
    alive = pid_alive(info.get("pid"))
    if alive and _serves(info, target.model):
        return Endpoint(url=info["url"], api_key=info.get("api_key") or "", pid=int(info["pid"]), started=False)
    if alive and _is_server(info["pid"], state):
        # Alive but not answering (wedged, or too slow to answer in 10 s): asked to exit, and if it
        # does not, a new server takes its place with the old state file kept under another name,
        # so that `lgemma ps` still lists it and `lgemma stop --force` can end it.
        stop(info)
        if _wait_gone(int(info["pid"]), 10.0):
            _forget(state)
            return None
        try:
            os.replace(state, state.with_name(f"{state.stem}.{int(info['pid'])}.json"))
        except OSError:
            _forget(state)
        return None
    _forget(state)  # a server that died without cleaning up (killed, out of memory, a reboot)
    return None


def _serves(info: dict, model: str, probe: bool = False) -> bool:
    """The server behind `info` answers /v1/models with our key and lists `model`. A `probe`
    (`lgemma ps`, `stop`) does not restart the server's idle clock; a run's check, made just before
    its request, does."""
    try:
        headers = {PROBE_HEADER: "1"} if probe else {}
        status, body = _call(str(info["url"]), info.get("api_key"), "GET", "/v1/models", headers)
        if status != 200:
            return False
        return model in {m.get("id") for m in json.loads(body.decode("utf-8")).get("data", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, http.client.HTTPException):
        return False


def _set_keep_alive(endpoint: Endpoint, seconds: float) -> None:
    """Best effort: a server that does not take it keeps the keep-alive it was started with."""
    try:
        body = json.dumps({"seconds": seconds})
        headers = {"Content-Type": "application/json"}
        _call(endpoint.url, endpoint.api_key, "POST", "/v1/lgemma/keep_alive", headers, body)
    except (OSError, http.client.HTTPException):
        pass


def _call(url: str, api_key: str | None, method: str, path: str, headers: dict, body: str | None = None):
    """(status, body) of one request to a keep-alive server, with its key; 10 s at most."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        if api_key:
            headers = {**headers, "Authorization": f"Bearer {api_key}"}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _start(target: Target, keep_alive_s: float, state: Path, log: Path) -> Endpoint:
    api_key = secrets.token_urlsafe(24)
    cmd = [
        sys.executable,
        "-m",
        "latent_gemma_cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--model",
        target.model,
        "--device",
        target.device,
        "--dtype",
        target.dtype,
        "--quantize",
        target.quantize,
        "--max-models",
        "1",
        "--queue",
        str(QUEUE),
        "--idle-exit",
        repr(keep_alive_s / 60.0),
        "--ready-file",
        str(state),
    ]
    env = {**os.environ, "LGEMMA_API_KEY": api_key}  # the environment, not argv: `ps` shows argv
    env.pop("LGEMMA_SERVER", None)
    with open(log, "wb") as fh:  # one log per target, the current server's
        # A session of its own: Ctrl-C and the terminal's hang-up do not reach it.
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh, env=env, close_fds=True, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            info = _read(state)
            if info is not None and info.get("pid") == proc.pid:
                return Endpoint(url=info["url"], api_key=api_key, pid=proc.pid, started=True)
            if info is None and _raw_pid(state) == proc.pid:  # written, but not with its 0600 mode
                raise _unusable(state.parent, None)
            code = proc.poll()
            if code is not None:
                raise _start_error(code, log)
            if time.monotonic() > deadline:
                raise LgemmaError(
                    f"the keep-alive server for {target.model} did not start in {START_TIMEOUT_S:.0f} s",
                    hint=f"its log: {log}",
                )
            time.sleep(0.05)
    except BaseException:  # Ctrl-C, SIGTERM or a timeout while it loads: no server is left behind
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise


def _start_error(code: int, log: Path) -> KeepAliveStartError:
    """The server's own `error:` and `hint:` lines, and its exit code (what a local run would give)."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").split("\n")
    except OSError:
        lines = []
    message = next((ln[len("error: ") :] for ln in lines if ln.startswith("error: ")), None)
    hint = next((ln[len("hint: ") :] for ln in lines if ln.startswith("hint: ")), None)
    if message is None:
        message = f"the keep-alive server exited with code {code} before it was ready"
        hint = f"its log: {log}"
    return KeepAliveStartError(message, hint, exit_code=code if 1 <= code <= 8 else 1)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (flock: `ensure` runs on POSIX systems only)."""
    import fcntl

    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
