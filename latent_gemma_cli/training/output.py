"""The trained model directory: a normal Hugging Face checkpoint plus lgemma's two JSON files.

* weights (`save_pretrained`, safetensors; LoRA merged in), config, generation config, tokenizer;
* `lgemma_latent.json`: the LatentSpec (markers as strings, c, N * c thoughts, `identity`
  feedback, base model, curriculum and training settings, training data sha256);
* `train_fingerprints.json`: the training rows' fingerprints, so evaluation can warn about
  evaluating on training rows.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..contamination import FINGERPRINTS_FILE, training_fingerprints


def check_out_dir(out: str | Path, model_path: str | Path | None = None) -> None:
    """Refuse an --out that training would damage, before anything is loaded or written.

    Training writes checkpoints, metrics and, at the end, a whole model directory into --out, so
    --out must not be the base model's directory (its weights would be replaced), a file, or a
    non-empty directory that holds no lgemma checkpoints (someone's other files).
    """
    import os

    from ..errors import UsageError
    from .checkpoint import checkpoints_dir

    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; training writes a directory", hint="choose a new directory for --out")
    if not out.is_dir():
        return
    if model_path is not None and Path(model_path).is_dir() and os.path.samefile(out, model_path):
        raise UsageError(
            f"--out {out} is the base model's directory; training would overwrite its weights",
            hint="choose a new directory for --out",
        )
    # A run killed before its first checkpoint leaves only lgemma's own metrics.jsonl: still ours.
    from .trainer import LOCK_NAME

    foreign = [p for p in out.iterdir() if p.name not in ("metrics.jsonl", ".metrics.jsonl.tmp", LOCK_NAME)]
    if foreign and not checkpoints_dir(out).is_dir():
        raise UsageError(
            f"--out {out} is not empty and holds no lgemma training checkpoints; it would be overwritten",
            hint="choose a new or empty directory for --out (an earlier run's --out continues with --resume auto)",
        )


def latent_spec(trainer: Any):
    from ..latent_spec import LatentSpec

    cfg = trainer.config
    cur = cfg.curriculum
    curriculum = cur.to_dict() | {
        "stages": cur.stages(),
        "lr": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "batch_size": cfg.batch_size,
        "grad_accum": cfg.grad_accum,
        "processes": trainer.world,
        "max_length": cfg.max_length,
        "seed": cfg.seed,
        "lora": asdict(cfg.lora) if cfg.lora is not None else None,
        "stage0_layout": (
            "[prompt] <bot> steps ### answer <eos>" if cur.stage0_bot else "no markers: [prompt] steps ### answer <eos>"
        ),
        "paths_stage": "not trained",
        "train_rows": len(trainer.data),
    }
    spec = LatentSpec(
        bot=trainer.markers[0],
        eot=trainer.markers[1],
        thoughts_per_step=cur.thoughts_per_step,
        num_thoughts=cur.inference_thoughts,
        mode="coconut",
        feedback=cfg.feedback,
        pause=trainer.markers[2] if len(trainer.markers) > 2 else None,
        base_model=cfg.model,
        curriculum=curriculum,
        training_data_sha256=trainer.data.sha256,
        translation_prompt=cfg.translation_prompt,
    )
    spec.mode = spec.trained_mode()  # `off` for a stage-0-only fine-tune: it runs as it was trained
    return spec


def fingerprints(trainer: Any) -> dict:
    return training_fingerprints(trainer.data)


def save_final(trainer: Any) -> Path:
    """Write the final directory (main process only). Merges LoRA into the weights in place."""
    import torch

    from .prepare import final_model

    out = Path(trainer.out)
    model = final_model(trainer.model)
    if trainer.config.save_dtype != "float32":
        model = model.to(getattr(torch, trainer.config.save_dtype))
    model.save_pretrained(out, safe_serialization=True)
    trainer.tokenizer.save_pretrained(out)
    latent_spec(trainer).save(out)
    (out / FINGERPRINTS_FILE).write_text(json.dumps(fingerprints(trainer), ensure_ascii=False) + "\n", encoding="utf-8")
    return out
