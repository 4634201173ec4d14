"""Async OpenAI-compatible client: per-model concurrency, retries with backoff, budget.

* Concurrency: one ``asyncio.Semaphore(max_concurrency)`` per endpoint.
* Retries: timeouts, connection errors, HTTP 429 and 5xx are retried up to
  ``request.max_retries`` times with exponential backoff and jitter drawn from a generator
  seeded by the item key and attempt (``Retry-After`` is honoured, capped at
  ``backoff_max_s``). Any other error raises :class:`RequestFailed` at once.
* Budget: :class:`Budget` reserves the worst-case cost of a request (prompt upper bound x
  price_in + max_tokens x price_out) BEFORE it is sent and settles to the actual cost after,
  so the spend never passes the limit. Sums use :class:`decimal.Decimal`.
* Keys: read from ``os.environ[api_key_env]`` at request time only, and scrubbed from any
  error text.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import time
import urllib.parse
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from benchmark.collect.config import EndpointConfig, RequestConfig

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 521, 522, 524, 529})


class RequestFailed(RuntimeError):
    """A request failed for good (a non-retryable error, or retries exhausted)."""

    def __init__(self, message: str, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class BudgetExceeded(RuntimeError):
    """The worst-case cost of the next request would pass the budget."""


class Budget:
    """A spend limit in USD with reservations (``limit=None``: unlimited, still counts)."""

    def __init__(self, limit_usd: float | None, already_spent_usd: float = 0.0) -> None:
        self.limit = None if limit_usd is None else Decimal(str(limit_usd))
        self.already = Decimal(str(already_spent_usd))
        self.spent = Decimal(0)
        self.reserved = Decimal(0)
        self.exhausted = False

    def reserve(self, amount: Decimal) -> bool:
        """Reserve ``amount``; False (and ``exhausted``) when it would pass the limit."""
        if self.limit is not None and self.already + self.spent + self.reserved + amount > self.limit:
            self.exhausted = True
            return False
        self.reserved += amount
        return True

    def settle(self, reserved: Decimal, actual: Decimal) -> None:
        """Replace a reservation with the actual cost (``actual`` 0 for a failed request)."""
        self.reserved -= reserved
        self.spent += actual

    @property
    def total(self) -> Decimal:
        return self.already + self.spent


def price(ep: EndpointConfig, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """Cost in USD of one call under the endpoint's per-token prices."""
    return Decimal(prompt_tokens) * Decimal(str(ep.price_in)) + Decimal(completion_tokens) * Decimal(str(ep.price_out))


class KeyConfigError(ValueError):
    """An API key environment variable is unset or malformed (the message names the variable,
    never the value)."""


def read_key(var: str, owner: str) -> str:
    """The API key in ``os.environ[var]``: non-empty printable ASCII without surrounding whitespace."""
    key = os.environ.get(var)
    if key is None or key == "":
        raise KeyConfigError(f"environment variable {var} (API key of {owner}) is not set or empty")
    if key != key.strip():
        raise KeyConfigError(f"environment variable {var} (API key of {owner}) has leading or trailing whitespace "
                             "(a stray newline?); export it without")
    bad = next((c for c in key if not 0x20 <= ord(c) <= 0x7E), None)
    if bad is not None:
        kind = "a non-ASCII character" if ord(bad) > 0x7E else "a control character"
        raise KeyConfigError(f"environment variable {var} (API key of {owner}) holds {kind}; "
                             "keys are printable ASCII")
    return key


def check_keys(cfg: Any) -> None:
    """Read and check every key the configured stages will send (before the first request)."""
    stages = set(cfg.run.stages)
    endpoints = list(cfg.pool) if "generate" in stages else []
    if "rewrite" in stages and cfg.rewriter.kind == "llm" and cfg.rewriter.endpoint is not None:
        endpoints.append(cfg.rewriter.endpoint)
    for ep in endpoints:
        if ep.api_key_env is not None:
            read_key(ep.api_key_env, ep.name)


def secret_forms(secret: str) -> list[str]:
    """The shapes a secret takes in error texts: raw, stripped, each line of a multi-line value,
    and Python / JSON / URL / bytes escapes of those, up to two levels deep (a repr quoted inside
    a JSON error body); longest first."""
    forms = {secret, secret.strip(), *(line.strip() for line in secret.splitlines())}
    for _ in range(2):
        for s in list(forms):
            forms.add(repr(s)[1:-1])
            forms.add(json.dumps(s)[1:-1])
            forms.add(json.dumps(s, ensure_ascii=False)[1:-1])
            forms.add(str(s.encode("utf-8", "backslashreplace"))[2:-1])
            forms.add(urllib.parse.quote(s, safe=""))
            forms.add(urllib.parse.quote_plus(s))
    return sorted((f for f in forms if len(f) >= 4), key=len, reverse=True)


def scrub(text: str, *secrets: str | None) -> str:
    """Remove secrets (API keys), in every form :func:`secret_forms` lists, from a text before
    it is logged or stored."""
    for s in secrets:
        if s:
            for form in secret_forms(s):
                text = text.replace(form, "***")
    return text


