"""Quality under CPU weight quantization: `lgemma eval` with --quantize none, int8 and int4 on the
same rows, printed side by side, with int8's and int4's change from full precision.

Defaults: 100 rows of small_parallel_enja test ja->en (BLEU 13a, chrF) and 100 rows of
JCommonsenseQA validation (accuracy), on the model `auto` would quantize (Gemma 3 270M).

    python benchmarks/quantize_quality.py [--model gemma-3-270m] [--rows 100] [--out DIR]
        [--data-dir ../shared/data] [--schemes none,int8,int4]

Every report is kept as DIR/<set>-<scheme>.json (`lgemma eval --json --out`), so the table can be
checked against the per-example predictions (--per-example).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SETS = {
    # name: (file under the data dir, extra eval flags, metrics shown)
    "enja-ja-en": (
        "small_parallel_enja/test.jsonl",
        ["--direction", "ja-en", "--max-new-tokens", "64"],
        ("bleu", "chrf"),
    ),
    "jcqa": ("jcommonsenseqa/valid.jsonl", ["--max-new-tokens", "16"], ("accuracy",)),
}


def run_eval(args, name: str, scheme: str, out_dir: Path) -> dict:
    path, extra, _ = SETS[name]
    report = out_dir / f"{name}-{scheme}.json"
    cmd = [
        sys.executable,
        "-m",
        "latent_gemma_cli",
        "eval",
        "--model",
        args.model,
        "--data",
        str(Path(args.data_dir) / path),
        "--limit",
        str(args.rows),
        "--modes",
        "off",
        "--device",
        "cpu",
        "--quantize",
        scheme,
        "--batch-size",
        str(args.batch_size),
        "--per-example",
        "--json",
        "--out",
        str(report),
        *extra,
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    data = json.loads(report.read_text(encoding="utf-8"))
    metrics = data["results"]["off"]["metrics"]
    return {**metrics, "wall_s": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--schemes", default="none,int8,int4")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default="quantize-quality")
    args = parser.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    schemes = args.schemes.split(",")
    rows = []
    for name in args.sets.split(","):
        results = {}
        for scheme in schemes:
            results[scheme] = run_eval(args, name, scheme, out_dir)
            print(f"{name} {scheme}: " + json.dumps({k: results[scheme].get(k) for k in SETS[name][2]}), flush=True)
        for metric in SETS[name][2]:
            base = results[schemes[0]][metric]
            cells = [f"{results[s][metric]:.1f}" for s in schemes]
            deltas = [f"{results[s][metric] - base:+.1f}" for s in schemes[1:]]
            walls = [f"{results[s]['wall_s']:.0f}" for s in schemes]
            rows.append((f"{name} {metric}", cells, deltas, walls))
    print()
    head = " | ".join(schemes)
    print(f"| set, metric ({args.rows} rows) | {head} | change vs {schemes[0]} | eval wall s ({head}) |")
    print("|---|" + "---|" * len(schemes) + "---|---|")
    for label, cells, deltas, walls in rows:
        print(f"| {label} | " + " | ".join(cells) + f" | {', '.join(deltas)} | {', '.join(walls)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
