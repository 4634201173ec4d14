"""``darsbench-serve``: a saved router behind an OpenAI-compatible endpoint over real model servers.

``darsbench-serve --router <bundle> --pool <pool.yaml>`` routes each chat request to a pool
model (re-scored at the request's lambda/beta), falls back on failure and logs JSON lines;
``darsbench-serve report <log>`` summarises a log. Usage and formats: README, docs/routers.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import queue
import re
import sys
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import aiohttp
import numpy as np
import pandas as pd
import torch
import uvicorn
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from routers.bundle import RouterBundle, load_bundle

try:  # optional (pip install 'darsbench[serve]'): faster JSON; the standard library otherwise
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None
try:  # optional (httptools, in the serve extra): the faster HTTP parser, stamping arrivals early
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - depends on the environment
    HttpToolsProtocol = None

ROUTE_MODEL = "darsbench-route"
#: Keys of a collection pool entry that serving reads; the other collection keys are allowed.
POOL_KEYS = {"name", "base_url", "model", "api_key_env", "price_in", "price_out"}
POOL_COLLECT_ONLY = {"endpoint", "prompt_style", "params_b", "max_concurrency", "extra_body"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Upstream answers that make the server try the next model (others are the client's problem).
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
#: Upstream failures (connection, protocol, timeout) that make the server try the next model.
UPSTREAM_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes (orjson when installed). Routes hold only finite numbers (checked in
    :meth:`QueryRouter.route_many`) and parsed JSON holds none that are not."""
    if orjson is not None:
        return orjson.dumps(obj)
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def loads(data: bytes | str) -> Any:
    """Parse JSON (orjson when installed); invalid JSON raises ``ValueError``."""
    return orjson.loads(data) if orjson is not None else json.loads(data)


class ServeError(ValueError):
    """A bad pool file or bundle for serving (the message names the file and field)."""


# ------------------------------------------------------------------------------------ pool
@dataclass(frozen=True)
class PoolModel:
    """One pool model: an OpenAI-compatible endpoint and its prices (USD per token)."""

    name: str
    base_url: str
    model: str
    api_key_env: str | None = None
    price_in: float = 0.0
    price_out: float = 0.0

    def api_key(self) -> str | None:
        """The key, read from the environment now (never stored, never logged)."""
        return None if self.api_key_env is None else os.environ.get(self.api_key_env)


