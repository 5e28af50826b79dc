"""Data readers: every format on a few rows shaped like the shared files, bad records, strict mode."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from latent_gemma_cli.datasets import (
    FORMATS,
    Example,
    detect_format,
    detokenize,
    read_dataset,
    row_fingerprint,
    split_name,
)
from latent_gemma_cli.errors import InputError, UsageError


def write_lines(path: Path, rows: list) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


PAIRS = [
    {
        "id": "test-0001",
        "ja": "彼 ら は つい に それ が 真実 だ と 認め た 。",
        "en": "they finally acknowledged it as true .",
    },
    {"id": "test-0002", "ja": "彼 は 水泳 が 得意 で は な かっ た 。", "en": "he didn 't care for swimming ."},
    {
        "id": "test-0003",
        "ja": "１０ 時 前 に 戻 ら な けれ ば な ら な い 。",
        "en": "no . i 'm sorry , i 've got to go back early .",
    },
]
JCQA = [
    {
        "q_id": 8939,
        "question": "電子機器で使用される最も主要な電子回路基板の事をなんと言う？",
        "choice0": "掲示板",
        "choice1": "パソコン",
        "choice2": "マザーボード",
        "choice3": "ハードディスク",
        "choice4": "まな板",
        "label": 2,
    },
    {
        "q_id": 8940,
        "question": "田んぼが広がる風景を何という？",
        "choice0": "畑",
        "choice1": "海",
        "choice2": "田園",
        "choice3": "地方",
        "choice4": "牧場",
        "label": 2,
    },
]
PROSQA = [
    {
        "question": "Every wumpus is a yumpus. Tom is a wumpus. Is Tom a yumpus or zumpus?",
        "answer": "Tom is a yumpus.",
        "steps": ["Tom is a wumpus.", "Every wumpus is a yumpus."],
        "idx_to_symbol": ["wumpus", "yumpus"],
        "edges": [[0, 1]],
        "root": 0,
        "target": 1,
        "neg_target": 0,
    },
    {
        "question": "Every gorpus is a lempus. Alex is a gorpus. Is Alex a lempus or a brimpus?",
        "answer": "Alex is a lempus.",
        "steps": ["Alex is a gorpus.", "Every gorpus is a lempus."],
    },
]
GSM = [
    {"question": "John has 3 apples and buys 2. How many?", "steps": ["<<3+2=5>>"], "answer": "5"},
    {"question": "What is 4 times 2?", "steps": [""], "answer": "8"},
]
JSQUAD = {
    "version": "v1.0",
    "data": [
        {
            "title": "梅雨",
            "paragraphs": [
                {
                    "context": "梅雨 [SEP] 梅雨は、北海道と小笠原諸島を除く日本でみられる気象現象である。",
                    "qas": [
                        {
                            "question": "日本で梅雨がないのは北海道とどこか。",
                            "id": "a1p0q0",
                            "answers": [
                                {"text": "小笠原諸島", "answer_start": 9},
                                {"text": "小笠原諸島を除く日本", "answer_start": 9},
                            ],
                            "is_impossible": False,
                        },
                        {"question": "梅雨とは何か。", "id": "a1p0q1", "answers": [], "is_impossible": False},
                    ],
                }
            ],
        }
    ],
}


def test_detokenize_japanese_and_english():
    assert detokenize("彼 ら は つい に それ が 真実 だ と 認め た 。", "ja") == "彼らはついにそれが真実だと認めた。"
    # Spaces between two Latin words survive; spaces next to Japanese go.
    assert detokenize("New York で CD を 買 っ た 。", "ja") == "New YorkでCDを買った。"
    assert (
        detokenize("no . i 'm sorry , i 've got to go back early .", "en")
        == "No. I'm sorry, I've got to go back early."
    )
    assert detokenize("he didn 't care for swimming .", "en") == "He didn't care for swimming."
    assert detokenize("i do n't know .", "en") == "I don't know."
    assert detokenize("he said , '' it 's nine o 'clock . ''", "en") == "He said, \"it's nine o'clock.\""
    assert detokenize("read '' gone with the wind '' now .", "en") == 'Read "gone with the wind" now.'


def test_pairs_reader_detokenizes_and_follows_direction(tmp_path):
    path = write_lines(tmp_path / "test.jsonl", PAIRS)
    ds = read_dataset(path)
    assert ds.format == "pairs" and ds.problems == []
    assert ds.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    first = ds.examples[0]
    assert (first.question, first.answer) == (
        "彼らはついにそれが真実だと認めた。",
        "They finally acknowledged it as true.",
    )
    assert (first.task, first.source_lang, first.target_lang, first.id) == ("translate", "ja", "en", "test-0001")
    en_ja = read_dataset(path, direction="en-ja").examples[1]
    assert (en_ja.question, en_ja.answer, en_ja.source_lang) == (
        "He didn't care for swimming.",
        "彼は水泳が得意ではなかった。",
        "en",
    )
    both = read_dataset(path, direction="both")
    assert len(both) == 6
    assert [e.id for e in both.examples[:2]] == ["test-0001:ja-en", "test-0001:en-ja"]
    with pytest.raises(UsageError):
        read_dataset(path, direction="ja-fr")


def test_jsonl_training_format(tmp_path):
    path = write_lines(
        tmp_path / "train.jsonl",
        [
            {"question": "Q1?", "steps": ["s1", "s2"], "answer": "A1", "lang": "en"},
            {"question": "質問", "answer": "答え"},
        ],
    )
    ds = read_dataset(path)
    assert ds.format == "jsonl"
    assert ds.examples[0] == Example(question="Q1?", answer="A1", steps=["s1", "s2"], lang="en")
    assert ds.examples[1].steps == [] and ds.examples[1].task == "qa"


def test_coconut_list_prosqa_and_gsm8k(tmp_path):
    prosqa = tmp_path / "prosqa_valid.json"
    prosqa.write_text(json.dumps(PROSQA, indent=1), encoding="utf-8")
    ds = read_dataset(prosqa)
    assert ds.format == "coconut" and len(ds) == 2
    assert ds.examples[0].answer == "Tom is a yumpus." and ds.examples[0].steps == [
        "Tom is a wumpus.",
        "Every wumpus is a yumpus.",
    ]
    gsm = tmp_path / "gsm_test.json"
    gsm.write_text(json.dumps(GSM), encoding="utf-8")
    ds = read_dataset(gsm)
    # GSM8k's iCoT files write steps [""] for solutions without a calculator step: kept, step dropped.
    assert [e.answer for e in ds.examples] == ["5", "8"] and ds.examples[1].steps == [] and ds.problems == []


def test_coconut_bad_records_have_lines(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(
        '[\n{"question": "q", "answer": "a"},\n{"question": "q2"},\n{"question": "", "answer": "a"},\n3\n]\n',
        encoding="utf-8",
    )
    ds = read_dataset(path)
    assert len(ds) == 1
    assert [(p.line, p.message) for p in ds.problems] == [
        (3, "record 1: missing key 'answer'"),
        (4, "record 2: 'question' is empty"),
        (5, "record 3: expected a JSON object, got int"),
    ]
    assert all(p.path == str(path) for p in ds.problems)
    broken = tmp_path / "broken.json"
    broken.write_text('[\n{"question": "q", "answer": "a"},\n{"question": oops}\n]', encoding="utf-8")
    with pytest.raises(InputError, match="line 3"):
        read_dataset(broken)


def test_instruction_layout(tmp_path):
    path = write_lines(
        tmp_path / "llm-japanese.jsonl",
        [
            {
                "instruction": "次の文を英語にしてください。",
                "input": "猫が寝ている。",
                "output": "The cat is sleeping.",
            },
            {"instruction": "日本の首都は？", "input": "", "output": "東京です。"},
        ],
    )
    ds = read_dataset(path)
    assert ds.format == "instruction"
    assert ds.examples[0].question == "次の文を英語にしてください。\n\n猫が寝ている。"
    assert ds.examples[1].question == "日本の首都は？" and ds.examples[1].answer == "東京です。"


def test_jcommonsenseqa(tmp_path):
    ds = read_dataset(write_lines(tmp_path / "valid.jsonl", JCQA))
    assert ds.format == "jcommonsenseqa"
    ex = ds.examples[0]
    assert (ex.task, ex.label, ex.answer, ex.id, len(ex.choices)) == ("choice", 2, "マザーボード", "8939", 5)


def test_jsquad_keeps_references_and_reports_bad_qas(tmp_path):
    path = tmp_path / "valid.json"
    path.write_text(json.dumps(JSQUAD, ensure_ascii=False), encoding="utf-8")
    ds = read_dataset(path)
    assert ds.format == "jsquad" and len(ds) == 1
    ex = ds.examples[0]
    assert (
        ex.question
        == "梅雨\n梅雨は、北海道と小笠原諸島を除く日本でみられる気象現象である。\n\n日本で梅雨がないのは北海道とどこか。"
    )
    assert ex.answer == "小笠原諸島" and ex.references == ["小笠原諸島", "小笠原諸島を除く日本"]
    assert len(ds.problems) == 1 and "qas[1]" in ds.problems[0].message and "answers" in ds.problems[0].message


def test_bad_lines_reported_with_file_and_line_then_strict_raises(tmp_path):
    path = write_lines(
        tmp_path / "data.jsonl",
        [
            JCQA[0],
            "{not json",
            {**JCQA[1], "label": 7},
            {**JCQA[1], "question": 3},
            "",
            {**JCQA[1], "choice1": ""},
            JCQA[1],
        ],
    )
    ds = read_dataset(path, fmt="jcommonsenseqa")
    assert len(ds) == 2
    assert [p.line for p in ds.problems] == [2, 3, 4, 6]
    assert "invalid JSON" in ds.problems[0].message
    assert "label" in ds.problems[1].message
    assert "'question' must be a string" in ds.problems[2].message
    assert "'choice1' is empty" in ds.problems[3].message
    assert str(ds.problems[0]).startswith(f"{path}:2: ")
    with pytest.raises(InputError) as err:
        read_dataset(path, strict=True)
    assert f"{path}, line 2" in err.value.message


def test_limit_stops_reading(tmp_path):
    path = write_lines(tmp_path / "test.jsonl", PAIRS)
    assert [e.id for e in read_dataset(path, limit=2).examples] == ["test-0001", "test-0002"]
    assert len(read_dataset(path, direction="both", limit=3)) == 3


def test_missing_directory_not_utf8_empty_unknown(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_dataset(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="directory"):
        read_dataset(tmp_path)
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"question": "caf\xe9", "answer": "x"}\n'.encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8") as err:
        read_dataset(bad)
    assert str(bad) in err.value.message
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(InputError, match="empty"):
        read_dataset(empty)
    odd = write_lines(tmp_path / "odd.jsonl", [{"foo": 1}])
    with pytest.raises(InputError, match="cannot tell the format"):
        read_dataset(odd)
    with pytest.raises(UsageError):
        read_dataset(odd, fmt="csv")


def test_detect_format_covers_every_format():
    samples = {
        "jsonl": '{"question": "q", "answer": "a"}\n',
        "coconut": '[{"question": "q", "answer": "a", "steps": []}]',
        "instruction": '{"instruction": "i", "input": "", "output": "o"}\n',
        "pairs": '{"id": "x", "ja": "猫", "en": "cat"}\n',
        "jcommonsenseqa": json.dumps(JCQA[0]) + "\n",
        "jsquad": json.dumps(JSQUAD, indent=2),
        "squad": '{"id": "1", "context": "c", "question": "q", "answer_start": 0, "answers": {"text": ["a"]}}\n',
    }
    assert sorted(samples) == sorted(FORMATS)
    for fmt, text in samples.items():
        assert detect_format(text) == fmt


def test_row_fingerprint_is_normalised_and_stable():
    a = Example(question="Tokyo  is the capital?", answer="YES")
    b = Example(question="tokyo is the capital?", answer="yes", steps=["x"], id="other")
    assert row_fingerprint(a) == row_fingerprint(b)
    assert row_fingerprint(a) == hashlib.sha1("tokyo is the capital?\nyes".encode()).hexdigest()
    assert row_fingerprint(a) != row_fingerprint(Example(question="tokyo is the capital?", answer="no"))


def test_split_name():
    assert split_name("data/small_parallel_enja/test.jsonl") == "test"
    assert split_name("prosqa_valid.json") == "valid"
    assert split_name("dev.jsonl") == "dev"
    assert split_name("train.jsonl") == "train"
    assert split_name("contest.jsonl") is None
