"""Hub datasets (`--data hf:OWNER/NAME[/CONFIG][@REVISION][:SPLIT]`) and `download --dataset`,
against the stand-in hub on 127.0.0.1 (tests/hubserver.py).

Reading goes through the `datasets` library, which reads HF_ENDPOINT and the cache location
when it is imported; so reads run as `lgemma` subprocesses started with the stand-in hub's
environment, as a user's shell would start them. `download --dataset` uses huggingface_hub
alone and runs in-process with its constants pointed at the stand-in (as test_download.py does).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hubserver import HubServer
from test_download import CHUNK, _point_hub_at
from typer.testing import CliRunner

from latent_gemma_cli.cli import app

runner = CliRunner()
QA_ROWS = [{"question": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(30)]
V1_ROWS = [{"question": f"Old question {i}?", "answer": f"old {i}"} for i in range(3)]


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def _parquet(columns: dict[str, list], row_group_size: int = 4) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf, row_group_size=row_group_size)
    return buf.getvalue()


# Rows as llm-japanese-dataset's JESC subset ships them: the instruction says ja->en, and in some
# rows the input is English and the output Japanese (the public report the filter answers).
JESC = [
    {"instruction": "次の日本語を英語に翻訳してください。", "input": "猫が好きです。", "output": "I like cats."},
    {
        "instruction": "次の日本語を英語に翻訳してください。",
        "input": "you are back, aren't you?",
        "output": "戻ったのね",
    },
    {"instruction": "次の英語を日本語に翻訳してください。", "input": "Good morning.", "output": "おはようございます。"},
    {"instruction": "次の英語を日本語に翻訳してください。", "input": "ありがとう", "output": "Thank you"},
    {"instruction": "日本の首都はどこですか。", "input": "", "output": "東京です。"},
]


@pytest.fixture
def data_hub(monkeypatch, tmp_path):
    server = HubServer().start()
    server.add_repo(
        "test-org/qa",
        extra={
            "README.md": b"# qa\n",
            "data/train.jsonl": _jsonl(QA_ROWS),
            "data/test.jsonl": _jsonl(QA_ROWS[:5]) + b'{"question": "", "answer": "x"}\n' + _jsonl(QA_ROWS[5:8]),
        },
        repo_type="dataset",
    )
    server.add_revision("datasets/test-org/qa", "v1", "1" * 40, {"data/train.jsonl": _jsonl(V1_ROWS)})
    # Three shards of twenty rows: streaming with --limit must stop inside the first.
    # A column of hex digests makes each shard big enough (~30 KB) to be cut mid-transfer.
    shards = {
        f"data/train-0000{k}-of-00003.parquet": _parquet(
            {
                "prompt": [f"p{k}-{i}" for i in range(20)],
                "response": [f"r{k}-{i}" for i in range(20)],
                "pad": [
                    "".join(hashlib.sha256(f"{k}-{i}-{j}".encode()).hexdigest() for j in range(40)) for i in range(20)
                ],
            }
        )
        for k in range(3)
    }
    server.add_repo("test-org/pq", extra=shards, repo_type="dataset")
    server.add_repo("test-org/jesc", extra={"train.jsonl": _jsonl(JESC)}, repo_type="dataset")
    server.add_repo(
        "test-org/gated", extra={"train.jsonl": _jsonl(QA_ROWS)}, repo_type="dataset", error=(401, "GatedRepo")
    )
    _point_hub_at(monkeypatch, tmp_path, server.url)
    yield server
    server.stop()


def cli(hub: HubServer, tmp_path: Path, *args, offline: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(
        {
            "HF_ENDPOINT": hub.url,
            "HF_HOME": str(tmp_path / "hf-home"),
            "HF_HUB_CACHE": str(tmp_path / "hf-home" / "hub"),
            "HF_HUB_OFFLINE": "1" if offline else "0",
            "HF_DATASETS_OFFLINE": "1" if offline else "0",
            "LGEMMA_HOME": str(tmp_path / "lgemma-home"),
        }
    )
    env.pop("HF_TOKEN", None)
    cmd = [sys.executable, "-m", "latent_gemma_cli", *[str(a) for a in args]]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def predictions_file(tmp_path: Path, answers: list[str]) -> Path:
    path = tmp_path / "preds.txt"
    path.write_text("".join(a + "\n" for a in answers), encoding="utf-8")
    return path


def eval_json(hub, tmp_path, data: str, answers: list[str], *extra, offline: bool = False) -> tuple[int, dict, str]:
    preds = predictions_file(tmp_path, answers)
    proc = cli(hub, tmp_path, "eval", "--data", data, "--predictions", preds, "--json", *extra, offline=offline)
    return proc.returncode, (json.loads(proc.stdout) if proc.returncode == 0 else {}), proc.stderr


def test_reference_parsing():
    from latent_gemma_cli.errors import UsageError
    from latent_gemma_cli.hub_data import HubDataRef, parse_ref

    assert parse_ref("hf:a/b") == HubDataRef("a/b")
    assert parse_ref("hf:izumi-lab/llm-japanese-dataset@v1.0.3:train") == HubDataRef(
        "izumi-lab/llm-japanese-dataset", None, "v1.0.3", "train"
    )
    assert parse_ref("hf:shunk031/JGLUE/JSQuAD:validation") == HubDataRef(
        "shunk031/JGLUE", "JSQuAD", None, "validation"
    )
    for bad in ("hf:", "hf:onlyname", "hf:a/b:", "hf:a/b@", "hf:../x/y", "hf:a/b c"):
        with pytest.raises(UsageError):
            parse_ref(bad)


def test_eval_reads_a_split_a_revision_and_reports_bad_rows_by_row_index(data_hub, tmp_path):
    code, report, err = eval_json(data_hub, tmp_path, "hf:test-org/qa:test", [r["answer"] for r in QA_ROWS[:8]])
    assert code == 0, err
    data = report["data"]
    assert data["path"] == "hf:test-org/qa@0123456789ab:test"
    assert data["hub"]["commit"] == data_hub.repos["datasets/test-org/qa"].commit and data["hub"]["split"] == "test"
    assert data["rows"] == 8 and data["bad_records"] == 1
    assert data["problems"][0]["message"] == "row 5: 'question' is empty"
    assert "hf:test-org/qa@0123456789ab:test: row 5: 'question' is empty" in err
    assert report["results"]["predictions"]["metrics"]["accuracy"] == 100.0

    # A revision: another commit's rows. Without :SPLIT the only split is taken.
    code, report, err = eval_json(data_hub, tmp_path, "hf:test-org/qa@v1", [r["answer"] for r in V1_ROWS])
    assert code == 0, err
    assert report["data"]["hub"]["commit"] == "1" * 40 and report["data"]["rows"] == 3
    assert report["results"]["predictions"]["metrics"]["accuracy"] == 100.0

    # Several splits and none named: eval prefers "test"; an unknown split is named with the real ones.
    code, report, err = eval_json(data_hub, tmp_path, "hf:test-org/qa", [r["answer"] for r in QA_ROWS[:8]])
    assert code == 0 and report["data"]["split"] == "test", err
    code, _, err = eval_json(data_hub, tmp_path, "hf:test-org/qa:dev", ["x"])
    assert code == 2 and "no split 'dev'" in err and "train" in err and "Traceback" not in err


def test_streaming_parquet_with_columns_stops_at_the_limit(data_hub, tmp_path):
    answers = [f"r0-{i}" for i in range(7)]
    code, report, err = eval_json(
        data_hub,
        tmp_path,
        "hf:test-org/pq",
        answers,
        "--columns",
        "question=prompt,answer=response",
        "--limit",
        "7",
    )
    assert code == 0, err
    assert report["data"]["rows"] == 7 and report["results"]["predictions"]["metrics"]["accuracy"] == 100.0
    fetched = {r.path.rsplit("/", 1)[-1] for r in data_hub.seen("GET", "/resolve/")}
    assert "train-00000-of-00003.parquet" in fetched
    assert not fetched & {"train-00001-of-00003.parquet", "train-00002-of-00003.parquet"}, fetched

    # Without the mapping the columns name no known format: one line, exit 2.
    code, _, err = eval_json(data_hub, tmp_path, "hf:test-org/pq", answers, "--limit", "7")
    assert code == 2 and "cannot tell the format" in err and "--columns" in err


def test_missing_gated_and_offline_errors_have_their_exit_codes(data_hub, tmp_path):
    code, _, err = eval_json(data_hub, tmp_path, "hf:test-org/nothing:test", ["x"])
    assert code == 7 and "no dataset 'test-org/nothing'" in err
    code, _, err = eval_json(data_hub, tmp_path, "hf:test-org/gated:train", ["x"])
    assert code == 4 and "gated" in err
    code, _, err = eval_json(data_hub, tmp_path, "hf:test-org/qa@nope:test", ["x"])
    assert code == 7 and "no revision 'nope'" in err
    code, _, err = eval_json(data_hub, tmp_path, "hf:test-org/qa:test", ["x"], "--offline")
    assert code == 3 and "not in the Hugging Face cache" in err and "lgemma download --dataset test-org/qa" in err
    assert "Traceback" not in err


def test_download_then_offline_reads_from_the_cache(data_hub, tmp_path):
    done = runner.invoke(app, ["download", "--dataset", "test-org/qa", "--json"])
    assert done.exit_code == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["files"] == ["README.md", "data/test.jsonl", "data/train.jsonl"]
    assert info["verified_files"] == 3 and info["commit"] == data_hub.repos["datasets/test-org/qa"].commit
    assert Path(info["path"]).parts[-3:-1] == ("datasets--test-org--qa", "snapshots")

    requests_before = len(data_hub.requests)
    answers = [r["answer"] for r in QA_ROWS[:8]]
    code, report, err = eval_json(data_hub, tmp_path, "hf:test-org/qa:test", answers, offline=True)
    assert code == 0, err
    assert report["data"]["rows"] == 8 and report["data"]["hub"]["commit"] == info["commit"]
    assert len(data_hub.requests) == requests_before, "offline must not touch the hub"
    # --offline says the same without HF_HUB_OFFLINE.
    code, report, err = eval_json(data_hub, tmp_path, "hf:test-org/qa:test", answers, "--offline")
    assert code == 0 and report["data"]["rows"] == 8, err
    assert len(data_hub.requests) == requests_before

    # A revision that was never downloaded is named.
    code, _, err = eval_json(data_hub, tmp_path, "hf:test-org/qa@v1", ["x"], offline=True)
    assert code == 3 and "at revision 'v1'" in err and "--revision v1" in err


def test_download_dataset_resumes_an_interrupted_transfer_and_maps_errors(data_hub, tmp_path):
    name = "data/train-00001-of-00003.parquet"
    data = data_hub.repos["datasets/test-org/pq"].files[name]
    cut = len(data) // 2 // CHUNK * CHUNK
    assert cut > 0, "the shard must span several chunks"
    data_hub.drop_first_get[name] = cut
    done = runner.invoke(app, ["download", "--dataset", "test-org/pq", "--json"])
    assert done.exit_code == 0, done.stderr
    gets = data_hub.seen("GET", "/" + name)
    assert len(gets) == 2 and gets[1].headers["range"] == f"bytes={cut}-"
    assert (Path(json.loads(done.stdout)["path"]) / name).read_bytes() == data

    assert runner.invoke(app, ["download", "--dataset", "test-org/nothing"]).exit_code == 7
    gated = runner.invoke(app, ["download", "--dataset", "test-org/gated"])
    assert gated.exit_code == 4 and "lgemma download --dataset test-org/gated" in gated.stderr
    bad = runner.invoke(app, ["download", "--dataset", "test-org/qa:train"])
    assert bad.exit_code == 2
    both = runner.invoke(app, ["download", "gemma-3-270m", "--dataset", "test-org/qa"])
    assert both.exit_code == 2


def test_filter_lang_drops_rows_whose_languages_contradict_the_instruction(data_hub, tmp_path):
    from latent_gemma_cli.datasets import DataOptions, read_dataset

    local = tmp_path / "jesc.jsonl"
    local.write_bytes(_jsonl(JESC))
    kept = read_dataset(local, options=DataOptions(filter_lang=True))
    assert kept.filtered == 2
    assert [e.answer for e in kept.examples] == ["I like cats.", "おはようございます。", "東京です。"]
    assert len(read_dataset(local).examples) == 5, "without the flag every row is kept"

    code, report, err = eval_json(
        data_hub, tmp_path, "hf:test-org/jesc", [e.answer for e in kept.examples], "--filter-lang"
    )
    assert code == 0, err
    assert report["data"]["filtered_by_language"] == 2 and report["data"]["rows"] == 3
    assert "--filter-lang dropped 2 rows" in err


def test_translation_claims_and_text_languages():
    from latent_gemma_cli.datasets import translation_claim
    from latent_gemma_cli.language import text_language

    assert translation_claim("次の日本語を英語に翻訳してください。") == ("ja", "en")
    assert translation_claim("以下の英文を日本語に訳してください") == ("en", "ja")
    assert translation_claim("Translate the following English sentence into Japanese.") == ("en", "ja")
    assert translation_claim("和訳してください") == ("en", "ja")
    assert translation_claim("要約してください") is None
    assert text_language("you are back, aren't you, harold?") == "en"
    assert text_language("あなたは戻ったのね ハロルド?") == "ja"
    assert text_language("東京都港区") == "ja"
    assert text_language("我们今天去北京大学参观了图书馆") != "ja"


def test_columns_apply_to_local_files_too(tmp_path):
    from latent_gemma_cli.datasets import DataOptions, parse_columns, read_dataset
    from latent_gemma_cli.errors import UsageError

    path = tmp_path / "odd.jsonl"
    path.write_text('{"prompt": "2+2?", "response": "4"}\n', encoding="utf-8")
    ds = read_dataset(path, options=DataOptions(columns=parse_columns("question=prompt,answer=response")))
    assert ds.format == "jsonl" and (ds.examples[0].question, ds.examples[0].answer) == ("2+2?", "4")
    for bad in ("question", "question=", "=x", "1x=y", "question=a,answer=a"):
        with pytest.raises(UsageError):
            parse_columns(bad)


def test_train_reads_a_hub_dataset(data_hub, tmp_path, tiny_gemma2):
    out = tmp_path / "trained"
    proc = cli(
        data_hub,
        tmp_path,
        "train",
        "--model",
        tiny_gemma2,
        "--data",
        "hf:test-org/qa",
        "--limit",
        "6",
        "--out",
        out,
        "--stages",
        "0",
        "--steps-per-stage",
        "1",
        "--batch-size",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    fingerprints = json.loads((out / "train_fingerprints.json").read_text())
    assert len(fingerprints["rows"]) == 6
