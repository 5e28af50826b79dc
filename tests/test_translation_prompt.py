"""A translator fine-tuned on the bare prompt ("Japanese: ...\\nEnglish:") is trained, validated,
evaluated and used with that prompt; untrained and older models keep the few-shot one."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from latent_gemma_cli.cli import app
from latent_gemma_cli.latent_spec import LatentSpec
from latent_gemma_cli.translation import bare_prompt, few_shot_prompt, translation_prompt_ids

runner = CliRunner()
PAIRS = [
    ("猫 は 寝 て い ま す 。", "the cat is sleeping ."),
    ("駅 は どこ で す か 。", "where is the station ?"),
    ("雨 が 降 っ て い る 。", "it is raining ."),
    ("私 は 学生 で す 。", "i am a student ."),
]


def _pairs(path):
    path.write_text(
        "".join(json.dumps({"id": f"p{i}", "ja": ja, "en": en}) + "\n" for i, (ja, en) in enumerate(PAIRS)),
        encoding="utf-8",
    )
    return path


def test_the_bare_prompt_is_the_few_shot_prompt_s_last_turn(tiny_base):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    assert few_shot_prompt("猫。", "ja", "en").endswith("\n" + bare_prompt("猫。", "ja", "en"))
    assert bare_prompt("A cat.", "en", "ja") == "English: A cat.\nJapanese:"
    bare = translation_prompt_ids(tok, "猫。", "ja", "en", "bare")
    few = translation_prompt_ids(tok, "猫。", "ja", "en")
    assert len(bare) < len(few) and tok.decode(bare, skip_special_tokens=True) == "Japanese: 猫。\nEnglish:"
    with pytest.raises(ValueError, match="unknown translation prompt"):
        translation_prompt_ids(tok, "猫。", "ja", "en", "chatty")


def test_a_translator_trained_on_the_bare_prompt_is_evaluated_and_used_with_it(tiny_base, tmp_path, monkeypatch):
    from latent_gemma_cli import engine, tasks
    from latent_gemma_cli.datasets import read_dataset

    data = _pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "enja"
    args = ["train", "--model", str(tiny_base), "--data", str(data), "--direction", "both", "--out", str(out)]
    args += ["--stages", "0", "--steps-per-stage", "1", "--batch-size", "2", "--device", "cpu", "-q"]
    trained = runner.invoke(app, [*args, "--translation-prompt", "bare"])
    assert trained.exit_code == 0, trained.stderr
    spec = LatentSpec.load(out)
    assert spec.translation_prompt == "bare" and spec.mode == "off"

    seen: list[list[int]] = []
    real = engine.Engine.generate_batch

    def spy(self, prompts, settings):
        seen.extend(list(p) for p in prompts)
        return real(self, prompts, settings)

    monkeypatch.setattr(engine.Engine, "generate_batch", spy)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    rows = read_dataset(str(data), direction="ja-en").examples
    evaluated = runner.invoke(
        app,
        [
            "eval",
            "--model",
            str(out),
            "--data",
            str(data),
            "--direction",
            "ja-en",
            "--modes",
            "off",
            "--max-new-tokens",
            "2",
            "-q",
        ],
    )
    assert evaluated.exit_code == 0, evaluated.stderr
    assert seen == [tasks.prompt_ids(tok, ex, translation_prompt="bare") for ex in rows]

    seen.clear()
    result = runner.invoke(
        app, ["translate", "--model", str(out), "--to", "en", "--max-new-tokens", "2"], input="猫。\n"
    )
    assert result.exit_code == 0, result.stderr
    assert seen == [translation_prompt_ids(tok, "猫。", "ja", "en", "bare")]

    # the base model and a model trained before the field existed keep the few-shot prompt
    seen.clear()
    older = tmp_path / "older"
    shutil.copytree(out, older)
    raw = json.loads((older / "lgemma_latent.json").read_text(encoding="utf-8"))
    del raw["translation_prompt"]
    (older / "lgemma_latent.json").write_text(json.dumps(raw), encoding="utf-8")
    for model in (older, tiny_base):
        result = runner.invoke(
            app, ["translate", "--model", str(model), "--to", "en", "--max-new-tokens", "2"], input="猫。\n"
        )
        assert result.exit_code == 0, result.stderr
    assert seen == [translation_prompt_ids(tok, "猫。", "ja", "en")] * 2


def test_the_training_rows_carry_the_chosen_prompt_and_resume_needs_the_same(tiny_base, tmp_path):
    from latent_gemma_cli.datasets import read_dataset
    from latent_gemma_cli.training.trainer import TrainConfig

    default = TrainConfig(model="m", data="d", out="o")
    assert "translation_prompt" not in default.fingerprint()  # checkpoints from before the option resume
    assert TrainConfig(model="m", data="d", out="o", translation_prompt="bare").fingerprint()["translation_prompt"] == (
        "bare"
    )
    from transformers import AutoTokenizer

    from latent_gemma_cli.training import data as data_mod
    from latent_gemma_cli.training.curriculum import Curriculum

    tok = AutoTokenizer.from_pretrained(tiny_base)
    dataset = read_dataset(str(_pairs(tmp_path / "pairs.jsonl")), direction="both")
    bare = data_mod.prepare(dataset, tok, Curriculum(max_stage=0), 256, translation_prompt="bare")
    few = data_mod.prepare(dataset, tok, Curriculum(max_stage=0), 256)
    assert [len(b) < len(f) for b, f in zip(bare.prompts, few.prompts)] == [True] * len(PAIRS) * 2
    assert bare.prompts[0] == translation_prompt_ids(tok, "猫は寝ています。", "ja", "en", "bare")


def test_an_unknown_translation_prompt_is_a_usage_error(tiny_base, tmp_path):
    data = _pairs(tmp_path / "pairs.jsonl")
    args = ["train", "--model", str(tiny_base), "--data", str(data), "--out", str(tmp_path / "x")]
    result = runner.invoke(app, [*args, "--translation-prompt", "chatty"])
    assert result.exit_code == 2 and "--translation-prompt 'chatty' is not one of few_shot, bare" in result.stderr
    assert not (tmp_path / "x").exists()
    broken = tmp_path / "broken"
    shutil.copytree(tiny_base, broken)
    LatentSpec(translation_prompt="chatty").save(broken)
    result = runner.invoke(app, ["translate", "--model", str(broken), "--to", "en"], input="猫。\n")
    assert result.exit_code == 1 and "unknown translation prompt 'chatty'" in result.stderr
