"""Seconds per LoRA training step of a real model at batch 8 on ProsQA prompts, for this checkout
and, with --baseline DIR, for another checkout of lgemma (an older commit, e.g. from
`git worktree add DIR <commit>`) in the same run, printed as a ratio.

    python benchmarks/train_step.py [--model gemma-3-270m] [--data ../shared/data/prosqa/valid.json]
        [--baseline DIR] [--steps 3] [--batch-size 8] [--rounds 1] [--bf16] [--compile]

Each measurement is `lgemma train --lora --stages 2 --steps-per-stage 1 --final-epochs 0
--mix-prob 0 --max-steps 3`: step 1 is stage 0 (the chain of thought as text), steps 2 and 3 are
latent stages 1 and 2 (one and two thoughts); `step_s` is read from the run's metrics.jsonl. The
same seed gives both checkouts the same batches. --rounds alternates the checkouts that many times
and reports medians. --compile also times this checkout with every decoder layer wrapped in
`torch.compile(dynamic=True)` (inductor's CPU code; the same computation, fused); its first step of
each new shape includes compiling, so give it --steps-per-stage 3 and read the later steps.
--flops also counts each step's floating-point operations (torch's FlopCounterMode, in a run of
its own: counting slows the step) and times this CPU's fp32 matrix product on the decoder's
shapes, so that each step's time can be set against the least time its matrix products alone
would take at that rate.
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

# Each script below ends by running lgemma's command line with the arguments after its own.
RUN_LGEMMA = """
sys.argv = ["lgemma", *sys.argv[1:]]
runpy.run_module("latent_gemma_cli", run_name="__main__", alter_sys=True)
"""

RUN_OTHER = (
    """
import runpy, sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, sys.argv.pop(1))
"""
    + RUN_LGEMMA
)

RUN_COMPILED = (
    """
import runpy, sys
import latent_gemma_cli.training.prepare as prepare
_hf_model = prepare.hf_model
def hf_model(model):
    hf = _hf_model(model)
    for layer in hf.model.layers:
        layer.compile(dynamic=True)
    return hf
prepare.hf_model = hf_model
"""
    + RUN_LGEMMA
)
COMPILED = "<compiled>"

RUN_FLOPS = (
    """
import json, runpy, sys
from torch.utils.flop_counter import FlopCounterMode
from latent_gemma_cli.training.trainer import Trainer
out = sys.argv.pop(1)
_step = Trainer._step
counts = []
def _counted(self, *args, **kwargs):
    with FlopCounterMode(display=False) as counter:
        result = _step(self, *args, **kwargs)
    counts.append(counter.get_total_flops())
    with open(out, "w") as f:
        json.dump(counts, f)
    return result