def load_pool(path: str | os.PathLike, models: Sequence[str]) -> dict[str, PoolModel]:
    """Pool entries by name from a YAML file (a collection config's ``pool:`` or a bare list).

    Every model of the bundle (``models``) needs an entry, and every entry must be one of them.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ServeError(f"{path}: cannot read the pool file ({err})") from err
    entries = raw.get("pool") if isinstance(raw, dict) else raw
    if not isinstance(entries, list) or not entries:
        raise ServeError(f"{path}: pool: expected a non-empty list of models")
    pool: dict[str, PoolModel] = {}
    for i, e in enumerate(entries):
        where = f"{path}: pool[{i}]"
        if not isinstance(e, dict):
            raise ServeError(f"{where}: expected a mapping")
        if "api_key" in e:
            raise ServeError(f"{where}.api_key: keys never go in files; name the environment "
                             "variable in api_key_env")
        unknown = set(e) - POOL_KEYS - POOL_COLLECT_ONLY
        if unknown:
            raise ServeError(f"{where}: unknown field(s) {sorted(unknown)}")
        for k in ("name", "base_url", "model"):
            if not isinstance(e.get(k), str) or not e[k]:
                raise ServeError(f"{where}.{k}: required, a non-empty string")
        env = e.get("api_key_env")
        if env is not None and not (isinstance(env, str) and _ENV_NAME.fullmatch(env)):
            raise ServeError(f"{where}.api_key_env: must be the NAME of an environment variable")
        prices = {}
        for k in ("price_in", "price_out"):
            v = e.get(k, 0.0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ServeError(f"{where}.{k}: must be a non-negative number, got {v!r}")
            prices[k] = float(v)
        if e["name"] in pool:
            raise ServeError(f"{where}.name: {e['name']!r} appears twice")
        pool[e["name"]] = PoolModel(e["name"], e["base_url"].rstrip("/"), e["model"], env, **prices)
    missing = [m for m in models if m not in pool]
    extra = [m for m in pool if m not in models]
    if missing or extra:
        raise ServeError(f"{path}: the pool must list exactly the router's models {list(models)}; "
                         f"missing {missing}, not in the router {extra}")
    return pool


# --------------------------------------------------------------------------------- routing
@dataclass
class Route:
    """One routing decision: the chosen model, the fallback order and the predictions.

    ``batch`` is the number of queries routed in the same call and ``route_ms`` that call's time.
    """

    lam: float
    beta: float
    ranking: list[str]
    predicted: dict[str, dict[str, float]]
    batch: int = 1
    route_ms: float = 0.0

    @property
    def chosen(self) -> str:
        return self.ranking[0]

    def summary(self) -> dict[str, Any]:
        return {"model": self.chosen, "ranking": self.ranking, "lam": self.lam, "beta": self.beta,
                "predicted": self.predicted}


class QueryRouter:
    """Routes query texts with a loaded bundle (draw ``draw`` of a single-shot bundle)."""

    def __init__(self, bundle: RouterBundle, draw: int = 0) -> None:
        self.bundle = bundle
        self.draw = int(draw)
        # One routing now: loads the encoder (MiniLM) and checks the draw index.
        warm = bundle.router.decide(bundle.features(["warm up"]), bundle.lam, bundle.beta)
        n_draws = np.asarray(warm.choices).shape[0] if bundle.router.has_draws_ else 1
        if not 0 <= self.draw < n_draws:
            raise ServeError(f"--draw {draw}: the bundle holds {n_draws} draw(s)")

    def route(self, text: str, lam: float, beta: float) -> Route:
        return self.route_many([text], [(lam, beta)])[0]

    def route_many(self, texts: Sequence[str], settings: Sequence[tuple[float, float]]) -> list[Route]:
        """Routes of ``texts`` (one ``(lambda, beta)`` each): one encoding call for all texts,
        one ``decide`` call per distinct setting."""
        t0 = time.perf_counter()
        X = self.bundle.features(list(texts))
        groups: dict[tuple[float, float], list[int]] = {}
        for i, setting in enumerate(settings):
            groups.setdefault((float(setting[0]), float(setting[1])), []).append(i)
        routes: list[Route | None] = [None] * len(texts)
        for (lam, beta), rows in groups.items():
            Xg = X if len(rows) == len(texts) else X[rows]
            for i, route in zip(rows, self._routes(self.bundle.router.decide(Xg, lam, beta), lam, beta)):
                routes[i] = route
        ms = (time.perf_counter() - t0) * 1e3
        for route in routes:
            route.batch, route.route_ms = len(texts), ms
        return routes  # type: ignore[return-value]

    def _routes(self, dec: Any, lam: float, beta: float) -> list[Route]:
        pick = (lambda a: np.asarray(a)[self.draw]) if self.bundle.router.has_draws_ else np.asarray
        pool = self.bundle.pool
        chosen = pick(dec.choices).tolist()
        arrays = {name: pick(v) for name, v in dec.outputs.items()}
        if dec.signals is not None:
            util, cost = pick(dec.signals.utility(lam, beta)), pick(dec.signals.mu_c)
            arrays = {"utility": util, **arrays}
            index = np.broadcast_to(np.arange(len(pool)), util.shape)
            order = np.lexsort((index, cost, -util), axis=-1)  # utility, then cheaper, then index
        else:
            order = np.argsort(-pick(dec.outputs["score"]), axis=1, kind="stable")
        bad = [name for name, v in arrays.items() if not np.isfinite(v).all()]
        if bad:
            raise ValueError(f"the router predicted non-finite {bad} at lambda={lam}, beta={beta}")
        values = {name: v.tolist() for name, v in arrays.items()}
        routes = []
        for r, (c, row) in enumerate(zip(chosen, order.tolist())):
            ranking = [pool[c]] + [pool[i] for i in row if i != c]
            predicted = {name: dict(zip(pool, map(float, v[r]))) for name, v in values.items()}
            routes.append(Route(float(lam), float(beta), ranking, predicted))
        return routes


class RouteBatcher:
    """Routes concurrent requests together (micro-batching): each routing call takes every query
    queued when it starts (up to ``max_batch``) and never waits for more to arrive.

    ``in_thread`` False routes on the event loop: a request queues its query and yields once,
    so the requests read in the same loop turn queue theirs too; the first to resume routes them
    all, and each continues to its upstream without another wait (cheap, GIL-bound encoders
    such as TF-IDF). True routes in ``threads`` dedicated threads (torch and onnxruntime release
    the GIL while encoding MiniLM, so the loop keeps relaying traffic). A thread that wakes takes
    its share of the queue, ``ceil(queued / idle threads)``: the batch grows with the load, and
    a queue is split over the idle threads instead of waiting for one thread's big batch. A
    batch that raises is re-routed one query at a time, so a failure stays with its own request.
    """

    def __init__(self, router: QueryRouter, max_batch: int = 32, in_thread: bool = False,
                 threads: int = 1) -> None:
        self.router = router
        self.max_batch = int(max_batch)
        self.in_thread = bool(in_thread)
        self.threads = int(threads)
        self._pending: list[tuple[str, float, float, asyncio.Future]] = []
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._idle = 0  # routing threads waiting for a query
        self._idle_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the routing threads (``in_thread``); requests queued before wait for them."""
        self._loop = asyncio.get_running_loop()
        if self.in_thread:
            self._workers = [threading.Thread(target=self._work, name=f"darsbench-route-{i}", daemon=True)
                             for i in range(self.threads)]
            for w in self._workers:
                w.start()

    def stop(self) -> None:
        for _ in self._workers:
            self._queue.put(None)
        for w in self._workers:
            w.join(timeout=10)
        self._workers = []

    async def route(self, text: str, lam: float, beta: float) -> Route:
        """The :class:`Route` of ``text`` (raises what routing it raised)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        item = (text, lam, beta, self._loop.create_future())
        if self.in_thread:
            self._queue.put(item)
            return await item[3]
        self._pending.append(item)
        await asyncio.sleep(0)  # the other requests of this loop turn queue their queries
        while not item[3].done():  # the first to resume routes everything queued
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch:]
            self._deliver(batch, self._run(batch))
        return item[3].result()

    def _run(self, batch: list[tuple[str, float, float, asyncio.Future]]) -> list[Any]:
        """Routes or exceptions, one per queued item."""
        try:
            return self.router.route_many([b[0] for b in batch], [(b[1], b[2]) for b in batch])
        except Exception:  # noqa: BLE001 - find the query that fails, route the others
            if len(batch) == 1:
                return [sys.exc_info()[1]]
        out: list[Any] = []
        for item in batch:
            out.extend(self._run([item]))
        return out

    @staticmethod
    def _deliver(batch: list[tuple[str, float, float, asyncio.Future]], results: list[Any]) -> None:
        for (*_, fut), res in zip(batch, results):
            if fut.done():  # cancelled meanwhile
                continue
            if isinstance(res, BaseException):
                fut.set_exception(res)
            else:
                fut.set_result(res)

    @staticmethod
    def share(queued: int, idle_others: int, max_batch: int) -> int:
        """Batch size of a thread that wakes with ``queued`` queries waiting (its own included)
        while ``idle_others`` other threads wait: an equal share, at least 1, at most ``max_batch``."""
        return max(1, min(max_batch, -(-queued // (idle_others + 1))))

    def _work(self) -> None:
        while True:
            with self._idle_lock:
                self._idle += 1
            item = self._queue.get()
            with self._idle_lock:
                self._idle -= 1
                idle_others = self._idle
            if item is None:
                return
            batch = [item]
            size = self.share(1 + self._queue.qsize(), idle_others, self.max_batch)
            while len(batch) < size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(nxt)
            results = self._run(batch)
            self._loop.call_soon_threadsafe(self._deliver, batch, results)  # type: ignore[union-attr]


def query_text(body: dict[str, Any]) -> str:
    """The routed text: ``query`` or the content of the last user message."""
    if isinstance(body.get("query"), str):
        return body["query"]
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages: expected a non-empty list (or a 'query' string)")
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
            raise ValueError("messages: the last user message has no text content")
    raise ValueError("messages: no user message to route on")


def routing_setting(body: dict[str, Any], default_lam: float, default_beta: float) -> tuple[float, float]:
    """(lambda, beta) of a request: the model name's ``:lam=..,beta=..``, then body fields."""
    lam, beta = default_lam, default_beta
    model = body.get("model", ROUTE_MODEL)
    if not isinstance(model, str) or not (model == ROUTE_MODEL or model.startswith(ROUTE_MODEL + ":")):
        raise ValueError(f"model: use {ROUTE_MODEL!r} or '{ROUTE_MODEL}:lam=0.1,beta=0.2', got {model!r}")
    if ":" in model:
        for part in model.split(":", 1)[1].split(","):
            key, _, value = part.partition("=")
            if key.strip() in ("lam", "lambda"):
                lam = _number(value, "model lam")
            elif key.strip() == "beta":
                beta = _number(value, "model beta")
            elif part.strip():
                raise ValueError(f"model: unknown setting {part!r} (lam, beta)")
    extra = body.get("darsbench") if isinstance(body.get("darsbench"), dict) else {}
    for src in (body, extra):
        for key in ("lambda", "lam"):
            if key in src:
                lam = _number(src[key], key)
        if "beta" in src:
            beta = _number(src["beta"], "beta")
    return lam, beta


