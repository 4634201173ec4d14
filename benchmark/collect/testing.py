"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 (``http.server`` in a thread), for tests.

    with FakeOpenAIServer(statuses=[429, 200]) as srv:
        ...  # base_url = srv.base_url; srv.requests holds every request body received

Each request takes the next status from ``statuses`` (then 200 forever). A 200 answers with
``answer(body)`` (default ``Final Answer: 42``) and a fixed usage (``prompt_tokens``,
``completion_tokens``). Non-200 answers carry an error JSON and, for 429, a ``Retry-After: 0``;
with ``echo_auth`` the error text quotes the request's ``Authorization`` header (to test scrubbing).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Sequence

import yaml


class FakeOpenAIServer:
    """Serves ``/v1/chat/completions`` and ``/v1/completions`` with a scripted status sequence."""

    def __init__(
        self,
        statuses: Sequence[int] = (),
        answer: Callable[[dict[str, Any]], str] | None = None,
        prompt_tokens: int = 10,
        completion_tokens: int = 5,
        delay_s: float = 0.0,
        echo_auth: bool = False,
    ) -> None:
        self.statuses = list(statuses)
        self.answer = answer or (lambda body: "Final Answer: 42")
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.delay_s = delay_s
        self.echo_auth = echo_auth
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status_log: list[int] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _next_status(self) -> int:
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else 200
            self.status_log.append(status)
            return status

    def start(self) -> "FakeOpenAIServer":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # silence
                return

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with owner._lock:
                    owner.requests.append(body)
                    owner.headers.append({k.lower(): v for k, v in self.headers.items()})
                status = owner._next_status()
                if owner.delay_s:
                    time.sleep(owner.delay_s)
                if status != 200:
                    message = f"scripted {status}"
                    if owner.echo_auth:  # like a server that quotes the bad credential back
                        message += f" (credential {self.headers.get('Authorization', '')!r})"
                    payload = json.dumps({"error": {"message": message}}).encode()
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                text = owner.answer(body)
                usage = {"prompt_tokens": owner.prompt_tokens, "completion_tokens": owner.completion_tokens,
                         "total_tokens": owner.prompt_tokens + owner.completion_tokens}
                if self.path.endswith("/chat/completions"):
                    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                else:
                    choice = {"index": 0, "text": text, "finish_reason": "stop"}
                payload = json.dumps({"id": "x", "model": body.get("model"), "choices": [choice], "usage": usage}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        class QuietServer(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that gave up (a timeout test) closes the socket mid-answer: not an error here.
                return

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# Helpers for tests that run darsbench-collect against a FakeOpenAIServer
# ---------------------------------------------------------------------------------------------


def write_fake_config(tmp_path: Path, base_url: str, *, train: int = 1, test: int = 0, rewrites: int = 1, decodes: int = 1,
                 test_views: bool = False, max_retries: int = 3, price_in: float = 0.0, price_out: float = 0.0,
                 max_tokens: int = 5, key_env: str | None = None, timeout_s: float = 10.0, concurrency: int = 1) -> Path:
    """A small collection config (tinymath, template rewrites, one model at ``base_url``) under ``tmp_path``."""
    cfg = {
        "dataset": "fake",
        "output_dir": str(tmp_path / "out"),
        "work_dir": str(tmp_path / "work"),
        "source": {"generator": "tinymath", "n": max(train + test, 1), "seed": 0},
        "split": {"train_size": train, "test_size": test, "seed": 0},
        "rewriter": {"kind": "template"},
        "pool": [{"name": "m", "base_url": base_url, "model": "m", "api_key_env": key_env, "price_in": price_in,
                  "price_out": price_out, "max_concurrency": concurrency, "prompt_style": "chat"}],
        "decoding": {
            "max_tokens": max_tokens,
            "train": {"rewrites": rewrites, "decodes": decodes},
            "test_rewrite": {"rewrites": 2 if test_views else 0, "decodes": 1},
            "test_decoding": {"rewrites": 1 if test_views else 0, "decodes": 2 if test_views else 0,
                              "temperatures": [0.3, 1.0] if test_views else None},
        },
        "request": {"timeout_s": timeout_s, "max_retries": max_retries, "backoff_base_s": 0.01, "backoff_max_s": 0.05},
        "validate": {"similarity": "none"},
    }
    path = tmp_path / "collect.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def read_rows(tmp_path: Path, split: str = "train") -> list[dict]:
    """The rows of a split written by a :func:`write_fake_config` run."""
    f = tmp_path / "out" / "fake" / f"{split}_scored_generations.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
