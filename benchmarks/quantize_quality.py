"""Quality under CPU weight quantization: `lgemma eval` with --quantize none, int8 and int4 on the
same rows, printed side by side, with int8's and int4's change from full precision.

Defaults: 100 rows of small_parallel_enja test ja->en (BLEU 13a, chrF) and 100 rows of
JCommonsenseQA validation (accuracy), on the model `auto` would quantize (Gemma 3 270M).

    python benchmarks/quantize_quality.py [--model gemma-3-270m] [--rows 100] [--out DIR]
        [--data-dir ../shared/data] [--schemes none,int8,int4]

Every report is kept as DIR/<set>-<scheme>.json (`lgemma eval --json --out`), so the table can be
checked against the per-example predictions (--per-example).

Generated text on 100 rows is a coarse measure (and Gemma 3 270M base is at chance on
JCommonsenseQA), so the script also prints two finer ones:
* the teacher-forced negative log-likelihood per token of the reference translations given the
  eval prompt (the change in perplexity quantization causes), and the share of rows whose
  generated translation is identical to full precision's;
* a paired bootstrap (1,000 resamples of the rows) 95% interval of each scheme's BLEU and chrF
  change from full precision.
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
    if not (args.reuse and report.is_file()):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    data = json.loads(report.read_text(encoding="utf-8"))
    metrics = data["results"]["off"]["metrics"]
    return {**metrics, "wall_s": wall}


def reference_nll(model: str, scheme: str, data: Path, rows: int) -> float:
    """Mean negative log-likelihood per reference token, teacher-forced after the eval prompt."""
    import torch

    from latent_gemma_cli import tasks
    from latent_gemma_cli.datasets import read_dataset
    from latent_gemma_cli.loading import load_model

    loaded = load_model(model, device="cpu", dtype="float32", quantize=scheme)
    examples = read_dataset(str(data), direction="ja-en").examples[:rows]
    total, count = 0.0, 0
    with torch.inference_mode():
        for ex in examples:
            prompt = tasks.prompt_ids(loaded.tokenizer, ex, "translate")
            target = loaded.tokenizer(tasks.references(ex)[0], add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt + target])
            logits = loaded.model(input_ids=ids, use_cache=False).logits[0, len(prompt) - 1 : -1].float()
            total += float(torch.nn.functional.cross_entropy(logits, torch.tensor(target), reduction="sum"))
            count += len(target)
    return total / count


def bootstrap(preds: dict[str, list[str]], refs: list[str], base: str, resamples: int = 1000) -> dict:
    """95% intervals of corpus BLEU / chrF change from `base`, resampling rows with replacement."""
    import random

    import sacrebleu

    rng = random.Random(0)
    n = len(refs)
    out = {}
    for scheme in preds:
        if scheme == base:
            continue
        diffs = {"bleu": [], "chrf": []}
        for _ in range(resamples):
            idx = [rng.randrange(n) for _ in range(n)]
            r = [[refs[i] for i in idx]]
            for name, fn in (("bleu", sacrebleu.corpus_bleu), ("chrf", sacrebleu.corpus_chrf)):
                got = fn([preds[scheme][i] for i in idx], r).score
                want = fn([preds[base][i] for i in idx], r).score
                diffs[name].append(got - want)
        out[scheme] = {
            k: (sorted(v)[int(0.025 * resamples)], sorted(v)[int(0.975 * resamples) - 1]) for k, v in diffs.items()
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--schemes", default="none,int8,int4")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default="quantize-quality")
    parser.add_argument("--reuse", action="store_true", help="Use reports already in --out instead of running eval")
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
            walls = [f"{results[s]['seconds_per_example']:.3f}" for s in schemes]
            rows.append((f"{name} {metric}", cells, deltas, walls))
    if "enja-ja-en" in args.sets.split(","):
        data = Path(args.data_dir) / SETS["enja-ja-en"][0]
        reports = {s: json.loads((out_dir / f"enja-ja-en-{s}.json").read_text(encoding="utf-8")) for s in schemes}
        preds = {s: [e["prediction"] for e in r["examples"]["off"]] for s, r in reports.items()}
        refs = [e["reference"] for e in reports[schemes[0]]["examples"]["off"]]
        intervals = bootstrap(preds, refs, schemes[0])
        nll = {s: reference_nll(args.model, s, data, args.rows) for s in schemes}
        print()
        print(f"| enja ja->en ({args.rows} rows) | " + " | ".join(schemes) + " |")
        print("|---|" + "---|" * len(schemes))
        print("| reference NLL / token | " + " | ".join(f"{nll[s]:.4f}" for s in schemes) + " |")
        print(
            "| perplexity change | "
            + " | ".join(f"{100 * (2.718281828 ** (nll[s] - nll[schemes[0]]) - 1):+.1f}%" for s in schemes)
            + " |"
        )
        same = {s: sum(a == b for a, b in zip(preds[s], preds[schemes[0]])) for s in schemes}
        print(
            "| translations identical to "
            + schemes[0]
            + " | "
            + " | ".join(f"{same[s]}/{len(refs)}" for s in schemes)
            + " |"
        )
        for metric in ("bleu", "chrf"):
            cells = ["-"] + [f"[{intervals[s][metric][0]:+.1f}, {intervals[s][metric][1]:+.1f}]" for s in schemes[1:]]
            print(f"| {metric} change, 95% paired bootstrap | " + " | ".join(cells) + " |")
    print()
    head = " | ".join(schemes)
    print(f"| set, metric ({args.rows} rows) | {head} | change vs {schemes[0]} | s/example ({head}) |")
    print("|---|" + "---|" * len(schemes) + "---|---|")
    for label, cells, deltas, walls in rows:
        print(f"| {label} | " + " | ".join(cells) + f" | {', '.join(deltas)} | {', '.join(walls)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
