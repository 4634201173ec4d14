"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 (``http.server`` in a thread), for the
collection and serving tests, ``bench/serve_latency.py`` and ``python -m benchmark.app.serve_stub``.

    with FakeOpenAIServer(statuses=[429, 200]) as srv:
        ...  # base_url = srv.base_url; srv.requests holds every request body received

Each request takes the next status from ``statuses`` (then ``status``, 200 by default). A 200
answers ``/v1/chat/completions`` (JSON, or an SSE stream when the body asks for one) and
``/v1/completions`` with ``answer(body)`` (default ``Final Answer: 42``) and a fixed usage
(``prompt_tokens``, ``completion_tokens``); ``GET .../models`` lists ``name``. Non-200 answers
carry an error JSON and, for 429, a ``Retry-After: 0``; with ``echo_auth`` the error text quotes
the request's ``Authorization`` header (to test scrubbing). ``delay_s`` (with ``jitter``: uniform
in ``delay_s * (1 +- jitter)``, seeded) passes before each answer. :meth:`stop` acts like a killed
server: the port closes and open connections are cut.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Sequence

import yaml


class FakeOpenAIServer:
    """Serves ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/models`` as scripted."""

    def __init__(
        self,
        statuses: Sequence[int] = (),
        answer: Callable[[dict[str, Any]], str] | None = None,
        prompt_tokens: int = 10,
        completion_tokens: int = 5,
        delay_s: float = 0.0,
        echo_auth: bool = False,
        *,
        name: str = "fake",
        port: int = 0,
        status: int = 200,
        jitter: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"jitter must be in [0, 1], got {jitter}")
        self.statuses = list(statuses)
        self.answer = answer or (lambda body: "Final Answer: 42")
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.delay_s = delay_s
        self.echo_auth = echo_auth
        self.name = name
        self.port = int(port)
        self.status = status
        self.jitter = jitter
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status_log: list[int] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _next_status(self) -> int:
        with self._lock:
            status = self.statuses.pop(0) if self.statuses else self.status
            self.status_log.append(status)
            return status

    def next_delay(self) -> float:
        """Seconds before the next answer: ``delay_s``, or uniform in ``delay_s * (1 +- jitter)``
        (seeded: the same sequence every run)."""
        if not self.jitter:
            return self.delay_s
        with self._lock:
            u = self._rng.uniform(-self.jitter, self.jitter)
        return self.delay_s * (1.0 + u)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as model servers do

            def log_message(self, *args: Any) -> None:  # silence
                return

            def setup(self) -> None:
                super().setup()
                with owner._lock:
                    owner._connections.add(self.connection)

            def finish(self) -> None:
                with owner._lock:
                    owner._connections.discard(self.connection)
                super().finish()

            def _json(self, status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
                payload = json.dumps(obj).encode()
                self.send_response(status)
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [{"id": owner.name, "object": "model"}]})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with owner._lock:
                    owner.requests.append(body)
                    owner.headers.append({k.lower(): v for k, v in self.headers.items()})
                status = owner._next_status()
                if owner.delay_s:
                    time.sleep(owner.next_delay())
                if status != 200:
                    message = f"scripted {status} from {owner.name}"
                    if owner.echo_auth:  # like a server that quotes the bad credential back
                        message += f" (credential {self.headers.get('Authorization', '')!r})"
                    self._json(status, {"error": {"message": message}},
                               {"Retry-After": "0"} if status == 429 else None)
                    return
                text = owner.answer(body)
                usage = {"prompt_tokens": owner.prompt_tokens, "completion_tokens": owner.completion_tokens,
                         "total_tokens": owner.prompt_tokens + owner.completion_tokens}
                chat = self.path.endswith("/chat/completions")
                if chat and body.get("stream"):
                    self._stream(body, text, usage)
                    return
                if chat:
                    choice = {"index": 0, "message": {"role": "assistant", "content": text},
                              "finish_reason": "stop"}
                else:
                    choice = {"index": 0, "text": text, "finish_reason": "stop"}
                self._json(200, {"id": "x", "object": "chat.completion" if chat else "text_completion",
                                 "model": body.get("model"), "choices": [choice], "usage": usage})

            def _stream(self, body: dict[str, Any], text: str, usage: dict[str, int]) -> None:
                """SSE chunks, one per word; the last one carries the usage; then ``[DONE]``."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for i, w in enumerate(text.split(" ")):
                    chunk = {"id": "x", "object": "chat.completion.chunk", "model": body.get("model"),
                             "choices": [{"index": 0, "delta": {"content": w if i == 0 else " " + w},
                                          "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                last = {"id": "x", "object": "chat.completion.chunk", "model": body.get("model"),
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
                self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

        return Handler

    def start(self) -> "FakeOpenAIServer":
        class QuietServer(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that gave up (a timeout test) closes the socket mid-answer: not an error here.
                return

        self._server = QuietServer(("127.0.0.1", self.port), self._handler())
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop like a killed server: the port is closed and open connections are cut."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for conn in self._connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._connections.clear()

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
