"""Does a COCONUT stage layout work before any latent training? A zero-shot probe per feedback.

Loads a training checkpoint (typically the one `lgemma train --stage0-bot` writes at the end of
stage 0, i.e. a CoT model that has learnt to predict the first step at `<bot>`), then decodes the
validation rows at every stage layout -- stage s runs min(s, N) * c thoughts in `coconut` mode
and the model must write the remaining steps and the answer after `<eot>` -- with each thought
feedback (`identity`, `embed_norm`, `token_mix`), with `lgemma train`'s own stage-end validation
(`training/validate.py`: its batching, token budget and grading). Nothing trains.

If a feedback keeps the stage-0 accuracy at stage 1 with no training, the layout passes the
chain through the thoughts and the curriculum only has to keep it; if accuracy falls at once,
the stage transition itself breaks what the CoT model knew, before any update.

It also prints a lens at the all-latent layout: per thought, how often the position producing it
predicts the chain of thought's own next token (the concept of its step, or the newline after it).

    python benchmarks/stage_probe.py --model COT_DIR --checkpoint OUT/checkpoints/step-00000032 \
        --data valid.jsonl --stages 3 -c 2 --stage0-bot --lora-r 16 --limit 24
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the base the checkpoint was trained from")
    ap.add_argument("--checkpoint", required=True, help="a training checkpoint directory (step-XXXXXXXX)")
    ap.add_argument("--data", required=True, help="rows to decode (JSON Lines with steps and answer)")
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--stages", type=int, default=3)
    ap.add_argument("-c", "--thoughts-per-step", type=int, default=1)
    ap.add_argument("--stage0-bot", action="store_true")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--feedbacks", default="token_mix,embed_norm,identity")
    ap.add_argument("--show", type=int, default=2, help="outputs printed per stage and feedback")
    ap.add_argument("--lens-only", action="store_true", help="skip the decoding, print the lens only")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args(argv)

    import torch

    from latent_gemma_cli.training import checkpoint
    from latent_gemma_cli.training.curriculum import Curriculum
    from latent_gemma_cli.training.prepare import LoraSettings, load_trainable_state
    from latent_gemma_cli.training.trainer import TrainConfig, Trainer
    from latent_gemma_cli.training.validate import validate

    torch.set_grad_enabled(False)
    feedbacks = [f.strip() for f in args.feedbacks.split(",") if f.strip()]
    cur = Curriculum(
        max_stage=args.stages, thoughts_per_step=args.thoughts_per_step, stage0_bot=args.stage0_bot, steps_per_stage=1
    )
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            model=args.model,
            data=args.data,
            out=Path(tmp) / "out",
            valid=args.data,
            valid_limit=args.limit,
            curriculum=cur,
            lora=LoraSettings(args.lora_r, 2 * args.lora_r, 0.0),
            device="cpu",
            precision="no",
            feedback=feedbacks[0],
        )
        trainer = Trainer(cfg)
        trainer._setup()
        load_trainable_state(trainer.model, checkpoint.load_tensors(Path(args.checkpoint), 0)["trainable"])
    rows = trainer.valid
    results: dict = {}
    for feedback in [] if args.lens_only else feedbacks:
        trainer.config = dataclasses.replace(cfg, feedback=feedback)
        for stage in range(0, args.stages + 2):
            if stage == 0 and feedback != feedbacks[0]:
                results[(feedback, 0)] = results[(feedbacks[0], 0)]  # no thoughts: the same decode
                continue
            got = validate(trainer, stage, show=args.show)
            results[(feedback, stage)] = got["accuracy"]
            print(
                f"feedback {feedback:<10} stage {stage} ({got['thoughts']} thoughts): {100 * got['accuracy']:5.1f}%"
                f" of {got['rows']}  [{got['seconds']:.0f} s]",
                flush=True,
            )
            for ex in got.get("examples", []):
                print(f"    {'ok ' if ex['correct'] else 'bad'} {ex['output']!r}  (gold {ex['gold']})", flush=True)
    trainer.hf.eval()
    lens = {feedback: thought_names(trainer, rows, feedback, args) for feedback in feedbacks}
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps(
                {
                    "args": vars(args),
                    "accuracy": {f"{f}/stage-{s}": a for (f, s), a in results.items()},
                    "lens": lens,
                },
                indent=2,
                ensure_ascii=False,
            ),
            encoding="utf-8",
        )
    return 0


def thought_names(trainer, rows, feedback: str, args) -> list[float]:
    """At the all-latent layout (N * c thoughts): how often the top-1 next token of the position
    that produces thought j (the LM head on its last hidden state, soft-capping included) is the
    gold concept of step j // c (j % c == 0) or a newline (otherwise), the chain of thought's own
    tokens in order. Printed and returned per thought."""
    from latent_gemma_cli import tasks
    from latent_gemma_cli.engine import LatentRunner, run_prefix_batch

    tok = trainer.tokenizer
    runner = LatentRunner(trainer.hf)
    c, n = args.thoughts_per_step, args.stages * args.thoughts_per_step
    newline = set(tok("\n", add_special_tokens=False)["input_ids"][:1])
    hits = [0] * n
    seen = [Counter() for _ in range(n)]
    for i in range(0, len(rows), 8):
        batch = rows[i : i + 8]
        prefix = run_prefix_batch(
            runner,
            [tasks.prompt_ids(tok, ex) for ex in batch],
            "coconut",
            n,
            tuple(trainer.marker_ids[:2]),
            feedback,
            pad_id=trainer.pad_id,
        )
        for j in range(n):
            top = runner.next_token_logits(prefix.thought_states[:, j]).argmax(-1).tolist()
            seen[j].update(tok.decode([t]) for t in top)
            for r, ex in enumerate(batch):
                if j % c == 0:
                    k = j // c
                    if k >= len(ex.steps):
                        continue
                    concept = ex.steps[k]
                    gold = {tok(w, add_special_tokens=False)["input_ids"][0] for w in (concept, " " + concept)}
                else:
                    gold = newline
                hits[j] += top[r] in gold
    rates = [h / len(rows) for h in hits]
    print(
        f"feedback {feedback:<10} lens, {n} thoughts: top-1 next token is the chain's own token in order: "
        + " ".join(f"t{j + 1} {100 * r:.0f}%" for j, r in enumerate(rates)),
        flush=True,
    )
    for j, counts in enumerate(seen):
        print(f"    t{j + 1} most frequent top-1: {counts.most_common(4)}", flush=True)
    return rates


if __name__ == "__main__":
    raise SystemExit(main())
