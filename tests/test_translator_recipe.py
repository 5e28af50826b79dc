"""The translator recipe's bookkeeping (benchmarks/translator.py): the length check and the paired
significance test that RESULTS.md part 10 reports."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("translator_recipe", ROOT / "benchmarks" / "translator.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["translator_recipe"] = module
    spec.loader.exec_module(module)
    return module


def _report(records: list[dict], mode: str = "off") -> dict:
    return {"modes": [mode], "examples": {mode: records}}


def test_a_sentence_may_end_inside_quotes_and_an_unfinished_one_is_caught(recipe):
    assert recipe.ends_sentence('She said to him, "I\'ll do it."')
    assert recipe.ends_sentence("「行きます。」") and recipe.ends_sentence("Really?  ")
    assert not recipe.ends_sentence("The library will be closed from") and not recipe.ends_sentence("雨が")


def test_the_length_check_reads_each_direction_s_own_source(recipe):
    # the same id names a row in both directions; a ja->en output is checked against the Japanese side
    sources = {"ja-en:test-1": "猫が寝ている。", "en-ja:test-1": "The cat is"}
    report = _report([{"id": "test-1", "prediction": "The cat", "num_tokens": 3}])
    assert recipe.length_check(report, 96, sources, "ja-en")["no_sentence_end"] == 1
    assert recipe.length_check(report, 96, sources, "en-ja")["no_sentence_end"] == 0
    assert recipe.length_check(report, 3, sources, "ja-en")["cut_at_budget"] == 1


def test_significance_pairs_rows_against_plain_and_skips_other_rows(recipe, tmp_path):
    refs = [f"the cat number {i} is sleeping on the red roof ." for i in range(40)]
    good = list(refs)
    bad = [f"a dog {i} runs" for i in range(40)]

    def write(name, preds, ids=None):
        ids = ids or [f"t{i}" for i in range(40)]
        rows = [{"id": j, "prediction": p, "reference": r} for j, p, r in zip(ids, preds, refs)]
        (tmp_path / "reports").mkdir(exist_ok=True)
        (tmp_path / "reports" / f"{name}-ja-en.json").write_text(json.dumps(_report(rows, name.split("-")[-1])))

    write("plain-off", good)
    write("latent-coconut", bad)
    write("latent-off", good)
    write("base-off", bad, ids=[f"other{i}" for i in range(40)])  # other rows: no paired test
    result = recipe.significance(tmp_path, "ja-en", "13a")
    assert set(result) == {"latent-coconut", "latent-off"}
    assert result["latent-coconut"]["bleu_p"] < 0.01 and result["latent-coconut"]["chrf_p"] < 0.01
    assert result["latent-off"] == {"bleu_p": 1.0, "chrf_p": 1.0}  # identical outputs


def _args(recipe, tmp_path, *options):
    """The recipe's own options and defaults, on a small run."""
    small = ["--data-dir", str(tmp_path), "--model", "m", "--train-rows", "8", "--steps", "2", "--batch-size", "2"]
    return recipe.parser().parse_args([*small, *options])


def test_the_latent_model_trains_with_the_chosen_feedback_and_plain_never_does(recipe, tmp_path):
    args = _args(recipe, tmp_path, "--feedback", "token_mix")
    latent = recipe.train_cmd("latent", args, tmp_path / "latent")
    assert latent[latent.index("--feedback") + 1] == "token_mix" and latent[latent.index("-c") + 1] == "2"
    assert "--feedback" not in recipe.train_cmd("plain", args, tmp_path / "plain")
    args.feedback = "identity"  # the default adds nothing: earlier runs' commands are unchanged
    assert "--feedback" not in recipe.train_cmd("latent", args, tmp_path / "latent")


def test_both_models_train_with_the_chosen_translation_prompt_and_precision(recipe, tmp_path):
    args = _args(recipe, tmp_path, "--translation-prompt", "bare", "--precision", "bf16")
    for kind in ("plain", "latent"):
        cmd = recipe.train_cmd(kind, args, tmp_path / kind)
        assert cmd[cmd.index("--translation-prompt") + 1] == "bare" and cmd[cmd.index("--precision") + 1] == "bf16"
    args.translation_prompt, args.precision = "few_shot", "auto"  # defaults add nothing: earlier commands stay
    cmd = recipe.train_cmd("plain", args, tmp_path / "plain")
    assert "--translation-prompt" not in cmd and "--precision" not in cmd
