"""`--keep-alive`: ask and translate through a background `lgemma serve` started on demand, found
again by later runs, and gone after its idle time. Real processes on 127.0.0.1 with the tiny
Gemma 3 model; every server a test starts is stopped by it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from latent_gemma_cli import keepalive
from latent_gemma_cli.cli import app
from latent_gemma_cli.serve import ModelPool, ServerConfig

QUESTION = "Is Tom a lempus?"


def _cli(args, env=None):
    res = CliRunner().invoke(app, args, env=env or {})
    return res.exit_code, res.stdout, res.stderr


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not keepalive.pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def _kept_ask(model: str) -> list[str]:
    """`ask --json QUESTION` through a keep-alive server of `model` kept 1 minute."""
    flags = ["--device", "cpu", "--max-new-tokens", "4", "--no-log", "--json", "--keep-alive", "1m"]
    return ["ask", "--model", model, *flags, QUESTION]


def _started(args: list[str]) -> bool:
    """Run `args` (an `ask --json` through a keep-alive server), which must succeed; whether this
    run started the server."""
    code, out, err = _cli(args)
    assert code == 0, err
    return json.loads(out)["server"]["started"]


@pytest.fixture
def cleanup():
    """Stop whatever keep-alive servers a test leaves (a failed assertion must not leak one)."""
    yield
    for info in keepalive.running():
        keepalive.stop(info)
        _gone(info["pid"], 30)


def test_durations_parse_like_ollamas_and_bad_ones_exit_2():
    assert keepalive.parse_duration("30s") == 30 and keepalive.parse_duration("5m") == 300
    assert keepalive.parse_duration("1h") == 3600 and keepalive.parse_duration("45") == 45
    assert keepalive.parse_duration("0") == 0 and keepalive.parse_duration("off") == 0
    for bad in ("5x", "-1", "m", "1.5.2s"):
        with pytest.raises(ValueError):
            keepalive.parse_duration(bad)
    code, out, err = _cli(["ask", "--keep-alive", "5x", "q"])
    assert code == 2 and out == "" and err.count("error:") == 1 and "keep_alive" in err
    code, _, err = _cli(["ask", "q"], {"LGEMMA_KEEP_ALIVE": "soon"})
    assert code == 2 and "LGEMMA_KEEP_ALIVE" in err
    code, _, err = _cli(["config", "set", "keep_alive", "forever"])
    assert code == 2
    # Shown and written as the user writes it, read back as seconds.
    assert [keepalive.format_duration(s) for s in (45, 300, 5400, 7200, 0)] == ["45s", "5m", "90m", "2h", "0"]
    for written in ("100", "90", "3601", "86399", "0.00001", "1000000h", "2.5", "1.5m"):  # exact round trips
        seconds = keepalive.parse_duration(written)
        assert keepalive.parse_duration(keepalive.format_duration(seconds)) == seconds, written
    code, _, err = _cli(["config", "set", "keep_alive", "300"])
    assert code == 0 and "keep_alive = 5m" in err
    from latent_gemma_cli import config

    assert 'keep_alive = "5m"' in config.config_file().read_text(encoding="utf-8")
    assert config.resolve("keep_alive") == 300
    code, out, _ = _cli(["config", "show"])
    assert code == 0 and "keep_alive" in out and "= 5m  (file)" in out
    code, out, _ = _cli(["config", "show", "--json"])
    assert json.loads(out)["keys"]["keep_alive"]["value"] == 300
    for command in (["ask", "q"], ["translate", "-"]):  # a server named and one to start: which?
        res = CliRunner().invoke(app, [*command, "--server", "http://127.0.0.1:9", "--keep-alive", "5m"], input="hi")
        assert res.exit_code == 2 and "--keep-alive" in res.stderr and res.stderr.count("error:") == 1


def test_pool_idle_time_counts_from_the_last_request_and_not_while_one_runs():
    pool = ModelPool(ServerConfig(models=["m"], default_model="m"), loader=lambda name: object())
    slot = pool.admit("m")
    time.sleep(0.05)
    assert pool.idle_seconds() == 0.0  # a request in flight: never idle
    pool.release(slot)
    assert 0.0 <= pool.idle_seconds() < 0.05
    time.sleep(0.1)
    assert pool.idle_seconds() >= 0.1


@pytest.mark.slow
def test_first_run_starts_a_server_later_runs_reuse_it_and_it_exits_when_idle(tiny_gemma3, tmp_path, cleanup):
    base = ["ask", "--model", str(tiny_gemma3), "--max-new-tokens", "6", "--no-log", "--mode", "soft"]
    code, local_out, _ = _cli(base + ["--device", "cpu", QUESTION])
    assert code == 0
    code, local_json, _ = _cli(base + ["--device", "cpu", "--json", QUESTION])
    kept = base + ["--device", "cpu", "--keep-alive", "4s"]

    code, first_out, first_err = _cli(kept + [QUESTION])
    assert code == 0, first_err
    assert first_out == local_out  # the same answer, printed the same way
    assert "starting a keep-alive server" in first_err and "keep-alive 4s, started now" in first_err
    [info] = keepalive.running()
    assert info["models"] == [str(tiny_gemma3.resolve())] and info["settings"]["device"] == "cpu"
    state = Path(info["state_file"])
    assert state.stat().st_mode & 0o077 == 0  # it holds the API key: the owner's only

    code, second_json, err = _cli(kept + ["--json", QUESTION])
    assert code == 0, err
    a, b = json.loads(local_json), json.loads(second_json)
    assert b["paths"] == a["paths"] and b["answer"] == a["answer"]
    assert b["server"]["url"] == info["url"] and b["server"]["started"] is False and b["server"]["keep_alive_s"] == 4
    assert [s["pid"] for s in keepalive.running()] == [info["pid"]]  # the same server answered

    text = tmp_path / "in.txt"
    text.write_text("Tom is a lempus.\n", encoding="utf-8")
    tr = ["translate", "--model", str(tiny_gemma3), "--to", "ja", "--max-new-tokens", "6", "--no-log", str(text)]
    code, local_tr, _ = _cli(tr + ["--device", "cpu"])
    code2, kept_tr, err = _cli(tr + ["--device", "cpu", "--keep-alive", "4s"])
    assert code == code2 == 0, err
    assert kept_tr == local_tr and f"on {info['url']}" in err
    assert [s["pid"] for s in keepalive.running()] == [info["pid"]]

    # The latest run's keep-alive wins (as in ollama): longer, then back to 4 s.
    for span, seconds in (("1m", 60), ("4s", 4)):
        code, _, err = _cli(base + ["--device", "cpu", "--keep-alive", span, QUESTION])
        assert code == 0, err
        assert [(s["pid"], s["idle_exit_s"]) for s in keepalive.running()] == [(info["pid"], seconds)]

    code, ps_out, _ = _cli(["ps", "--json"])
    listed = [json.loads(line) for line in ps_out.strip().split("\n")]
    assert code == 0 and [s["pid"] for s in listed] == [info["pid"]] and "api_key" not in ps_out
    assert listed[0]["idle_exit"] == "4s" and listed[0]["idle_exit_s"] == 4  # as the flag writes it

    deadline = time.monotonic() + 4 + 15  # `lgemma ps` polling all along does not keep it alive
    while keepalive.pid_alive(info["pid"]) and time.monotonic() < deadline:
        keepalive.running()
        time.sleep(0.5)
    assert not keepalive.pid_alive(info["pid"]), "the server did not exit after its keep-alive"
    assert not state.exists() and keepalive.running() == []


@pytest.mark.slow
def test_concurrent_first_runs_start_one_server_and_stop_ends_it(tiny_gemma3, cleanup):
    cmd = [sys.executable, "-m", "latent_gemma_cli", "ask", "--model", str(tiny_gemma3), "--device", "cpu"]
    cmd += ["--max-new-tokens", "4", "--no-log", "--json", "--keep-alive", "1m", QUESTION]
    env = {**os.environ}
    env.pop("LGEMMA_SERVER", None)
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True) for _ in "ab"]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    servers = [json.loads(out)["server"] for out, _ in results]
    assert sorted(s["started"] for s in servers) == [False, True]  # one started it, one waited for it
    assert servers[0]["url"] == servers[1]["url"]
    [info] = keepalive.running()

    code, _, err = _cli(["stop", str(tiny_gemma3)])
    assert code == 0 and "stopped" in err
    assert _gone(info["pid"], 5) and keepalive.running() == []
    code, _, err = _cli(["stop", str(tiny_gemma3)])
    assert code == 3 and err.count("error:") == 1
    code, _, _ = _cli(["stop"])
    assert code == 2


@pytest.mark.slow
def test_a_server_that_cannot_start_fails_the_run_as_a_local_run_would(tmp_path, cleanup):
    missing = str(tmp_path / "no-such-model")
    code_local, out_local, err_local = _cli(["ask", "--model", missing, "--no-log", QUESTION])
    code, out, err = _cli(["ask", "--model", missing, "--no-log", "--keep-alive", "1m", QUESTION])
    assert code == code_local != 0 and out == out_local == ""
    assert err.count("error:") == 1 and "Traceback" not in err
    assert err_local.split("error:")[1].split("\n")[0] in err  # the same message
    assert keepalive.running() == [] and list(keepalive.state_dir().glob("*.json")) == []


def _state(path: Path, info: dict, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    path.chmod(mode)


@pytest.mark.slow
def test_stale_or_foreign_state_files_are_never_trusted(tiny_gemma3, tmp_path, monkeypatch, cleanup):
    target = keepalive.target_for(str(tiny_gemma3), "cpu", None, None)
    stale = keepalive.state_dir() / f"{target.key()}.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _state(stale, {"url": "http://127.0.0.1:9", "pid": int(dead.stdout), "api_key": "x", "models": ["m"]})
    # A live process that is not a server (its pid reused, say): neither listed nor signalled.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        other = keepalive.state_dir() / "0123456789abcdef.json"
        _state(other, {"url": "http://127.0.0.1:9", "pid": bystander.pid, "api_key": "x", "models": ["m"]})
        assert keepalive.running() == []
        assert _cli(["stop", "--all"])[0] == 0 and bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    assert not stale.exists()  # its process is gone: removed

    # A state file others may write or read (not 0600) is not read, nor one naming another host.
    good = {"url": "http://127.0.0.1:9", "pid": os.getpid(), "api_key": "x", "models": [target.model]}
    _state(stale, good, 0o644)
    assert keepalive._read(stale) is None
    _state(stale, good, 0o600)
    assert keepalive._read(stale) == good
    _state(stale, {**good, "url": "http://10.0.0.1:80"})
    assert keepalive._read(stale) is None
    base = ["ask", "--device", "cpu", "--max-new-tokens", "4", "--no-log", "--json", "--keep-alive", "1m"]
    code, out, err = _cli(base + ["--model", str(tiny_gemma3), QUESTION])
    assert code == 0, err
    assert json.loads(out)["server"]["started"] is True and json.loads(stale.read_text())["pid"] != os.getpid()

    # The model named relative to the working directory reaches the same server.
    monkeypatch.chdir(tiny_gemma3.parent)
    for relative in (f"./{tiny_gemma3.name}", tiny_gemma3.name):
        code, out, err = _cli(base + ["--model", relative, QUESTION])
        assert code == 0, err
        assert json.loads(out)["server"]["started"] is False
    code, out, err = _cli(base + ["--model", str(tiny_gemma3), "--allow-pickle", QUESTION])
    assert code == 0 and json.loads(out)["server"] is None  # a server takes no pickle: this run loads here


@pytest.mark.slow
def test_a_server_is_replaced_when_its_model_files_change(tiny_gemma3, tmp_path, cleanup):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_gemma3, model)
    base = _kept_ask(str(model))
    code, out, err = _cli(base)
    assert code == 0, err
    [first] = keepalive.running()
    config = model / "config.json"
    config.write_text(config.read_text())  # rewritten, as a new `train --out` into it would
    os.utime(config, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert _started(base) is True
    assert _gone(first["pid"], 5) and [s["pid"] for s in keepalive.running()] != [first["pid"]]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the server through /proc")
def test_ctrl_c_while_the_server_loads_leaves_no_server(tiny_gemma3, cleanup):
    import signal

    cmd = [sys.executable, "-m", "latent_gemma_cli", "ask", "--model", str(tiny_gemma3), "--device", "cpu"]
    cmd += ["--no-log", "--keep-alive", "1m", QUESTION]
    client = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marker = str(keepalive.state_dir())

    def servers() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
        return found

    deadline = time.monotonic() + 60
    while not servers() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert servers(), "the server never started"
    client.send_signal(signal.SIGINT)
    _, err = client.communicate(timeout=60)
    assert client.returncode == 130 and "Traceback" not in err
    deadline = time.monotonic() + 30
    while servers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert servers() == [] and keepalive.running() == []


@pytest.mark.slow
def test_a_keep_alive_server_queues_a_users_concurrent_runs_instead_of_refusing_them(tiny_gemma3, cleanup):
    """`lgemma serve`'s default queue (4) answers 503 to a burst of 8; a keep-alive server is the
    user's own and queues them all."""
    import asyncio

    import httpx

    target = keepalive.target_for(str(tiny_gemma3), "cpu", None, None)
    endpoint = keepalive.ensure(target, 60.0)
    body = {"model": target.model, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 120}
    body["lgemma"] = {"mode": "off"}
    headers = {"Authorization": f"Bearer {endpoint.api_key}"}

    async def burst():
        async with httpx.AsyncClient() as client:
            return await asyncio.gather(
                *[
                    client.post(endpoint.url + "/v1/chat/completions", json=body, headers=headers, timeout=300)
                    for _ in range(12)
                ]
            )

    assert [r.status_code for r in asyncio.run(burst())] == [200] * 12


