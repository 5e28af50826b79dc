"""A tiny stand-in for the Hugging Face Hub's file API, on 127.0.0.1, for download tests.

It serves what huggingface_hub 2.4's `snapshot_download` asks for, in the order it asks:

* `GET  /api/models/{repo}/revision/{rev}`   model info with the commit `sha`
* `GET  /api/models/{repo}/tree/{commit}`    the file listing (size, git oid, lfs sha256)
* `HEAD /{repo}/resolve/{commit}/{file}`     metadata: X-Repo-Commit, ETag (git sha1, or the
                                             sha256 for LFS files with X-Linked-Etag/-Size)
* `GET  /{repo}/resolve/{commit}/{file}`     the bytes; `Range: bytes=N-` gives a 206

Knobs make it misbehave like the real thing: a repository can answer 401/403 "GatedRepo" or
404 "RepoNotFound", a file can be cut off mid-body on its first GET (the connection drops), or
served with wrong bytes. Every request is recorded with its headers.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_SUFFIXES = (".safetensors", ".bin", ".model", ".gguf")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Repo:
    files: dict[str, bytes]
    commit: str = COMMIT
    error: tuple[int, str] | None = None  # (status, X-Error-Code) answered for every route


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(name: str) -> bool:
    return name.endswith(LFS_SUFFIXES)


def etag(name: str, data: bytes) -> str:
    return hashlib.sha256(data).hexdigest() if is_lfs(name) else git_oid(data)


@dataclass
class HubServer:
    repos: dict[str, Repo] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    drop_first_get: dict[str, int] = field(default_factory=dict)  # file -> bytes sent before the cut
    corrupt: set[str] = field(default_factory=set)  # files served with flipped bytes
    throttle: dict[str, int] = field(default_factory=dict)  # file -> bytes per second (a slow link)
    plain_404: bool = False  # unknown repositories get a bare 404, no X-Error-Code (a mirror or proxy)

    def add_repo(
        self,
        repo_id: str,
        directory: Path | None = None,
        extra: dict[str, bytes] | None = None,
        error: tuple[int, str] | None = None,
    ) -> Repo:
        files = {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()} if directory else {}
        files.update(extra or {})
        self.repos[repo_id] = Repo(files=files, error=error)
        return self.repos[repo_id]

    def start(self) -> "HubServer":
        hub = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_HEAD(self):
                hub._handle(self, "HEAD")

            def do_GET(self):
                hub._handle(self, "GET")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def seen(self, method: str | None = None, contains: str = "") -> list[Request]:
        with self._lock:
            return [r for r in self.requests if (method is None or r.method == method) and contains in r.path]

    # -- routing ---------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        path = unquote(urlsplit(h.path).path)
        with self._lock:
            self.requests.append(Request(method, path, {k.lower(): v for k, v in h.headers.items()}))
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(revision|tree)/([^/]+)(/.*)?", path)
        if m:
            repo = self._repo_or_error(h, m.group(1))
            if repo is None:
                return
            if m.group(2) == "revision":
                if m.group(3) not in ("main", repo.commit):
                    return self._send(h, 404, b"{}", {"X-Error-Code": "RevisionNotFound"})
                siblings = [{"rfilename": name} for name in repo.files]
                return self._json(
                    h,
                    {
                        "id": m.group(1),
                        "modelId": m.group(1),
                        "sha": repo.commit,
                        "siblings": siblings,
                        "private": False,
                    },
                )
            return self._json(h, [self._tree_entry(name, data) for name, data in repo.files.items()])
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m:
            repo = self._repo_or_error(h, m.group(1))
            if repo is None:
                return
            name = m.group(3)
            if name not in repo.files:
                return self._send(h, 404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo.commit}, method)
            return self._file(h, method, repo, name)
        self._send(h, 404, b"", {} if self.plain_404 else {"X-Error-Code": "RepoNotFound"}, method)

    def _repo_or_error(self, h, repo_id: str) -> Repo | None:
        repo = self.repos.get(repo_id)
        if repo is None and self.plain_404:
            self._send(h, 404, b"Not Found", {})
            return None
        if repo is None:
            self._send(
                h,
                404,
                b'{"error":"Repository not found"}',
                {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
            )
            return None
        if repo.error is not None:
            status, code = repo.error
            self._send(
                h,
                status,
                b'{"error":"restricted"}',
                {"X-Error-Code": code, "X-Error-Message": f"Access to model {repo_id} is restricted."},
            )
            return None
        return repo

    def _tree_entry(self, name: str, data: bytes) -> dict:
        entry = {"type": "file", "path": name, "size": len(data), "oid": git_oid(data)}
        if is_lfs(name):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry

    def _file(self, h, method: str, repo: Repo, name: str) -> None:
        data = repo.files[name]
        tag = etag(name, data)
        headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{tag}"', "Accept-Ranges": "bytes"}
        if is_lfs(name):
            headers.update({"X-Linked-Etag": f'"{tag}"', "X-Linked-Size": str(len(data))})
        if method == "HEAD":
            return self._send(h, 200, data, headers, "HEAD")
        if name in self.corrupt:
            data = bytes(b ^ 0xFF for b in data[:16]) + data[16:]
        start = 0
        rng = h.headers.get("Range")
        if rng:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        with self._lock:
            cut = self.drop_first_get.pop(name, None)
        if cut is not None:
            # Promise the whole body, send part of it, then drop the connection.
            h.send_response(200)
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[:cut])
            h.wfile.flush()
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        rate = self.throttle.get(name)
        if rate:
            h.send_response(206 if rng else 200)
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            step = max(1, rate // 10)
            try:
                for i in range(0, len(body), step):
                    h.wfile.write(body[i : i + step])
                    h.wfile.flush()
                    time.sleep(0.1)
            except OSError:  # the client went away
                pass
            return
        self._send(h, 206 if rng else 200, body, headers, "GET")

    def _json(self, h, obj) -> None:
        self._send(h, 200, json.dumps(obj).encode(), {"Content-Type": "application/json"})

    def _send(self, h, status: int, body: bytes, headers: dict[str, str], method: str = "GET") -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if method != "HEAD":
            h.wfile.write(body)
