"""A ja<->en translator from Gemma 3 270M, with and without latent thoughts (issue 14).

One resumable command, through the project's own commands (each logged with its wall and CPU
time in <out>/ledger.jsonl, summed across sittings):

1. two `lgemma train --lora` runs on the same rows of small_parallel_enja's train split,
   `--direction both` (every pair trains ja->en and en->ja), same seed, same number of updates:
   * plain: stage 0 only, the translation as the target (what any fine-tuning tool does);
   * latent: `--first-stage 1 --stages 1 -c K`: the same rows with K continuous thoughts before
     the translation (the rows have no steps, so the thoughts replace nothing; they are extra
     positions the model learns to use), for the same number of updates;
2. `lgemma eval` on the test split, both directions: the base model (few-shot, `off`), plain
   (`off`), latent (`coconut`, and `off` on the same model); BLEU (ja-mecab for Japanese targets,
   13a for English), chrF, the semantic metric, exact match, tokens and seconds per example;
3. length behaviour: per report, outputs that used the whole `--max-new-tokens` budget (cut), and
   outputs whose source ends a sentence (。.?!？！) but which do not;
4. sentences outside the data set (SAMPLES: news-like, names and numbers) translated by each model
   with `lgemma translate` in its default mode;
5. registration of the better fine-tuned model (ja->en BLEU) as `gemma-3-270m-enja`, so
   `lgemma translate --model gemma-3-270m-enja --to en file.txt` uses it, in its own mode.

`--translation-prompt bare` trains both models on the asking turn alone ("Japanese: ...\nEnglish:",
recorded with the model, so eval and translate use it too): a quarter of the few-shot prompt's
tokens, so each update and each translation costs less. The base model keeps the few-shot prompt.

`--sweep-thoughts 1,2,4` first picks the latent model's thought count: a short run per count
(`--sweep-steps` updates), scored in coconut mode by BLEU on `--sweep-rows` dev rows per direction.

Interrupt it at any point and run the same command again: finished models and reports are reused,
an unfinished training run continues from its last checkpoint (`--resume auto`).

    python benchmarks/translator.py --out runs/translator
    python benchmarks/translator.py --out runs/translator --table-only
    python benchmarks/translator.py --quick --model DIR --data-dir DIR     # smoke run, any small model
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_coconut import THOUGHT_FEEDBACKS, Ledger, check_settings, lgemma  # noqa: E402  (one ledger and launcher for the recipes)

from latent_gemma_cli.latent_spec import TRANSLATION_PROMPTS  # noqa: E402

DIRECTIONS = ("ja-en", "en-ja")
# (label, model key, eval mode); "base" is the untrained model.
ROWS = (
    ("base, few-shot", "base", "off"),
    ("plain", "plain", "off"),
    ("latent, coconut", "latent", "coconut"),
    ("latent, off", "latent", "off"),
)
SENTENCE_END = tuple("。.?!？！")
CLOSERS = "\"'」』）)”’"  # a sentence may end inside quotes or brackets: `He said, "Go."`


def ends_sentence(text: str) -> bool:
    return text.rstrip().rstrip(CLOSERS).rstrip().endswith(SENTENCE_END)


# Sentences outside the data set (written for this benchmark: news-like, longer, names and numbers),
# translated by each model with `lgemma translate` in its default mode, so a reader can judge beyond BLEU.
SAMPLES = {
    "ja": [
        "東京都は3日、新たに1,234人の感染者を確認したと発表した。",
        "田中さんは2025年4月に大阪の会社を辞め、福岡で小さなパン屋を始めた。",
        "気象庁によると、台風10号は明日の午後、時速25キロで九州南部に近づく見込みです。",
        "佐藤首相は記者会見で、来年度の予算案を約110兆円とする方針を明らかにした。",
        "駅前の図書館は改装のため、12月28日から1月5日まで休館します。",
    ],
    "en": [
        "The city council approved a budget of 3.2 billion yen on Tuesday, including funds for two new schools.",
        "Maria Lopez, 34, won the Tokyo Marathon in 2 hours and 21 minutes, a new personal best.",
        "Heavy snow is expected in Hokkaido this weekend, and some trains may be cancelled.",
        "The museum will open at 9 a.m. on March 15, and admission is free for children under 12.",
        "According to the report, sales of electric cars in Japan rose by 18 percent last year.",
    ],
}


def finished(model_dir: Path) -> bool:
    return (model_dir / "config.json").is_file() and (model_dir / "train_fingerprints.json").is_file()


def train_cmd(kind: str, args, out: Path, thoughts: int | None = None, steps: int | None = None) -> list[str]:
    data = Path(args.data_dir)
    cmd = lgemma() + ["train", "--model", args.model, "--out", str(out), "--device", "cpu", "--lora"]
    cmd += ["--data", str(data / "train.jsonl"), "--direction", "both", "--limit", str(args.train_rows)]
    cmd += ["--valid", str(data / "dev.jsonl"), "--valid-limit", str(args.valid_limit)]
    cmd += ["--lr", str(args.lr), "--warmup-steps", str(args.warmup_steps), "--batch-size", str(args.batch_size)]
    cmd += ["--lora-r", str(args.lora_r), "--lora-alpha", str(2 * args.lora_r), "--seed", str(args.seed)]
    steps = args.steps if steps is None else steps
    cmd += ["--max-length", str(args.max_length), "--steps-per-stage", str(steps), "--final-epochs", "0"]
    cmd += ["--checkpoint-every", str(args.checkpoint_every), "--keep-checkpoints", "1", "--resume", "auto"]
    cmd += ["--log-every", "5", "--bucket-by-length"]
    if args.translation_prompt != "few_shot":  # left out at the default, as --feedback below
        cmd += ["--translation-prompt", args.translation_prompt]
    if args.precision != "auto":  # likewise
        cmd += ["--precision", args.precision]
    if kind == "plain":
        cmd += ["--stages", "0"]
    else:
        cmd += ["--first-stage", "1", "--stages", "1", "-c", str(args.thoughts if thoughts is None else thoughts)]
        if args.feedback != "identity":  # left out at the default: earlier runs' commands stay the same
            cmd += ["--feedback", args.feedback]
    return cmd


def sweep(args, out: Path, ledger: Ledger, threads: int | None = None) -> dict:
    """`--sweep-thoughts`: one short latent run per thought count (`--sweep-steps` updates on the
    same rows with the same seed), each scored in coconut mode by BLEU on the first `--sweep-rows`
    rows of the dev split in both directions; the best mean wins (a tie: fewer thoughts).
    Returns {"scores": {c: {direction: bleu, "mean": m}}, "chosen": c}; kept in <out>/sweep/."""
    done = out / "sweep" / "result.json"
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    counts = [int(c) for c in args.sweep_thoughts.split(",")]

    def one(c: int) -> dict:
        target = out / "sweep" / f"c{c}"
        if not finished(target):
            cmd = train_cmd("latent", args, target, thoughts=c, steps=args.sweep_steps)
            ledger.run(f"sweep-train-c{c}", cmd, out / "logs" / f"sweep-train-c{c}.txt", threads=threads)
        scores = {}
        for direction in DIRECTIONS:
            report = target.parent / f"c{c}-{direction}.json"
            if not report.is_file():
                part = report.with_suffix(".part")
                cmd = eval_cmd(args, str(target), "dev", direction, "coconut", args.sweep_rows, part)
                log = out / "logs" / f"sweep-eval-c{c}-{direction}.txt"
                ledger.run(f"sweep-eval-c{c}", cmd, log, threads=threads)
                part.replace(report)
            scores[direction] = json.loads(report.read_text(encoding="utf-8"))["results"]["coconut"]["metrics"]["bleu"]
        scores["mean"] = sum(scores[d] for d in DIRECTIONS) / len(DIRECTIONS)
        return scores

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        scores = dict(zip(counts, pool.map(one, counts)))
    chosen = max(sorted(scores), key=lambda c: (scores[c]["mean"], -c))
    result = {"scores": {str(c): v for c, v in scores.items()}, "chosen": chosen, "steps": args.sweep_steps}
    done.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def eval_cmd(args, model: str, split: str, direction: str, mode: str, rows: int, report: Path) -> list[str]:
    """`lgemma eval` of one model, mode and direction on the first `rows` rows of a split."""
    cmd = lgemma() + ["eval", "--model", model, "--data", str(Path(args.data_dir) / f"{split}.jsonl")]
    cmd += ["--direction", direction, "--modes", mode, "--device", "cpu", "--quantize", args.quantize]
    cmd += ["--max-new-tokens", str(args.max_new_tokens), "--batch-size", str(args.eval_batch_size)]
    return cmd + ["--limit", str(rows), "--json", "--out", str(report), "--per-example", "-q"]


def model_path(args, out: Path, key: str) -> str:
    return args.model if key == "base" else str(out / "models" / key)


def eval_one(args, out: Path, ledger: Ledger, key: str, mode: str, direction: str, threads: int | None = None) -> Path:
    report = out / "reports" / f"{key}-{mode}-{direction}.json"
    if report.is_file():
        return report
    report.parent.mkdir(parents=True, exist_ok=True)
    partial = report.with_suffix(".part")
    cmd = eval_cmd(args, model_path(args, out, key), "test", direction, mode, args.test_rows, partial)
    ledger.run(f"eval-{key}", cmd, out / "logs" / f"eval-{key}-{mode}-{direction}.txt", threads=threads)
    partial.replace(report)
    return report


def translate_samples(args, out: Path, ledger: Ledger, key: str, source: str, threads: int | None = None) -> Path:
    """`lgemma translate` of SAMPLES[source] by one model in its default mode (`auto`: the user's path)."""
    result = out / "samples" / f"{key}-{source}.jsonl"
    if result.is_file():
        return result
    result.parent.mkdir(parents=True, exist_ok=True)
    text = result.with_suffix(".txt")
    text.write_text("\n".join(SAMPLES[source]) + "\n", encoding="utf-8")
    target = "en" if source == "ja" else "ja"
    cmd = lgemma() + ["translate", "--model", model_path(args, out, key), str(text), "--from", source, "--to", target]
    cmd += ["--mode", "auto", "--device", "cpu", "--quantize", args.quantize, "--json", "-q"]
    partial = result.with_suffix(".part")
    ledger.run(f"samples-{key}", cmd, out / "logs" / f"samples-{key}-{source}.txt", stdout=partial, threads=threads)
    partial.replace(result)
    return result


def read_samples(args, out: Path) -> dict:
    """{source: [{"source": line, key: translation, key + "_mode": mode, ...}]} from translate_samples'
    JSON (one record per chunk, joined by line); the mode is what `auto` picks for the model."""
    from latent_gemma_cli.chunking import join_chunks
    from latent_gemma_cli.latent_spec import LatentSpec

    table: dict = {}
    for source, lines in SAMPLES.items():
        rows = [{"source": line} for line in lines]
        for key in ("base", "plain", "latent"):
            path = out / "samples" / f"{key}-{source}.jsonl"
            if not path.is_file():
                continue
            spec = None if key == "base" else LatentSpec.load(model_path(args, out, key))
            chunks: dict[int, list[str]] = {}
            for record in (json.loads(x) for x in path.read_text(encoding="utf-8").split("\n") if x.strip()):
                chunks.setdefault(record["line"], []).append(record["translation"])
            for line, parts in chunks.items():
                rows[line][key] = join_chunks(parts, "ja" if source == "en" else "en")
                rows[line][f"{key}_mode"] = spec.trained_mode() if spec else "off"
        table[source] = rows
    return table


def length_check(report: dict, max_new: int, sources: dict[str, str], direction: str) -> dict:
    """Outputs cut by the token budget, and outputs that stop short of a sentence end their source has."""
    records = report["examples"][report["modes"][0]]
    cut = sum(1 for r in records if (r.get("num_tokens") or 0) >= max_new)
    short = 0
    for r in records:
        src = sources.get(f"{direction}:{r.get('id')}", "")
        if ends_sentence(src) and not ends_sentence(r["prediction"]):
            short += 1
    return {"cut_at_budget": cut, "no_sentence_end": short, "rows": len(records)}


def summary(path: Path, max_new: int, sources: dict[str, str], direction: str) -> dict:
    report = json.loads(path.read_text(encoding="utf-8"))
    m = report["results"][report["modes"][0]]["metrics"]
    return {
        "bleu": m["bleu"],
        "bleu_tokenize": m["bleu_tokenize"],
        "chrf": m["chrf"],
        "semantic": (m.get("semantic") or {}).get("value"),
        "semantic_name": (m.get("semantic") or {}).get("name"),
        "exact_match": m["accuracy"],
        "tokens": m["tokens_per_example"],
        "seconds": m["seconds_per_example"],
        "length": length_check(report, max_new, sources, direction),
    }


def significance(out: Path, direction: str, tokenize: str) -> dict:
    """sacrebleu's paired bootstrap (1,000 resamples) of every evaluated row against `plain`:
    {key-mode: {"bleu_p": p, "chrf_p": p}}: the chance of a difference this large between two systems
    that differ by chance only (sacrebleu's null-centred bootstrap; outputs identical to plain's get 1,
    where sacrebleu's convention gives 1/1001)."""
    from sacrebleu.metrics import BLEU, CHRF
    from sacrebleu.significance import PairedTest

    systems, refs, ids = [], None, None
    for _, key, mode in (("plain", "plain", "off"),) + tuple(r for r in ROWS if r[1] != "plain"):
        path = out / "reports" / f"{key}-{mode}-{direction}.json"
        if not path.is_file():
            continue
        records = json.loads(path.read_text(encoding="utf-8"))["examples"][mode]
        if ids is not None and [r["id"] for r in records] != ids:
            continue  # not the same rows as plain's report: no paired test
        ids = ids or [r["id"] for r in records]
        systems.append((f"{key}-{mode}", [r["prediction"] for r in records]))
        refs = refs or [r["reference"] for r in records]
    if len(systems) < 2 or systems[0][0] != "plain-off":
        return {}
    test = PairedTest(
        systems, {"BLEU": BLEU(tokenize=tokenize), "chrF": CHRF()}, [refs], test_type="bs", n_samples=1000
    )
    _, scores = test()
    return {
        name: (
            {"bleu_p": 1.0, "chrf_p": 1.0}
            if predictions == systems[0][1]
            else {"bleu_p": scores["BLEU"][i].p_value, "chrf_p": scores["chrF2"][i].p_value}
        )
        for i, (name, predictions) in enumerate(systems)
        if i > 0
    }


def register(name: str, model_dir: Path) -> None:
    # never --force: a name the user already registered (or re-pointed) is theirs; the refusal is printed
    cmd = lgemma() + ["download", str(model_dir.resolve()), "--name", name, "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    print(
        f"registered {model_dir} as {name!r}: lgemma translate --model {name} --to en FILE"
        if proc.returncode == 0
        else f"not registered as {name!r}: {proc.stderr.strip()}",
        flush=True,
    )


def table(results: dict) -> str:
    lines = []
    for direction in DIRECTIONS:
        lines.append(f"\n{direction} ({results['test_rows']} test rows)\n")
        lines.append(
            "| model, mode | BLEU | chrF | p vs plain (BLEU / chrF) | semantic | exact % | tokens | s/example | cut "
            "| no sentence end |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for label, key, mode in ROWS:
            s = results["reports"].get(f"{key}-{mode}-{direction}")
            if s is None:
                lines.append(f"| {label} | not run | | | | | | | | |")
                continue

            def f(x, d=1):
                return "-" if x is None else f"{x:.{d}f}"

            sig = results.get("significance", {}).get(direction, {}).get(f"{key}-{mode}")
            p = "-" if sig is None else f"{sig['bleu_p']:.3f} / {sig['chrf_p']:.3f}"
            lines.append(
                f"| {label} | {f(s['bleu'])} ({s['bleu_tokenize']}) | {f(s['chrf'])} | {p} | {f(s['semantic'])} | "
                f"{f(s['exact_match'])} | {f(s['tokens'])} | {f(s['seconds'], 2)} | {s['length']['cut_at_budget']} | "
                f"{s['length']['no_sentence_end']} |"
            )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """The recipe's options (also how translator_step.py and the tests get its settings)."""
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--out", default="translator-run")
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "small_parallel_enja"))
    ap.add_argument("--quick", action="store_true", help="a smoke run: a few rows and steps")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--register", default="gemma-3-270m-enja", help="name for the better model ('': none)")
    ap.add_argument(
        "--train-rows", type=int, default=4000, help="training examples: the first N/2 pairs, each in both directions"
    )
    ap.add_argument("--steps", type=int, default=300, help="optimizer updates of each model")
    ap.add_argument("--thoughts", type=int, default=2, help="continuous thoughts of the latent model")
    ap.add_argument(
        "--feedback",
        default="identity",
        choices=THOUGHT_FEEDBACKS,
        help="how the latent model feeds a thought back (lgemma train --feedback; token_mix is what made "
        "COCONUT work on the pretrained 270M, RESULTS.md part 11)",
    )
    ap.add_argument(
        "--translation-prompt",
        default="few_shot",
        choices=TRANSLATION_PROMPTS,
        help="the prompt both models are trained (and then evaluated and used) with: lgemma train "
        "--translation-prompt; bare is a quarter of the few-shot prompt's tokens",
    )
    ap.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "no", "bf16"),
        help="lgemma train --precision (auto: fp32 on a CPU); bf16 autocast is 2.5x faster per update on a "
        "CPU with AVX512-BF16 (slower on one without: measure first)",
    )
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--warmup-steps", type=int, default=10)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--valid-limit", type=int, default=20)
    ap.add_argument("--checkpoint-every", type=int, default=20)
    ap.add_argument("--test-rows", type=int, default=500)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--eval-batch-size", type=int, default=8)
    ap.add_argument(
        "--quantize", default="none", help="eval's --quantize (none: fp32, the trained weights as they are)"
    )
    ap.add_argument(
        "--models",
        default="plain,latent",
        help="which fine-tuned models this sitting trains and evaluates (plain: a sitting too short for both; "
        "the same --out later with both adds the other; the better of those listed is registered)",
    )
    ap.add_argument("--jobs", type=int, default=1, help="commands at once (2: both models train side by side)")
    ap.add_argument(
        "--sweep-thoughts",
        default="",
        help="pick the latent model's thoughts from these counts (e.g. 1,2,4) by short runs scored on dev; "
        "overrides --thoughts",
    )
    ap.add_argument("--sweep-steps", type=int, default=100, help="updates of each sweep run")
    ap.add_argument("--sweep-rows", type=int, default=100, help="dev rows per direction scoring each sweep run")
    ap.add_argument("--sweep-only", action="store_true", help="run the sweep, print its result and stop")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if args.sweep_only and not args.sweep_thoughts:
        ap.error("--sweep-only needs --sweep-thoughts")
    if args.quick:
        for k, v in dict(
            train_rows=8,
            steps=2,
            sweep_steps=1,
            sweep_rows=2,
            batch_size=2,
            valid_limit=2,
            test_rows=3,
            max_new_tokens=8,
            checkpoint_every=1,
        ).items():
            if getattr(args, k) == ap.get_default(k):
                setattr(args, k, v)
    models = tuple(m for m in ("plain", "latent") if m in args.models.split(","))
    if not models or set(args.models.split(",")) - {"plain", "latent"}:
        ap.error(f"--models takes plain, latent or both, not {args.models!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(out)
    shape = {
        k: getattr(args, k)
        for k in ("model", "train_rows", "steps", "thoughts", "batch_size", "lr", "warmup_steps", "lora_r", "seed")
    }
    shape |= {"max_length": args.max_length, "test_rows": args.test_rows, "max_new_tokens": args.max_new_tokens}
    shape |= {"sweep_thoughts": args.sweep_thoughts, "sweep_steps": args.sweep_steps, "sweep_rows": args.sweep_rows}
    if args.feedback != "identity":  # absent at the default, so earlier runs' settings still match
        shape["feedback"] = args.feedback
    if args.translation_prompt != "few_shot":  # likewise
        shape["translation_prompt"] = args.translation_prompt
    if args.precision != "auto":
        shape["precision"] = args.precision
    check_settings(ap, out, shape)

    from latent_gemma_cli.datasets import read_dataset

    sources = {}
    for direction in DIRECTIONS:
        for e in read_dataset(Path(args.data_dir) / "test.jsonl", direction=direction).examples:
            sources[f"{direction}:{e.id}"] = e.question  # the same id names a row in both directions

    if not args.table_only:
        # `--jobs` commands at once, each with its share of the cores (the models train independently)
        threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None

        def train(kind: str) -> None:
            target = out / "models" / kind
            if not finished(target):
                cmd = train_cmd(kind, args, target)
                ledger.run(f"train-{kind}", cmd, out / "logs" / f"train-{kind}.txt", threads=threads)
                if finished(target) and (target / "checkpoints").is_dir():
                    shutil.rmtree(target / "checkpoints")

        if args.sweep_thoughts:
            result = sweep(args, out, ledger, threads)
            args.thoughts = result["chosen"]
            print(f"sweep: the latent model trains with {args.thoughts} thoughts", flush=True)
            if args.sweep_only:
                print(json.dumps(result, indent=2))
                return 0
        keys = ("base", *models)
        evals = [(key, mode, direction) for _, key, mode in ROWS if key in keys for direction in DIRECTIONS]
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            list(pool.map(train, models))
            list(pool.map(lambda e: eval_one(args, out, ledger, *e, threads=threads), evals))
            samples = [(key, source) for key in keys for source in SAMPLES]
            list(pool.map(lambda e: translate_samples(args, out, ledger, *e, threads=threads), samples))

    results: dict = {
        "command": " ".join(["python", "benchmarks/translator.py"] + (argv if argv is not None else sys.argv[1:])),
        "settings": shape,
        "test_rows": args.test_rows,
        "hardware": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
        "time": ledger.totals(),
        "reports": {},
    }
    for _, key, mode in ROWS:
        for direction in DIRECTIONS:
            path = out / "reports" / f"{key}-{mode}-{direction}.json"
            if path.is_file():
                results["reports"][f"{key}-{mode}-{direction}"] = summary(path, args.max_new_tokens, sources, direction)
    results["samples"] = read_samples(args, out)
    if (out / "sweep" / "result.json").is_file():
        results["sweep"] = json.loads((out / "sweep" / "result.json").read_text(encoding="utf-8"))
    results["significance"] = {d: significance(out, d, "13a" if d.endswith("en") else "ja-mecab") for d in DIRECTIONS}
    done = {k: results["reports"].get(f"{k}-off-ja-en" if k == "plain" else f"{k}-coconut-ja-en") for k in models}
    if args.register and all(done.values()):
        best = max(done, key=lambda k: done[k]["bleu"] or 0.0)
        results["registered"] = {"name": args.register, "model": best}
        register(args.register, out / "models" / best)
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    print(table(results))
    if "sweep" in results:
        sw = results["sweep"]
        scores = ", ".join(f"{c}: {v['mean']:.1f}" for c, v in sw["scores"].items())
        print(
            f"\nthought sweep ({sw['steps']} updates each, dev BLEU mean of both directions): {scores}; chosen {sw['chosen']}"
        )
    for source, rows in results["samples"].items():
        print(f"\nsentences outside the data set, {source} -> {'en' if source == 'ja' else 'ja'}:")
        for row in rows:
            print(f"  source: {row['source']}")
            for key in ("base", "plain", "latent"):
                if key in row:
                    print(f"  {key} ({row.get(key + '_mode')}): {row[key]}")
    print(
        "\ntime (all sittings): "
        + ", ".join(
            f"{k} {v['wall_s'] / 60:.1f} min wall / {v['cpu_s'] / 60:.1f} min CPU" for k, v in results["time"].items()
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
