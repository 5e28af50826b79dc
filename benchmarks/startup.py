"""Start-up time of `lgemma --help` as a ratio to `python -c "import typer, rich"`.

Both are timed in the same run, alternating, median of --runs each; output piped and, where the
platform has pseudo-terminals, on a terminal. Exit status 1 when either ratio is --max-ratio or more.

    python benchmarks/startup.py [--runs 15] [--max-ratio 2.0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def lgemma_command() -> list[str]:
    script = Path(sys.executable).with_name("lgemma")
    if script.is_file():
        return [str(script)]
    found = shutil.which("lgemma")
    return [found] if found else [sys.executable, "-m", "latent_gemma_cli"]


def time_piped(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=True)
    return time.perf_counter() - start


def time_terminal(cmd: list[str], env: dict[str, str]) -> float:
    import pty

    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # child: exec at once, nothing else
        os.execve(cmd[0], cmd, env)
    try:
        while os.read(fd, 65536):
            pass
    except OSError:  # EIO once the child has closed the terminal
        pass
    os.close(fd)
    os.waitpid(pid, 0)
    return time.perf_counter() - start


def measure(timer, runs: int, env: dict[str, str]) -> tuple[float, float]:
    base_cmd = [sys.executable, "-c", "import typer, rich"]
    help_cmd = lgemma_command() + ["--help"]
    timer(base_cmd, env), timer(help_cmd, env)  # warm the file cache
    base, help_ = [], []
    for _ in range(runs):
        base.append(timer(base_cmd, env))
        help_.append(timer(help_cmd, env))
    return statistics.median(base), statistics.median(help_)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--max-ratio", type=float, default=2.0)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "_LGEMMA_COMPLETE")}
    env.setdefault("TERM", "xterm-256color")
    print(f"lgemma: {' '.join(lgemma_command())}; median of {args.runs} runs each")
    base, help_ = measure(time_piped, args.runs, env)
    ratio = help_ / base
    print(
        f"piped:    import typer, rich {base * 1000:6.1f} ms   lgemma --help {help_ * 1000:6.1f} ms   ratio {ratio:.2f}x (limit {args.max_ratio:.2f}x)"
    )
    worst = ratio
    if hasattr(os, "fork"):
        try:
            tbase, thelp = measure(time_terminal, args.runs, env)
            worst = max(worst, thelp / tbase)
            print(
                f"terminal: import typer, rich {tbase * 1000:6.1f} ms   lgemma --help {thelp * 1000:6.1f} ms   ratio {thelp / tbase:.2f}x"
            )
        except OSError as exc:
            print(f"terminal: not measured ({exc})")
    return 0 if worst < args.max_ratio else 1


if __name__ == "__main__":
    raise SystemExit(main())
