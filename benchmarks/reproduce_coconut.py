"""Reproduce the COCONUT ProsQA comparison (Hao et al. 2024, Table 1) at toy scale, on CPUs.

What it does, end to end, through the project's own code paths:

1. generates multi-hop problems with `latent_gemma_cli.synthetic`: `--style prosqa` (graphs
   shaped like the paper's ProsQA: finding the chain is a search) or `--style taxonomy` (one
   parent per concept: the chain is a walk, one lookup per step), drawing concept and people
   names from the `idx_to_symbol` lists of the paper's ProsQA files, read at run time from
   --prosqa-dir (no ProsQA data is copied into the repository): train / valid / test splits with
   different seeds; test and valid rows whose question also occurs in train are dropped;
2. builds a small random-init Gemma 3 (text) model and a word-level tokenizer over the problem
   vocabulary in-process (as tests/conftest.py does) and saves them with `save_pretrained`;
3. trains it three ways with `lgemma train` (a subprocess each, `--jobs` at a time):
   * No-CoT: rows with the steps removed, `--stages 0 --final-epochs 0` (answer only);
   * CoT: `--stages 0 --final-epochs 0` (the steps as text, then "### answer");
   * COCONUT: the curriculum, c = 1 thought per step, `--stages N` (stage 0 = CoT, then stages
     1..N, then the final all-latent stage), from the random-init model (the paper's ProsQA
     recipe) or, with `--coconut-init cot`, from the trained CoT model (its GSM8k recipe);
   * with `--cot-until-acc A`, CoT is trained `--cot-steps` steps, then, while its validation
     accuracy (stage 0, `--valid-limit` valid rows) is below A, in further chunks of
     `--cot-check-every` steps up to `--cot-max-steps` in all; each chunk is one more
     `lgemma train` run from the previous chunk's model (fresh AdamW and warm-up, data order
     from seed + 1000 x chunk), kept in <out>/models/cot-steps/<steps>; the model that passed, or
     the last one when the budget ran out (reported, and `--cot-fail stop` then ends the run),
     becomes <out>/models/cot;
4. evaluates each with `lgemma eval --json --out` on the synthetic test split and on the paper's
   ProsQA valid and test files: No-CoT and CoT with `--modes off`, COCONUT with `--modes coconut`;
5. prints one table (accuracy, generated tokens per answer, forward passes after the prompt,
   seconds per example) and writes all numbers to <out>/results.json; every command's output is
   in <out>/logs/.

Forward passes after the prompt: `lgemma eval` prefills the prompt (and COCONUT's <bot>) in one
pass; after it, plain decoding runs one pass per generated token but the last (the <eos> is
never fed back), COCONUT one per thought, one for <eot>, then the same: tokens - 1 for No-CoT
and CoT, thoughts + tokens for COCONUT. This is the sequential work the latent steps replace.

Every question offers two options, so 50% accuracy is chance.

    python benchmarks/reproduce_coconut.py --quick            # smoke run, about a minute
    python benchmarks/reproduce_coconut.py --summary DIR1 DIR2  # per-seed table, mean and spread
    # the recorded runs and their commands: benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<unused0>", "<unused1>"]
TEMPLATE_WORDS = ["Every", "is", "a", ".", "?", "Is", "or", "###", "\n"]
METHODS = ("nocot", "cot", "coconut")
LABELS = {"nocot": "No-CoT", "cot": "CoT", "coconut": "COCONUT"}


def read_prosqa_vocab(prosqa_dir: Path) -> tuple[list[str], list[str]]:
    """(concept names, people names) of the paper's ProsQA files, read at run time."""
    symbols: set[str] = set()
    for name in ("valid.json", "test.json"):
        for row in json.loads((prosqa_dir / name).read_text(encoding="utf-8")):
            symbols.update(row["idx_to_symbol"])
    people = sorted(s for s in symbols if s[:1].isupper())
    concepts = sorted(s for s in symbols if not s[:1].isupper())
    return concepts, people


