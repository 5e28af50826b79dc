"""CPU speed of a real model: decode s/token, prefill, and cold `lgemma ask`, for fp32, int8 and
int4, each printed as a ratio to `transformers` fp32 measured in the same run (and to llama.cpp on
the same model's GGUF when `llama-cpp-python` happens to be importable; it is never a dependency).

    python benchmarks/cpu_speed.py [--model gemma-3-270m] [--threads 2] [--new-tokens 32]
        [--repeats 3] [--cold-runs 3] [--gguf PATH]

Decode is timed on a fixed prompt with greedy decoding: `transformers` `generate` with
min_new_tokens = max_new_tokens (so every variant decodes the same count), and lgemma's engine in
`off` mode (its own timings: prefill, then decode s/token). Medians over --repeats.
Cold start is the wall time of `lgemma ask --mode off --max-new-tokens 8` in a new process, and of
the same job written as a plain `transformers` script, median of --cold-runs each; below them, the
parts any such process pays before it computes anything, each in a new process of its own:
importing torch, importing torch and transformers with the model's class, parsing the model's
tokenizer.json with the tokenizers library, and the three together without transformers (torch,
the tokenizer, the safetensors weights read): the least any torch process pays before its first
token. Then `ask --keep-alive 2m` (a background `lgemma serve`
kept loaded): the first run, which starts the server and waits for its load, and the next run, a
new process answering through the loaded server; each round stops the server first and after
(`lgemma stop`, so a keep-alive server of the same model already running is stopped too).
--cold-only skips the decode table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

PROMPT = "Q: 日本の首都はどこですか？ Please explain in a few sentences.\nA:"

BASELINE_SCRIPT = """
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
torch.set_num_threads({threads})
tok = AutoTokenizer.from_pretrained(sys.argv[1], local_files_only=True)
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32, local_files_only=True).eval()
ids = tok(sys.argv[2], return_tensors="pt")
out = model.generate(**ids, max_new_tokens=8, do_sample=False)
print(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
"""


MODEL_IMPORTS = "python: import torch, transformers and the model's class"
TOKENIZER_PARSE = "tokenizers: parse tokenizer.json"
FLOOR_SCRIPTS = {
    "python: import torch": "import torch",
    MODEL_IMPORTS: (
        "import json, sys, transformers\n"
        "arch = json.load(open(sys.argv[1] + '/config.json'))['architectures'][0]\n"
        "getattr(transformers, arch)"
    ),
    TOKENIZER_PARSE: (
        "import sys\nfrom tokenizers import Tokenizer\nTokenizer.from_file(sys.argv[1] + '/tokenizer.json')"
    ),
    # Any torch process that answers must at least do this: no transformers, no CLI, no token yet.
    "python: import torch, parse tokenizer.json, read the weights (no transformers)": (
        "import glob, sys, torch\nfrom tokenizers import Tokenizer\nfrom safetensors.torch import load_file\n"
        "Tokenizer.from_file(sys.argv[1] + '/tokenizer.json')\n"
        "[load_file(f) for f in glob.glob(sys.argv[1] + '/*.safetensors')]"
    ),
}


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def transformers_fp32(path: str, new_tokens: int, repeats: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True).eval()
    ids = tok(PROMPT, return_tensors="pt")

    def gen(n: int):
        with torch.inference_mode():
            model.generate(**ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)

    gen(2)  # warm-up
    one = median_time(lambda: gen(1), repeats)
    full = median_time(lambda: gen(new_tokens + 1), repeats)
    return {
        "prefill_s": one,
        "decode_s_per_token": (full - one) / new_tokens,
        "prompt_tokens": ids["input_ids"].shape[1],
    }


def lgemma_variant(model: str, scheme: str, new_tokens: int, repeats: int) -> dict:
    from latent_gemma_cli.loading import load_model
    from latent_gemma_cli.prompting import prompt_ids
    from latent_gemma_cli.settings import Settings

    start = time.perf_counter()
    loaded = load_model(model, device="cpu", dtype="float32", quantize=scheme)
    load_s = time.perf_counter() - start
    ids = prompt_ids(loaded.tokenizer, PROMPT)
    settings = Settings(mode="off", max_new_tokens=new_tokens, stop_ids=())
    loaded.engine.generate(ids, Settings(mode="off", max_new_tokens=2))  # warm-up
    prefill, decode, counts = [], [], []
    for _ in range(repeats):
        gen = loaded.engine.generate(ids, settings)
        n = gen.paths[0].num_tokens
        prefill.append(gen.timings.prefill_s)
        decode.append(gen.timings.decode_s / max(1, n - 1))
        counts.append(n)
    return {
        "load_s": load_s,
        "prefill_s": statistics.median(prefill),
        "decode_s_per_token": statistics.median(decode),
        "tokens": min(counts),
    }


def llama_cpp(gguf: str, threads: int, new_tokens: int, repeats: int) -> dict | None:
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    llm = Llama(model_path=gguf, n_threads=threads, verbose=False, n_ctx=512)
    ids = llm.tokenize(PROMPT.encode())

    def gen(n: int):
        llm.reset()
        for i, _ in enumerate(llm.generate(ids, temp=0.0)):
            if i + 1 >= n:
                break

    gen(2)
    one = median_time(lambda: gen(1), repeats)
    full = median_time(lambda: gen(new_tokens + 1), repeats)
    return {"prefill_s": one, "decode_s_per_token": (full - one) / new_tokens}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--schemes", default="none,int8,int4")
    parser.add_argument("--gguf", default=None, help="GGUF file for the llama.cpp column (needs llama-cpp-python)")
    parser.add_argument("--cold-only", action="store_true", help="only the cold-start table")
    args = parser.parse_args()

    import torch

    from latent_gemma_cli.loading import resolve_model_path

    torch.set_num_threads(args.threads)
    path = str(resolve_model_path(args.model))
    if not args.cold_only:
        decode_table(args, path)
    cold_table(args, path)
    return 0


def decode_table(args, path: str) -> None:
    base = transformers_fp32(path, args.new_tokens, args.repeats)
    rows = {"transformers fp32": base}
    for scheme in args.schemes.split(","):
        rows[f"lgemma {scheme}"] = lgemma_variant(args.model, scheme, args.new_tokens, args.repeats)
    if args.gguf:
        found = llama_cpp(args.gguf, args.threads, args.new_tokens, args.repeats)
        if found:
            rows["llama.cpp (GGUF)"] = found
    print(f"model {args.model}, {args.threads} threads, prompt {base['prompt_tokens']} tokens, greedy, medians")
    print()
    print("| variant | decode s/token | vs transformers fp32 | prefill s | vs transformers fp32 | load s |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['decode_s_per_token']:.4f} | {base['decode_s_per_token'] / r['decode_s_per_token']:.2f}x faster"
            f" | {r['prefill_s']:.3f} | {base['prefill_s'] / r['prefill_s']:.2f}x faster | {r.get('load_s', float('nan')):.2f} |"
        )
    if "llama.cpp (GGUF)" in rows:
        ref = rows["llama.cpp (GGUF)"]["decode_s_per_token"]
        for name, r in rows.items():
            print(f"{name}: decode {r['decode_s_per_token'] / ref:.2f}x llama.cpp's time per token")
    print()


def cold_table(args, path: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    cold_rows = {
        "transformers fp32 script": cold_env(
            [sys.executable, "-c", BASELINE_SCRIPT.format(threads=args.threads), path, PROMPT], args.cold_runs, env
        )
    }
    for scheme in args.schemes.split(","):
        cmd = [sys.executable, "-m", "latent_gemma_cli", "ask", "--model", args.model, "--mode", "off"]
        cmd += ["--max-new-tokens", "8", "--quantize", scheme, "--no-log", "--no-trace", PROMPT]
        cold_rows[f"lgemma ask --quantize {scheme}"] = cold_env(cmd, args.cold_runs, env)
    floor = {}
    for name, code in FLOOR_SCRIPTS.items():
        try:  # a model without tokenizer.json or `architectures` has no such row
            floor[name] = cold_env([sys.executable, "-c", code, path], args.cold_runs, env)
        except subprocess.CalledProcessError:
            floor[name] = float("nan")
    for scheme in ("auto", "none"):
        first, warm = keep_alive_runs(args, scheme, env)
        cold_rows[f"lgemma ask --keep-alive 2m --quantize {scheme}, first run (starts the server)"] = first
        cold_rows[f"lgemma ask --keep-alive 2m --quantize {scheme}, next run (server loaded)"] = warm
    print(f"model {args.model}, {args.threads} threads, medians of {args.cold_runs} new processes")
    print()
    print("| cold start (new process, 8 tokens) | wall s | vs transformers script |")
    print("|---|---|---|")
    ref = cold_rows["transformers fp32 script"]
    for name, wall in [*cold_rows.items(), *((f"{k} (alone)", v) for k, v in floor.items())]:
        print(f"| {name} | {wall:.2f} | {wall / ref:.2f}x its time |")
    print()
    before = floor[MODEL_IMPORTS] + floor[TOKENIZER_PARSE]
    print(
        "importing torch, transformers and the model's class, plus parsing the tokenizer, before a "
        f"weight is read or a token computed: {before:.2f} s (two processes: Python's own start counted twice)"
    )


def keep_alive_runs(args, scheme: str, env: dict) -> tuple[float, float]:
    """Medians of (first run, next run) of `ask --keep-alive`, each round from no server."""
    lgemma = [sys.executable, "-m", "latent_gemma_cli"]
    cmd = [*lgemma, "ask", "--model", args.model, "--mode", "off", "--max-new-tokens", "8", "--quantize", scheme]
    cmd += ["--keep-alive", "2m", "--no-log", "--no-trace", PROMPT]
    stop = [*lgemma, "stop", args.model]
    firsts, nexts = [], []
    for _ in range(args.cold_runs):
        subprocess.run(stop, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)  # none yet: exit 3
        firsts.append(cold_env(cmd, 1, env))
        nexts.append(cold_env(cmd, 1, env))
        subprocess.run(stop, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return statistics.median(firsts), statistics.median(nexts)


def cold_env(cmd: list[str], runs: int, env: dict) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    raise SystemExit(main())
