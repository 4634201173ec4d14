"""A minimal OpenAI-compatible upstream on 127.0.0.1 (``http.server`` in a thread).

For the serving tests, ``bench/serve_latency.py`` and trying ``darsbench-serve`` without model
servers: ``python -m benchmark.app.serve_stub --port 8081 --name small``. It answers
``/v1/chat/completions`` (JSON or SSE stream) with ``answer from <name>`` and a fixed usage.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class StubUpstream:
    """A real HTTP server answering chat completions; ``requests`` keeps every body received."""

    def __init__(
        self,
        name: str,
        port: int = 0,
        *,
        prompt_tokens: int = 11,
        completion_tokens: int = 7,
        delay_s: float = 0.0,
        jitter: float = 0.0,
        seed: int = 0,
        status: int = 200,
    ) -> None:
        self.name = name
        self.port = int(port)
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"jitter must be in [0, 1], got {jitter}")
        self.delay_s = delay_s
        self.jitter = jitter
        self._rng = random.Random(seed)
        self.status = status
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

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
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def setup(self) -> None:
                super().setup()
                with owner._lock:
                    owner._connections.add(self.connection)

            def finish(self) -> None:
                with owner._lock:
                    owner._connections.discard(self.connection)
                super().finish()

            def _json(self, status: int, obj: Any) -> None:
                payload = json.dumps(obj).encode()
                self.send_response(status)
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
                if owner.delay_s:
                    time.sleep(owner.next_delay())
                if owner.status != 200:
                    self._json(owner.status, {"error": {"message": f"stub {owner.name}: {owner.status}"}})
                    return
                text = f"answer from {owner.name}"
                usage = {"prompt_tokens": owner.prompt_tokens, "completion_tokens": owner.completion_tokens,
                         "total_tokens": owner.prompt_tokens + owner.completion_tokens}
                if not body.get("stream"):
                    self._json(200, {
                        "id": "stub", "object": "chat.completion", "model": body.get("model"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "finish_reason": "stop"}],
                        "usage": usage,
                    })
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                words = text.split(" ")
                for i, w in enumerate(words):
                    chunk = {"id": "stub", "object": "chat.completion.chunk", "model": body.get("model"),
                             "choices": [{"index": 0, "delta": {"content": w if i == 0 else " " + w},
                                          "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                last = {"id": "stub", "object": "chat.completion.chunk", "model": body.get("model"),
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
                self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

        return Handler

    def start(self) -> "StubUpstream":
        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # a client that went away mid-answer

        self._server = Server(("127.0.0.1", self.port), self._handler())
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

    def __enter__(self) -> "StubUpstream":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="0: a free port (one per --name)")
    ap.add_argument("--name", action="append", required=True,
                    help="the answering model's name; repeat to serve several stubs on free ports")
    ap.add_argument("--delay-s", type=float, default=0.0, help="seconds before each answer")
    ap.add_argument("--jitter", type=float, default=0.0,
                    help="answer delays uniform in delay * (1 +- jitter), seeded (0: fixed delay)")
    args = ap.parse_args(argv)
    if args.port and len(args.name) > 1:
        ap.error("--port serves one --name; leave it out (free ports) for several")
    stubs = [StubUpstream(n, args.port, delay_s=args.delay_s, jitter=args.jitter, seed=i).start()
             for i, n in enumerate(args.name)]
    for stub in stubs:
        print(f"stub upstream {stub.name!r} at {stub.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        for stub in stubs:
            stub.stop()


if __name__ == "__main__":
    main()