Trainer._step = _counted
"""
    + RUN_LGEMMA
)
FLOPS = "<flops>"


def gemm_rate(threads: int | None = None) -> dict[str, float]:
    """GFLOP/s of fp32 matrix products on the decoder's shapes (Gemma 3 270M: hidden 640, MLP 2048,
    2,048 positions), best of 5 after a warm-up."""
    import time

    import torch

    if threads:
        torch.set_num_threads(threads)
    rates = {}
    for name, (m, k, n) in {
        "2048x640 @ 640x2048": (2048, 640, 2048),
        "2048x2048 @ 2048x640": (2048, 2048, 640),
    }.items():
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(5):  # 5 rounds of 10 products each
            start = time.perf_counter()
            for _ in range(10):
                torch.mm(a, b)
            best = min(best, (time.perf_counter() - start) / 10)
        rates[name] = 2 * m * k * n / best / 1e9
    return rates


def run(code: str | None, args, out: Path, extra: tuple[str, ...] = ()) -> dict[int, float]:
    if code == COMPILED:
        prefix = [sys.executable, "-c", RUN_COMPILED]
    elif code == FLOPS:
        prefix = [sys.executable, "-c", RUN_FLOPS, str(out) + ".flops.json"]
    else:
        prefix = [sys.executable, "-c", RUN_OTHER, code] if code else [sys.executable, "-m", "latent_gemma_cli"]
    cmd = [
        *prefix,
        "train",
        "--model",
        args.model,
        "--data",
        args.data,
        "--out",
        str(out),
        "--lora",
        "--stages",
        "2",
        "--steps-per-stage",
        str(args.steps_per_stage),
        "--final-epochs",
        "0",
        "--mix-prob",
        "0",
        "--batch-size",
        str(args.batch_size),
        "--max-steps",
        str(args.steps),
        "--device",
        "cpu",
        "--seed",
        "0",
        *extra,
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if code == FLOPS:
        counts = json.loads(Path(str(out) + ".flops.json").read_text(encoding="utf-8"))
        return {i + 1: c for i, c in enumerate(counts)}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").split("\n") if line]
    return {r["step"]: r["step_s"] for r in rows if "step_s" in r}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/prosqa/valid.json"))
    parser.add_argument("--baseline", default=None, help="another lgemma checkout to time the same way")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--steps-per-stage", type=int, default=1)
    parser.add_argument("--compile", action="store_true", help="also time this checkout under torch.compile")
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="also time this checkout with --precision bf16 (autocast: other numerics, so a row of its own, "
        "not the speed-up of the same computation)",
    )
    parser.add_argument(
        "--flops",
        action="store_true",
        help="also count each step's FLOPs (a run of its own) and time fp32 matrix products on this CPU",
    )
    args = parser.parse_args()
    # name: (the checkout's path, None for this one; extra train options)
    variants: dict[str, tuple[str | None, tuple[str, ...]]] = {"this checkout": (None, ())}
    if args.baseline:
        variants = {"baseline": (str(Path(args.baseline).resolve()), ()), **variants}
    if args.bf16:
        variants["this checkout, bf16"] = (None, ("--precision", "bf16"))
    if args.compile:
        variants["this checkout, torch.compile"] = (COMPILED, ())
    times: dict[str, dict[int, list[float]]] = {name: {} for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, (code, extra) in variants.items():
                got = run(code, args, Path(tmp) / f"{name.replace(' ', '-').replace(',', '')}-{r}", extra)
                for step, seconds in got.items():
                    times[name].setdefault(step, []).append(seconds)
                print(f"round {r + 1} {name}: " + ", ".join(f"step {k} {v:.1f}s" for k, v in got.items()), flush=True)
    flops: dict[int, float] = {}
    rate = 0.0
    if args.flops:
        with tempfile.TemporaryDirectory() as tmp:
            flops = run(FLOPS, args, Path(tmp) / "flops")
        rates = gemm_rate(int(os.environ.get("OMP_NUM_THREADS", "0")) or None)
        rate = max(rates.values())
        print("fp32 matrix products: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in rates.items()), flush=True)
    names = ["stage 0 (CoT as text)", "stage 1 (1 thought)", "stage 2 (2 thoughts)"]
    spp = args.steps_per_stage
    labels = {
        step: names[(step - 1) // spp] + (f", step {(step - 1) % spp + 1}" if spp > 1 else "")
        for step in range(1, 3 * spp + 1)
    }
    print()
    flop_cols = " TFLOP | GFLOP/s achieved | s at the matmul rate |" if flops else ""
    print(
        "| step | " + " | ".join(f"{n} s" for n in variants) + (" | speed-up |" if args.baseline else " |") + flop_cols
    )
    print("|---|" + "---|" * len(variants) + ("---|" if args.baseline else "") + ("---|" * 3 if flops else ""))
    for step in sorted(times["this checkout"]):
        med = {n: statistics.median(times[n][step]) for n in variants}
        line = f"| {labels.get(step, step)} | " + " | ".join(f"{med[n]:.1f}" for n in variants)
        if args.baseline:
            line += f" | {med['baseline'] / med['this checkout']:.2f}x"
            if args.bf16:
                line += f" (bf16: {med['baseline'] / med['this checkout, bf16']:.2f}x)"
        line += " |"
        if step in flops:
            f = flops[step]
            line += f" {f / 1e12:.2f} | {f / 1e9 / med['this checkout']:.0f} | {f / 1e9 / rate:.1f} |"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
