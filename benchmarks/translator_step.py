"""Seconds per LoRA update of the issue-14 translator on small_parallel_enja, for each prompt
(`--translation-prompt few_shot|bare`) and precision (`--precision no|bf16`), run two at a time with
one thread each (the recipe's `--jobs 2` layout), so the four are timed on the same machine in one run.

    python benchmarks/translator_step.py [--model gemma-3-270m] [--steps 12] [--data-dir DIR]

Each is the recipe's own plain training command (`translator.py`'s `train_cmd` with its default
settings: batch 8, r 16, seed 1, `--bucket-by-length`, `--direction both`) plus `--max-steps N`;
the median `step_s` of steps 3..N from the run's metrics.jsonl (the first two include warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import translator  # noqa: E402  (the recipe whose update is timed)


def command(args, out: Path, prompt: str, precision: str) -> list[str]:
    recipe = translator.parser().parse_args(
        ["--model", args.model, "--data-dir", args.data_dir, "--translation-prompt", prompt, "--precision", precision]
    )
    return translator.train_cmd("plain", recipe, out) + ["--max-steps", str(args.steps), "-q"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--data-dir", default=translator.parser().get_default("data_dir"))
    args = ap.parse_args()
    variants = [(p, q) for q in ("no", "bf16") for p in ("few_shot", "bare")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(0, len(variants), 2):  # two at a time, one thread each
            procs = {}
            for prompt, precision in variants[i : i + 2]:
                out = Path(tmp) / f"{prompt}-{precision}"
                cmd = command(args, out, prompt, precision)
                procs[(prompt, precision)] = (out, subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL))
            for key, (out, proc) in procs.items():
                if proc.wait() != 0:
                    raise SystemExit(f"{key}: lgemma train exited {proc.returncode}")
                rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text(encoding="utf-8").split("\n") if x]
                steps = [r for r in rows if "step_s" in r and r["step"] >= 3]
                result[key] = statistics.median(r["step_s"] for r in steps)
    print(f"model {args.model}, batch 8, one thread per run, two runs at a time, median of steps 3-{args.steps}")
    print()
    print("| prompt | precision | s per update | vs few_shot fp32 |")
    print("|---|---|---|---|")
    ref = result[("few_shot", "no")]
    for (prompt, precision), s in result.items():
        print(f"| {prompt} | {'fp32' if precision == 'no' else 'bf16 autocast'} | {s:.2f} | {ref / s:.2f}x faster |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
