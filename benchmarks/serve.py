"""`lgemma serve`: what a warm `ask --server` costs beyond generating, and throughput under load.

Starts `lgemma serve -m MODEL --port 0` (the model preloaded), then, all on 127.0.0.1:

1. warm `lgemma ask --server URL --json` runs (a new process each, as a shell script would call
   it): wall time per run against the generation time the server reports (prefill + thoughts +
   decode), as a ratio (goal: under 1.2x), for each `--max-new-tokens` in --lengths; one cold local
   `lgemma ask` with the same settings for comparison;
2. C concurrent HTTP clients (C in --clients) sending --requests requests each to
   /v1/chat/completions: requests per second, answer tokens per second, 503s, median latency.

    python benchmarks/serve.py --model gemma-3-270m
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

QUESTION = "質問: 日本の首都はどこですか？\n答え:"


def lgemma() -> list[str]:
    return [sys.executable, "-m", "latent_gemma_cli"]


def start(model: str, queue: int, threads: int | None) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.Popen(
        lgemma() + ["serve", "-m", model, "--port", "0", "--queue", str(queue), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        raise SystemExit(f"lgemma serve did not start: {proc.stderr.read()[-2000:]}")
    import urllib.request

    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/v1/models", timeout=5).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise SystemExit("lgemma serve did not answer")


def ask_cli(args: list[str]) -> tuple[float, dict]:
    began = time.perf_counter()
    out = subprocess.run(lgemma() + ["ask", "--no-log", "--json", *args], capture_output=True, text=True, check=True)
    return time.perf_counter() - began, json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--question", default=QUESTION)
    ap.add_argument("--lengths", default="8,32", help="--max-new-tokens values for the ask --server runs")
    ap.add_argument("--runs", type=int, default=5, help="ask --server runs per length (after one warm-up)")
    ap.add_argument("--clients", default="1,2,4")
    ap.add_argument("--requests", type=int, default=4, help="requests per client")
    ap.add_argument("--load-tokens", type=int, default=16, help="max_tokens of the load-test requests")
    ap.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of the server (0: torch's default)")
    args = ap.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(",")]
    clients = [int(x) for x in args.clients.split(",")]
    print(f"hardware: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}")
    proc, url = start(args.model, queue=max(clients) * args.requests, threads=args.threads)
    results: dict = {"model": args.model, "url": url, "ask": [], "load": []}
    try:
        base = ["--model", args.model, "--mode", "off", args.question]
        ask_cli(["--server", url, "--max-new-tokens", "4", *base])  # warm-up
        print("\n| max new tokens | ask --server wall s (median) | generation s (median) | ratio | tokens |")
        print("|---|---|---|---|---|")
        for n in lengths:
            walls, gens, toks = [], [], []
            for _ in range(args.runs):
                wall, data = ask_cli(["--server", url, "--max-new-tokens", str(n), *base])
                walls.append(wall)
                gens.append(data["timings"]["total_s"])
                toks.append(data["paths"][data["chosen_path"]]["num_tokens"])
            row = {
                "max_new_tokens": n,
                "wall_s": statistics.median(walls),
                "generation_s": statistics.median(gens),
                "tokens": statistics.median(toks),
            }
            row["ratio"] = row["wall_s"] / row["generation_s"]
            results["ask"].append(row)
            print(
                f"| {n} | {row['wall_s']:.3f} | {row['generation_s']:.3f} | {row['ratio']:.2f}x | {row['tokens']:.0f} |"
            )
        wall, data = ask_cli(["--max-new-tokens", str(lengths[-1]), *base])
        results["cold_local"] = {"wall_s": wall, "generation_s": data["timings"]["total_s"]}
        print(
            f"\ncold local `lgemma ask` (max new tokens {lengths[-1]}): {wall:.2f} s wall, "
            f"{data['timings']['total_s']:.2f} s generating (load {data['timings']['load_s']:.2f} s)"
        )

        import httpx

        body = {
            "model": args.model,
            "messages": [{"role": "user", "content": args.question}],
            "max_tokens": args.load_tokens,
            "lgemma": {"mode": "off"},
        }

        def client(_):
            out = []
            with httpx.Client(timeout=600) as c:
                for _ in range(args.requests):
                    t = time.perf_counter()
                    r = c.post(url + "/v1/chat/completions", json=body)
                    out.append(
                        (r.status_code, time.perf_counter() - t, r.json().get("usage", {}).get("completion_tokens", 0))
                    )
            return out

        print("\n| clients | requests | ok | 503 | requests/s | answer tokens/s | median latency s |")
        print("|---|---|---|---|---|---|---|")
        for c in clients:
            began = time.perf_counter()
            with ThreadPoolExecutor(c) as pool:
                done = [x for part in pool.map(client, range(c)) for x in part]
            span = time.perf_counter() - began
            ok = [d for d in done if d[0] == 200]
            row = {
                "clients": c,
                "requests": len(done),
                "ok": len(ok),
                "busy_503": sum(1 for d in done if d[0] == 503),
                "requests_per_s": len(ok) / span,
                "tokens_per_s": sum(d[2] for d in ok) / span,
                "median_latency_s": statistics.median(d[1] for d in ok) if ok else None,
            }
            results["load"].append(row)
            print(
                f"| {c} | {row['requests']} | {row['ok']} | {row['busy_503']} | {row['requests_per_s']:.2f} | "
                f"{row['tokens_per_s']:.1f} | {row['median_latency_s']:.2f} |"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    print("\n" + json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