@pytest.mark.slow
def test_a_registered_name_that_now_leads_elsewhere_gets_a_new_server(tiny_gemma3, tmp_path, cleanup):
    import shutil

    from latent_gemma_cli.paths import models_dir

    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(tiny_gemma3, first)
    shutil.copytree(tiny_gemma3, second)
    models_dir().mkdir(parents=True, exist_ok=True)
    link = models_dir() / "my-model.path"  # what `lgemma train` registers
    link.write_text(str(first), encoding="utf-8")
    base = _kept_ask("my-model")
    assert _started(base) is True
    assert _started(base) is False  # same registration: reused
    [old] = keepalive.running()
    link.write_text(str(second), encoding="utf-8")  # re-registered (a new training run under the name)
    assert _started(base) is True
    assert _gone(old["pid"], 5) and keepalive.running()[0]["path"] == str(second.resolve())


@pytest.mark.slow
def test_a_hub_id_whose_cache_points_to_a_newer_snapshot_gets_a_new_server(tiny_gemma3, tmp_path, cleanup):
    import shutil

    from latent_gemma_cli.store import hub_cache

    folder = hub_cache() / "models--test-org--tiny"
    for commit in ("a" * 40, "b" * 40):
        shutil.copytree(tiny_gemma3, folder / "snapshots" / commit)
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("a" * 40, encoding="utf-8")
    base = _kept_ask("test-org/tiny")
    assert _started(base) is True
    assert _started(base) is False  # same snapshot: reused
    [old] = keepalive.running()
    assert old["path"] == str((folder / "snapshots" / ("a" * 40)).resolve())
    # A download of a newer snapshot under way (refs/main is written first): the server keeps serving.
    (folder / "refs" / "main").write_text("b" * 40, encoding="utf-8")
    (folder / "blobs").mkdir()
    (folder / "blobs" / "0123abcd.incomplete").write_bytes(b"")
    assert _started(base) is False
    (folder / "blobs" / "0123abcd.incomplete").unlink()  # the download finished
    assert _started(base) is True
    assert _gone(old["pid"], 5) and keepalive.running()[0]["path"] == str((folder / "snapshots" / ("b" * 40)).resolve())


