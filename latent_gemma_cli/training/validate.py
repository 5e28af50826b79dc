"""Validation accuracy at the end of a stage, decoded and graded the way `lgemma eval` does.

Stage 0 is checked in `off` mode (its layout has no markers); stage s >= 1 in `coconut` mode
with min(s, N) * c thoughts. The prompt and the grading are `tasks.prompt_ids` and
`tasks.clean_output` + `tasks.score`, the same as eval's, so the accuracy here is eval's.
"""

from __future__ import annotations

import time
from typing import Any


def validate(trainer: Any, stage: int, show: int = 0) -> dict:
    """Accuracy on the validation rows at `stage`'s layout; with `show`, also the first `show`
    outputs (`examples`: gold steps and answer, output, correct)."""
    import torch

    from .. import tasks
    from ..engine import Engine, Settings
    from ..latent_spec import LatentSpec

    cfg = trainer.config
    cur = cfg.curriculum
    n = min(stage, cur.max_stage) * cur.thoughts_per_step
    mode = "off" if stage == 0 else "coconut"
    spec = LatentSpec(
        bot=trainer.markers[0],
        eot=trainer.markers[1],
        thoughts_per_step=cur.thoughts_per_step,
        num_thoughts=n,
        feedback=cfg.feedback,
        pause=trainer.markers[2] if len(trainer.markers) > 2 else None,
    )
    model = trainer.hf
    was = model.training
    model.eval()
    engine = Engine(model, trainer.tokenizer, spec)
    # Rows of one task share stop ids, so they are decoded together in left-padded greedy batches
    # of the training batch size (the same answers as one at a time; eval batches the same way).
    by_task: dict[str, list] = {}
    for ex in trainer.valid:
        by_task.setdefault(tasks.task_of(ex), []).append(ex)
    size = max(1, cfg.batch_size)
    # a language stage trained with <bot> after the prompt is checked with it there too
    bot = [trainer.marker_ids[0]] if stage == 0 and cur.stage0_bot else []
    correct, start, examples = 0, time.perf_counter(), []
    try:
        for task, rows in by_task.items():
            settings = Settings(
                mode=mode,
                num_thoughts=n,
                max_new_tokens=cfg.valid_max_new_tokens,
                stop_ids=tasks.stop_ids(trainer.tokenizer, task),
            )
            for i in range(0, len(rows), size):
                batch = rows[i : i + size]
                prompts = [
                    tasks.prompt_ids(trainer.tokenizer, ex, translation_prompt=cfg.translation_prompt) + bot
                    for ex in batch
                ]
                with torch.autocast(engine.runner.device.type, enabled=False):
                    gens = engine.generate_batch(prompts, settings)
                for ex, gen in zip(batch, gens):
                    ok = tasks.score(ex, tasks.clean_output(ex, gen.answer, trainer.tokenizer)).correct
                    correct += ok
                    if len(examples) < show:
                        examples.append({"gold": [*ex.steps, ex.answer], "output": gen.answer, "correct": bool(ok)})
    finally:
        model.train(was)
    total = len(trainer.valid)
    result = {
        "mode": mode,
        "thoughts": n,
        "rows": total,
        "accuracy": correct / total if total else None,
        "seconds": time.perf_counter() - start,
    }
    if show:
        result["examples"] = examples
    return result
