"""The run log: every ask, chat turn and translate run, in an SQLite file in lgemma's data directory.

`record` never raises and never waits long: a locked, read-only or broken database gives back a
warning text for the caller to show, and the run itself succeeds. The file is created with mode
0600 (questions and answers can be private). `lgemma logs off` leaves a marker file that turns
recording off until `lgemma logs on`. Standard library only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from .paths import home

LOG_FILE = "runs.sqlite3"
OFF_MARKER = "runs.off"
SCHEMA = """CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    command TEXT NOT NULL,
    model TEXT,
    mode TEXT,
    input TEXT,
    output TEXT,
    seed TEXT,
    seconds REAL,
    settings TEXT,
    thoughts TEXT
)"""
COLUMNS = ("id", "time", "command", "model", "mode", "input", "output", "seed", "seconds", "settings", "thoughts")
INPUT_CHARS = 2000  # a translated file is summarised, not copied whole


def log_path() -> Path:
    return home() / LOG_FILE


def enabled() -> bool:
    return not (home() / OFF_MARKER).exists()


def set_enabled(on: bool) -> None:
    marker = home() / OFF_MARKER
    if on:
        marker.unlink(missing_ok=True)
    else:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("lgemma does not record runs while this file exists (`lgemma logs on`)\n", encoding="utf-8")


def _connect() -> sqlite3.Connection:
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(path, timeout=0.2)
    conn.execute(SCHEMA)
    return conn


def _summary(text: str | None) -> str | None:
    if text is None or len(text) <= INPUT_CHARS:
        return text
    return text[:INPUT_CHARS] + f"... [{len(text) - INPUT_CHARS} more characters]"


def record(
    command: str,
    *,
    model: str | None,
    mode: str | None,
    input_text: str | None,
    output: str | None,
    seed: int | None = None,
    seconds: float | None = None,
    settings: dict[str, Any] | None = None,
    thoughts: Any = None,
) -> str | None:
    """Add one run; returns None, or a warning when it could not be recorded (never raises)."""
    if not enabled():
        return None
    try:
        with _connect() as conn:
            conn.execute(
                "INSERT INTO runs (time, command, model, mode, input, output, seed, seconds, settings, thoughts) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    command,
                    model,
                    mode,
                    _summary(input_text),
                    _summary(output),
                    None if seed is None else str(seed),  # text: seeds reach 2**64-1, SQLite integers stop at 2**63-1
                    seconds,
                    json.dumps(settings, ensure_ascii=False) if settings is not None else None,
                    json.dumps(thoughts, ensure_ascii=False) if thoughts is not None else None,
                ),
            )
        return None
    except Exception as exc:  # whatever goes wrong here, the run itself has succeeded
        return f"run not logged ({log_path()}: {exc})"


def query(limit: int = 20, text: str | None = None) -> list[dict[str, Any]]:
    """The newest `limit` runs (oldest first), optionally only those whose input or output has `text`."""
    path = log_path()
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    try:
        sql = f"SELECT {', '.join(COLUMNS)} FROM runs"
        args: list[Any] = []
        if text:
            sql += " WHERE instr(input, ?) > 0 OR instr(output, ?) > 0"
            args += [text, text]
        rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()
    out = []
    for row in reversed(rows):
        item = dict(zip(COLUMNS, row))
        for key in ("settings", "thoughts"):
            item[key] = json.loads(item[key]) if item[key] else None
        if isinstance(item["seed"], str):
            item["seed"] = int(item["seed"])
        out.append(item)
    return out
