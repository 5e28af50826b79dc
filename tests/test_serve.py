"""`lgemma serve` as a real process on 127.0.0.1 (a free port), the official `openai` client and
httpx as clients, and `ask --server` against it. Every request goes to 127.0.0.1 only; load tests
are bounded in requests and seconds."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from latent_gemma_cli import ask as ask_mod
from latent_gemma_cli.cli import app
from latent_gemma_cli.engine import Settings
from latent_gemma_cli.loading import load_model

pytestmark = pytest.mark.slow
QUESTION = "Is Tom a lempus?"


class Server:
    def __init__(self, model: Path, home: Path, *extra: str, env: dict | None = None):
        cmd = [sys.executable, "-m", "latent_gemma_cli", "serve", "--port", "0", "-m", str(model), "--device", "cpu"]
        environ = {**os.environ, "LGEMMA_HOME": str(home), "HF_HUB_OFFLINE": "1", **(env or {})}
        environ.pop("LGEMMA_SERVER", None)
        self.proc = subprocess.Popen(
            [*cmd, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environ, text=True
        )
        line = self.proc.stdout.readline().strip()  # the URL, printed once the socket listens
        if not line.startswith("http://127.0.0.1:"):
            self.stop()
            raise AssertionError(f"no URL from lgemma serve: {line!r} {self.proc.stderr.read()}")
        self.url = line
        deadline = time.monotonic() + 60
        while True:  # uvicorn accepts once its loop runs
            try:
                httpx.get(self.url + "/v1/models", timeout=5, headers=self.auth())
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def auth(self) -> dict:
        return {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("serve-home")


@pytest.fixture(scope="module")
def server(tiny_gemma3, home):
    s = Server(tiny_gemma3, home, "--queue", "4")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def local(tiny_gemma3):
    return load_model(str(tiny_gemma3), device="cpu")


def _local_answer(local, settings: Settings, question: str = QUESTION):
    return ask_mod.ask(local, question, settings).to_dict()


def test_openai_client_answers_equal_the_local_engine(server, local, tiny_gemma3):
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    for lg, kw in (
        ({"mode": "soft", "thoughts": 2}, {"temperature": 0}),
        ({"mode": "off"}, {"temperature": 0.9, "seed": 7, "top_p": 0.9}),
    ):
        reply = client.chat.completions.create(
            model=str(tiny_gemma3),
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=8,
            extra_body={"lgemma": lg},
            **kw,
        )
        want = _local_answer(
            local,
            Settings(
                mode=lg["mode"],
                num_thoughts=lg.get("thoughts"),
                max_new_tokens=8,
                temperature=kw["temperature"],
                top_p=kw.get("top_p", 1.0),
                seed=kw.get("seed"),
            ),
        )
        data = reply.model_extra["lgemma"]
        assert reply.choices[0].message.content == want["answer"]
        assert data["paths"][0]["token_ids"] == want["paths"][0]["token_ids"]
        assert (data["mode"], data["num_thoughts"], data["seed"]) == (want["mode"], want["num_thoughts"], want["seed"])
        assert reply.usage.completion_tokens == len(want["paths"][0]["token_ids"])
        stream = client.chat.completions.create(
            model=str(tiny_gemma3),
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=8,
            stream=True,
            extra_body={"lgemma": lg},
            **kw,
        )
        pieces, reasons, final = [], [], None
        for event in stream:
            for choice in event.choices:
                pieces.append(choice.delta.content or "")
                reasons.append(choice.finish_reason)
            final = (event.model_extra or {}).get("lgemma") or final
        assert "".join(pieces) == want["answer"]
        assert reasons[-1] in ("stop", "length") and final["paths"][0]["token_ids"] == want["paths"][0]["token_ids"]


def test_completions_and_paths(server, local, tiny_gemma3):
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    reply = client.completions.create(model=str(tiny_gemma3), prompt="Every wumpus is", max_tokens=6, temperature=0)
    ids = list(local.tokenizer("Every wumpus is", add_special_tokens=True)["input_ids"])
    want = ask_mod.ask_ids(local, "Every wumpus is", ids, Settings(mode="off", max_new_tokens=6)).to_dict()
    assert reply.choices[0].text == want["answer"]
    assert reply.model_extra["lgemma"]["prompt_token_ids"] == ids
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model=str(tiny_gemma3), prompt="Every wumpus is", max_tokens=6, temperature=0, stream=True
        )
        if c.choices
    )
    assert streamed == want["answer"]
    # n = reasoning paths: choice 0 is the answer (the most confident path), every path is there
    many = client.chat.completions.create(
        model=str(tiny_gemma3), messages=[{"role": "user", "content": QUESTION}], max_tokens=5, n=3, temperature=0
    )
    data = many.model_extra["lgemma"]
    assert len(many.choices) == 3 == len(data["paths"])
    assert many.choices[0].message.content == data["answer"]
    confidences = [data["paths"][c.model_extra["lgemma_path"]]["confidence"] for c in many.choices]
    assert confidences == sorted(confidences, reverse=True)


def test_error_statuses(server, tiny_gemma3):
    url = server.url
    post = lambda path, **kw: httpx.post(url + path, timeout=30, **kw)  # noqa: E731
    ok = {"model": str(tiny_gemma3), "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 2}
    bad_json = post("/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["error"]["message"]
    for change, needle in (
        ({"temperature": "hot"}, "temperature"),
        ({"n": 0}, "n 0"),
        ({"lgemma": {"think": 3}}, "think"),
        ({"lgemma": {"mode": "dream"}}, "dream"),
        ({"messages": []}, "messages"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ):
        r = post("/v1/chat/completions", json={**ok, **change})
        assert r.status_code == 422, (change, r.text)
        assert needle in r.json()["error"]["message"]
    missing = post("/v1/chat/completions", json={**ok, "model": "no-such-model"})
    assert missing.status_code == 404 and "no-such-model" in missing.json()["error"]["message"]
    big = post("/v1/chat/completions", json={**ok, "messages": [{"role": "user", "content": "x" * (1 << 20)}]})
    assert big.status_code == 413
    models = httpx.get(url + "/v1/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [str(tiny_gemma3)] and models["data"][0]["lgemma"]["loaded"]
    # still serving after every error
    assert post("/v1/chat/completions", json=ok).status_code == 200


def test_api_key(tiny_gemma3, home):
    s = Server(tiny_gemma3, home, "--api-key", "s3cret-key")
    try:
        body = {"model": str(tiny_gemma3), "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 2}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-key"}):
            r = httpx.post(s.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
            assert r.status_code == 401 and "s3cret" not in r.text
        assert httpx.get(s.url + "/v1/models", timeout=10).status_code == 401
        good = httpx.post(
            s.url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer s3cret-key"}, timeout=30
        )
        assert good.status_code == 200
    finally:
        s.stop()
    assert "s3cret" not in s.proc.stderr.read()


def test_concurrent_clients_get_answers_or_503_and_the_server_keeps_serving(server, tiny_gemma3):
    """8 clients at once, one generating and 4 waiting at most: 200 or 503 (with Retry-After), nothing else."""
    body = {"model": str(tiny_gemma3), "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 120}
    body["lgemma"] = {"mode": "off"}

    async def one(client):
        return await client.post(server.url + "/v1/chat/completions", json=body, timeout=120)

    async def burst():
        async with httpx.AsyncClient() as client:
            return await asyncio.gather(*[one(client) for _ in range(8)])

    began = time.monotonic()
    replies = asyncio.run(burst())
    statuses = [r.status_code for r in replies]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 5  # the first 1 + 4 admitted always finish
    for r in replies:
        if r.status_code == 503:
            assert int(r.headers["Retry-After"]) >= 1 and "busy" in r.json()["error"]["message"]
        else:
            assert r.json()["choices"][0]["message"]["role"] == "assistant"
    assert time.monotonic() - began < 120
    after = httpx.post(server.url + "/v1/chat/completions", json={**body, "max_tokens": 2}, timeout=60)
    assert after.status_code == 200


def test_sigterm_finishes_the_request_in_flight(tiny_gemma3, home):
    s = Server(tiny_gemma3, home)
    body = {
        "model": str(tiny_gemma3),
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 200,
        "stream": True,
        "lgemma": {"mode": "off"},
    }
    lines: list[str] = []
    try:
        with httpx.stream("POST", s.url + "/v1/chat/completions", json=body, timeout=120) as r:
            for line in r.iter_lines():
                if line.startswith("data:") and not lines:
                    s.proc.send_signal(signal.SIGTERM)  # the first chunk is out: the request is in flight
                lines.append(line)
        s.proc.wait(timeout=60)
    finally:
        s.stop()
    events = [line[5:].strip() for line in lines if line.startswith("data:")]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"][0]["finish_reason"] in ("stop", "length") and last["lgemma"]["paths"]
    assert s.proc.returncode is not None
    with pytest.raises(httpx.TransportError):
        httpx.get(s.url + "/v1/models", timeout=2)


def _cli(args, env):
    res = CliRunner().invoke(app, args, env=env)
    return res.exit_code, res.stdout, res.stderr


def test_ask_through_the_server_prints_what_a_local_run_prints(server, tiny_gemma3, monkeypatch):
    base = [
        "ask",
        "--model",
        str(tiny_gemma3),
        "--mode",
        "soft",
        "--thoughts",
        "2",
        "--max-new-tokens",
        "6",
        "--no-log",
    ]
    code, local_out, local_err = _cli(base + ["--device", "cpu", QUESTION], {})
    assert code == 0
    code, remote_out, remote_err = _cli(base + ["--server", server.url, QUESTION], {})
    assert code == 0, remote_err
    assert remote_out == local_out
    assert f"server: {server.url}" in remote_err and "server:" not in local_err
    code, env_out, _ = _cli(base + [QUESTION], {"LGEMMA_SERVER": server.url})
    assert code == 0 and env_out == local_out
    code, local_json, _ = _cli(base + ["--device", "cpu", "--json", QUESTION], {})
    code2, remote_json, _ = _cli(base + ["--server", server.url, "--json", QUESTION], {})
    a, b = json.loads(local_json), json.loads(remote_json)
    assert code == code2 == 0 and set(a) == set(b) and a["server"] is None and b["server"]["url"] == server.url
    assert b["paths"] == a["paths"] and b["settings"] == a["settings"] and set(b["model"]) == set(a["model"])
    # sampling: the seed makes the remote answer the local one too
    sample = base + ["--temperature", "1.0", "--seed", "11", "--json", QUESTION]
    assert (
        json.loads(_cli(sample + ["--device", "cpu"], {})[1])["paths"]
        == json.loads(_cli(sample + ["--server", server.url], {})[1])["paths"]
    )


def test_ask_server_errors_are_one_line_with_their_own_exit_codes(server, tiny_gemma3):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    code, out, err = _cli(["ask", "--model", str(tiny_gemma3), "--server", dead, QUESTION], {})
    assert code == 8 and out == "" and err.count("error:") == 1 and "Traceback" not in err
    code, _, err = _cli(["ask", "--model", "other-model", "--server", server.url, QUESTION], {})
    assert code == 3 and "not served here" in err
    code, _, err = _cli(["ask", "--model", str(tiny_gemma3), "--server", server.url, "--device", "cpu", "q"], {})
    assert code == 2 and "--device" in err
    code, _, err = _cli(["ask", "--model", str(tiny_gemma3), "--server", "ftp://x", QUESTION], {})
    assert code == 2


def test_translate_endpoint_uses_the_translate_rules(server, local, tiny_gemma3):
    from latent_gemma_cli.settings import for_model
    from latent_gemma_cli.translation import plan, translate_segments, with_length_rule

    text = "猫が好きです。\n\n犬も好きです。"
    r = httpx.post(
        server.url + "/v1/lgemma/translate",
        json={"model": str(tiny_gemma3), "text": text, "to": "en", "lgemma": {"mode": "off"}},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    data = r.json()
    segments = plan(local, text, "en")
    settings = with_length_rule(
        for_model(Settings(mode="off"), local.spec), local.tokenizer, segments, max_new_tokens_set=False
    )
    want = [line.text for line in translate_segments(local, segments, "ja", "en", settings)]
    assert data["lines"] == want and data["text"] == "\n".join(want) and (data["from"], data["to"]) == ("ja", "en")
    assert len(data["chunks"]) == 2


def test_pool_admission_and_idle_unload_without_a_network():
    """The queue rule and LRU/idle unloading, deterministic with a loader that counts."""
    from latent_gemma_cli.serve import HTTPError, ModelPool, ServerConfig

    loads = []
    pool = ModelPool(ServerConfig(queue=1, max_models=1, idle_unload_s=0.05), loader=lambda n: loads.append(n) or n)
    a1, a2 = pool.admit("a"), pool.admit("a")
    with pytest.raises(HTTPError) as info:
        pool.admit("a")
    assert info.value.status == 503 and info.value.headers["Retry-After"]
    pool.release(a2)
    pool.admit("a")  # room again
    asyncio.run(pool.ensure_loaded(a1))
    b = pool.admit("b")
    asyncio.run(pool.ensure_loaded(b))
    assert loads == ["a", "b"] and pool.slots["a"].loaded == "a"  # "a" is busy: kept past max_models
    pool.release(b)
    time.sleep(0.06)
    assert pool.unload_idle() == ["b"]


def test_stop_strings_cut_the_text_and_stream_holds_back():
    from latent_gemma_cli.serve import Cancelled, DeltaStream, cut_at_stop

    assert cut_at_stop("abc END def", ["END"]) == ("abc ", True)
    assert cut_at_stop("abc", ["END"]) == ("abc", False)

    class Tok:
        def decode(self, ids, skip_special_tokens=True):
            return "".join(ids)

    sent: list[str] = []
    stream = DeltaStream(Tok(), ["END"], sent.append)
    for piece in ["ab", "c E", "N"]:
        stream(0, piece)
    assert "".join(sent) == "abc"  # " E", "EN" held back: they may begin the stop string
    with pytest.raises(Cancelled):
        stream(0, "D more")
    assert "".join(sent) == "abc "  # the text before the stop string, as the final answer has it


def test_serve_refuses_bad_flags_before_loading(tiny_gemma3):
    for args, needle in (
        (["--queue", "-1"], "--queue"),
        (["--port", "70000"], "--port"),
        (["--idle-unload", "0"], "idle"),
    ):
        code, _, err = _cli(["serve", "-m", str(tiny_gemma3), *args], {})
        assert code == 2 and needle in err


def test_translate_through_the_server_prints_what_a_local_run_prints(server, tiny_gemma3, tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("猫が好きです。\n\n```\ncode stays\n```\n犬も好きです。\n", encoding="utf-8")
    base = ["translate", "--model", str(tiny_gemma3), "--to", "en", "--mode", "off", "--no-log", str(doc)]
    code, local_out, _ = _cli(base + ["--device", "cpu"], {})
    code2, remote_out, remote_err = _cli(base + ["--server", server.url], {})
    assert code == code2 == 0, remote_err
    assert remote_out == local_out and "code stays" in remote_out
    assert f"on {server.url}" in remote_err
    out_file = tmp_path / "out.txt"
    assert _cli(base + ["--server", server.url, "-o", str(out_file)], {})[0] == 0
    assert out_file.read_text(encoding="utf-8") == local_out
    code, _, err = _cli(base + ["--server", "http://127.0.0.1:9", "-o", str(tmp_path / "never.txt")], {})
    assert code == 8 and not (tmp_path / "never.txt").exists()


def test_a_server_without_model_flags_serves_names_not_paths(home):
    from latent_gemma_cli.serve import HTTPError, ModelPool, ServerConfig

    pool = ModelPool(ServerConfig(default_model="gemma-3-270m"), loader=lambda n: n)
    assert pool.resolve(None) == "gemma-3-270m" and pool.resolve("my-model") == "my-model"
    for path in ("/etc", "./models/x", "~/secret"):
        with pytest.raises(HTTPError) as info:
            pool.resolve(path)
        assert info.value.status == 404 and "--model" in info.value.message