def _fake_server(state: Path, ignore_sigterm: bool = False) -> subprocess.Popen:
    """A process started as the server of `state` (its command line names it) that answers nothing:
    a wedged server; with `ignore_sigterm`, one that does not even exit when asked."""
    code = "import signal, time\n"
    code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_sigterm else ""
    code += "print('ready', flush=True)\ntime.sleep(120)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--ready-file", str(state)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"  # its SIGTERM handler is in place
    return proc


@pytest.mark.slow
def test_a_server_that_stops_answering_stays_listed_is_replaced_and_can_be_stopped(tiny_gemma3, cleanup):
    target = keepalive.target_for(str(tiny_gemma3), "cpu", None, None)
    state = keepalive.state_dir() / f"{target.key()}.json"
    fake = {"url": "http://127.0.0.1:9", "api_key": "x", "models": [target.model]}
    base = _kept_ask(str(tiny_gemma3))
    procs = []
    try:
        # A live process whose command line names another state file is not this server.
        other = _fake_server(keepalive.state_dir() / "0123456789abcdef.json")
        procs.append(other)
        _state(state, {**fake, "pid": other.pid})
        assert keepalive.running() == [] and other.poll() is None

        # A wedged server that exits when asked: a run ends it and starts a new one.
        wedged = _fake_server(state)
        procs.append(wedged)
        _state(state, {**fake, "pid": wedged.pid})
        [listed] = keepalive.running()
        assert listed["pid"] == wedged.pid and listed["responding"] is False
        code, out, err = _cli(["ps"])
        assert code == 0 and "not responding" in err and "--force" in err
        assert _started(base) is True
        assert wedged.wait(timeout=5) is not None
        assert [s["responding"] for s in keepalive.running()] == [True]
        assert _cli(["stop", "--all"])[0] == 0 and keepalive.running() == []

        # One that ignores SIGTERM: replaced, still listed beside its successor; --force ends it.
        stubborn = _fake_server(state, ignore_sigterm=True)
        procs.append(stubborn)
        _state(state, {**fake, "pid": stubborn.pid})
        assert _started(base) is True
        servers = {s["pid"]: s["responding"] for s in keepalive.running()}
        assert servers.pop(stubborn.pid) is False and list(servers.values()) == [True]
        code, _, err = _cli(["stop", str(tiny_gemma3), "--force"])
        assert code == 0 and stubborn.wait(timeout=10) is not None and keepalive.running() == []
        assert list(keepalive.state_dir().glob("*.json")) == []  # no state file left behind
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
