"""A local stand-in for the Hugging Face Hub's file-resolve protocol, for tests.

It answers ``HEAD``/``GET /{org}/{name}/resolve/{revision}/{path}`` with the headers
``huggingface_hub`` relies on (``X-Repo-Commit``, ``ETag``, ``Content-Length``) and the Hub's error
codes (``X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound``). Like the Hub, files that
would live in LFS (weights) get their SHA-256 as ETag, small files a git-style SHA-1. It counts requests
so tests can tell a cache hit from a download, and can be told to serve damaged bytes.

It also records uploads the way ``huggingface_hub`` makes them (``POST /api/repos/create``,
``/api/models/{repo}/preupload/{rev}``, ``/api/models/{repo}/commit/{rev}``, ``/api/models/{repo}/branch/{b}``):
every file is asked for inline ("regular" upload mode), a commit becomes a new revision that the resolve
endpoint serves, and ``uploads`` keeps each call's repo, headers and body for the tests to inspect.
"""
from __future__ import annotations

import base64
import hashlib
import json
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
    uploads: list[dict] = field(default_factory=list)  # {"call", "repo_id", "headers", "body"} per upload API call
    private: dict[str, bool] = field(default_factory=dict)  # repo -> created private?
    fail_status: int | None = None  # answer every resolve request with this HTTP status (a failing server)
    commit_header: str | None = None  # send this X-Repo-Commit instead of the real one (a malicious mirror)

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


def _front_matter_problems(readme: str) -> list[str]:
    """The checks the Hub's validate-yaml makes that a model card can get wrong: parseable YAML front matter,
    a licence id (or ``other`` with a ``license_name``), list-valued tags/datasets, a well-formed model-index."""
    import yaml

    if not readme.startswith("---\n") or "\n---" not in readme[4:]:
        return ["no YAML front matter"]
    try:
        meta = yaml.safe_load(readme[4:].split("\n---", 1)[0])
    except yaml.YAMLError as e:
        return [f"invalid YAML: {e}"]
    problems = []
    if not isinstance(meta, dict):
        return ["front matter is not a mapping"]
    if meta.get("license") == "other" and not meta.get("license_name"):
        problems.append('"license_name" is required when "license" is "other"')
    for key in ("tags", "datasets"):
        if key in meta and not isinstance(meta[key], list):
            problems.append(f'"{key}" must be a list')
    for entry in meta.get("model-index", []):
        for result in entry.get("results", []):
            if not {"task", "dataset", "metrics"} <= set(result):
                problems.append("a model-index result needs task, dataset and metrics")
    return problems


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
            if hub.fail_status:
                return self._error(hub.fail_status, "", "the stand-in was told to fail")
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
            self.send_header("X-Repo-Commit", hub.commit_header or rev.commit)
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
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            parts = unquote(self.path.split("?", 1)[0]).strip("/").split("/")
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            record = {"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
            if parts[:3] == ["api", "repos", "create"]:
                payload = json.loads(body)
                repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
                hub.uploads.append({**record, "call": "create", "repo_id": repo_id})
                hub.private[repo_id] = payload.get("visibility") == "private" or bool(payload.get("private"))
                if repo_id not in hub.repos:
                    hub.add(repo_id, {})
                return self._json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})
            if parts[:2] == ["api", "validate-yaml"]:  # the Hub checks a README's front matter before a commit
                hub.uploads.append({**record, "call": "validate-yaml", "repo_id": None})
                problems = _front_matter_problems(json.loads(body)["content"])
                return self._json(400 if problems else 200, {"errors": [{"message": m} for m in problems], "warnings": []})
            if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] in ("preupload", "commit", "branch"):
                repo_id, call, revision = f"{parts[2]}/{parts[3]}", parts[4], "/".join(parts[5:])
                hub.uploads.append({**record, "call": call, "repo_id": repo_id, "revision": revision})
                refs = hub.repos.get(repo_id)
                if refs is None:
                    return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
                if call == "branch":
                    refs[revision] = refs["main"]
                    return self._json(200, {})
                if revision not in refs:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                if call == "preupload":
                    files = json.loads(body)["files"]
                    return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                      for f in files]})
                files = dict(refs[revision].files)
                for line in body.splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                commit = hub.add(repo_id, files, revision)
                return self._json(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{commit}", "commitOid": commit})
            return self._error(404, "EntryNotFound", f"no such API: {self.path}")

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
