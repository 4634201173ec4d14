"""``python -m benchmark.app.serve_stub --port 8081 --name small``: a stub OpenAI-compatible upstream.

For the serving tests, ``bench/serve_latency.py`` and trying ``darsbench-serve`` without model
servers. It answers ``/v1/chat/completions`` (JSON or SSE stream) with ``answer from <name>`` and
a fixed usage; the server itself is :class:`benchmark.collect.testing.FakeOpenAIServer`.
"""

from __future__ import annotations

import argparse
import threading

from benchmark.collect.testing import FakeOpenAIServer


class StubUpstream(FakeOpenAIServer):
    """A pool model's stub: answers ``answer from <name>`` with usage 11 + 7 tokens."""

    def __init__(self, name: str, port: int = 0, *, prompt_tokens: int = 11, completion_tokens: int = 7,
                 delay_s: float = 0.0, jitter: float = 0.0, seed: int = 0, status: int = 200) -> None:
        super().__init__(answer=lambda body: f"answer from {name}", prompt_tokens=prompt_tokens,
                         completion_tokens=completion_tokens, delay_s=delay_s, name=name, port=port,
                         status=status, jitter=jitter, seed=seed)


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
