"""A tiny fake Hugging Face Hub on 127.0.0.1 (``http.server`` in a thread) for the fetch tests.

It answers ``HEAD``/``GET /datasets/<repo>/resolve/<revision>/<path>`` the way the Hub does:
``X-Repo-Commit``, ``ETag`` (the file's sha256), ``Content-Length``, byte ranges for resumed
downloads, and 404s with ``X-Error-Code: RevisionNotFound`` / ``EntryNotFound`` /
``RepoNotFound``. Files are ``{commit: {path: bytes}}``; a branch name maps to a commit.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeHub:
    def __init__(self, repo_id: str, commits: dict[str, dict[str, bytes]], branches: dict[str, str] | None = None) -> None:
        self.repo_id = repo_id
        self.commits = commits
        self.branches = branches or {}
        self.requests: list[tuple[str, str]] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FakeHub":
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _answer(self, body: bool) -> None:
                hub.requests.append((self.command, self.path))
                prefix = f"/datasets/{hub.repo_id}/resolve/"
                if not self.path.startswith(prefix):
                    return self._error(404, "RepoNotFound")
                rev, _, path = self.path[len(prefix):].partition("/")
                commit = hub.branches.get(rev, rev)
                if commit not in hub.commits:
                    return self._error(404, "RevisionNotFound")
                data = hub.commits[commit].get(path)
                if data is None:
                    return self._error(404, "EntryNotFound", commit)
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0] or 0)
                part = data[start:]
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(part)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if body:
                    self.wfile.write(part)

            def _error(self, status: int, code: str, commit: str | None = None) -> None:
                payload = b'{"error": "not found"}'
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", code)
                if commit:
                    self.send_header("X-Repo-Commit", commit)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(body=True)

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True

        self._server = Quiet(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
