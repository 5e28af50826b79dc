"""A tiny stand-in for the Hugging Face Hub's file API, on 127.0.0.1, for download tests.

It serves what huggingface_hub 2.4's `snapshot_download` asks for, in the order it asks:

* `GET  /api/models/{repo}/revision/{rev}`   model info with the commit `sha`
* `GET  /api/models/{repo}/tree/{commit}`    the file listing (size, git oid, lfs sha256)
* `HEAD /{repo}/resolve/{commit}/{file}`     metadata: X-Repo-Commit, ETag (git sha1, or the
                                             sha256 for LFS files with X-Linked-Etag/-Size)
* `GET  /{repo}/resolve/{commit}/{file}`     the bytes; `Range: bytes=N-` or `bytes=N-M`
                                             gives a 206

Dataset repositories (`add_repo(..., repo_type="dataset")`) answer the same routes under
`/api/datasets/...` and `/datasets/{repo}/resolve/...`, plus what the `datasets` library and
`HfFileSystem` ask for: `tree/{rev}/{folder}` listings and `POST /api/datasets/{repo}/paths-info/{rev}`.
A repository can hold several revisions (`add_revision`): a branch or tag name, or a commit.

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
LFS_SUFFIXES = (".safetensors", ".bin", ".model", ".gguf", ".parquet")


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
    # Other revisions: a branch or tag name -> (commit, files). "main" and `commit` are the above.
    revisions: dict[str, tuple[str, dict[str, bytes]]] = field(default_factory=dict)

    def at(self, rev: str) -> tuple[str, dict[str, bytes]] | None:
        """The commit and files of a revision (a name or a commit), or None."""
        if rev in ("main", self.commit):
            return self.commit, self.files
        if rev in self.revisions:
            return self.revisions[rev]
        for commit, files in self.revisions.values():
            if rev == commit:
                return commit, files
        return None


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _form_paths(body: bytes, content_type: str) -> list[str]:
    """The `paths` a paths-info request names (form-encoded, or JSON)."""
    from urllib.parse import parse_qs

    if "json" in content_type:
        paths = json.loads(body or b"{}").get("paths", [])
        return [paths] if isinstance(paths, str) else list(paths)
    return parse_qs(body.decode()).get("paths", [])


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
        repo_type: str = "model",
    ) -> Repo:
        files = {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()} if directory else {}
        files.update(extra or {})
        key = repo_id if repo_type == "model" else f"{repo_type}s/{repo_id}"
        self.repos[key] = Repo(files=files, error=error)
        return self.repos[key]

    def add_revision(self, repo_key: str, name: str, commit: str, files: dict[str, bytes]) -> None:
        """Give a repository (its key: "owner/name", or "datasets/owner/name") another revision."""
        self.repos[repo_key].revisions[name] = (commit, files)

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

            def do_POST(self):
                hub._handle(self, "POST")

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
        split = urlsplit(h.path)
        path = unquote(split.path)
        body = b""
        if method == "POST":
            body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        with self._lock:
            self.requests.append(Request(method, path, {k.lower(): v for k, v in h.headers.items()}))
        m = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)(?:/(revision|tree|paths-info)/([^/]+)(/.*)?)?", path)
        if m:
            kind, repo_id, route, rev, sub = m.groups()
            route, rev = route or "revision", rev or "main"
            key = repo_id if kind == "models" else f"datasets/{repo_id}"
            repo = self._repo_or_error(h, key)
            if repo is None:
                return
            found = repo.at(rev)
            if found is None:
                return self._send(h, 404, b"{}", {"X-Error-Code": "RevisionNotFound"})
            commit, files = found
            if route == "revision":
                siblings = [{"rfilename": name} for name in files]
                info = {"id": repo_id, "sha": commit, "siblings": siblings, "private": False}
                if kind == "models":
                    info["modelId"] = repo_id
                else:
                    info.update({"gated": False, "disabled": False, "cardData": {}, "tags": []})
                return self._json(h, info)
            if route == "paths-info":
                asked = _form_paths(body, h.headers.get("Content-Type", ""))
                entries = []
                for p in asked:
                    if p in files:
                        entries.append(self._tree_entry(p, files[p]))
                    elif any(name.startswith(p.rstrip("/") + "/") for name in files):
                        entries.append({"type": "directory", "path": p.rstrip("/"), "oid": "0" * 40})
                return self._json(h, entries)
            recursive = "recursive=true" in (split.query or "").lower() or "recursive=1" in (split.query or "")
            return self._json(h, self._tree(files, (sub or "").strip("/"), recursive))
        m = re.fullmatch(r"/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m:
            key = (m.group(1) or "") + m.group(2)
            repo = self._repo_or_error(h, key)
            if repo is None:
                return
            found = repo.at(m.group(3))
            if found is None:
                return self._send(h, 404, b"", {"X-Error-Code": "RevisionNotFound"}, method)
            commit, files = found
            name = m.group(4)
            if name not in files:
                return self._send(h, 404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, method)
            return self._file(h, method, commit, name, files[name])
        self._send(h, 404, b"", {} if self.plain_404 else {"X-Error-Code": "RepoNotFound"}, method)

    def _tree(self, files: dict[str, bytes], folder: str, recursive: bool) -> list[dict]:
        """The listing of `folder` ("" = the root): its files, and its subfolders once each."""
        prefix = folder + "/" if folder else ""
        entries, dirs = [], []
        for name, data in files.items():
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            if "/" in rest and not recursive:
                sub = prefix + rest.split("/", 1)[0]
                if sub not in dirs:
                    dirs.append(sub)
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                for i in range(len(parts)):
                    sub = prefix + "/".join(parts[: i + 1])
                    if sub not in dirs:
                        dirs.append(sub)
            entries.append(self._tree_entry(name, data))
        return [{"type": "directory", "path": d, "oid": "0" * 40} for d in dirs] + entries

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
            kind = "dataset" if repo_id.startswith("datasets/") else "model"
            name = repo_id.removeprefix("datasets/")
            self._send(
                h,
                status,
                b'{"error":"restricted"}',
                {"X-Error-Code": code, "X-Error-Message": f"Access to {kind} {name} is restricted."},
            )
            return None
        return repo

    def _tree_entry(self, name: str, data: bytes) -> dict:
        entry = {"type": "file", "path": name, "size": len(data), "oid": git_oid(data)}
        if is_lfs(name):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry

    def _file(self, h, method: str, commit: str, name: str, data: bytes) -> None:
        tag = etag(name, data)
        headers = {"X-Repo-Commit": commit, "ETag": f'"{tag}"', "Accept-Ranges": "bytes"}
        if is_lfs(name):
            headers.update({"X-Linked-Etag": f'"{tag}"', "X-Linked-Size": str(len(data))})
        if method == "HEAD":
            return self._send(h, 200, data, headers, "HEAD")
        if name in self.corrupt:
            data = bytes(b ^ 0xFF for b in data[:16]) + data[16:]
        start, end = 0, len(data) - 1
        rng = h.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
            start = int(m.group(1))
            end = min(int(m.group(2)), len(data) - 1) if m.group(2) else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        body = data[start : end + 1]
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
