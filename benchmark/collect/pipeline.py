"""The collection stages: prepare -> rewrite -> generate -> score -> validate.

Each stage reads what earlier stages stored in the :class:`~benchmark.collect.store.Store`
and skips work that is already there, so any run can be stopped (Ctrl-C, ``kill -9``) and
started again with the same config.

* ``prepare``: read the source, split it (size, seed, stratify-by) and store the split with a
  fingerprint of the source content and the ``dataset/source/split`` config. A later run with
  a different source or split is refused (use a new ``work_dir``).
* ``rewrite``: R rewrites per query (template or LLM), one transaction each.
* ``generate``: the plan is every (split, query, model, view, decode) of the config; items
  whose generation key is stored are skipped; the rest run concurrently (per-model limit),
  one transaction per completed item. Failures go to the ``errors`` table and stay pending.
* ``score``: task scorers over stored generations (re-run when the scorer version changes).
* ``validate``: write ``<output_dir>/<dataset>/{train,test}_scored_generations.jsonl`` and
  ``metadata.json`` (atomically), then the validity report read back from those files.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable

import httpx
from tqdm.auto import tqdm

from benchmark.collect import prompts as P
from benchmark.collect.client import Budget, BudgetExceeded, EndpointClient, RequestFailed
from benchmark.collect.config import CollectConfig, EndpointConfig
from benchmark.collect.rewrite import (
    llm_rewrite_messages,
    parse_llm_rewrite,
    rewrite_flags,
    template_rewrite,
)
from benchmark.collect.scorers import SCORER_VERSION, score_output
from benchmark.collect.sources import load_source, split_queries
from benchmark.collect.store import Store, generation_key, seed_from_key
from benchmark.collect.validity import build_report, render_markdown
from benchmark.data.dars_format import TEST_FILE, TRAIN_FILE, write_dars_jsonl
from benchmark.data.io import atomic_write_json, atomic_write_text

STAGES = ("prepare", "rewrite", "generate", "score", "validate")
NETWORK_STAGES = ("rewrite", "generate")
ORIGINAL_VARIANT_ID = -1


class PrepareMismatch(RuntimeError):
    """The work_dir was prepared from a different source or split config."""


@dataclass
class StageResult:
    """What one stage did (printed by the CLI and returned to callers)."""

    stage: str
    total: int = 0
    done_before: int = 0
    done_now: int = 0
    failed: int = 0
    blocked: int = 0
    budget_stopped: bool = False
    spent_usd: Decimal = Decimal(0)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.done_before + self.done_now >= self.total and not self.budget_stopped

    def line(self) -> str:
        parts = [f"{self.stage}: {self.done_before + self.done_now}/{self.total} done"
                 f" ({self.done_now} now, {self.done_before} before)"]
        if self.failed:
            parts.append(f"{self.failed} failed (retried next run)")
        if self.blocked:
            parts.append(f"{self.blocked} blocked")
        if self.budget_stopped:
            parts.append("STOPPED: budget reached")
        parts.append(f"spend ${self.spent_usd:.6f}")
        parts.append(f"{self.seconds:.1f}s")
        return ", ".join(parts) + "".join(f"\n  note: {n}" for n in self.notes)


@dataclass(frozen=True)
class GenTask:
    """One planned generation."""

    gen_key: str
    split: str
    query: dict[str, Any]
    model: EndpointConfig
    prompt_variant_id: int
    decode_id: int
    observation_type: str | None
    request_config: dict[str, Any]


class RunContext:
    """State shared by the stages of one invocation."""

    def __init__(self, cfg: CollectConfig, store: Store, run_id: str, budget: Budget, progress: bool = True) -> None:
        self.cfg = cfg
        self.store = store
        self.run_id = run_id
        self.budget = budget
        self.progress = progress

    def bar(self, total: int, initial: int, desc: str) -> tqdm:
        return tqdm(total=total, initial=initial, desc=desc, unit="item", disable=not self.progress,
                    dynamic_ncols=True, smoothing=0.1)

    def spend_postfix(self, bar: tqdm, errors: int) -> None:
        bar.set_postfix_str(f"spend=${float(self.budget.total):.6f} err={errors}", refresh=False)


# ---------------------------------------------------------------------------------------------
# prepare
# ---------------------------------------------------------------------------------------------


def _source_digest(cfg: CollectConfig) -> str:
    if cfg.source.path is not None:
        return hashlib.sha256(Path(cfg.source.path).read_bytes()).hexdigest()
    return f"generator:{cfg.source.generator}:{cfg.source.n}:{cfg.source.seed}"


def stage_prepare(ctx: RunContext) -> StageResult:
    """Read and split the source; store the split (or check it matches the stored one)."""
    t0 = time.monotonic()
    cfg = ctx.cfg
    res = StageResult("prepare")
    fp = hashlib.sha256((cfg.fingerprint("dataset", "source", "split") + _source_digest(cfg)).encode()).hexdigest()
    stored = ctx.store.get_meta("prepare_fingerprint")
    if stored is not None:
        if stored != fp:
            raise PrepareMismatch(
                f"{ctx.store.path}: this work_dir was prepared from a different source file or dataset/source/split "
                "config; collected records belong to that split. Use a new work_dir (or restore the old source/config)."
            )
        n_train, n_test = len(ctx.store.queries("train")), len(ctx.store.queries("test"))
        res.total = res.done_before = n_train + n_test
        res.notes.append(f"already prepared: {n_train} train, {n_test} test queries")
        res.seconds = time.monotonic() - t0
        return res
    queries = load_source(cfg.source.path, cfg.source.generator, cfg.source.n, cfg.source.seed, cfg.source.task)
    train, test, unused = split_queries(queries, cfg.split.train_size, cfg.split.test_size, cfg.split.seed, cfg.split.stratify_by)
    rows = [("train", i, q.query_id, json.dumps(q.to_json())) for i, q in enumerate(train)]
    rows += [("test", i, q.query_id, json.dumps(q.to_json())) for i, q in enumerate(test)]
    ctx.store.put_queries(rows, fp)
    if cfg.source.generator is not None:
        # Keep the generated source next to the store, for provenance.
        atomic_write_text(ctx.store.work_dir / "source_queries.jsonl",
                          "".join(json.dumps(q.to_json()) + "\n" for q in queries))
    res.total = res.done_now = len(rows)
    res.notes.append(f"{len(train)} train, {len(test)} test queries from {len(queries)}")
    if unused:
        res.notes.append(f"{len(unused)} source queries are not in the split (train_size + test_size < {len(queries)})")
    res.seconds = time.monotonic() - t0
    return res


# ---------------------------------------------------------------------------------------------
# rewrite
# ---------------------------------------------------------------------------------------------


def _rewrite_fingerprint(cfg: CollectConfig) -> str:
    return cfg.fingerprint("rewriter")


def stage_rewrite(ctx: RunContext) -> StageResult:
    """Make the missing rewrites (template: synchronous; llm: concurrent requests)."""
    t0 = time.monotonic()
    cfg, store = ctx.cfg, ctx.store
    res = StageResult("rewrite")
    fp = _rewrite_fingerprint(cfg)
    stored_fp = store.get_meta("rewrite_fingerprint")
    have = store.rewrite_keys()
    if stored_fp is not None and stored_fp != fp and have:
        raise PrepareMismatch(
            f"{store.path}: the stored rewrites were made with a different `rewriter` config; use a new work_dir "
            "(rewrites feed every generation key's input)."
        )
    store.set_meta("rewrite_fingerprint", fp)
    todo: list[tuple[str, dict[str, Any], list[int]]] = []
    for split in ("train", "test"):
        r = cfg.n_rewrites(split)
        for q in store.queries(split):
            missing = [v for v in range(r) if (split, q["id"], v) not in have]
            res.total += r
            res.done_before += r - len(missing)
            if missing:
                todo.append((split, q, missing))
    n_todo = sum(len(m) for _, _, m in todo)
    bar = ctx.bar(res.total, res.done_before, "rewrite")
    try:
        if cfg.rewriter.kind == "template":
            for split, q, missing in todo:
                for v in missing:
                    text = template_rewrite(q["question"], q["id"], v)
                    others = [r["text"] for r in store.rewrites(split) if r["query_id"] == q["id"] and r["variant_id"] != v]
                    flags = rewrite_flags(q["task"], q["question"], text, others, q.get("context"), q.get("choices"))
                    store.put_rewrite(split, q["id"], v, text, "template", flags, 1, 0.0, None)
                    res.done_now += 1
                    bar.update(1)
        elif n_todo:
            asyncio.run(_llm_rewrites(ctx, todo, res, bar))
    finally:
        bar.close()
    res.spent_usd = ctx.budget.spent
    res.seconds = time.monotonic() - t0
    return res


async def _llm_rewrites(ctx: RunContext, todo: list[tuple[str, dict[str, Any], list[int]]], res: StageResult, bar: tqdm) -> None:
    cfg, store = ctx.cfg, ctx.store
    ep = cfg.rewriter.endpoint
    assert ep is not None
    async with httpx.AsyncClient() as http:
        client = EndpointClient(ep, cfg.request, http)

        async def one_query(split: str, q: dict[str, Any], missing: list[int]) -> None:
            for v in missing:
                if ctx.budget.exhausted:
                    return
                existing = [r["text"] for r in store.rewrites(split) if r["query_id"] == q["id"]]
                text, flags, attempts, cost_total, usage_total = "", ["empty"], 0, Decimal(0), {"prompt_tokens": 0, "completion_tokens": 0}
                item_key = f"rewrite:{split}:{q['id']}:{v}"
                try:
                    for attempt in range(cfg.rewriter.max_attempts):
                        attempts = attempt + 1
                        messages = llm_rewrite_messages(q["task"], q["question"], q.get("context"), q.get("choices"),
                                                        cfg.rewriter.constraints, existing)
                        seed = seed_from_key(hashlib.sha256(f"{item_key}:{attempt}:{cfg.request.seed}".encode()).hexdigest())
                        body = {"messages": messages, "temperature": cfg.rewriter.temperature,
                                "max_tokens": cfg.rewriter.max_tokens, "seed": seed}
                        comp, cost = await client.complete(body, f"{item_key}:{attempt}", ctx.budget, P.prompt_bytes(body))
                        cost_total += cost
                        usage_total["prompt_tokens"] += comp.prompt_tokens
                        usage_total["completion_tokens"] += comp.completion_tokens
                        text = parse_llm_rewrite(comp.text)
                        flags = rewrite_flags(q["task"], q["question"], text, existing, q.get("context"), q.get("choices"))
                        if not flags:
                            break
                except BudgetExceeded:
                    res.budget_stopped = True
                    if attempts <= 1 or not text:
                        return
                except RequestFailed as exc:
                    store.put_error(ctx.run_id, "rewrite", item_key, ep.name, exc.status, str(exc))
                    res.failed += 1
                    continue
                usage_total["total_tokens"] = usage_total["prompt_tokens"] + usage_total["completion_tokens"]
                store.put_rewrite(split, q["id"], v, text, f"llm:{ep.model}", flags, attempts, float(cost_total), usage_total)
                res.done_now += 1
                bar.update(1)
                ctx.spend_postfix(bar, res.failed)

        await asyncio.gather(*(one_query(s, q, m) for s, q, m in todo))


# ---------------------------------------------------------------------------------------------
# generate
# ---------------------------------------------------------------------------------------------


def plan(cfg: CollectConfig, store: Store) -> list[GenTask]:
    """Every generation the config asks for, in a deterministic order."""
    tasks: list[GenTask] = []
    dc = cfg.decoding
    views: list[tuple[str, str | None, list[int], list[tuple[int, float]]]] = []
    train_dec = [(d, dc.train.temperatures[d] if dc.train.temperatures else dc.temperature) for d in range(dc.train.decodes)]
    views.append(("train", None, list(range(dc.train.rewrites)), train_dec))
    tr = dc.test_rewrite
    views.append(("test", "prompt_variation", list(range(tr.rewrites)),
                  [(d, tr.temperatures[d] if tr.temperatures else dc.temperature) for d in range(tr.decodes)]))
    td = dc.test_decoding
    if td.rewrites:
        views.append(("test", "decoding_variation", [ORIGINAL_VARIANT_ID],
                      [(d, td.temperatures[d] if td.temperatures else dc.temperature) for d in range(td.decodes)]))
    queries = {s: store.queries(s) for s in ("train", "test")}
    for split, obs_type, variants, decodes in views:
        for q in queries[split]:
            max_tokens = dc.max_tokens[q["task"]]
            for m in cfg.pool:
                for v in variants:
                    for d, temp in decodes:
                        rc = {"temperature": temp, "top_p": dc.top_p, "max_tokens": max_tokens}
                        if dc.stop:
                            rc["stop"] = list(dc.stop)
                        key = generation_key(cfg.dataset, split, q["id"], m.name, m.model, v, d,
                                             {**rc, "request_seed": cfg.request.seed}, m.prompt_style, P.PROMPT_VERSION)
                        rc = {**rc, "seed": seed_from_key(key)}
                        tasks.append(GenTask(key, split, q, m, v, d, obs_type, rc))
    keys = [t.gen_key for t in tasks]
    if len(set(keys)) != len(keys):
        raise RuntimeError("generation keys collide: two planned items share a key (duplicate query ids?)")
    return tasks


def _input_question(task: GenTask, rewrites: dict[tuple[str, str, int], str]) -> str | None:
    if task.prompt_variant_id == ORIGINAL_VARIANT_ID:
        return str(task.query["question"])
    return rewrites.get((task.split, task.query["id"], task.prompt_variant_id))


def _request_body(task: GenTask, question: str) -> dict[str, Any]:
    q = task.query
    body = P.build_request(task.model.prompt_style, q["task"], question, q.get("context"), q.get("choices"))
    rc = dict(task.request_config)
    stop = list(body.pop("stop", [])) + list(rc.pop("stop", []))
    body.update(rc)
    if stop:
        body["stop"] = stop
    return body


def stage_generate(ctx: RunContext) -> StageResult:
    """Run every planned generation that is not stored yet."""
    t0 = time.monotonic()
    res = StageResult("generate")
    tasks = plan(ctx.cfg, ctx.store)
    done = ctx.store.generation_keys()
    rewrites = {(r["split"], r["query_id"], r["variant_id"]): r["text"] for r in ctx.store.rewrites()}
    pending: list[tuple[GenTask, str]] = []
    res.total = len(tasks)
    for t in tasks:
        if t.gen_key in done:
            res.done_before += 1
            continue
        question = _input_question(t, rewrites)
        if question is None:
            res.blocked += 1
            continue
        pending.append((t, question))
    if res.blocked:
        res.notes.append(f"{res.blocked} generations wait for rewrites that are missing (run the rewrite stage)")
    stale = len(done - {t.gen_key for t in tasks})
    if stale:
        res.notes.append(f"{stale} stored generations are not in the current plan (another decoding/pool config); they are not exported")
    prices = json.dumps({m.name: [m.price_in, m.price_out] for m in ctx.cfg.pool}, sort_keys=True)
    old_prices = ctx.store.get_meta("pool_prices")
    if old_prices is not None and old_prices != prices and res.done_before:
        res.notes.append(
            "model prices changed since earlier records were stored: their cost stays as billed at the old prices "
            f"({old_prices}); use a new work_dir to cost every record at the new prices")
    ctx.store.set_meta("pool_prices", prices)
    bar = ctx.bar(res.total, res.done_before, "generate")
    try:
        if pending:
            asyncio.run(_generate(ctx, pending, res, bar))
    finally:
        bar.close()
    res.spent_usd = ctx.budget.spent
    res.seconds = time.monotonic() - t0
    return res


async def _generate(ctx: RunContext, pending: list[tuple[GenTask, str]], res: StageResult, bar: tqdm) -> None:
    by_model: dict[str, list[tuple[GenTask, str]]] = {}
    for t, qtext in pending:
        by_model.setdefault(t.model.name, []).append((t, qtext))
    limits = httpx.Limits(max_connections=sum(m.max_concurrency for m in ctx.cfg.pool) + 4)
    async with httpx.AsyncClient(limits=limits) as http:
        clients = {m.name: EndpointClient(m, ctx.cfg.request, http) for m in ctx.cfg.pool}
        stop = asyncio.Event()

        async def worker(queue: list[tuple[GenTask, str]], client: EndpointClient) -> None:
            while queue and not stop.is_set():
                t, qtext = queue.pop(0)
                body = _request_body(t, qtext)
                try:
                    comp, cost = await client.complete(body, t.gen_key, ctx.budget, P.prompt_bytes(body))
                except BudgetExceeded:
                    res.budget_stopped = True
                    stop.set()
                    return
                except RequestFailed as exc:
                    ctx.store.put_error(ctx.run_id, "generate", t.gen_key, t.model.name, exc.status, str(exc))
                    res.failed += 1
                    ctx.spend_postfix(bar, res.failed)
                    continue
                usage = {"prompt_tokens": comp.prompt_tokens, "completion_tokens": comp.completion_tokens,
                         "total_tokens": comp.prompt_tokens + comp.completion_tokens, "cost": float(cost)}
                ctx.store.put_generation({
                    "gen_key": t.gen_key, "split": t.split, "query_id": t.query["id"], "model": t.model.name,
                    "prompt_variant_id": t.prompt_variant_id, "decode_id": t.decode_id,
                    "observation_type": t.observation_type, "input_question": qtext,
                    "request_config": t.request_config, "output_text": comp.text, "finish_reason": comp.finish_reason,
                    "usage": usage, "cost": float(cost), "usage_estimated": comp.usage_estimated,
                    "latency_s": comp.latency_s, "attempts": comp.attempts, "response_model": comp.response_model,
                })
                res.done_now += 1
                bar.update(1)
                ctx.spend_postfix(bar, res.failed)

        workers = []
        for name, queue in by_model.items():
            client = clients[name]
            workers += [worker(queue, client) for _ in range(client.ep.max_concurrency)]
        await asyncio.gather(*workers)


# ---------------------------------------------------------------------------------------------
# score
# ---------------------------------------------------------------------------------------------


def stage_score(ctx: RunContext) -> StageResult:
    """Score stored generations of the plan that have no score of the current scorer version."""
    t0 = time.monotonic()
    res = StageResult("score")
    tasks = {t.gen_key: t for t in plan(ctx.cfg, ctx.store)}
    scores = ctx.store.scores()
    todo = []
    for g in ctx.store.iter_generations():
        if g["gen_key"] not in tasks:
            continue
        res.total += 1
        s = scores.get(g["gen_key"])
        if s is not None and s["scorer_version"] == SCORER_VERSION:
            res.done_before += 1
        else:
            todo.append(g)
    bar = ctx.bar(res.total, res.done_before, "score")
    batch: list[tuple[str, float, str | None, int, str, str]] = []
    try:
        for g in todo:
            q = tasks[g["gen_key"]].query
            r = score_output(q["task"], g["output_text"], q["answer"], q.get("choices"))
            batch.append((g["gen_key"], r.score, r.predicted_answer, int(r.parse_success), r.score_type, SCORER_VERSION))
            if len(batch) >= 200:
                ctx.store.put_scores(batch)
                res.done_now += len(batch)
                bar.update(len(batch))
                batch = []
        ctx.store.put_scores(batch)
        res.done_now += len(batch)
        bar.update(len(batch))
    finally:
        bar.close()
    res.seconds = time.monotonic() - t0
    return res


# ---------------------------------------------------------------------------------------------
# validate (export + report)
# ---------------------------------------------------------------------------------------------


def export_rows(cfg: CollectConfig, store: Store) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """The DARS rows per split (plan order), and the number of planned rows not yet complete."""
    tasks = plan(cfg, store)
    gens = {g["gen_key"]: g for g in store.iter_generations()}
    scores = store.scores()
    rewrite_method = {(r["split"], r["query_id"], r["variant_id"]): r["method"] for r in store.rewrites()}
    out: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    missing = 0
    for t in tasks:
        g = gens.get(t.gen_key)
        s = scores.get(t.gen_key)
        if g is None or s is None or s["scorer_version"] != SCORER_VERSION:
            missing += 1
            continue
        q = t.query
        context = q.get("context") or ""
        row: dict[str, Any] = {
            "dataset": cfg.dataset,
            "split": t.split,
            "query_id": q["id"],
            "model": t.model.name,
            "prompt_variant_id": t.prompt_variant_id,
            "decode_id": t.decode_id,
        }
        if t.observation_type is not None:
            row["observation_type"] = t.observation_type
        row.update({
            "score": s["score"],
            "cost": g["cost"],
            "task_type": q["task"],
            "original_question": q["question"],
            "input_question": g["input_question"],
            "question": g["input_question"],
            "context": context,
            "passage": context,
            "choices": q.get("choices"),
            "gold_answer": q["answer"],
            "output_text": g["output_text"],
            "predicted_answer": s["predicted_answer"],
            "parse_success": s["parse_success"],
            "score_type": s["score_type"],
            "finish_reason": g["finish_reason"],
            "usage": g["usage"],
            "request_config": g["request_config"],
            "model_id": t.model.model,
            "response_model": g["response_model"],
            "prompt_style": t.model.prompt_style,
            "rewrite_method": None if t.prompt_variant_id == ORIGINAL_VARIANT_ID else rewrite_method.get((t.split, q["id"], t.prompt_variant_id)),
            "usage_estimated": g["usage_estimated"],
            "latency_s": g["latency_s"],
            "generation_key": t.gen_key,
        })
        out[t.split].append(row)
    return out, missing


def metadata(cfg: CollectConfig, store: Store) -> dict[str, Any]:
    """``metadata.json``: pool order and per-model prices (USD per token)."""
    return {
        "dataset": cfg.dataset,
        "models": [m.name for m in cfg.pool],
        "model_info": {
            m.name: {"price_in": m.price_in, "price_out": m.price_out, "params_b": m.params_b, "model_id": m.model,
                     "endpoint": m.endpoint, "prompt_style": m.prompt_style}
            for m in cfg.pool
        },
        "price_unit": "USD per token",
        "task_types": sorted({q["task"] for s in ("train", "test") for q in store.queries(s)}),
        "n_queries": {s: len(store.queries(s)) for s in ("train", "test")},
        "views": {
            "train": {"rewrites": cfg.decoding.train.rewrites, "decodes": cfg.decoding.train.decodes},
            "test_rewrite": {"rewrites": cfg.decoding.test_rewrite.rewrites, "decodes": cfg.decoding.test_rewrite.decodes},
            "test_decoding": {"decodes": cfg.decoding.test_decoding.decodes if cfg.decoding.test_decoding.rewrites else 0,
                              "temperatures": list(cfg.decoding.test_decoding.temperatures or ())},
        },
        "decoding": {"temperature": cfg.decoding.temperature, "top_p": cfg.decoding.top_p, "max_tokens": cfg.decoding.max_tokens},
        "rewriter": cfg.rewriter.kind if cfg.rewriter.endpoint is None else f"{cfg.rewriter.kind}:{cfg.rewriter.endpoint.model}",
        "scorer_version": SCORER_VERSION,
        "prompt_version": P.PROMPT_VERSION,
        "created_by": "darsbench-collect",
    }


def stage_validate(ctx: RunContext) -> StageResult:
    """Write the DARS files and metadata, read them back, write the validity report."""
    t0 = time.monotonic()
    cfg, store = ctx.cfg, ctx.store
    res = StageResult("validate")
    rows, missing = export_rows(cfg, store)
    out = write_dars_jsonl(rows["train"], rows["test"], cfg.output_dir, cfg.dataset, metadata=metadata(cfg, store))
    res.total = sum(len(v) for v in rows.values()) + missing
    res.done_now = res.total - missing
    res.blocked = missing
    if missing:
        res.notes.append(f"{missing} planned rows are not complete yet (not generated or not scored): run again to finish")
    files = {"train": out / TRAIN_FILE, "test": out / TEST_FILE}
    read_back = {s: [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
                 for s, f in files.items()}
    report = build_report(cfg, store, read_back, ctx.run_id)
    report_dir = Path(cfg.output_dir)
    atomic_write_json(report_dir / f"{cfg.dataset}_validity.json", report)
    atomic_write_text(report_dir / f"{cfg.dataset}_validity.md", render_markdown(report))
    res.notes.append(f"wrote {out}/{{train,test}}_scored_generations.jsonl, metadata.json; report {report_dir}/{cfg.dataset}_validity.md")
    res.seconds = time.monotonic() - t0
    return res


STAGE_FUNCS: dict[str, Callable[[RunContext], StageResult]] = {
    "prepare": stage_prepare,
    "rewrite": stage_rewrite,
    "generate": stage_generate,
    "score": stage_score,
    "validate": stage_validate,
}


def run_stages(ctx: RunContext, stages: Iterable[str], echo: Callable[[str], None] = print) -> list[StageResult]:
    """Run the named stages in pipeline order.

    Once the budget is reached no further request is sent (the remaining network stages are
    skipped); the local stages (score, validate) still run on what was collected, and the
    report says the dataset is incomplete.
    """
    results = []
    wanted = set(stages)
    budget_hit = False
    for name in STAGES:
        if name not in wanted:
            continue
        if budget_hit and name in NETWORK_STAGES:
            echo(f"{name}: skipped (budget reached)")
            continue
        r = STAGE_FUNCS[name](ctx)
        results.append(r)
        echo(r.line())
        budget_hit = budget_hit or r.budget_stopped
    return results
