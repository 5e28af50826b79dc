"""COCONUT on a real pretrained Gemma (Gemma 3 270M by default), in Japanese and English, on CPUs.

One resumable command. Through the project's own commands (every one is logged with its wall and
CPU time in <out>/ledger.jsonl, summed across sittings):

1. data: `lgemma synth --lang both` (the same graphs in English and Japanese) for train, valid
   and test with different seeds; valid/test rows whose question (in either language) also
   occurs in train are dropped; the test split is written per language (test_en, test_ja). The
   No-CoT training file is the train file with the steps removed.
2. for every seed, four models trained with `lgemma train --lora` on the same rows:
   * CoT: the steps as text (stage 0), `--cot-steps` updates from the base model;
   * COCONUT: from the CoT model, `--first-stage 1`: latent stages 1..N (`--steps-per-stage`
     each) and the final all-latent stage (`--final-steps`); with `--stage0-bot`, first a stage 0
     with `<bot>` after the prompt (`--stage0-steps`); thoughts fed back (`--feedback`:
     the paper's `identity`, `embed_norm`, rescaled to the mean token-embedding norm, or
     `token_mix`, the expected token embedding under the model's next-token distribution);
   * pause: the same curriculum from the same CoT model with `--feedback pause` (the paper's
     "pause as thought" control: every thought position gets one fixed learned embedding);
   * No-CoT: answer only, from the base model, as many updates as CoT + the latent stages.
   So No-CoT, COCONUT and pause have the same number of optimizer updates in all; CoT has fewer
   (it is the reference COCONUT starts from, not the method under test).
3. `lgemma eval --per-example --json` of each model on test_en, test_ja and the first
   `--prosqa-limit` rows of the paper's ProsQA test file (English; its prompts are ~2.5x longer
   than the synthetic ones and its graphs need a search): No-CoT and CoT with `--modes off`,
   COCONUT and pause with `--modes coconut`; unquantized float32.
4. the thought lens (benchmarks/thought_lens.py) of the COCONUT model on test_en and test_ja.
   (each model is evaluated as soon as it is trained, so an interrupted sitting leaves results)
5. one table per data set and seed, then mean and spread over the seeds: accuracy, generated
   tokens, forward passes after the prompt (thoughts counted) and seconds per example;
   everything in <out>/results.json.

Forward passes after the prompt (`forwards` of benchmarks/reproduce_coconut.py): plain decoding
runs a pass per generated token but the last; COCONUT and pause add one per thought and one for <eot>.

Interrupt it at any point and run the same command again: finished models and reports are
reused, an unfinished training run continues from its last checkpoint (`--resume auto`,
checkpoints every `--checkpoint-every` steps).

    python benchmarks/real_coconut.py --out runs/real-coconut --seeds 1,2
    python benchmarks/real_coconut.py --out runs/real-coconut --seeds 1,2 --table-only
    python benchmarks/real_coconut.py --quick --model DIR     # smoke run on any small model
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from latent_gemma_cli.latent_spec import FEEDBACKS  # noqa: E402  (a cheap import: no torch)

# What a latent model's thoughts can be trained with; `pause` is a method of its own here (the control).
THOUGHT_FEEDBACKS = tuple(f for f in FEEDBACKS if f != "pause")

from reproduce_coconut import forwards  # noqa: E402  (one rule for counting forward passes)

METHODS = ("nocot", "cot", "coconut", "pause")
LABELS = {"nocot": "No-CoT", "cot": "CoT", "coconut": "COCONUT", "pause": "Pause (control)"}
MODES = {"nocot": "off", "cot": "off", "coconut": "coconut", "pause": "coconut"}
SETS = ("test_en", "test_ja", "prosqa")


def lgemma() -> list[str]:
    return [sys.executable, "-m", "latent_gemma_cli"]


class Ledger:
    """Wall and CPU seconds of every command, appended to <out>/ledger.jsonl (kept across sittings)."""

    def __init__(self, out: Path):
        self.path = out / "ledger.jsonl"

    def run(self, name: str, cmd: list[str], log: Path, stdout: Path | None = None, threads: int | None = None) -> None:
        """Run one command to the end; `threads` caps its torch threads (commands sharing the machine:
        two 2-thread torch processes on 2 cores run ~10x slower than one)."""
        print(f"[{name}] $ {' '.join(cmd)}", flush=True)
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        if threads:
            env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        with open(log, "a", encoding="utf-8") as err:
            err.write("$ " + " ".join(cmd) + "\n")
            err.flush()
            out = open(stdout, "w", encoding="utf-8") if stdout else err
            try:
                proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
                try:
                    _, status, usage = os.wait4(proc.pid, 0)
                except KeyboardInterrupt:
                    proc.send_signal(2)  # the trainer saves a checkpoint and exits 130
                    _, status, usage = os.wait4(proc.pid, 0)
                    self._record(name, start, usage, os.waitstatus_to_exitcode(status))  # its time counts too
                    raise
                proc.returncode = os.waitstatus_to_exitcode(status)
            finally:
                if stdout:
                    out.close()
        wall = self._record(name, start, usage, proc.returncode)
        if proc.returncode != 0:
            tail = log.read_text(encoding="utf-8")[-2500:]
            raise SystemExit(f"[{name}] failed with exit status {proc.returncode} after {wall:.0f}s\n{tail}")

    def _record(self, name: str, start: float, usage, rc: int) -> float:
        wall = time.perf_counter() - start
        cpu = usage.ru_utime + usage.ru_stime
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"name": name, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "rc": rc}) + "\n")
        return wall

    def totals(self) -> dict[str, dict[str, float]]:
        """Summed seconds per command name (every sitting, failed and interrupted runs included)."""
        out: dict[str, dict[str, float]] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").split("\n"):
                if line.strip():
                    e = json.loads(line)
                    t = out.setdefault(e["name"], {"wall_s": 0.0, "cpu_s": 0.0, "runs": 0})
                    t["wall_s"] += e["wall_s"]
                    t["cpu_s"] += e["cpu_s"]
                    t["runs"] += 1
        return out


def check_settings(ap: argparse.ArgumentParser, out: Path, shape: dict) -> None:
    """Record the settings that shape a run in <out>/settings.json, or refuse an --out made with others."""
    path = out / "settings.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        # a setting added later reads as its default in an older --out
        changed = {k: (old.get(k), v) for k, v in shape.items() if old.get(k, ap.get_default(k)) != v}
        if changed:
            ap.error(f"{out} was made with other settings {changed}: use another --out")
    else:
        path.write_text(json.dumps(shape, indent=2), encoding="utf-8")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").split("\n") if x.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def make_data(args, out: Path, ledger: Ledger) -> dict[str, str]:
    data = out / "data"
    files = {k: data / f"{k}.jsonl" for k in ("train", "train_nocot", "valid", "test_en", "test_ja")}
    if all(p.is_file() for p in files.values()):
        return {k: str(v) for k, v in files.items()}
    data.mkdir(parents=True, exist_ok=True)
    shape = ["--lang", "both", "--style", args.style, "--steps", args.steps, "--hops", args.hops, "--vocab", args.vocab]
    shape += ["--distractors", str(args.distractors), "--branches", str(args.branches)]
    raw = {}
    for k, (name, n) in enumerate((("train", args.train_rows), ("valid", args.valid_rows), ("test", args.test_rows))):
        path = data / f"raw-{name}.jsonl"
        extra = n // 5 + 5 if name != "train" else 0  # room for the rows dropped as duplicates of train
        cmd = lgemma() + [
            "synth",
            "--n",
            str(n + extra),
            "--seed",
            str(args.data_seed * 100 + k),
            *shape,
            "-o",
            str(path),
        ]
        ledger.run("data", cmd, out / "logs" / "data.txt")
        raw[name] = read_jsonl(path)
    train = raw["train"]
    seen = {r["question"] for r in train}
    splits = {"train": train}
    for name, n in (("valid", args.valid_rows), ("test", args.test_rows)):
        # a graph is kept or dropped in both languages together (rows come in en, ja pairs)
        keep = []
        for en, ja in zip(raw[name][0::2], raw[name][1::2]):
            if en["question"] not in seen and ja["question"] not in seen:
                keep += [en, ja]
                seen.update((en["question"], ja["question"]))
        splits[name] = keep[: 2 * n]
    write_jsonl(files["train"], splits["train"])
    write_jsonl(files["train_nocot"], [{**r, "steps": []} for r in splits["train"]])
    write_jsonl(files["valid"], splits["valid"])
    for lang in ("en", "ja"):
        write_jsonl(files[f"test_{lang}"], [r for r in splits["test"] if r["lang"] == lang])
    return {k: str(v) for k, v in files.items()}


def finished(model_dir: Path) -> bool:
    return (model_dir / "config.json").is_file() and (model_dir / "lgemma_latent.json").is_file()


def train_cmd(method: str, args, files: dict, base: str, out: Path, seed: int) -> list[str]:
    stage0 = (args.stage0_steps or args.steps_per_stage) if args.stage0_bot else 0
    latent_steps = stage0 + args.stages * args.steps_per_stage + args.final_steps
    cmd = lgemma() + ["train", "--model", base, "--out", str(out), "--device", "cpu", "--lora"]
    cmd += ["--lr", str(args.lr), "--warmup-steps", str(args.warmup_steps), "--batch-size", str(args.batch_size)]
    cmd += ["--lora-r", str(args.lora_r), "--lora-alpha", str(2 * args.lora_r), "--seed", str(seed)]
    cmd += ["--max-length", str(args.max_length), "--valid", files["valid"], "--valid-limit", str(args.valid_limit)]
    cmd += ["--checkpoint-every", str(args.checkpoint_every), "--keep-checkpoints", "1", "--resume", "auto"]
    cmd += ["--log-every", "5", "--bucket-by-length"]
    if method in ("coconut", "pause"):
        # with --stage0-bot the curriculum starts at stage 0 (the CoT model learns <bot> first)
        first = "0" if args.stage0_bot else "1"
        cmd += ["--data", files["train"], "--first-stage", first, "--stages", str(args.stages)]
        cmd += ["-c", str(args.thoughts_per_step)]
        cmd += ["--stage0-bot"] if args.stage0_bot else []
        cmd += ["--stage0-epochs", str(args.stage0_steps)] if args.stage0_bot and args.stage0_steps else []
        cmd += ["--steps-per-stage", str(args.steps_per_stage), "--final-epochs", str(args.final_steps)]
        cmd += ["--mix-prob", str(args.mix_prob), "--mix-from", args.mix_from]
        cmd += ["--feedback", "pause" if method == "pause" else args.feedback]
    else:
        steps = args.cot_steps if method == "cot" else args.cot_steps + latent_steps
        data = files["train"] if method == "cot" else files["train_nocot"]
        cmd += ["--data", data, "--stages", "0", "--steps-per-stage", str(steps), "--final-epochs", "0"]
    return cmd


def run_seed(args, files: dict, seed_dir: Path, seed: int, ledger: Ledger, register_as: str | None) -> None:
    """Each method trained, then evaluated at once (so an interrupted sitting leaves results)."""
    models = seed_dir / "models"
    order = [m for m in ("cot", "coconut", "pause", "nocot") if m in args.methods]
    for method in order:
        target = models / method
        if not finished(target):
            base = str(models / "cot") if method in ("coconut", "pause") else args.model
            if method in ("coconut", "pause") and not finished(models / "cot"):
                raise SystemExit(f"{method} starts from the CoT model: add cot to --methods")
            cmd = train_cmd(method, args, files, base, target, seed)
            ledger.run(f"train-{method}", cmd, seed_dir / "logs" / f"train-{method}.txt")
            ckpt = target / "checkpoints"
            if finished(target) and ckpt.is_dir():
                shutil.rmtree(ckpt)  # the final model is what is kept; a checkpoint holds optimizer state too
        if method == "coconut" and register_as:
            register(register_as, target, seed_dir)
        eval_method(args, files, seed_dir, ledger, method)


def register(name: str, model_dir: Path, out: Path) -> None:
    """`lgemma download DIR --name NAME`: the user's path (`lgemma ask --model NAME`); a name taken
    by another directory is reported and left alone."""
    cmd = lgemma() + ["download", str(model_dir.resolve()), "--name", name, "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode == 0:
        print(f"registered {model_dir} as {name!r}: lgemma ask --model {name} ...", flush=True)
    else:
        print(f"not registered as {name!r}: {proc.stderr.strip()}", flush=True)


def eval_method(args, files: dict, seed_dir: Path, ledger: Ledger, method: str) -> None:
    sets = {"test_en": (files["test_en"], None), "test_ja": (files["test_ja"], None)}
    if args.prosqa_limit:
        sets["prosqa"] = (str(Path(args.prosqa_dir) / "test.json"), args.prosqa_limit)
    for name, (path, limit) in sets.items():
        report = seed_dir / "reports" / f"{method}-{name}.json"
        if report.is_file():
            continue
        report.parent.mkdir(parents=True, exist_ok=True)
        partial = report.with_suffix(".part")
        cmd = lgemma() + ["eval", "--model", str(seed_dir / "models" / method), "--data", path]
        cmd += ["--modes", MODES[method], "--device", "cpu", "--dtype", "float32", "--quantize", "none"]
        cmd += ["--max-new-tokens", str(args.max_new_tokens), "--batch-size", str(args.eval_batch_size)]
        cmd += ["--json", "--out", str(partial), "--per-example", "-q"]
        if limit:
            cmd += ["--limit", str(limit)]
        ledger.run(f"eval-{method}", cmd, seed_dir / "logs" / f"eval-{method}-{name}.txt")
        partial.replace(report)
    if method == "coconut":
        for lang in ("en", "ja"):
            lens = seed_dir / "reports" / f"lens-coconut-test_{lang}.txt"
            if lens.is_file():
                continue
            cmd = [sys.executable, str(ROOT / "benchmarks" / "thought_lens.py")]
            cmd += ["--model", str(seed_dir / "models" / "coconut")]
            cmd += ["--data", files[f"test_{lang}"], "--limit", str(args.test_rows)]
            cmd += ["--report", str(seed_dir / "reports" / f"coconut-test_{lang}.json")]
            part = lens.with_suffix(".part")
            ledger.run("lens", cmd, seed_dir / "logs" / f"lens-{lang}.txt", stdout=part)
            part.replace(lens)


def collect(seed_dir: Path, methods: list[str]) -> dict:
    """Per method and data set: accuracy, tokens, forwards and seconds from the eval reports."""
    out: dict = {}
    for method in methods:
        for name in SETS:
            path = seed_dir / "reports" / f"{method}-{name}.json"
            if not path.is_file():
                continue
            report = json.loads(path.read_text(encoding="utf-8"))
            mode = MODES[method]
            result = report["results"][mode]
            examples = report["examples"][mode]
            errors = sum(1 for e in examples if e.get("error"))  # e.g. a prompt past the context: counted wrong
            examples = [e for e in examples if not e.get("error")] or [{"num_tokens": 1, "seconds": 0.0}]
            out.setdefault(method, {})[name] = {
                "rows": report["data"]["rows"],
                "errors": errors,
                "accuracy": result["metrics"]["accuracy"],
                "tokens": sum(e["num_tokens"] for e in examples) / len(examples),
                "forwards": forwards(examples, result.get("num_thoughts"), mode),
                "seconds": sum(e["seconds"] for e in examples) / len(examples),
                "thoughts": result.get("num_thoughts") or 0,
            }
    return out


def training_record(seed_dir: Path, methods: list[str]) -> dict:
    out = {}
    for method in methods:
        metrics = seed_dir / "models" / method / "metrics.jsonl"
        if not metrics.is_file():
            continue
        ends = [json.loads(x) for x in metrics.read_text(encoding="utf-8").split("\n") if '"stage_end"' in x]
        out[method] = [
            {
                "stage": e["stage"],
                "step": e["step"],
                "mean_loss": e.get("mean_loss"),
                "valid": (e.get("valid") or {}).get("accuracy"),
            }
            for e in ends
        ]
    return out


def tables(results: dict) -> str:
    lines = []
    seeds = results["seeds"]
    names = {
        "test_en": "synthetic test, English",
        "test_ja": "synthetic test, Japanese",
        "prosqa": "ProsQA test (paper's, English)",
    }
    for name in SETS:
        present = [m for m in METHODS if any(name in results["per_seed"][str(s)]["eval"].get(m, {}) for s in seeds)]
        if not present:
            continue
        lines += [
            f"\n{names[name]}",
            "",
            "| method | seed | acc % | tokens | forwards after prompt | s / example | rows |",
            "|---|---|---|---|---|---|---|",
        ]
        for m in present:
            accs = []
            for s in seeds:
                e = results["per_seed"][str(s)]["eval"].get(m, {}).get(name)
                if e is None:
                    continue
                accs.append(e["accuracy"])
                lines.append(
                    f"| {LABELS[m]} | {s} | {e['accuracy']:.1f} | {e['tokens']:.1f} | {e['forwards']:.1f} | {e['seconds']:.2f} | {e['rows']}"
                    + (f" ({e['errors']} errors)" if e.get("errors") else "")
                    + " |"
                )
            if len(accs) > 1:
                lines.append(
                    f"| {LABELS[m]} | mean ± sd | {statistics.mean(accs):.1f} ± {statistics.stdev(accs):.1f} | | | | |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--out", default="real-coconut-run")
    ap.add_argument("--model", default="gemma-3-270m", help="base model: catalogue name or directory")
    ap.add_argument("--seeds", default="1,2", help="training seeds (the data is the same for every seed)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--quick", action="store_true", help="a smoke run: a few rows and steps")
    ap.add_argument("--table-only", action="store_true", help="print the tables of what --out holds, train nothing")
    ap.add_argument(
        "--register",
        default="gemma-3-270m-coconut",
        help="register the first seed's COCONUT model under this name ('' : do not)",
    )
    ap.add_argument("--prosqa-dir", default=str(ROOT.parent / "shared" / "data" / "prosqa"))
    # data
    ap.add_argument("--data-seed", type=int, default=7)
    ap.add_argument("--train-rows", type=int, default=600, help="graphs (each in English and Japanese)")
    ap.add_argument("--valid-rows", type=int, default=20)
    ap.add_argument("--test-rows", type=int, default=100, help="graphs (per language)")
    ap.add_argument("--style", default="taxonomy")
    ap.add_argument("--steps", default="concepts")
    ap.add_argument("--hops", default="3")
    ap.add_argument(
        "--vocab",
        default="made-up",
        choices=("made-up", "words"),
        help="concept names: made-up (2-3 Gemma tokens each) or words (everyday nouns, one token each)",
    )
    ap.add_argument("--distractors", type=int, default=4)
    ap.add_argument("--branches", type=int, default=2)
    # training
    ap.add_argument("--cot-steps", type=int, default=100)
    ap.add_argument("--stages", type=int, default=3)
    ap.add_argument("--steps-per-stage", type=int, default=25)
    ap.add_argument(
        "-c",
        "--thoughts-per-step",
        type=int,
        default=1,
        help="continuous thoughts per removed step (the paper's c): a concept of the synthetic walks is 2-3 Gemma tokens",
    )
    ap.add_argument("--final-steps", type=int, default=25)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup-steps", type=int, default=5)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--mix-prob", type=float, default=0.0)
    ap.add_argument("--mix-from", default="earlier", choices=("earlier", "any"))
    ap.add_argument(
        "--stage0-bot",
        action="store_true",
        help="COCONUT and pause start at stage 0 with `train --stage0-bot` (<bot> after the prompt of written-chain "
        "rows), so thought 1 starts as the first step; --steps-per-stage then covers stages 0..N (set it to keep "
        "the update budget)",
    )
    ap.add_argument(
        "--stage0-steps",
        type=int,
        default=None,
        help="with --stage0-bot: updates of that stage 0 (`train --stage0-epochs`); default --steps-per-stage",
    )
    ap.add_argument(
        "--feedback",
        default="identity",
        choices=THOUGHT_FEEDBACKS,
        help="COCONUT's thought feedback: the paper's hidden state, rescaled to the mean embedding norm, or the expected token embedding under the next-token distribution (token_mix)",
    )
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--valid-limit", type=int, default=40)
    ap.add_argument("--checkpoint-every", type=int, default=10)
    # evaluation
    ap.add_argument("--prosqa-limit", type=int, default=100, help="first N rows of ProsQA test.json (0: skip)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--eval-batch-size", type=int, default=8)
    args = ap.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if bad := [m for m in args.methods if m not in METHODS]:
        ap.error(f"unknown method(s) {bad}: use {', '.join(METHODS)}")
    if args.quick:
        for k, v in dict(
            train_rows=16,
            valid_rows=2,
            test_rows=4,
            cot_steps=2,
            steps_per_stage=1,
            final_steps=1,
            batch_size=2,
            valid_limit=2,
            prosqa_limit=2,
            max_new_tokens=12,
            checkpoint_every=1,
        ).items():
            if getattr(args, k) == ap.get_default(k):
                setattr(args, k, v)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(out)
    shape = {
        k: getattr(args, k)
        for k in (
            "model",
            "data_seed",
            "train_rows",
            "valid_rows",
            "test_rows",
            "style",
            "steps",
            "hops",
            "vocab",
            "distractors",
            "branches",
            "cot_steps",
            "stages",
            "steps_per_stage",
            "final_steps",
            "batch_size",
            "lr",
            "warmup_steps",
            "lora_r",
            "mix_prob",
            "mix_from",
            "max_length",
            "feedback",
            "stage0_bot",
            "stage0_steps",
            "thoughts_per_step",
        )
    }
    check_settings(ap, out, shape)

    if not args.table_only:
        files = make_data(args, out, ledger)
        for seed in seeds:
            seed_dir = out / f"seed-{seed}"
            run_seed(args, files, seed_dir, seed, ledger, args.register if seed == seeds[0] else None)
    results = {
        "command": " ".join(["python", "benchmarks/real_coconut.py"] + (argv if argv is not None else sys.argv[1:])),
        "settings": shape,
        "seeds": seeds,
        "hardware": {
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "torch_threads": _threads(),
        },
        "time": ledger.totals(),
        "per_seed": {
            str(s): {
                "eval": collect(out / f"seed-{s}", args.methods),
                "training": training_record(out / f"seed-{s}", args.methods),
            }
            for s in seeds
        },
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    print(tables(results))
    total = results["time"]
    print(
        "\ntime (all sittings): "
        + ", ".join(f"{k} {v['wall_s'] / 60:.1f} min wall / {v['cpu_s'] / 60:.1f} min CPU" for k, v in total.items())
    )
    return 0


def _threads() -> int | None:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:  # pragma: no cover
        return None


if __name__ == "__main__":
    raise SystemExit(main())