def _number(value: Any, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{what}: must be a finite number >= 0, got {value!r}")
    return v


# ------------------------------------------------------------------------------------ log
class RequestLog:
    """JSON lines, one per routed request. No prompt unless asked; never a key or header."""

    def __init__(self, path: str | os.PathLike | None, log_prompts: bool = False) -> None:
        self.path = None if path is None else Path(path)
        self.log_prompts = log_prompts
        self._fh = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8", buffering=1)

    def write(self, record: dict[str, Any], prompt: str | None = None) -> None:
        if self._fh is None:
            return
        rec = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), **record}
        if self.log_prompts and prompt is not None:
            rec["prompt"] = prompt
        self._fh.write(dumps(rec).decode() + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _cost(model: PoolModel, usage: dict[str, Any] | None) -> tuple[int | None, int | None, float | None]:
    if not isinstance(usage, dict):
        return None, None, None
    p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(p, int) or not isinstance(c, int):
        return None, None, None
    return p, c, p * model.price_in + c * model.price_out


# ------------------------------------------------------------------------------ the server
@dataclass
class ServeConfig:
    bundle: RouterBundle
    pool: dict[str, PoolModel]
    log: RequestLog
    timeout_s: float = 60.0
    max_tries: int = 3
    draw: int = 0
    health_timeout_s: float = 2.0
    #: Where routing runs: "loop" (the event loop), "thread" (``route_workers`` threads) or
    #: "auto" (the loop for TF-IDF, threads for MiniLM).
    route_in: str = "auto"
    route_workers: int = 1
    max_batch: int = 32
    extra: dict[str, Any] = field(default_factory=dict)


def create_app(cfg: ServeConfig) -> Any:
    """The ASGI app (FastAPI) serving ``cfg``."""
    router = QueryRouter(cfg.bundle, cfg.draw)
    in_thread = cfg.route_in == "thread" or (cfg.route_in == "auto" and cfg.bundle.encoder.kind != "tfidf")
    inline = cfg.route_in == "inline"
    batcher = RouteBatcher(router, cfg.max_batch, in_thread, cfg.route_workers)
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        # One persistent aiohttp session (keep-alive connection pool) per pool model. aiohttp, not
        # httpx: the relay took a third of the server's CPU with httpx (README, "Save and serve").
        # Timeouts as per try: connecting (pool wait included) and each wait for bytes, not the
        # whole answer, so a long stream that keeps sending is not cut.
        timeout = aiohttp.ClientTimeout(total=None, connect=cfg.timeout_s, sock_read=cfg.timeout_s)
        state["clients"] = {name: aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=256, limit_per_host=0)) for name in cfg.pool}
        batcher.start()
        # Everything loaded so far (torch, the router, the encoder) is long-lived: keep it out of
        # the collector's scans, so full collections during serving stay short.
        gc.collect()
        gc.freeze()
        yield
        for client in state["clients"].values():
            await client.close()
        batcher.stop()
        cfg.log.close()

    app = FastAPI(title="darsbench-serve", lifespan=lifespan)
    app.add_middleware(_ReceivedAt)

    def error(status: int, message: str, kind: str, **extra: Any) -> Response:
        return Response(dumps({"error": {"message": message, "type": kind, **extra}}), status,
                        media_type="application/json")

    async def parse(request: Request) -> tuple[dict[str, Any], str, Route] | Response:
        try:
            body = loads(await request.body())
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
            lam, beta = routing_setting(body, cfg.bundle.lam, cfg.bundle.beta)
            text = query_text(body)
        except ValueError as err:  # json.JSONDecodeError and orjson's are ValueErrors
            return error(400, str(err), "invalid_request_error")
        try:
            route = router.route(text, lam, beta) if inline else await batcher.route(text, lam, beta)
        except Exception as err:  # noqa: BLE001 - the router failed on this query
            return error(500, f"routing failed: {type(err).__name__}: {err}", "routing_error")
        return body, text, route

    def headers(route: Route, served: str | None, n_failed: int) -> dict[str, str]:
        util = route.predicted.get("utility") or route.predicted.get("score") or {}
        h = {"x-darsbench-routed-to": route.chosen,
             "x-darsbench-utilities": dumps(util).decode(),
             "x-darsbench-fallbacks": str(n_failed)}
        if served is not None:
            h["x-darsbench-model"] = served
        return h

    def upstream_body(body: dict[str, Any], model: PoolModel) -> tuple[bytes, dict[str, str]]:
        """The upstream request's body (the model's id, no routing fields) and headers."""
        out = {k: v for k, v in body.items() if k not in ("darsbench", "lambda", "lam", "beta", "query")}
        out["model"] = model.model
        return dumps(out), {"content-type": "application/json", **auth(model)}

    def auth(model: PoolModel) -> dict[str, str]:
        key = model.api_key()
        return {} if not key else {"Authorization": f"Bearer {key}"}

    def timing(route: Route, t0: float, t_routed: float) -> dict[str, Any]:
        return {"route_wait_ms": (t_routed - t0) * 1e3, "route_ms": route.route_ms, "batch": route.batch}

    @app.post("/route")
    async def route_only(request: Request) -> Any:
        parsed = await parse(request)
        if isinstance(parsed, Response):
            return parsed
        _, text, route = parsed
        t0 = request.scope["darsbench_t0"]
        t_routed = time.perf_counter()
        cfg.log.write({"kind": "route", "routed_to": route.chosen, "lam": route.lam,
                       "beta": route.beta, "predicted": route.predicted,
                       "overhead_ms": (t_routed - t0) * 1e3, **timing(route, t0, t_routed),
                       "status": 200}, text)
        return Response(dumps(route.summary()), headers=headers(route, None, 0),
                        media_type="application/json")

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        parsed = await parse(request)
        if isinstance(parsed, Response):
            return parsed
        body, text, route = parsed
        t0 = request.scope["darsbench_t0"]
        t_routed = time.perf_counter()
        stream = bool(body.get("stream"))
        tries: list[dict[str, Any]] = []
        overhead_ms = None
        for name in route.ranking[: cfg.max_tries]:
            model, client = cfg.pool[name], state["clients"][name]
            data, hdrs = upstream_body(body, model)
            if overhead_ms is None:  # the first upstream request is built and handed to the client
                overhead_ms = (time.perf_counter() - t0) * 1e3
            resp = None
            try:
                resp = await client.post(f"{model.base_url}/chat/completions", data=data, headers=hdrs)
                if resp.status in RETRY_STATUSES:
                    resp.release()
                    tries.append({"model": name, "status": resp.status})
                    continue
                content = None if stream else await resp.read()  # a failure here is a failed try too
            except UPSTREAM_ERRORS as err:
                if resp is not None:
                    resp.close()
                tries.append({"model": name, "error": type(err).__name__})
                continue
            tries.append({"model": name, "status": resp.status})
            info = {"routed_to": route.chosen, "served_by": name, "ranking": route.ranking,
                    "lam": route.lam, "beta": route.beta, "predicted": route.predicted,
                    "tries": tries, "fallback": len(tries) > 1}
            record = {"kind": "chat", "stream": stream, "routed_to": route.chosen, "served_by": name,
                      "lam": route.lam, "beta": route.beta, "predicted": route.predicted,
                      "tries": tries, "fallback": len(tries) > 1, "overhead_ms": overhead_ms,
                      **timing(route, t0, t_routed), "status": resp.status}
            hdrs = headers(route, name, len(tries) - 1)
            if stream:
                return StreamingResponse(
                    _relay(resp, info, record, model, cfg.log, text, t0),
                    status_code=resp.status, media_type="text/event-stream", headers=hdrs)
            try:
                payload = loads(content)
            except ValueError:
                payload = {"error": {"message": "upstream answered with non-JSON", "type": "upstream_error"}}
            usage = payload.get("usage") if isinstance(payload, dict) else None
            p, c, cost = _cost(model, usage)
            if isinstance(payload, dict):
                payload["darsbench"] = info
            cfg.log.write({**record, "latency_ms": (time.perf_counter() - t0) * 1e3,
                           "prompt_tokens": p, "completion_tokens": c, "cost_usd": cost}, text)
            return Response(dumps(payload), resp.status, headers=hdrs, media_type="application/json")
        cfg.log.write({"kind": "chat", "stream": stream, "routed_to": route.chosen, "served_by": None,
                       "lam": route.lam, "beta": route.beta, "predicted": route.predicted,
                       "tries": tries, "fallback": len(tries) > 1, "overhead_ms": overhead_ms,
                       **timing(route, t0, t_routed),
                       "latency_ms": (time.perf_counter() - t0) * 1e3, "status": 503}, text)
        return error(503, f"no pool model answered ({len(tries)} tried: "
                     f"{', '.join(t['model'] for t in tries)})", "no_upstream_available",
                     tries=tries, darsbench=route.summary())

    @app.get("/v1/models")
    async def models() -> Any:
        return {"object": "list", "data": [{
            "id": ROUTE_MODEL, "object": "model", "owned_by": "darsbench",
            "lam": cfg.bundle.lam, "beta": cfg.bundle.beta, "pool": cfg.bundle.pool,
            "router": cfg.bundle.meta.get("router_name"),
            "usage": f"{ROUTE_MODEL}:lam=<lambda>,beta=<beta> sets the trade-off per request",
        }]}

    @app.get("/health")
    async def health() -> Any:
        async def probe(m: PoolModel) -> bool:
            try:
                async with state["clients"][m.name].get(
                        f"{m.base_url}/models", headers=auth(m),
                        timeout=aiohttp.ClientTimeout(total=cfg.health_timeout_s)) as r:
                    return r.status < 500
            except UPSTREAM_ERRORS:
                return False

        up = await asyncio.gather(*(probe(m) for m in cfg.pool.values()))
        reachable = dict(zip(cfg.pool, up))
        ok = any(up)
        return JSONResponse({"status": "ok" if ok else "no_upstream_available", "ready": ok,
                             "router": cfg.bundle.meta.get("router_name"), "reachable": reachable},
                            status_code=200 if ok else 503)

    return app


