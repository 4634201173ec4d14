"""The resumable record store: one SQLite database per collection work_dir (WAL mode).

Every completed item (a prepared split, a rewrite, a generation, a score) is written in its
own transaction, so a run killed at any point (Ctrl-C or ``kill -9``) leaves only whole
records behind. Generations are keyed by a deterministic generation key
(:func:`generation_key`) and inserted with ``INSERT OR IGNORE``: re-running never duplicates.
Failed requests go to the ``errors`` table; the item stays pending and is retried next run.

A lock file (``collect.lock``, ``flock``) stops two collectors writing the same work_dir; the
kernel releases it when the process dies, even on SIGKILL.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS queries (
    split TEXT NOT NULL, idx INTEGER NOT NULL, query_id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (split, query_id));
CREATE TABLE IF NOT EXISTS rewrites (
    split TEXT NOT NULL, query_id TEXT NOT NULL, variant_id INTEGER NOT NULL,
    text TEXT NOT NULL, method TEXT NOT NULL, flags TEXT NOT NULL, attempts INTEGER NOT NULL,
    cost REAL NOT NULL, usage TEXT, created_at REAL NOT NULL,
    PRIMARY KEY (split, query_id, variant_id));
CREATE TABLE IF NOT EXISTS generations (
    gen_key TEXT PRIMARY KEY, split TEXT NOT NULL, query_id TEXT NOT NULL, model TEXT NOT NULL,
    prompt_variant_id INTEGER NOT NULL, decode_id INTEGER NOT NULL, observation_type TEXT,
    input_question TEXT NOT NULL, request_config TEXT NOT NULL, output_text TEXT NOT NULL,
    finish_reason TEXT, usage TEXT NOT NULL, cost REAL NOT NULL, usage_estimated INTEGER NOT NULL,
    latency_s REAL, attempts INTEGER NOT NULL, response_model TEXT, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
    gen_key TEXT PRIMARY KEY, score REAL NOT NULL, predicted_answer TEXT, parse_success INTEGER NOT NULL,
    score_type TEXT NOT NULL, scorer_version TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS errors (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, stage TEXT NOT NULL, item_key TEXT NOT NULL,
    model TEXT, status INTEGER, error TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL, status TEXT, spent_usd TEXT,
    argv TEXT, pid INTEGER, host TEXT);
"""


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


class StoreLockedError(RuntimeError):
    """Another collector holds this work_dir."""


