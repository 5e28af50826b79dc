"""The output primitives every command lays its output out with: results to stdout, the rest to stderr.

`Output.result` / `Output.json` write stdout (the answer, the translation, a report);
`trace`, `warn`, `progress` and `error` write stderr. On a terminal stderr gets Rich panels and
tables; piped or redirected, and with NO_COLOR, it gets plain text without escape codes.
Nothing below this layer prints.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


class Output:
    def __init__(self, quiet: bool = False, show_trace: bool = True):
        from rich.console import Console

        self.quiet = quiet
        self.show_trace = show_trace and not quiet
        # Rich honours NO_COLOR and drops escape codes itself when the stream is not a terminal.
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.fancy = self.err.is_terminal and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"

    # stdout -------------------------------------------------------------------------------
    def result(self, text: str) -> None:
        """The command's result, unwrapped and undecorated, on stdout."""
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()

    def json(self, obj: Any) -> None:
        """One JSON object (a line of JSON Lines) on stdout."""
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    # stderr -------------------------------------------------------------------------------
    def error(self, message: str, hint: str | None = None) -> None:
        """One `error:` line (and a `hint:` line): secrets masked, control characters escaped."""
        from .errors import one_line

        self.err.print(f"error: {one_line(message)}", markup=False, style="bold red" if self.fancy else None)
        if hint:
            self.err.print(f"hint: {one_line(hint)}", markup=False, style="yellow" if self.fancy else None)

    def warn(self, message: str) -> None:
        from .errors import one_line

        if not self.quiet:
            self.err.print(f"warning: {one_line(message)}", markup=False, style="yellow" if self.fancy else None)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message, markup=False)

    def progress(self, amount_field: bool = False, **kwargs):
        """A Rich progress bar on a terminal; a disabled one (no output) in pipes or when quiet.

        The bar shows done/total; with `amount_field` it shows the task's `amount` field instead
        (e.g. "12.0 MB / 1.1 GB  3.2 MB/s" for downloads)."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[amount]}") if amount_field else MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.err,
            disable=self.quiet or not self.fancy,
            transient=True,
            **kwargs,
        )

    def table(self, title: str, header: list[str], rows: list[list[str]]) -> None:
        """A table on stderr: a Rich table on a terminal, aligned plain text otherwise. The first
        column is left-aligned (labels), the others right-aligned (figures)."""
        if self.quiet:
            return
        if not self.fancy:
            widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
            self.info(title)
            for row in [header, *rows]:
                cells = [f"{row[0]:<{widths[0]}}"] + [f"{c:>{w}}" for c, w in zip(row[1:], widths[1:])]
                self.info("  ".join(cells).rstrip())
            return
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        table.add_column(header[0], style="bold cyan")
        for name in header[1:]:
            table.add_column(name, justify="right")
        for row in rows:
            table.add_row(*row)
        self.err.print(table)

    def trace_rows(
        self, title: str, rows: list[tuple[str, str]], paths: list[dict] | None = None, chosen: int | None = None
    ) -> None:
        """A key/value trace plus an optional table of reasoning paths."""
        if not self.show_trace:
            return
        if not self.fancy:
            for key, value in rows:
                self.err.print(f"{key}: {value}", markup=False)
            for i, p in enumerate(paths or []):
                mark = "*" if i == chosen else " "
                self.err.print(
                    f"path {i}{mark} confidence={p['confidence']:.3f} tokens={p['num_tokens']}: {p['text']!r}",
                    markup=False,
                )
            return
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold cyan")
        grid.add_column()
        for key, value in rows:
            grid.add_row(key, Text(value))
        items: list[Any] = [grid]
        if paths:
            table = Table(title="reasoning paths", title_justify="left", expand=False)
            table.add_column("#", justify="right")
            table.add_column("confidence", justify="right")
            table.add_column("tokens", justify="right")
            table.add_column("text")
            for i, p in enumerate(paths):
                style = "bold green" if i == chosen else None
                table.add_row(
                    f"{i}{'*' if i == chosen else ''}",
                    f"{p['confidence']:.3f}",
                    str(p["num_tokens"]),
                    Text(p["text"][:200]),
                    style=style,
                )
            items.append(table)
        from rich.console import Group

        self.err.print(Panel(Group(*items), title=title, title_align="left", border_style="dim"))


def _kept(server: dict) -> str:
    """`, keep-alive 5m, started now` for a keep-alive server, else nothing."""
    if not server.get("keep_alive_s"):
        return ""
    from .keepalive import format_duration

    return f", keep-alive {format_duration(server['keep_alive_s'])}" + (
        ", started now" if server.get("started") else ""
    )


def ask_trace_rows(data: dict) -> list[tuple[str, str]]:
    """Trace lines of an `ask` result (the dict of AskResult.to_dict)."""
    lang = data["languages"]
    inp, out = lang["input"], lang["output"]
    mismatch = "  (mismatch: expected " + lang["expected"] + ")" if lang["mismatch"] else ""
    dev = data["device"]
    t = data["timings"]
    rows = [
        ("model", f"{data['model']['reference']} ({data['model']['architecture']})"),
        *(
            [
                (
                    "server",
                    f"{srv['url']} (queue {srv['queue_wait_s']:.2f}s, model load {srv['model_load_s']:.2f}s{_kept(srv)})",
                )
            ]
            if (srv := data.get("server"))
            else []
        ),
        (
            "languages",
            f"input {inp['code']} p={inp['probability']:.2f}, output {out['code']} p={out['probability']:.2f}{mismatch}",
        ),
        (
            "mode",
            f"{data['mode']}, {data['num_thoughts']} thoughts"
            + (f", markers {data['markers'][0]} {data['markers'][1]}" if data["markers"] else ""),
        ),
        (
            "device",
            f"{dev['device']} ({dev['device_reason']}), {dev['dtype']} ({dev['dtype_reason']})"
            + (
                f", {dev['quantize']} weights ({dev['quantize_reason']})"
                if dev.get("quantize", "none") != "none"
                else ""
            ),
        ),
        (
            "timings",
            f"load {t['load_s']:.2f}s, prefill {t['prefill_s']:.3f}s, thoughts {t['thoughts_s']:.3f}s, decode {t['decode_s']:.3f}s",
        ),
    ]
    if data.get("seed") is not None:
        rows.append(("seed", str(data["seed"])))
    for thought in data.get("thoughts") or []:
        shown = ", ".join(f"{t['token']!r} {t['p']:.2f}" for t in thought["top"])
        rows.append((f"thought {thought['index'] + 1}", shown))
    return rows


class TokenStream:
    """Prints an answer to stdout as its tokens arrive, flushed per token.

    Each step decodes all tokens so far (so a multi-byte character split over tokens is never
    printed half: text ending in U+FFFD waits for the next token) and prints only what extends
    the text already printed; leading and trailing space wait too, because the final answer is
    stripped. `finish(answer)` prints the rest, so the stream equals the answer byte for byte.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.printed = ""

    def __call__(self, path: int, token_id: int) -> None:
        if path != 0:
            return
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True).strip()
        if text.endswith("\ufffd") or not text.startswith(self.printed) or len(text) == len(self.printed):
            return
        sys.stdout.write(text[len(self.printed) :])
        sys.stdout.flush()
        self.printed = text

    def finish(self, answer: str) -> None:
        rest = answer[len(self.printed) :] if answer.startswith(self.printed) else "\n" + answer
        sys.stdout.write(rest + "\n")
        sys.stdout.flush()