class _ReceivedAt:
    """ASGI middleware: the time a request arrived (start of the router's overhead), unless the
    HTTP protocol stamped it earlier (:func:`http_protocol`)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        scope.setdefault("darsbench_t0", time.perf_counter())
        await self.app(scope, receive, send)


if HttpToolsProtocol is not None:
    class _StampedHttpTools(HttpToolsProtocol):
        """uvicorn's httptools protocol, stamping a request when its first bytes are parsed (before
        the request's task is even created)."""

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.scope["darsbench_t0"] = time.perf_counter()


def http_protocol(choice: str) -> Any:
    """uvicorn's ``http`` setting: httptools (arrival stamped as parsed) when installed and not
    refused, else h11 (arrival stamped when the app is called)."""
    if choice == "h11" or (choice == "auto" and HttpToolsProtocol is None):
        return "h11"
    if HttpToolsProtocol is None:
        raise ServeError("--http httptools: httptools is not installed (pip install 'darsbench[serve]')")
    return _StampedHttpTools


async def _lines(resp: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The body's lines as text, without their ``\n`` or ``\r\n`` (lines of any length)."""
    buf = b""
    async for chunk in resp.content.iter_any():
        *lines, buf = (buf + chunk).split(b"\n")
        for line in lines:
            yield line.removesuffix(b"\r").decode("utf-8", errors="replace")
    if buf:
        yield buf.removesuffix(b"\r").decode("utf-8", errors="replace")


async def _relay(resp: aiohttp.ClientResponse, info: dict[str, Any], record: dict[str, Any],
                 model: PoolModel, log: RequestLog, text: str, t0: float) -> AsyncIterator[bytes]:
    """Relay an upstream SSE stream; the first event gains the ``darsbench`` field."""
    usage, first, status = None, True, record["status"]
    try:
        async for line in _lines(resp):
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                try:
                    event = loads(line[5:])
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    usage = event.get("usage") or usage
                    if first:
                        event["darsbench"] = info
                        line = "data: " + dumps(event).decode()
                    first = False
            yield (line + "\n").encode()
    except UPSTREAM_ERRORS as err:
        status = 502
        msg = {"error": {"message": f"upstream {record['served_by']} failed mid-stream "
                         f"({type(err).__name__})", "type": "upstream_error"}}
        yield b"data: " + dumps(msg) + b"\n\n"
    finally:
        resp.release()  # back to the pool when read to the end, else closed
        p, c, cost = _cost(model, usage)
        log.write({**record, "status": status, "latency_ms": (time.perf_counter() - t0) * 1e3,
                   "prompt_tokens": p, "completion_tokens": c, "cost_usd": cost}, text)


# ---------------------------------------------------------------------------------- report
def report(path: str | os.PathLike) -> pd.DataFrame:
    """Per served model: requests, share, fallbacks, tokens, spend, latency and overhead."""
    path = Path(path)
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as err:
                raise ServeError(f"{path}:{i}: not a JSON line ({err})") from err
    if not rows:
        raise ServeError(f"{path}: no logged request")
    df = pd.DataFrame(rows)
    chat = df[df["kind"] == "chat"].copy() if "kind" in df else df.iloc[:0]
    if chat.empty:
        raise ServeError(f"{path}: no chat request logged (only /route calls)")
    chat["served"] = chat["served_by"].fillna("(none: 503)")
    for col in ("prompt_tokens", "completion_tokens", "cost_usd", "latency_ms", "overhead_ms"):
        chat[col] = pd.to_numeric(chat.get(col), errors="coerce")
    g = chat.groupby("served", sort=True)
    out = pd.DataFrame({
        "requests": g.size(),
        "share": g.size() / len(chat),
        "routed_here": chat.groupby("routed_to").size().reindex(g.size().index).fillna(0).astype(int),
        "fallbacks": g["fallback"].sum().astype(int),
        "prompt_tokens": g["prompt_tokens"].sum(min_count=1),
        "completion_tokens": g["completion_tokens"].sum(min_count=1),
        "cost_usd": g["cost_usd"].sum(min_count=1),
        "latency_p50_ms": g["latency_ms"].median(),
        "overhead_p50_ms": g["overhead_ms"].median(),
    })
    total = pd.DataFrame({
        "requests": [len(chat)], "share": [1.0], "routed_here": [len(chat)],
        "fallbacks": [int(chat["fallback"].sum())],
        "prompt_tokens": [chat["prompt_tokens"].sum(min_count=1)],
        "completion_tokens": [chat["completion_tokens"].sum(min_count=1)],
        "cost_usd": [chat["cost_usd"].sum(min_count=1)],
        "latency_p50_ms": [chat["latency_ms"].median()],
        "overhead_p50_ms": [chat["overhead_ms"].median()],
    }, index=["total"])
    return pd.concat([out, total])


def markdown(table: pd.DataFrame) -> str:
    """A markdown table (numbers to 6 significant digits, blank where missing)."""
    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if math.isnan(v) else f"{v:.6g}"
        return str(v)

    head = ["model", *table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join([str(idx), *(cell(v) for v in row)]) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- CLI
def _serve_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="darsbench-serve",
        description="Serve a saved router (save_router=true) as an OpenAI-compatible endpoint. "
                    "`darsbench-serve report <log>` summarises a request log.")
    ap.add_argument("--router", required=True, help="bundle folder (<cell>/router)")
    ap.add_argument("--pool", required=True, help="pool YAML (a collection config or its pool list)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--log", default="darsbench-requests.jsonl", help="JSON-lines request log")
    ap.add_argument("--log-prompts", action="store_true", help="also log the routed text")
    ap.add_argument("--timeout-s", type=float, default=60.0, help="per upstream try")
    ap.add_argument("--max-tries", type=int, default=3, help="models tried per request (>= 1)")
    ap.add_argument("--draw", type=int, default=0, help="draw served from a single-shot bundle")
    ap.add_argument("--route-in", choices=("auto", "loop", "thread", "inline"), default="auto",
                    help="where queries are encoded and scored: on the event loop, in dedicated "
                         "threads, or auto (the loop for TF-IDF, threads for MiniLM)")
    ap.add_argument("--route-workers", type=int, default=None,
                    help="routing threads with --route-in thread, each taking its share of the "
                         "queue (default: the cores the server may use, at most 4)")
    ap.add_argument("--max-batch", type=int, default=32,
                    help="most queued queries routed in one call (micro-batching; never waits)")
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="threads per encoding call (MiniLM, torch or onnxruntime): 1 does not "
                         "fight the other routing threads and processes for cores")
    ap.add_argument("--cpus", default=None,
                    help="pin the server to these CPU ids, e.g. '0' or '0,1' (Linux)")
    ap.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                    help="uvicorn event loop (auto: uvloop when installed)")
    ap.add_argument("--http", choices=("auto", "h11", "httptools"), default="auto",
                    help="uvicorn HTTP parser (auto: httptools when installed)")
    return ap