@dataclass(frozen=True)
class Completion:
    """One successful response."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    usage_estimated: bool
    attempts: int
    latency_s: float
    response_model: str | None


def backoff_delay(cfg: RequestConfig, item_key: str, attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with seeded jitter: ``min(max, base * 2**attempt) * U[0.5, 1.5)``."""
    seed = int(hashlib.sha256(f"{cfg.seed}:{item_key}:{attempt}".encode()).hexdigest()[:12], 16)
    jitter = 0.5 + random.Random(seed).random()
    delay = min(cfg.backoff_max_s, cfg.backoff_base_s * (2 ** attempt)) * jitter
    if retry_after is not None:
        delay = max(delay, min(retry_after, cfg.backoff_max_s))
    return min(delay, cfg.backoff_max_s) if cfg.backoff_max_s > 0 else delay


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class EndpointClient:
    """Calls one OpenAI-compatible endpoint (``/chat/completions`` or ``/completions``)."""

    def __init__(self, ep: EndpointConfig, request: RequestConfig, http: httpx.AsyncClient) -> None:
        self.ep = ep
        self.request = request
        self.http = http
        self.semaphore = asyncio.Semaphore(ep.max_concurrency)

    def _key(self) -> str | None:
        if self.ep.api_key_env is None:
            return None
        try:
            return read_key(self.ep.api_key_env, self.ep.name)
        except KeyConfigError as exc:
            raise RequestFailed(str(exc)) from None

    def worst_case_cost(self, body: dict[str, Any], prompt_upper_tokens: int) -> Decimal:
        return price(self.ep, prompt_upper_tokens, int(body.get("max_tokens", 0)))

    async def complete(self, body: dict[str, Any], item_key: str, budget: Budget, prompt_upper_tokens: int) -> tuple[Completion, Decimal]:
        """Send one request (with retries) under the endpoint's semaphore and the budget.

        Returns the completion and its cost. Raises :class:`BudgetExceeded` (nothing sent) or
        :class:`RequestFailed`.
        """
        async with self.semaphore:
            reserve = self.worst_case_cost(body, prompt_upper_tokens)
            if not budget.reserve(reserve):
                raise BudgetExceeded(f"budget reached: reserving {reserve} USD for {self.ep.name} would pass the limit")
            try:
                comp = await self._send(body, item_key, prompt_upper_tokens)
            except BaseException:
                budget.settle(reserve, Decimal(0))
                raise
            cost = price(self.ep, comp.prompt_tokens, comp.completion_tokens)
            budget.settle(reserve, cost)
            return comp, cost

    async def _send(self, body: dict[str, Any], item_key: str, prompt_upper_tokens: int) -> Completion:
        key = self._key()
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        path = "/chat/completions" if self.ep.endpoint == "chat" else "/completions"
        url = self.ep.base_url + path
        payload = {"model": self.ep.model, **self.ep.extra_body, **body}
        last_error = ""
        last_status: int | None = None
        for attempt in range(self.request.max_retries + 1):
            t0 = time.monotonic()
            retry_after = None
            try:
                resp = await self.http.post(url, json=payload, headers=headers, timeout=self.request.timeout_s)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last_error = scrub(f"{type(exc).__name__}: {exc}", key)
                last_status = None
            else:
                if resp.status_code == 200:
                    try:
                        return self._parse(resp.json(), attempt + 1, time.monotonic() - t0, payload, prompt_upper_tokens)
                    except (ValueError, KeyError, IndexError, TypeError) as exc:
                        raise RequestFailed(scrub(f"malformed response from {self.ep.name}: {exc!r}: {resp.text[:300]}", key),
                                            200, attempt + 1) from None
                last_status = resp.status_code
                last_error = scrub(f"HTTP {resp.status_code} from {self.ep.name}: {resp.text[:500]}", key)
                if resp.status_code not in RETRY_STATUS:
                    raise RequestFailed(last_error, resp.status_code, attempt + 1)
                retry_after = _retry_after(resp)
            if attempt < self.request.max_retries:
                await asyncio.sleep(backoff_delay(self.request, item_key, attempt, retry_after))
        raise RequestFailed(f"gave up after {self.request.max_retries + 1} attempts: {last_error}", last_status,
                            self.request.max_retries + 1)

    def _parse(self, data: dict[str, Any], attempts: int, latency: float, payload: dict[str, Any], prompt_upper: int) -> Completion:
        choice = data["choices"][0]
        if self.ep.endpoint == "chat":
            text = choice["message"].get("content") or ""
        else:
            text = choice.get("text") or ""
        usage = data.get("usage") or {}
        pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
        estimated = not isinstance(pt, int) or not isinstance(ct, int)
        if estimated:
            # No usage reported: charge the worst case so the spend is never under-counted.
            pt, ct = prompt_upper, int(payload.get("max_tokens", 0))
        return Completion(
            text=str(text),
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(pt),
            completion_tokens=int(ct),
            usage_estimated=estimated,
            attempts=attempts,
            latency_s=latency,
            response_model=data.get("model"),
        )
