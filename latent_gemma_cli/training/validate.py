"""Validation accuracy at the end of a stage, decoded the way inference will decode.

Stage 0 is checked in `off` mode (its layout has no markers); stage s >= 1 in `coconut` mode
with min(s, N) * c thoughts. The answer is `answers.extract_answer` of the greedy output,
compared to the reference after normalisation (case, surrounding space, a final period).
"""

from __future__ import annotations

import time
from typing import Any


def normalise(text: str) -> str:
    return " ".join(text.strip().rstrip(".").casefold().split())


def validate(trainer: Any, stage: int) -> dict:
    import torch

    from ..answers import extract_answer
    from ..engine import LatentRunner, Settings, generate
    from ..latent_spec import LatentSpec
    from .data import example_prompt

    cfg = trainer.config
    cur = cfg.curriculum
    n = min(stage, cur.max_stage) * cur.thoughts_per_step
    mode = "off" if stage == 0 else "coconut"
    spec = LatentSpec(bot=trainer.markers[0], eot=trainer.markers[1], thoughts_per_step=cur.thoughts_per_step, num_thoughts=n,
                      feedback=cfg.feedback)
    model = trainer.hf
    was = model.training
    model.eval()
    runner = LatentRunner(model)
    correct, start = 0, time.perf_counter()
    try:
        for ex in trainer.valid:
            ids = example_prompt(trainer.tokenizer, ex)
            settings = Settings(mode=mode, num_thoughts=n, max_new_tokens=cfg.valid_max_new_tokens)
            with torch.autocast(runner.device.type, enabled=False):
                gen = generate(model, trainer.tokenizer, ids, settings, spec=spec, runner=runner)
            correct += normalise(extract_answer(gen.answer)) == normalise(ex.answer)
    finally:
        model.train(was)
    total = len(trainer.valid)
    return {"mode": mode, "thoughts": n, "rows": total, "accuracy": correct / total if total else None, "seconds": time.perf_counter() - start}