def build_tokenizer(words: list[str], newline: bool = True):
    """A word-level tokenizer: one id per word, punctuation, '###' and (with `newline`) newline; Gemma's special names.

    Without `newline` a newline is whitespace like a space (the vocabulary is the same), so a
    chain of one-word steps is one token per step."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + sorted(set(TEMPLATE_WORDS + words)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(
        Regex((r"\n|" if newline else "") + r"###|[A-Za-z]+|[^\sA-Za-z]"), behavior="removed", invert=True
    )
    tok.decoder = decoders.WordPiece(
        prefix="\x00\x00", cleanup=True
    )  # joins words with spaces, no space before '.'/'?'
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=["<unused0>", "<unused1>"],
    )


def build_model(vocab_size: int, hidden: int, layers: int, heads: int, seed: int):
    """A random-init Gemma 3 text model (full attention in every layer)."""
    import torch
    from transformers import AutoModelForCausalLM, Gemma3TextConfig

    head_dim = hidden // heads
    config = Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        head_dim=head_dim,
        max_position_embeddings=1024,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        sliding_window=1024,
        layer_types=["full_attention"] * layers,
        query_pre_attn_scalar=head_dim,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = 1
    return model


def write_jsonl(path: Path, rows) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def make_data(out: Path, args, concepts: list[str], people: list[str]) -> dict:
    from latent_gemma_cli.synthetic import generate

    hops = tuple(int(x) for x in args.hops.split("-")) if "-" in args.hops else (int(args.hops),) * 2
    common = dict(
        lang="en",
        hops=hops,
        distractors=args.distractors,
        branches=args.branches,
        style=args.style,
        names=concepts,
        people=people,
        one_person=args.one_person,
        steps=args.steps,
    )
    row = lambda p: {"id": p.id, "question": p.question, "steps": p.steps, "answer": p.answer}  # noqa: E731
    train = [row(p) for p in generate(args.train_rows, seed=args.seed * 1000 + 1, **common)]
    seen = {r["question"] for r in train}
    splits = {"train": train}
    for k, (name, n) in enumerate((("valid", args.valid_rows), ("test", args.test_rows))):
        rows = [row(p) for p in generate(n + n // 10 + 5, seed=args.seed * 1000 + 2 + k, **common)]
        rows = [r for r in rows if r["question"] not in seen][:n]
        seen.update(r["question"] for r in rows)
        splits[name] = rows
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, rows in splits.items():
        files[name] = str(data / f"{name}.jsonl")
        write_jsonl(Path(files[name]), rows)
    files["train_nocot"] = str(data / "train_nocot.jsonl")
    write_jsonl(Path(files["train_nocot"]), ({**r, "steps": []} for r in train))
    return {"files": files, "rows": {k: len(v) for k, v in splits.items()}, "hops": list(hops)}


def run(cmd: list[str], log: Path, keep_stdout: bool = True) -> float:
    """Run a command, its output appended to `log` (stdout dropped unless `keep_stdout`: the
    eval report is read from its --out file); return the wall seconds. Fails loudly."""
    print("$ " + " ".join(cmd), flush=True)
    start = time.perf_counter()
    with open(log, "a", encoding="utf-8") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(
            cmd,
            stdout=f if keep_stdout else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
        )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8")[-3000:]
        raise SystemExit(f"command failed ({proc.returncode}) after {seconds:.0f}s: {' '.join(cmd)}\n{tail}")
    return seconds


def lgemma() -> list[str]:
    return [sys.executable, "-m", "latent_gemma_cli"]


def train_cmd(
    method: str, args, files: dict, base: Path, out: Path, steps: int | None = None, seed: int | None = None
) -> list[str]:
    """The `lgemma train` command of one method; `steps` and `seed` override those of a CoT chunk."""
    data = files["train_nocot"] if method == "nocot" else files["train"]
    cmd = lgemma() + [
        "train",
        "--model",
        str(base),
        "--data",
        data,
        "--out",
        str(out),
        "--device",
        "cpu",
        "--lr",
        str(args.lr),
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(args.seed if seed is None else seed),
        "--max-length",
        str(args.max_length),
        "--valid",
        files["valid"],
        "--valid-limit",
        str(args.valid_limit),
        "--log-every",
        "20",
        "--keep-checkpoints",
        "1",
        "--warmup-steps",
        str(args.warmup_steps),
    ]
    if method == "coconut":
        cmd += [
            "--stages",
            str(args.stages),
            "-c",
            str(args.thoughts_per_step),
            "--steps-per-stage",
            str(args.steps_per_stage),
            "--final-epochs",
            str(args.final_steps if args.final_steps is not None else args.steps_per_stage),
            "--mix-prob",
            str(args.mix_prob),
            "--feedback",
            args.feedback,
        ]
        if args.stage0_bot:
            cmd.append("--stage0-bot")
    else:
        if steps is None:
            steps = args.baseline_steps
            if method == "cot" and args.cot_steps is not None:
                steps = args.cot_steps
        # --final-epochs 0: with --stages 0 the trainer would otherwise add a stage 1 that drops every step.
        cmd += ["--stages", "0", "--steps-per-stage", str(steps), "--final-epochs", "0"]
    return cmd


def stage_ends(model_dir: Path) -> list[dict]:
    return [json.loads(line) for line in open(model_dir / "metrics.jsonl", encoding="utf-8") if '"stage_end"' in line]


def finished(model_dir: Path) -> bool:
    return (model_dir / "config.json").is_file() and (model_dir / "lgemma_latent.json").is_file()


def train_cot_until(args, files: dict, base: Path, models: Path, log: Path) -> dict:
    """CoT: `--cot-steps`, then chunks of `--cot-check-every` until the stage-0 validation accuracy
    reaches `--cot-until-acc` or `--cot-max-steps` are spent; the last chunk becomes models/cot.

    Each chunk is its own `lgemma train` run (a run's length is part of its resume fingerprint, so
    `--resume` cannot lengthen it) from the previous chunk's model, data order seeded with
    seed + 1000 x chunk (the same seed would repeat the first chunk's rows); chunks already in
    models/cot-steps are reused. Returns the record kept in results.json."""
    import shutil

    first = args.cot_steps if args.cot_steps is not None else args.baseline_steps
    budget = max(args.cot_max_steps, first)
    chunks, total, start, k = [], 0, base, 0
    while True:
        steps = first if k == 0 else min(args.cot_check_every, budget - total)
        seed = args.seed + 1000 * k
        out = models / "cot-steps" / f"{total + steps:06d}"
        made = {"from": str(start), "steps": steps, "seed": seed}
        note = out / "chunk.json"
        old = json.loads(note.read_text(encoding="utf-8")) if note.is_file() else {}
        if finished(out) and all(old.get(key, value) == value for key, value in made.items()):
            print(f"cot: reusing {out}", flush=True)
            seconds = old.get("seconds")
        else:
            if out.exists():
                shutil.rmtree(out)
            seconds = run(train_cmd("cot", args, files, start, out, steps=steps, seed=seed), log)
            note.write_text(json.dumps({**made, "seconds": seconds}), encoding="utf-8")
        total += steps
        end = stage_ends(out)[-1]
        acc = (end.get("valid") or {}).get("accuracy")
        chunks.append(
            {
                "model": str(out),
                "from": str(start),
                "steps": steps,
                "seed": seed,
                "total_steps": total,
                "seconds": seconds,
                "mean_loss": end.get("mean_loss"),
                "valid_accuracy": acc,
            }
        )
        print(
            f"cot: {total} steps, mean loss of the last {steps} {end.get('mean_loss'):.4f}, valid accuracy {acc} "
            f"(needed {args.cot_until_acc})",
            flush=True,
        )
        reached = acc is not None and acc >= args.cot_until_acc
        if reached or total >= budget:
            break
        start, k = out, k + 1
    final = models / "cot"
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(out, final, ignore=shutil.ignore_patterns("checkpoints"))
    record = {
        "threshold": args.cot_until_acc,
        "max_steps": budget,
        "check_every": args.cot_check_every,
        "reached": reached,
        "steps": total,
        "valid_accuracy": acc,
        "chunks": chunks,
    }
    (final / "cot_until.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    if not reached:
        print(
            f"cot: the teacher did not reach {args.cot_until_acc:.2f} validation accuracy within {budget} steps "
            f"(last {acc}): the budget ran out",
            flush=True,
        )
    return record


def eval_sets(args, files: dict) -> dict[str, tuple[str, int | None]]:
    prosqa = Path(args.prosqa_dir)
    return {
        "synthetic test": (files["test"], None),
        "ProsQA valid": (str(prosqa / "valid.json"), args.prosqa_limit),
        "ProsQA test": (str(prosqa / "test.json"), args.prosqa_limit),
    }


def main(argv: list[str] | None = None) -> int:
    from latent_gemma_cli.latent_spec import FEEDBACKS
    from latent_gemma_cli.synthetic import STEP_FORMATS

    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--out", default="coconut-run", help="working directory (data, models, logs, results.json)")
    ap.add_argument("--quick", action="store_true", help="smoke-run preset: tiny model, data and steps (a few minutes)")
    ap.add_argument(
        "--prosqa-dir",
        default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "prosqa"),
        help="the paper's ProsQA valid.json / test.json (default: ../shared/data/prosqa beside the repository)",
    )
    ap.add_argument("--methods", default="nocot,cot,coconut")
    ap.add_argument("--seed", type=int, default=0)
    # data
    ap.add_argument("--train-rows", type=int, default=3000)
    ap.add_argument("--valid-rows", type=int, default=200)
    ap.add_argument("--test-rows", type=int, default=200)
    ap.add_argument(
        "--style",
        default="prosqa",
        choices=["prosqa", "taxonomy"],
        help="prosqa: graphs shaped like the paper's (a search); taxonomy: one parent per concept (a walk)",
    )
    ap.add_argument(
        "--one-person",
        action="store_true",
        help="taxonomy: the distractor's chain starts at a concept, not at another person",
    )
    ap.add_argument(
        "--steps",
        default="facts",
        choices=STEP_FORMATS,
        help="chain-of-thought steps: the facts used, or only the concepts reached (one word each; newline is then not a token)",
    )
    ap.add_argument("--hops", default="3-6")
    ap.add_argument("--branches", type=int, default=7, help="mean extra reachable concepts per problem")
    ap.add_argument("--distractors", type=int, default=6, help="mean extra unreachable concepts per problem")
    # model
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    # training
    ap.add_argument("--stages", type=int, default=3, help="COCONUT max stage N")
    ap.add_argument("--thoughts-per-step", type=int, default=1)
    ap.add_argument("--steps-per-stage", type=int, default=240)
    ap.add_argument(
        "--final-steps", type=int, default=None, help="steps of the final all-latent stage [default: steps per stage]"
    )
    ap.add_argument(
        "--baseline-steps", type=int, default=600, help="optimizer steps of No-CoT (and of CoT unless --cot-steps)"
    )
    ap.add_argument("--cot-steps", type=int, default=None, help="optimizer steps of CoT [default: --baseline-steps]")
    ap.add_argument(
        "--cot-until-acc",
        type=float,
        default=0.0,
        help="train CoT past --cot-steps, in chunks, until its validation accuracy reaches this (0: off)",
    )
    ap.add_argument("--cot-check-every", type=int, default=1000, help="with --cot-until-acc: steps per extra CoT chunk")
    ap.add_argument("--cot-max-steps", type=int, default=16000, help="with --cot-until-acc: CoT steps in all at most")
    ap.add_argument(
        "--cot-fail",
        default="continue",
        choices=["continue", "stop"],
        help="with --cot-until-acc, when the budget runs out: train the other methods on the unformed teacher "
        "anyway (reported) or stop before them (nothing evaluated, results.json written, exit status 3)",
    )
    ap.add_argument(
        "--coconut-init",
        default="base",
        choices=["base", "cot"],
        help="COCONUT starts from the random-init model (the paper's ProsQA recipe) or from the trained CoT model "
        "(its GSM8k recipe); COCONUT then trains (stages + 2) x steps per stage more",
    )
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup-steps", type=int, default=20)
    ap.add_argument("--mix-prob", type=float, default=0.0)
    ap.add_argument(
        "--feedback",
        default="identity",
        choices=FEEDBACKS,
        help="COCONUT's thought input: the last hidden state as is, or rescaled to the mean token-embedding norm",
    )
    ap.add_argument(
        "--stage0-bot",
        action="store_true",
        help="COCONUT's language stage ends each prompt with <bot>, so the first thought starts out as the "
        "first step (lgemma train --stage0-bot; with --coconut-init cot the teacher itself is trained without)",
    )
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--valid-limit", type=int, default=30)
    # evaluation
    ap.add_argument("--prosqa-limit", type=int, default=0, help="first N rows of each ProsQA file (0: all)")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--jobs", type=int, default=2, help="train / eval subprocesses run at once (one per core)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OMP_NUM_THREADS for the train/eval subprocesses (0: torch default); 1 was 4-6x faster than 2 on a shared 2-core machine",
    )
    ap.add_argument(
        "--table-only",
        action="store_true",
        help="reprint the table of an earlier run in --out (recomputing option rates)",
    )
    ap.add_argument(
        "--summary",
        nargs="+",
        metavar="DIR",
        help="print the synthetic-test table of several runs (one per seed) with mean and spread, then exit",
    )
    args = ap.parse_args(argv)
    if args.summary:
        print(summary([json.loads((Path(d) / "results.json").read_text(encoding="utf-8")) for d in args.summary]))
        return 0
    if args.cot_until_acc and args.cot_check_every < 1:
        ap.error("--cot-check-every must be at least 1")
    if args.table_only:
        path = Path(args.out) / "results.json"
        results = json.loads(path.read_text(encoding="utf-8"))
        sets = eval_sets(argparse.Namespace(**results["settings"]), results["data"]["files"])
        for evals in results["evaluation"].values():
            for set_name, entry in evals.items():
                entry["option_rate"] = option_rate(entry["report"], sets[set_name][0])
                report = json.loads(Path(entry["report"]).read_text(encoding="utf-8"))
                entry["forwards_after_prompt"] = forwards(
                    report["examples"][entry["mode"]], entry["num_thoughts"], entry["mode"]
                )
        path.write_text(json.dumps(results, indent=2), encoding="utf-8")
        print(table(results))
        print(f"\nwall time {results['wall_seconds'] / 60:.1f} min (of the original run)")
        return 0
    if args.quick:
        for k, v in dict(
            train_rows=300,
            valid_rows=20,
            test_rows=30,
            hidden=64,
            layers=2,
            heads=2,
            stages=2,
            steps_per_stage=8,
            baseline_steps=8,
            batch_size=8,
            prosqa_limit=20,
            valid_limit=10,
            warmup_steps=2,
            max_new_tokens=64,
        ).items():
            if getattr(args, k) == ap.get_default(k):
                setattr(args, k, v)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        ap.error(f"unknown method(s) {bad}: use {', '.join(METHODS)}")

    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    concepts, people = read_prosqa_vocab(Path(args.prosqa_dir))
    data = make_data(out, args, concepts, people)
    print(f"data: {data['rows']} rows (hops {args.hops}) in {out / 'data'}", flush=True)

    tok = build_tokenizer(concepts + people, newline=args.steps == "facts")
    model = build_model(len(tok), args.hidden, args.layers, args.heads, args.seed)
    base = out / "base"
    model.save_pretrained(base)
    tok.save_pretrained(base)
    n_params = sum(p.numel() for p in model.parameters())
    lengths = [
        len(tok(json.loads(line)["question"])["input_ids"]) for line in open(data["files"]["train"], encoding="utf-8")
    ]
    print(
        f"model: Gemma 3 text, hidden {args.hidden}, {args.layers} layers, {args.heads} heads, vocab {len(tok)}, "
        f"{n_params / 1e6:.2f}M parameters; prompts {min(lengths)}-{max(lengths)} tokens (mean {sum(lengths) / len(lengths):.0f})",
        flush=True,
    )

    results: dict = {
        "command": " ".join(
            [Path(sys.executable).name, "benchmarks/reproduce_coconut.py"]
            + (argv if argv is not None else sys.argv[1:])
        ),
        "settings": vars(args),
        "hardware": {
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "processor": platform.processor() or None,
            "python": platform.python_version(),
        },
        "model": {
            "architecture": "Gemma3ForCausalLM (random init)",
            "hidden": args.hidden,
            "layers": args.layers,
            "heads": args.heads,
            "vocab": len(tok),
            "parameters": n_params,
            "prompt_tokens_mean": sum(lengths) / len(lengths),
        },
        "data": data,
        "training": {},
        "evaluation": {},
    }
    from concurrent.futures import ThreadPoolExecutor

    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    seconds: dict[str, float | None] = {}
    todo = []
    for method in methods:
        model_dir = out / "models" / method
        if method == "cot" and args.cot_until_acc:
            todo.append(method)  # train_cot_until reuses the chunks in models/cot-steps and checks them again
        elif finished(model_dir):
            print(f"{method}: reusing {model_dir}", flush=True)
            seconds[method] = None
        else:
            if model_dir.exists():
                import shutil

                shutil.rmtree(model_dir)
            todo.append(method)
    # chains of jobs run one after the other (COCONUT after CoT when it starts from it); chains in parallel
    init_from_cot = args.coconut_init == "cot" and "coconut" in methods
    if init_from_cot and "cot" not in methods:
        ap.error("--coconut-init cot needs the cot method")
    start = {m: (out / "models" / "cot" if m == "coconut" and init_from_cot else base) for m in methods}
    chains = [[m] for m in todo if not (init_from_cot and m in ("cot", "coconut"))]
    if init_from_cot:
        chains.insert(0, [m for m in ("cot", "coconut") if m in todo])
    chains.sort(key=lambda c: "coconut" not in c)  # the longest chain first

    def train_one(m: str) -> float:
        if m == "cot" and args.cot_until_acc:
            t0 = time.perf_counter()
            train_cot_until(args, data["files"], base, out / "models", logs / "train-cot.txt")
            return time.perf_counter() - t0
        return run(train_cmd(m, args, data["files"], start[m], out / "models" / m), logs / f"train-{m}.txt")

    def run_chain(chain: list[str]) -> dict[str, float]:
        return {m: train_one(m) for m in chain}

    if (
        args.cot_until_acc and args.cot_fail == "stop" and "cot" in todo
    ):  # the teacher first, alone: the rest may not run
        seconds["cot"] = train_one("cot")
        chains = [[m for m in c if m != "cot"] for c in chains]
        record = json.loads((out / "models" / "cot" / "cot_until.json").read_text(encoding="utf-8"))
        if not record["reached"]:
            results["training"]["cot"] = {
                "seconds": seconds["cot"],
                "optimizer_steps": record["steps"],
                "until": record,
            }
            results["wall_seconds"] = time.perf_counter() - started
            (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
            print(f"stopped (--cot-fail stop): no teacher; the record is in {out / 'results.json'}")
            return 3
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for done in pool.map(run_chain, [c for c in chains if c]):
            seconds.update(done)
    results["training_init"] = {m: str(start[m]) for m in methods}
    for method in methods:
        model_dir = out / "models" / method
        stages = stage_ends(model_dir)
        steps = max((s["step"] for s in stages), default=0)
        results["training"][method] = {"seconds": seconds[method], "optimizer_steps": steps, "stages": stages}
        until = model_dir / "cot_until.json"
        if method == "cot" and until.is_file():  # trained in chunks: every chunk's validation, the steps of all
            record = json.loads(until.read_text(encoding="utf-8"))
            steps = record["steps"]
            results["training"][method].update(
                optimizer_steps=steps,
                until=record,
                stages=[
                    {
                        "event": "stage_end",
                        "stage": 0,
                        "step": c["total_steps"],
                        "mean_loss": c["mean_loss"],
                        "valid": {"accuracy": c["valid_accuracy"]},
                    }
                    for c in record["chunks"]
                ],
            )
        if method == "coconut" and init_from_cot:  # the CoT model it started from counts too
            cot = results["training"].get("cot") or {}
            results["training"][method].update(
                init_steps=cot.get("optimizer_steps", 0), init_seconds=cot.get("seconds")
            )
        print(
            f"{method}: trained in {seconds[method] or 0:.0f}s, {steps} steps; stage ends: "
            + "; ".join(
                f"s{s['stage']} loss {s['mean_loss']:.3f} valid {s.get('valid', {}).get('accuracy')}" for s in stages
            ),
            flush=True,
        )

    jobs = []
    for method in methods:
        mode = "coconut" if method == "coconut" else "off"
        for set_name, (path, limit) in eval_sets(args, data["files"]).items():
            report_path = out / "reports" / f"{method}-{set_name.replace(' ', '_')}.json"
            report_path.parent.mkdir(parents=True, exist_ok=True)
            cmd = lgemma() + [
                "eval",
                "--model",
                str(out / "models" / method),
                "--data",
                path,
                "--modes",
                mode,
                "--device",
                "cpu",
                "--dtype",
                "float32",
                "--max-new-tokens",
                str(args.max_new_tokens),
                "--json",
                "--out",
                str(report_path),
                "--per-example",
                "-q",
            ]
            if limit:
                cmd += ["--limit", str(limit)]
            jobs.append((method, mode, set_name, path, report_path, cmd))
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        walls = list(pool.map(lambda j: run(j[5], logs / f"eval-{j[0]}-{j[4].stem}.txt", keep_stdout=False), jobs))
    for (method, mode, set_name, path, report_path, _), wall in zip(jobs, walls):
        report = json.loads(report_path.read_text(encoding="utf-8"))
        m = report["results"][mode]["metrics"]
        examples = report["examples"][mode]
        entry = {
            "mode": mode,
            "rows": report["data"]["rows"],
            "accuracy": m["accuracy"] / 100.0,
            "tokens_per_answer": sum(e["num_tokens"] for e in examples) / len(examples),
            "forwards_after_prompt": forwards(examples, report["results"][mode]["num_thoughts"], mode),
            "seconds_per_example": sum(e["seconds"] for e in examples) / len(examples),
            "num_thoughts": report["results"][mode]["num_thoughts"],
            "report": str(report_path),
            "eval_wall_seconds": wall,
            "contamination_warning": [w for w in report["warnings"] if "train" in w.lower()],
        }
        entry["option_rate"] = option_rate(str(report_path), path)
        results["evaluation"].setdefault(method, {})[set_name] = entry
        print(
            f"{LABELS[method]} on {set_name}: acc {entry['accuracy']:.3f} ({entry['rows']} rows), option {entry['option_rate']}, "
            f"{entry['tokens_per_answer']:.1f} tokens, {entry['forwards_after_prompt']:.1f} forwards after the prompt, "
            f"{entry['seconds_per_example']:.3f} s/example",
            flush=True,
        )
    results["wall_seconds"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print()
    print(table(results))
    print(f"\nwall time {results['wall_seconds'] / 60:.1f} min; results in {out / 'results.json'}")
    return 0


def forwards(examples: list[dict], num_thoughts: int | None, mode: str) -> float:
    """Mean forward passes after the prompt's prefill: a pass per generated token but the last
    (`<eos>` is not fed back), and in COCONUT one per thought and one for `<eot>` (module docstring)."""
    latent = (num_thoughts or 0) + 1 if mode == "coconut" else 0
    return sum(latent + e["num_tokens"] - 1 for e in examples) / len(examples)


def option_rate(report_path: str, data_path: str) -> float | None:
    """Share of answers that name one of the question's two options (the rest can never be right)."""
    import re

    from latent_gemma_cli.answers import extract_answer
    from latent_gemma_cli.datasets import read_dataset

    report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    mode = report["modes"][0]
    questions = [e.question for e in read_dataset(data_path).examples]  # the reader `lgemma eval` indexes into
    hits = total = 0
    for e in report["examples"][mode]:
        m = re.search(r"Is \w+ a (\w+) or (\w+)\?\s*$", questions[e["index"]])
        if not m:
            continue
        words = re.findall(r"\w+", extract_answer(e["raw"]))
        total += 1
        hits += bool(words) and words[-1] in m.groups()
    return hits / total if total else None


def table(results: dict) -> str:
    sets = ["synthetic test", "ProsQA valid", "ProsQA test"]
    rows = [
        "| method | "
        + " | ".join(f"{s}: acc % / option % / tokens / forwards / s per ex." for s in sets)
        + " | train steps / min |",
        "|---" * (len(sets) + 2) + "|",
    ]
    for method, evals in results["evaluation"].items():
        cells = []
        for s in sets:
            e = evals.get(s)
            opt = f"{100 * e['option_rate']:.0f}" if e and e.get("option_rate") is not None else "-"
            fw = f"{e['forwards_after_prompt']:.1f}" if e and e.get("forwards_after_prompt") is not None else "-"
            cells.append(
                f"{100 * e['accuracy']:.1f} / {opt} / {e['tokens_per_answer']:.1f} / {fw} / {e['seconds_per_example']:.3f} (n={e['rows']})"
                if e
                else "-"
            )
        t = results["training"][method]
        minutes = f"{t['seconds'] / 60:.1f}" if t["seconds"] else "reused"
        steps = (
            f"{t['init_steps']} (CoT) + {t['optimizer_steps']}" if t.get("init_steps") else str(t["optimizer_steps"])
        )
        rows.append(f"| {LABELS[method]} | " + " | ".join(cells) + f" | {steps} / {minutes} |")
    until = results["training"].get("cot", {}).get("until")
    if until:
        checks = ", ".join(
            f"{c['total_steps']}: {100 * c['valid_accuracy']:.0f}%"
            for c in until["chunks"]
            if c["valid_accuracy"] is not None
        )
        rows.append(
            f"\nCoT validation by steps ({checks}): {'reached' if until['reached'] else 'did NOT reach'} "
            f"{100 * until['threshold']:.0f}% within {until['max_steps']} steps"
        )
    return "\n".join(rows)


def summary(runs: list[dict]) -> str:
    """Synthetic-test accuracy, tokens and forward passes per seed, then the mean and spread."""
    import statistics

    methods = [m for m in METHODS if all(m in r["evaluation"] for r in runs)]
    head = (
        "| seed | "
        + " | ".join(f"{LABELS[m]} acc % / tokens / forwards" for m in methods)
        + " | CoT steps (valid %) | wall min |"
    )
    rows = [head, "|---" * (len(methods) + 3) + "|"]
    accs: dict[str, list[float]] = {m: [] for m in methods}
    for r in runs:
        cells = []
        for m in methods:
            e = r["evaluation"][m]["synthetic test"]
            accs[m].append(100 * e["accuracy"])
            fw = e.get("forwards_after_prompt")
            cells.append(
                f"{100 * e['accuracy']:.1f} / {e['tokens_per_answer']:.1f} / {fw:.1f}"
                if fw is not None
                else f"{100 * e['accuracy']:.1f} / {e['tokens_per_answer']:.1f} / -"
            )
        cot = r["training"].get("cot", {})
        valid = (cot.get("stages") or [{}])[-1].get("valid", {}).get("accuracy")
        teacher = (
            f"{cot.get('optimizer_steps', '-')} ({100 * valid:.0f})"
            if valid is not None
            else str(cot.get("optimizer_steps", "-"))
        )
        rows.append(
            f"| {r['settings']['seed']} | " + " | ".join(cells) + f" | {teacher} | {r['wall_seconds'] / 60:.1f} |"
        )

    def spread(v):
        return (
            f"{statistics.mean(v):.1f} ± {statistics.stdev(v):.1f} (min {min(v):.1f}, max {max(v):.1f})"
            if len(v) > 1
            else f"{v[0]:.1f}"
        )  # noqa: E731

    rows.append("| mean ± sd | " + " | ".join(spread(accs[m]) for m in methods) + " | | |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