def build_config(args: argparse.Namespace) -> ServeConfig:
    if args.max_tries < 1:
        raise ServeError("--max-tries must be >= 1")
    if args.cpus is not None:
        try:
            cpus = {int(c) for c in args.cpus.split(",")}
            os.sched_setaffinity(0, cpus)
        except (ValueError, OSError) as err:
            raise ServeError(f"--cpus {args.cpus!r}: {err}") from err
    if args.route_workers is None:
        args.route_workers = min(4, len(os.sched_getaffinity(0)))
    if args.torch_threads < 1 or args.route_workers < 1 or args.max_batch < 1:
        raise ServeError("--torch-threads, --route-workers and --max-batch must be >= 1")
    torch.set_num_threads(args.torch_threads)
    # The ONNX MiniLM encoder takes its thread count from OMP_NUM_THREADS (benchmark.features).
    os.environ["OMP_NUM_THREADS"] = str(args.torch_threads)
    bundle = load_bundle(args.router)
    pool = load_pool(args.pool, bundle.pool)
    return ServeConfig(bundle, pool, RequestLog(args.log, args.log_prompts), args.timeout_s,
                       args.max_tries, args.draw, route_in=args.route_in,
                       route_workers=args.route_workers, max_batch=args.max_batch)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        ap = argparse.ArgumentParser(prog="darsbench-serve report")
        ap.add_argument("log")
        args = ap.parse_args(argv[1:])
        try:
            table = report(args.log)
        except (OSError, ServeError) as err:
            print(f"darsbench-serve: {err}", file=sys.stderr)
            sys.exit(2)
        print(markdown(table))
        return
    args = _serve_parser().parse_args(argv)
    try:
        cfg = build_config(args)
        http = http_protocol(args.http)
    except (OSError, ValueError) as err:
        print(f"darsbench-serve: {err}", file=sys.stderr)
        sys.exit(2)
    uvicorn.run(create_app(cfg), host=args.host, port=args.port, log_level="warning", loop=args.loop,
                http=http, backlog=2048)


if __name__ == "__main__":
    main()
