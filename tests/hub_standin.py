"""A local stand-in for the Hugging Face Hub's file-resolve protocol, for tests.

It answers ``HEAD``/``GET /{org}/{name}/resolve/{revision}/{path}`` with the headers
``huggingface_hub`` relies on (``X-Repo-Commit``, ``ETag``, ``Content-Length``) and the Hub's error
codes (``X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound``). Like the Hub, files that
would live in LFS (weights) get their SHA-256 as ETag, small files a git-style SHA-1. It counts requests
so tests can tell a cache hit from a download, and can be told to serve damaged bytes.
"""
from __future__ import annotations

import hashlib
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx")


@dataclass
class Revision:
    commit: str
    files: dict[str, bytes]


@dataclass
class HubStandIn:
    repos: dict[str, dict[str, Revision]] = field(default_factory=dict)  # repo -> {branch/tag/commit: Revision}
    requests: Counter = field(default_factory=Counter)  # (method, repo, path) -> count
    damage: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, path) -> bytes served instead
    url: str = ""
    lfs_etags: bool = True  # False: every file gets a git SHA-1 ETag, so nothing can be checksummed


    def add(self, repo_id: str, files: dict[str, bytes], revision: str = "main") -> str:
        """Publish ``files`` as ``revision`` of ``repo_id``; return the commit hash."""
        commit = hashlib.sha1(repr((repo_id, revision, sorted((k, v) for k, v in files.items()))).encode()).hexdigest()
        rev = Revision(commit, dict(files))
        refs = self.repos.setdefault(repo_id, {})
        refs[revision] = rev
        refs[commit] = rev
        return commit

    def count(self, method: str, repo_id: str | None = None, path: str | None = None) -> int:
        return sum(
            n
            for (m, r, p), n in self.requests.items()
            if m == method and (repo_id is None or r == repo_id) and (path is None or p == path)
        )

    def etag(self, path: str, data: bytes) -> str:
        if self.lfs_etags and path.endswith(LFS_SUFFIXES):
            return hashlib.sha256(data).hexdigest()
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _handler(hub: HubStandIn):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def _resolve(self, method: str) -> None:
            parts = unquote(self.path.split("?", 1)[0]).lstrip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                return self._error(404, "EntryNotFound", "not a resolve URL")
            repo_id, revision, path = f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
            hub.requests[(method, repo_id, path)] += 1
            refs = hub.repos.get(repo_id)
            if refs is None:
                return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            rev = refs.get(revision)
            if rev is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            data = rev.files.get(path)
            if data is None:
                return self._error(404, "EntryNotFound", f"{path} does not exist", commit=rev.commit)
            served = hub.damage.get((repo_id, path), data)
            self.send_response(200)
            self.send_header("X-Repo-Commit", rev.commit)
            self.send_header("ETag", f'"{hub.etag(path, data)}"')  # the etag of the real file
            self.send_header("Content-Length", str(len(served)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if method == "GET":
                self.wfile.write(served)

        def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
            body = ('{"error": "%s"}' % message).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

        def do_HEAD(self):
            self._resolve("HEAD")

        def do_GET(self):
            self._resolve("GET")

    return Handler


class Server:
    """Run a :class:`HubStandIn` on 127.0.0.1 in a background thread."""

    def __init__(self) -> None:
        self.hub = HubStandIn()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.hub))
        self.hub.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HubStandIn:
        self.thread.start()
        return self.hub

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
