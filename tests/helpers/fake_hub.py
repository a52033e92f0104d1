"""A small Hugging Face Hub-compatible HTTP server on 127.0.0.1, for offline tests.

It answers exactly the routes that the real ``huggingface_hub`` (2.x) client sends to push a
folder with ``create_repo`` + ``create_commit`` and to pull it with ``snapshot_download``:

================  =================================================  ==========================
method            route                                              client call
================  =================================================  ==========================
POST              ``/api/repos/create``                              ``create_repo``
POST              ``/api/validate-yaml``                             ``create_commit`` (README)
POST              ``/api/{type}s/{repo}/preupload/{rev}``            ``_fetch_upload_modes``
POST              ``/api/{type}s/{repo}/commit/{rev}`` (NDJSON)      ``_send_commit``
POST              ``/api/{type}s/{repo}/branch/{branch}``            ``create_branch``
GET               ``/api/{type}s/{repo}[/revision/{rev}]``           ``repo_info``/``model_info``
GET               ``/api/{type}s/{repo}/tree/{rev}[/{path}]``        ``list_repo_tree``
HEAD, GET         ``/{repo}/resolve/{rev}/{path}``                   ``hf_hub_download``
GET               ``/api/agent-harnesses``                           user-agent (once a day)
================  =================================================  ==========================

Every file is announced as ``uploadMode: "regular"`` (base64 inside the commit payload), and no
response carries ``X-Xet-*`` headers or ``xetHash``/``lfs`` fields, so the client never goes
to LFS or Xet storage: everything is plain HTTP. Any other route answers 404 and is recorded
in :attr:`FakeHub.unhandled`. Routes named in ``stall`` are received and never answered (the
connection stays open until the server stops), as a Hub that hangs mid-operation.

Repositories live in a temporary directory: one ``blobs/<git-sha1>`` file per content and one
``repo.json`` per repository (commits with their full file tree, branches, visibility). The
server is bounded: request bodies are capped, sockets time out, and it stops itself after
``lifetime_s`` seconds. Use it as a context manager::

    with FakeHub() as hub:
        HfApi(endpoint=hub.url).create_repo("org/name")
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml
from huggingface_hub import constants

if TYPE_CHECKING:
    import pytest

__all__ = ["FakeHub", "Request", "git_blob_sha1", "iter_routes", "set_hub_env"]

_REPO = r"(?P<repo>[^/]+/[^/]+)"
_TYPES = r"(?P<type>model|dataset|space)s"
_ROUTES: list[tuple[str, str, re.Pattern[str]]] = [
    (m, name, re.compile(rx))
    for m, name, rx in [
        ("GET", "/api/agent-harnesses", r"^/api/agent-harnesses$"),
        ("POST", "/api/repos/create", r"^/api/repos/create$"),
        ("POST", "/api/validate-yaml", r"^/api/validate-yaml$"),
        (
            "POST",
            "/api/{type}s/{repo}/preupload/{rev}",
            rf"^/api/{_TYPES}/{_REPO}/preupload/(?P<rev>[^/]+)$",
        ),
        (
            "POST",
            "/api/{type}s/{repo}/commit/{rev}",
            rf"^/api/{_TYPES}/{_REPO}/commit/(?P<rev>[^/]+)$",
        ),
        (
            "POST",
            "/api/{type}s/{repo}/branch/{branch}",
            rf"^/api/{_TYPES}/{_REPO}/branch/(?P<branch>[^/]+)$",
        ),
        (
            "GET",
            "/api/{type}s/{repo}/revision/{rev}",
            rf"^/api/{_TYPES}/{_REPO}/revision/(?P<rev>[^/]+)$",
        ),
        (
            "GET",
            "/api/{type}s/{repo}/tree/{rev}",
            rf"^/api/{_TYPES}/{_REPO}/tree/(?P<rev>[^/]+)(?P<path>/.*)?$",
        ),
        ("GET", "/api/{type}s/{repo}", rf"^/api/{_TYPES}/{_REPO}$"),
        (
            "HEAD",
            "/{repo}/resolve/{rev}/{path}",
            rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$",
        ),
        ("GET", "/{repo}/resolve/{rev}/{path}", rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"),
    ]
]
_SHA = re.compile(r"^[0-9a-f]{40}$")


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob (``git hash-object``), which the Hub uses as ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class Request:
    """One request the server received: ``route`` is the matched template (or ``None``)."""

    method: str
    path: str
    route: str | None
    status: int
    authorization: str | None
    user_agent: str | None = None


class HubError(Exception):
    """An HTTP error answered with the Hub's error headers (``X-Error-Code``)."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class _Store:
    """Repositories on disk; every method runs under one lock (the server is threaded)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.RLock()

    def _dir(self, kind: str, repo: str) -> Path:
        org, name = repo.split("/")
        return self.root / f"{kind}s" / org / name

    def load(self, kind: str, repo: str) -> dict[str, Any]:
        meta = self._dir(kind, repo) / "repo.json"
        if not meta.is_file():
            raise HubError(404, f"Repository {repo} not found", "RepoNotFound")
        return json.loads(meta.read_text())

    def save(self, kind: str, repo: str, state: dict[str, Any]) -> None:
        d = self._dir(kind, repo)
        d.mkdir(parents=True, exist_ok=True)
        (d / "repo.json").write_text(json.dumps(state))

    def put_blob(self, kind: str, repo: str, data: bytes) -> str:
        oid = git_blob_sha1(data)
        blobs = self._dir(kind, repo) / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        (blobs / oid).write_bytes(data)
        return oid

    def blob(self, kind: str, repo: str, oid: str) -> bytes:
        return (self._dir(kind, repo) / "blobs" / oid).read_bytes()

    @staticmethod
    def resolve(state: dict[str, Any], rev: str) -> str:
        """Commit sha of a branch name or of a (full) commit sha."""
        if rev in state["branches"]:
            return state["branches"][rev]
        if _SHA.match(rev) and rev in state["commits"]:
            return rev
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def commit(
        self,
        kind: str,
        repo: str,
        branch: str,
        files: dict[str, str],
        summary: str,
        parent: str | None,
    ) -> str:
        state = self.load(kind, repo)
        seed = json.dumps([parent, sorted(files.items()), summary, time.time_ns()])
        sha = hashlib.sha1(seed.encode()).hexdigest()
        state["commits"][sha] = {
            "parent": parent,
            "files": files,
            "summary": summary,
            "date": _now(),
        }
        state["branches"][branch] = sha
        self.save(kind, repo, state)
        return sha


def _front_matter(content: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The YAML metadata block of a model card and the errors found validating it."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, flags=re.S)
    if match is None:
        return None, []
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as e:
        return None, [f"YAML metadata is not valid YAML: {e}"]
    if meta is None:
        return {}, []
    if not isinstance(meta, dict):
        return None, ["YAML metadata must be a mapping"]
    errors = []
    for key in ("library_name", "license", "pipeline_tag"):
        if key in meta and not isinstance(meta[key], str):
            errors.append(f'"{key}" must be a string')
    if "tags" in meta and not (
        isinstance(meta["tags"], list) and all(isinstance(t, str) for t in meta["tags"])
    ):
        errors.append('"tags" must be an array of strings')
    return meta, errors


class _Handler(BaseHTTPRequestHandler):
    """Routes one request to a ``FakeHub`` method; HTTP/1.0, so every connection closes."""

    server: _Server
    timeout = 10  # seconds a socket may stay silent

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr logging
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _body(self) -> bytes:
        hub = self.server.hub
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
                if len(out) > hub.max_body:
                    raise HubError(413, "request body too large")
        length = int(self.headers.get("Content-Length") or 0)
        if length > hub.max_body:
            raise HubError(413, "request body too large")
        return self.rfile.read(length)

    def _dispatch(self, method: str) -> None:
        hub = self.server.hub
        url = urlsplit(self.path)
        route, status = None, 500
        try:
            for m, name, rx in _ROUTES:
                match = rx.match(url.path)
                if m == method and match:
                    route = name
                    params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                    body = self._body() if method in ("POST", "PUT") else b""
                    if f"{method} {name}" in hub.stall:
                        hub._record(Request(method, url.path, route, 0, None))
                        hub._stopping.wait()  # never answer; the client gives up or we stop
                        return
                    status, headers, payload = hub._handle(name, params, query, body, self.headers)
                    break
            else:
                raise HubError(404, f"{method} {url.path} is not served by the fake Hub")
        except HubError as e:
            status, payload = e.status, json.dumps({"error": e.message}).encode()
            headers = {"Content-Type": "application/json", "X-Error-Message": e.message}
            if e.code:
                headers["X-Error-Code"] = e.code
        except Exception as e:  # a bug in the fake: answer 500 rather than hang the client
            status, payload = 500, json.dumps({"error": repr(e)}).encode()
            headers = {"Content-Type": "application/json"}
        hub._record(
            Request(
                method,
                url.path,
                route,
                status,
                self.headers.get("Authorization"),
                self.headers.get("User-Agent"),
            )
        )
        self.send_response(status)
        headers.setdefault("Content-Length", str(len(payload)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: FakeHub


class FakeHub:
    """A Hub-compatible server on ``127.0.0.1:<free port>`` storing repos in a temp dir.

    Args:
        root: where repositories are stored (a fresh temporary directory, deleted on stop,
            when ``None``).
        token: if set, writes need ``Authorization: Bearer <token>`` and private repos can only
            be read with it (as on the Hub, anonymous reads of a private repo answer 401).
        max_body: largest accepted request body in bytes.
        lifetime_s: the server stops itself after this many seconds.
        stall: ``"METHOD route"`` templates (see :func:`iter_routes`) that are read and never
            answered; such requests are recorded with status 0.

    Attributes:
        url: the endpoint to give the client (``HF_ENDPOINT`` / ``endpoint=``).
        requests: every request received, in order.
        unhandled: requests that matched no route (a client the fake does not cover).
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        token: str | None = None,
        max_body: int = 64 * 2**20,
        lifetime_s: float = 300.0,
        stall: Collection[str] = (),
    ) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="fake-hub-")) if root is None else Path(root)
        self.token = token
        self.max_body = max_body
        self.lifetime_s = lifetime_s
        self.stall = frozenset(stall)
        unknown = self.stall - set(iter_routes())
        if unknown:
            raise ValueError(f"stall names unknown routes {sorted(unknown)}; see iter_routes()")
        self._stopping = threading.Event()
        self.requests: list[Request] = []
        self._store = _Store(self.root)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self.url = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeHub:
        """Bind a free port and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("FakeHub is already running")
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(self.lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent); keeps the stored repos."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # release stalled handlers
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._server is not None

    def close(self) -> None:
        """Stop, and delete the storage if the server created it."""
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ inspection

    @property
    def routes(self) -> set[str]:
        """``"METHOD route"`` of every handled request."""
        return {f"{r.method} {r.route}" for r in self.requests if r.route is not None}

    @property
    def unhandled(self) -> list[Request]:
        """Requests that matched no route."""
        return [r for r in self.requests if r.route is None]

    def files(
        self, repo_id: str, revision: str = "main", repo_type: str = "model"
    ) -> dict[str, bytes]:
        """The files of ``repo_id`` at ``revision``: ``{path: content}``."""
        with self._store.lock:
            state = self._store.load(repo_type, repo_id)
            tree = state["commits"][self._store.resolve(state, revision)]["files"]
            return {p: self._store.blob(repo_type, repo_id, oid) for p, oid in tree.items()}

    def repo(self, repo_id: str, repo_type: str = "model") -> dict[str, Any]:
        """The stored state of a repository (``private``, ``branches``, ``commits``)."""
        with self._store.lock:
            return self._store.load(repo_type, repo_id)

    def _record(self, request: Request) -> None:
        with self._store.lock:
            self.requests.append(request)

    # ------------------------------------------------------------------ routes

    def _authorized(self, headers: Any) -> bool:
        return self.token is None or headers.get("Authorization") == f"Bearer {self.token}"

    def _check_write(self, headers: Any) -> None:
        if not self._authorized(headers):
            raise HubError(401, "Invalid credentials in Authorization header")

    def _readable(self, kind: str, repo: str, headers: Any) -> dict[str, Any]:
        state = self._store.load(kind, repo)
        if state["private"] and not self._authorized(headers):
            raise HubError(401, "Repository not found", "RepoNotFound")
        return state

    def _handle(
        self, route: str, p: dict[str, str], query: dict[str, str], body: bytes, headers: Any
    ) -> tuple[int, dict[str, str], bytes]:
        with self._store.lock:
            kind = p.get("type", "model")
            handler = {
                "/api/agent-harnesses": self._agent_harnesses,
                "/api/repos/create": self._create,
                "/api/validate-yaml": self._validate_yaml,
                "/api/{type}s/{repo}/preupload/{rev}": self._preupload,
                "/api/{type}s/{repo}/commit/{rev}": self._commit,
                "/api/{type}s/{repo}/branch/{branch}": self._branch,
                "/api/{type}s/{repo}/revision/{rev}": self._info,
                "/api/{type}s/{repo}": self._info,
                "/api/{type}s/{repo}/tree/{rev}": self._tree,
                "/{repo}/resolve/{rev}/{path}": self._resolve,
            }[route]
            return handler(kind, p, query, body, headers)

    @staticmethod
    def _json(obj: Any, status: int = 200) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json"}, json.dumps(obj).encode()

    def _agent_harnesses(self, kind: str, p: dict, q: dict, body: bytes, headers: Any) -> Any:
        return self._json({"standardEnvVars": [], "harnesses": {}})  # no agent detection

    def _create(self, kind: str, p: dict, q: dict, body: bytes, headers: Any) -> Any:
        self._check_write(headers)
        req = json.loads(body)
        kind = req.get("type") or "model"
        if not req.get("organization") or not req.get("name"):
            raise HubError(400, "repo id must be 'namespace/name'")
        repo = f"{req['organization']}/{req['name']}"
        prefix = "" if kind == "model" else f"{kind}s/"
        url = f"{self.url}/{prefix}{repo}"
        try:
            self._store.load(kind, repo)
        except HubError:
            pass
        else:
            return self._json({"error": "You already created this repo", "url": url}, 409)
        self._store.save(
            kind,
            repo,
            {
                "private": req.get("visibility") == "private",
                "branches": {},
                "commits": {},
                "created": _now(),
            },
        )
        attrs = self._store.put_blob(
            kind, repo, b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
        )
        self._store.commit(kind, repo, "main", {".gitattributes": attrs}, "initial commit", None)
        return self._json({"url": url, "name": repo, "id": repo})

    def _validate_yaml(self, kind: str, p: dict, q: dict, body: bytes, headers: Any) -> Any:
        meta, errors = _front_matter(json.loads(body).get("content", ""))
        if errors:
            return self._json({"errors": [{"message": m} for m in errors]}, 400)
        warnings = [] if meta else [{"message": "empty or missing yaml metadata in repo card"}]
        return self._json({"errors": [], "warnings": warnings})

    def _preupload(self, kind: str, p: dict, q: dict, body: bytes, headers: Any) -> Any:
        self._check_write(headers)
        state = self._readable(kind, p["repo"], headers)
        head = self._store.resolve(state, p["rev"])
        tree = state["commits"][head]["files"]
        files = [
            {
                "path": f["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": tree.get(f["path"]),
            }
            for f in json.loads(body)["files"]
        ]
        return self._json({"files": files, "commitOid": head})

    def _commit(self, kind: str, p: dict, q: dict, body: bytes, headers: Any) -> Any:
        self._check_write(headers)
        repo, branch = p["repo"], p["rev"]
        if q.get("create_pr"):
            raise HubError(400, "pull requests are not supported by the fake Hub")
        state = self._readable(kind, repo, headers)
        if branch not in state["branches"]:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        head = state["branches"][branch]
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the first NDJSON line must be the commit header")
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, head):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(state["commits"][head]["files"])
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value", {})
            path = value.get("path", "")
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"unsupported encoding for {path}")
                files[path] = self._store.put_blob(kind, repo, base64.b64decode(value["content"]))
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                files = {f: o for f, o in files.items() if not f.startswith(path.rstrip("/") + "/")}
            else:  # lfsFile: never announced by the preupload answer
                raise HubError(400, f"unsupported commit operation {key!r}: all files are regular")
        sha = self._store.commit(kind, repo, branch, files, header.get("summary", ""), head)
        prefix = "" if kind == "model" else f"{kind}s/"
        return self._json(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self.url}/{prefix}{repo}/commit/{sha}",
            }
        )

    def _branch(self, kind: str, p: dict, q: dict, body: bytes, headers: Any) -> Any:
        self._check_write(headers)
        state = self._readable(kind, p["repo"], headers)
        if p["branch"] in state["branches"]:
            return self._json({"error": f"Reference already exists: {p['branch']}"}, 409)
        start = (json.loads(body or b"{}") or {}).get("startingPoint") or "main"
        state["branches"][p["branch"]] = self._store.resolve(state, start)
        self._store.save(kind, p["repo"], state)
        return self._json({})

    def _info(self, kind: str, p: dict, q: dict, body: bytes, headers: Any) -> Any:
        repo = p["repo"]
        state = self._readable(kind, repo, headers)
        sha = self._store.resolve(state, p.get("rev", "main"))
        commit = state["commits"][sha]
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo.encode()).hexdigest()[:24],
            "id": repo,
            "author": repo.split("/")[0],
            "sha": sha,
            "private": state["private"],
            "disabled": False,
            "gated": False,
            "createdAt": state["created"],
            "lastModified": commit["date"],
            "siblings": [{"rfilename": f} for f in sorted(commit["files"])],
        }
        if "README.md" in commit["files"]:
            card = self._store.blob(kind, repo, commit["files"]["README.md"]).decode()
            meta, _ = _front_matter(card)
            if meta:
                info["cardData"] = meta
                info["tags"] = list(meta.get("tags") or [])
                if "library_name" in meta:
                    info["library_name"] = meta["library_name"]
        if kind == "model":
            info["modelId"] = repo
        return self._json(info)

    def _tree(self, kind: str, p: dict, q: dict, body: bytes, headers: Any) -> Any:
        repo = p["repo"]
        state = self._readable(kind, repo, headers)
        sha = self._store.resolve(state, p["rev"])
        files = state["commits"][sha]["files"]
        base = p.get("path", "").strip("/")
        recursive = q.get("recursive", "false").lower() in ("1", "true")
        entries: dict[str, dict[str, Any]] = {}
        for path, oid in sorted(files.items()):
            if base and not path.startswith(base + "/"):
                continue
            rel = path[len(base) + 1 :] if base else path
            parts = rel.split("/")
            for i in range(1, len(parts)):  # parent folders
                folder = "/".join(([base] if base else []) + parts[:i])
                if recursive or i == 1:
                    tree_id = hashlib.sha1(folder.encode()).hexdigest()
                    entries.setdefault(
                        folder, {"type": "directory", "oid": tree_id, "path": folder}
                    )
            if recursive or len(parts) == 1:
                size = len(self._store.blob(kind, repo, oid))
                entries[path] = {"type": "file", "oid": oid, "size": size, "path": path}
        if base and not entries:
            raise HubError(404, f"{base} does not exist on {p['rev']}", "EntryNotFound")
        return self._json(list(entries.values()))

    def _resolve(self, kind: str, p: dict, q: dict, body: bytes, headers: Any) -> Any:
        repo, path = p["repo"], p["path"]
        state = self._readable(kind, repo, headers)
        sha = self._store.resolve(state, p["rev"])
        files = state["commits"][sha]["files"]
        common = {"X-Repo-Commit": sha}
        if path not in files:
            h = {"Content-Type": "application/json", "X-Error-Code": "EntryNotFound", **common}
            return 404, h, json.dumps({"error": f"Entry not found: {path}"}).encode()
        data = self._store.blob(kind, repo, files[path])
        return (
            200,
            {
                **common,
                "ETag": f'"{files[path]}"',
                "Content-Length": str(len(data)),
                "Content-Type": "application/octet-stream",
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(path.split('/')[-1])}",
            },
            data,
        )


def set_hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str) -> None:
    """Point the ``huggingface_hub`` client at ``url`` with a fresh HF home and cache under
    ``tmp_path``: what ``HF_ENDPOINT``/``HF_HOME``/``HF_HUB_CACHE`` set before import would give
    (``huggingface_hub.constants`` are computed at import, so they are patched too)."""
    home, cache = tmp_path / "hf_home", tmp_path / "hf_cache"
    env = {"HF_ENDPOINT": url, "HF_HOME": str(home), "HF_HUB_CACHE": str(cache)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(k, raising=False)
    patched = {
        "ENDPOINT": url,
        "HUGGINGFACE_CO_URL_TEMPLATE": url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HUB_CACHE": str(cache),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "AGENT_HARNESSES_PATH": str(home / ".agent_harnesses.json"),
        "HF_HUB_OFFLINE": False,
    }
    for k, v in patched.items():
        monkeypatch.setattr(constants, k, v)


def iter_routes() -> Iterator[str]:
    """The ``"METHOD route"`` templates the server answers."""
    for method, name, _ in _ROUTES:
        yield f"{method} {name}"