def generation_key(
    dataset: str,
    split: str,
    query_id: str,
    model: str,
    model_id: str,
    prompt_variant_id: int,
    decode_id: int,
    request_config: dict[str, Any],
    prompt_style: str,
    prompt_version: str,
) -> str:
    """sha256 (hex) of the canonical JSON of everything that defines one generation."""
    payload = {
        "dataset": dataset,
        "split": split,
        "query_id": query_id,
        "model": model,
        "model_id": model_id,
        "prompt_variant_id": int(prompt_variant_id),
        "decode_id": int(decode_id),
        "request_config": request_config,
        "prompt_style": prompt_style,
        "prompt_version": prompt_version,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seed_from_key(key: str) -> int:
    """A request seed in [0, 2**31) derived from a generation key (re-runs reproduce)."""
    return int(key[:8], 16) & 0x7FFFFFFF


class Store:
    """SQLite store of one collection (``<work_dir>/collect.sqlite``)."""

    def __init__(self, work_dir: str | Path, *, lock: bool = True) -> None:
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fh = None
        if lock:
            self._lock_fh = open(self.work_dir / "collect.lock", "a+")  # noqa: SIM115
            try:
                fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._lock_fh.close()
                raise StoreLockedError(
                    f"{self.work_dir}: another darsbench-collect run is using this work_dir"
                ) from None
        self.path = self.work_dir / "collect.sqlite"
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(SCHEMA)
        cols = {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}
        for col, kind in (("pid", "INTEGER"), ("host", "TEXT")):  # stores made before these columns
            if col not in cols:
                self.conn.execute(f"ALTER TABLE runs ADD COLUMN {col} {kind}")

    def close(self) -> None:
        self.conn.close()
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------------------

    def _tx(self, sql: str, params: tuple[Any, ...] | list[tuple[Any, ...]], many: bool = False) -> int:
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            if many:
                cur.executemany(sql, params)  # type: ignore[arg-type]
            else:
                cur.execute(sql, params)
            n = cur.rowcount
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return n

    # -- meta ---------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._tx("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- runs ---------------------------------------------------------------------------------

    def start_run(self, run_id: str, argv: list[str]) -> None:
        self._tx("INSERT INTO runs (run_id, started_at, status, argv, pid, host) VALUES (?, ?, 'running', ?, ?, ?)",
                 (run_id, time.time(), json.dumps(argv), os.getpid(), socket.gethostname()))

    def mark_stale_runs(self) -> list[str]:
        """Mark ``running`` records of dead processes on this host ``interrupted``; their ids.

        A record from another host (a shared file system) or without a pid is left alone: its
        process cannot be checked from here."""
        host = socket.gethostname()
        stale = [run_id for run_id, pid in self.conn.execute(
            "SELECT run_id, pid FROM runs WHERE status = 'running' AND host = ? AND pid IS NOT NULL", (host,))
            if not _pid_alive(int(pid))]
        for run_id in stale:
            self._tx("UPDATE runs SET status = 'interrupted' WHERE run_id = ? AND status = 'running'", (run_id,))
        return stale

    def runs(self) -> list[dict[str, Any]]:
        cols = ("run_id", "started_at", "finished_at", "status", "spent_usd", "argv", "pid", "host")
        return [dict(zip(cols, r)) for r in self.conn.execute(f"SELECT {', '.join(cols)} FROM runs ORDER BY started_at")]

    def finish_run(self, run_id: str, status: str, spent_usd: str) -> None:
        self._tx("UPDATE runs SET finished_at = ?, status = ?, spent_usd = ? WHERE run_id = ?",
                 (time.time(), status, spent_usd, run_id))

    # -- queries ------------------------------------------------------------------------------

    def put_queries(self, rows: list[tuple[str, int, str, str]], fingerprint: str) -> None:
        """Insert the prepared split and its fingerprint in ONE transaction."""
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.execute("DELETE FROM queries")
            cur.executemany("INSERT INTO queries (split, idx, query_id, data) VALUES (?, ?, ?, ?)", rows)
            cur.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('prepare_fingerprint', ?)", (fingerprint,))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def queries(self, split: str) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT data FROM queries WHERE split = ? ORDER BY idx", (split,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    # -- rewrites -----------------------------------------------------------------------------

    def put_rewrite(self, split: str, query_id: str, variant_id: int, text: str, method: str,
                    flags: list[str], attempts: int, cost: float, usage: dict[str, Any] | None) -> None:
        self._tx(
            "INSERT OR IGNORE INTO rewrites (split, query_id, variant_id, text, method, flags, attempts, cost, usage, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (split, query_id, variant_id, text, method, json.dumps(flags), attempts, cost,
             None if usage is None else json.dumps(usage), time.time()),
        )

    def rewrites(self, split: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT split, query_id, variant_id, text, method, flags, attempts, cost FROM rewrites"
        params: tuple[Any, ...] = ()
        if split is not None:
            sql += " WHERE split = ?"
            params = (split,)
        rows = self.conn.execute(sql + " ORDER BY split, query_id, variant_id", params).fetchall()
        return [
            {"split": r[0], "query_id": r[1], "variant_id": r[2], "text": r[3], "method": r[4],
             "flags": json.loads(r[5]), "attempts": r[6], "cost": r[7]}
            for r in rows
        ]

    def rewrite_keys(self) -> set[tuple[str, str, int]]:
        return {(r[0], r[1], int(r[2])) for r in self.conn.execute("SELECT split, query_id, variant_id FROM rewrites")}

    # -- generations --------------------------------------------------------------------------

    def put_generation(self, rec: dict[str, Any]) -> bool:
        """Insert one completed generation; False when its key was already there."""
        n = self._tx(
            "INSERT OR IGNORE INTO generations (gen_key, split, query_id, model, prompt_variant_id, decode_id,"
            " observation_type, input_question, request_config, output_text, finish_reason, usage, cost,"
            " usage_estimated, latency_s, attempts, response_model, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rec["gen_key"], rec["split"], rec["query_id"], rec["model"], rec["prompt_variant_id"],
                rec["decode_id"], rec.get("observation_type"), rec["input_question"],
                json.dumps(rec["request_config"], sort_keys=True), rec["output_text"], rec.get("finish_reason"),
                json.dumps(rec["usage"], sort_keys=True), float(rec["cost"]), int(bool(rec.get("usage_estimated"))),
                rec.get("latency_s"), int(rec.get("attempts", 1)), rec.get("response_model"), time.time(),
            ),
        )
        return n == 1

    def generation_keys(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT gen_key FROM generations")}

    def count_generations(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0])

    def iter_generations(self) -> Iterator[dict[str, Any]]:
        cols = ["gen_key", "split", "query_id", "model", "prompt_variant_id", "decode_id", "observation_type",
                "input_question", "request_config", "output_text", "finish_reason", "usage", "cost",
                "usage_estimated", "latency_s", "attempts", "response_model"]
        sql = f"SELECT {', '.join(cols)} FROM generations ORDER BY split, query_id, model, prompt_variant_id, decode_id"
        for row in self.conn.execute(sql):
            d = dict(zip(cols, row))
            d["request_config"] = json.loads(d["request_config"])
            d["usage"] = json.loads(d["usage"])
            d["usage_estimated"] = bool(d["usage_estimated"])
            yield d

    # -- scores -------------------------------------------------------------------------------

    def put_scores(self, rows: list[tuple[str, float, str | None, int, str, str]]) -> None:
        """Insert a batch of scores in one transaction (scoring is local and cheap to redo)."""
        if rows:
            self._tx(
                "INSERT OR REPLACE INTO scores (gen_key, score, predicted_answer, parse_success, score_type, scorer_version)"
                " VALUES (?, ?, ?, ?, ?, ?)", rows, many=True)

    def scores(self) -> dict[str, dict[str, Any]]:
        out = {}
        for r in self.conn.execute("SELECT gen_key, score, predicted_answer, parse_success, score_type, scorer_version FROM scores"):
            out[r[0]] = {"score": r[1], "predicted_answer": r[2], "parse_success": bool(r[3]),
                         "score_type": r[4], "scorer_version": r[5]}
        return out

    # -- errors and spend ---------------------------------------------------------------------

    def put_error(self, run_id: str, stage: str, item_key: str, model: str | None, status: int | None, error: str) -> None:
        self._tx("INSERT INTO errors (run_id, stage, item_key, model, status, error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (run_id, stage, item_key, model, status, error[:2000], time.time()))

    def errors(self, run_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT run_id, stage, item_key, model, status, error FROM errors"
        params: tuple[Any, ...] = ()
        if run_id is not None:
            sql += " WHERE run_id = ?"
            params = (run_id,)
        return [dict(zip(("run_id", "stage", "item_key", "model", "status", "error"), r))
                for r in self.conn.execute(sql + " ORDER BY id", params)]

    def total_spend_usd(self) -> float:
        """Cost of every stored generation and rewrite (all runs)."""
        g = self.conn.execute("SELECT COALESCE(SUM(cost), 0) FROM generations").fetchone()[0]
        r = self.conn.execute("SELECT COALESCE(SUM(cost), 0) FROM rewrites").fetchone()[0]
        return float(g) + float(r)

