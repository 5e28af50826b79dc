"""The earlier public library's Python surface, served by the engine."""

from __future__ import annotations

import torch

import latent_gemma_cli
from latent_gemma_cli import engine
from latent_gemma_cli.latent_spec import LatentSpec
from latent_gemma_cli.prompting import prompt_ids


def test_default_config_keys():
    cfg = latent_gemma_cli.LatentReasoningGemmaForCausalLM.DEFAULT_CONFIG
    for key in ("continuous_thoughts", "cot_decoding_k", "max_length"):
        assert key in cfg


def test_generate_answer_is_most_confident_path(tiny_gemma2):
    cls = latent_gemma_cli.LatentReasoningGemmaForCausalLM
    model = cls.from_pretrained(str(tiny_gemma2))
    question = "東京は日本の首都ですか？"
    text = model.generate_answer(model=model, tokenizer=model.tokenizer, question=question, k=3, max_length=40)
    ids = prompt_ids(model.tokenizer, question)
    gen = engine.generate(
        model.model,
        model.tokenizer,
        ids,
        engine.Settings(mode="soft", num_thoughts=4, paths=3, max_new_tokens=40 - len(ids)),
    )
    assert text == gen.answer
    assert text == gen.paths[gen.chosen].text


def test_generate_returns_prompt_plus_answer_within_max_length(tiny_gemma2):
    model = latent_gemma_cli.LatentReasoningGemmaForCausalLM.from_pretrained(str(tiny_gemma2))
    ids = model.tokenizer("Is Tom a lempus?", return_tensors="pt").input_ids
    out = model.generate(ids, max_length=ids.shape[1] + 5)
    assert out.shape[0] == 1
    assert torch.equal(out[0, : ids.shape[1]], ids[0])
    assert ids.shape[1] < out.shape[1] <= ids.shape[1] + 5


def test_trained_model_uses_coconut(tiny_gemma2, tmp_path):
    import shutil

    trained = tmp_path / "trained"
    shutil.copytree(tiny_gemma2, trained)
    LatentSpec(num_thoughts=2).save(trained)
    model = latent_gemma_cli.LatentReasoningGemmaForCausalLM.from_pretrained(str(trained))
    settings = model._settings(k=2, max_new_tokens=4)
    assert settings.mode == "coconut" and settings.num_thoughts is None
    question = "Is Tom a lempus?"
    gen = engine.generate(
        model.model, model.tokenizer, prompt_ids(model.tokenizer, question), settings, spec=model.spec
    )
    assert gen.num_thoughts == 2
    assert model.generate_answer(question=question, k=2, max_length=len(gen.prompt_ids) + 4) == gen.answer


def test_a_stage_0_fine_tune_runs_without_thoughts_through_the_api(tiny_gemma2, tmp_path):
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(tiny_gemma2, plain)
    LatentSpec(num_thoughts=0, mode="off", curriculum={"stages": [0]}).save(plain)
    model = latent_gemma_cli.LatentReasoningGemmaForCausalLM.from_pretrained(str(plain))
    settings = model._settings(k=1, max_new_tokens=4)
    assert settings.mode == "off"
    question = "Is Tom a lempus?"
    ids = prompt_ids(model.tokenizer, question)
    gen = engine.generate(model.model, model.tokenizer, ids, settings, spec=model.spec)
    assert gen.num_thoughts == 0
    assert model.generate_answer(question=question, k=1, max_length=len(ids) + 4) == gen.answer
