"""The CLI's side of `lgemma serve`: `ask --server` and `translate --server` (LGEMMA_SERVER).

Standard library only (http.client), so a client run imports neither torch nor an HTTP package:
its start-up is Python's and lgemma's own. Errors become the project's exceptions with one line
each; an unreachable server is `ServerUnreachableError` (its own exit code), and the CLI never
falls back to a local run.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from .errors import LgemmaError, ModelNotFoundError, ServerUnreachableError, UsageError, redact

TIMEOUT_S = 600.0
_KEYS: dict[str, str] = {}  # API keys by server URL, set by this process (keep-alive servers)
_HINTS: dict[str, str] = {}  # what to do when that server cannot be reached
UNREACHABLE_HINT = "start one with `lgemma serve`, or drop --server / LGEMMA_SERVER to run locally"


def use_key(url: str, key: str, hint: str | None = None) -> None:
    """Send `key` to `url` (instead of LGEMMA_API_KEY): a keep-alive server's own key, and the
    hint for when it is gone."""
    _KEYS[url] = key
    if hint:
        _HINTS[url] = hint


class ServerError(LgemmaError):
    """The server answered with an error it could not recover from (5xx)."""


class ServerAuthError(LgemmaError):
    exit_code = 4


class ServerBusyError(ServerUnreachableError):
    """503: the model's queue is full."""


def _connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"server URL {redact(url)!r} is not an http:// or https:// URL")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(parts.hostname, parts.port, timeout=TIMEOUT_S), parts.path.rstrip("/")


def _raise_for(status: int, payload: bytes, url: str, retry_after: str | None) -> None:
    try:
        message = json.loads(payload.decode("utf-8"))["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = payload.decode("utf-8", "replace").strip()[:200] or f"HTTP {status}"
    where = f"server {redact(url)}"
    if status == 401:
        raise ServerAuthError(f"{where}: {message}", hint="set LGEMMA_API_KEY to the server's --api-key")
    if status == 404:
        raise ModelNotFoundError(f"{where}: {message}")
    if status == 503:
        raise ServerBusyError(f"{where} is busy: {message}", hint=f"retry in {retry_after or 'a few'} seconds")
    if status in (400, 413, 422):
        raise UsageError(f"{where}: {message}")
    raise ServerError(f"{where} failed (HTTP {status}): {message}")


def post(url: str, path: str, body: dict, *, stream: bool = False) -> Iterator[dict]:
    """POST `body` as JSON; yields the response object, or each server-sent event's object."""
    conn, prefix = _connection(url)
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
    key = _KEYS.get(url) or os.environ.get("LGEMMA_API_KEY", "").strip()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        try:
            conn.request(
                "POST", prefix + path, body=json.dumps(body, ensure_ascii=False).encode("utf-8"), headers=headers
            )
            response = conn.getresponse()
        except (ConnectionError, socket.timeout, socket.gaierror, OSError) as exc:
            raise ServerUnreachableError(
                f"cannot reach the lgemma server at {redact(url)}: {getattr(exc, 'strerror', None) or exc}",
                hint=_HINTS.get(url, UNREACHABLE_HINT),
            ) from None
        if response.status != 200:
            _raise_for(response.status, response.read(), url, response.getheader("Retry-After"))
        if not stream:
            yield json.loads(response.read().decode("utf-8"))
            return
        for data in _events(response):
            if data == "[DONE]":
                return
            event = json.loads(data)
            if "error" in event:
                err = event["error"]
                raise ServerError(f"server {redact(url)}: {err.get('message')}")
            yield event
    finally:
        conn.close()


def _events(response: Any) -> Iterator[str]:
    """The `data:` payloads of a server-sent event stream."""
    lines: list[str] = []
    while True:
        raw = response.readline()
        if not raw:
            return
        line = raw.decode("utf-8").rstrip("\r\n")
        if line == "":
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[5:].lstrip(" "))


def chat(url: str, body: dict, on_delta: Callable[[str], None] | None = None) -> dict:
    """A chat completion; with `on_delta` it streams and calls it with each text delta of the
    answer. Returns the `lgemma` object of the response (what `ask --json` prints)."""
    if on_delta is None:
        response = next(post(url, "/v1/chat/completions", {**body, "stream": False}))
        return response["lgemma"]
    data = None
    for event in post(url, "/v1/chat/completions", {**body, "stream": True}, stream=True):
        for choice in event.get("choices", []):
            text = (choice.get("delta") or {}).get("content")
            if text and choice.get("index", 0) == 0:
                on_delta(text)
        if event.get("lgemma"):
            data = event["lgemma"]
    if data is None:
        raise ServerError(f"server {redact(url)} ended the stream without a result")
    return data


def translate(url: str, body: dict) -> dict:
    return next(post(url, "/v1/lgemma/translate", body))
