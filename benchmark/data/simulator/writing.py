"""Write a simulation as a DARS folder through :mod:`benchmark.data.dars_format` (columnar:
every row field is an Arrow column built from the dense arrays), and cache simulations on disk
(docs/simulator.md, "Splits and rows")."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from benchmark.data.dars_format import (
    split_file_name,
    truth_csv_rows,
    write_dars_side_files,
    write_dars_tables,
    write_split_batches,
)
from benchmark.data.dataset import TruthTable
from benchmark.data.simulator.config import (
    SIMULATOR_VERSION,
    SimulatorConfig,
    config_hash,
    n_observations,
)
from benchmark.data.simulator.sampling import (
    SimulatedData,
    SimulatedSplit,
    second_process,
    simulate,
    split_job,
    split_workers,
    world_skill,
)

#: Rows per record batch (bounds the memory of writing a large simulation).
BATCH_ROWS = 1 << 18
#: ``ensure_simulated(fmt="auto")`` writes Parquet from this many observations on.
PARQUET_FROM_OBSERVATIONS = 500_000


def _dict(indices: np.ndarray, values: list, mask: np.ndarray | None = None) -> pa.DictionaryArray:
    idx = pa.array(np.asarray(indices, dtype=np.int32), mask=mask)
    return pa.DictionaryArray.from_arrays(idx, pa.array(values, type=pa.string()))


def _batch(cfg: SimulatorConfig, dataset: str, sp: SimulatedSplit, q0: int, q1: int) -> pa.RecordBatch:
    """The rows of queries ``q0 .. q1 - 1`` of split ``sp`` in file order (query, model, then each
    block's views and decodes)."""
    split = sp.split
    M = len(cfg.models)
    nq = q1 - q0
    keys = list(sp.blocks)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("q", "m", "b", "v", "s")}
    view_base = []  # offset of a block's (query, view) text entries in the view dictionary
    base = 0
    for b_i, key in enumerate(keys):
        V, S = sp.blocks[key].score.shape[2:]
        q, m, v, s = np.indices((nq, M, V, S)).reshape(4, -1)
        for name, arr in (("q", q), ("m", m), ("b", np.full(q.size, b_i)), ("v", v), ("s", s)):
            cols[name].append(arr)
        view_base.append(base)
        base += nq * V
    q, m, b, v, s = (np.concatenate(cols[k]) for k in ("q", "m", "b", "v", "s"))
    order = np.argsort(q * M + m, kind="stable")  # a pair's rows: block 0's, then block 1's
    q, m, b, v, s = q[order], m[order], b[order], v[order], s[order]
    n = q.size

    def per_block(get) -> np.ndarray:
        out = np.empty(n, dtype=get(keys[0]).dtype)
        for b_i, key in enumerate(keys):
            sel = b == b_i
            out[sel] = get(key)[q[sel] + q0, m[sel], v[sel], s[sel]]
        return out

    score = per_block(lambda k: sp.blocks[k].score)
    cost = per_block(lambda k: sp.blocks[k].cost)
    ptok = per_block(lambda k: sp.prompt_tokens[k])
    ctok = per_block(lambda k: sp.completion_tokens[k])
    trunc = per_block(lambda k: sp.truncated[k])
    ok = per_block(lambda k: sp.parse_success[k])
    view_id = np.empty(n, np.int64)
    decode_id = np.empty(n, np.int64)
    temperature = np.empty(n, np.float64)
    view_idx = np.empty(n, np.int64)
    view_text: list[str] = []
    view_prompt: list[str] = []
    for b_i, key in enumerate(keys):
        sel = b == b_i
        blk = sp.blocks[key]
        V = blk.score.shape[2]
        view_id[sel] = blk.view_ids[v[sel]]
        decode_id[sel] = blk.decode_ids[s[sel]]
        temperature[sel] = sp.temperatures[key][s[sel]]
        view_idx[sel] = view_base[b_i] + q[sel] * V + v[sel]
        view_text += [t for row in sp.view_questions[key][q0:q1] for t in row]
        view_prompt += [t for row in sp.view_prompts[key][q0:q1] for t in row]

    queries = sp.queries.iloc[q0:q1]
    gold = queries["gold"].tolist()
    wrong = queries["wrong_answer"].tolist()
    topic = queries["topic"].tolist()
    # answer kind: 0 cut, 1 unparsable, 2 gold, 3 wrong, 4 partial ("<gold> <wrong>")
    kind = np.where(trunc, 0, np.where(~ok, 1, np.where(score >= 1.0, 2, np.where(score <= 0.0, 3, 4))))
    answers = [a for g, w in zip(gold, wrong) for a in (g, w, f"{g} {w}")]
    outputs = [
        text
        for t, g, w in zip(topic, gold, wrong)
        for text in (
            f"Working through this {t} problem step by step",
            f"The {t} question is unclear; no answer can be given.",
            *(f"Reasoning about this {t} problem.\nFinal Answer: {a}" for a in (g, w, f"{g} {w}")),
        )
    ]
    per_query = lambda col: _dict(q, queries[col].tolist())
    fields: dict[str, pa.Array] = {
        "dataset": _dict(np.zeros(n), [dataset]),
        "split": _dict(np.zeros(n), [split]),
        "query_id": per_query("query_id"),
        "model": _dict(m, list(cfg.model_names)),
        "prompt_variant_id": pa.array(view_id),
        "decode_id": pa.array(decode_id),
    }
    if split == "test":
        fields["observation_type"] = _dict(b, keys)
    fields |= {
        "score": pa.array(score),
        "cost": pa.array(cost),
        "original_question": per_query("original_question"),
        "input_question": _dict(view_idx, view_text),
        "question": _dict(view_idx, view_prompt),
        "context": per_query("context"),
        "passage": per_query("context"),
        "gold": per_query("gold"),
        "usage": pa.StructArray.from_arrays(
            [pa.array(ptok), pa.array(ctok), pa.array(ptok + ctok), pa.array(cost)],
            names=["prompt_tokens", "completion_tokens", "total_tokens", "cost"],
        ),
        "request_config": pa.StructArray.from_arrays(
            [pa.array(temperature), pa.array(np.full(n, float(cfg.top_p))),
             pa.array(np.full(n, int(cfg.max_tokens), dtype=np.int64))],
            names=["temperature", "top_p", "max_tokens"],
        ),  # fmt: skip
        "finish_reason": _dict(trunc.astype(int), ["stop", "length"]),
        "score_type": _dict(np.zeros(n), ["binary" if cfg.task == "binary" else "f1"]),
        "parse_success": pa.array(ok),
        "output_text": _dict(q * 5 + kind, outputs),
        "predicted_answer": _dict(q * 3 + np.clip(kind - 2, 0, 2), answers, mask=kind < 2),
    }
    return pa.RecordBatch.from_arrays(list(fields.values()), names=list(fields))


def split_batches(data: SimulatedData, split: str, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The rows of ``split`` (``train`` or ``test``) as Arrow record batches, in file order."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _split_rows(data.cfg, data.name, data.train if split == "train" else data.test, batch_rows)


def _split_rows(
    cfg: SimulatorConfig, name: str, sp: SimulatedSplit, batch_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    n_q = sp.base_logit.shape[0]
    per_query = sum(int(np.prod(blk.score.shape[1:])) for blk in sp.blocks.values())
    step = max(1, batch_rows // max(per_query, 1))
    for q0 in range(0, n_q, step):
        yield _batch(cfg, name, sp, q0, min(n_q, q0 + step))


def simulated_rows(data: SimulatedData, split: str) -> Iterator[dict[str, Any]]:
    """The rows of ``split`` as dicts, in file order (what the JSONL file holds)."""
    for batch in split_batches(data, split):
        yield from batch.to_pylist()


def resolve_format(cfg: SimulatorConfig, fmt: str) -> str:
    """``fmt``, with ``auto`` resolved: JSONL below :data:`PARQUET_FROM_OBSERVATIONS`
    observations, Parquet from there on. Raises ``ValueError`` for an unknown format."""
    if fmt == "auto":
        fmt = "parquet" if n_observations(cfg) >= PARQUET_FROM_OBSERVATIONS else "jsonl"
    split_file_name("train", fmt)
    return fmt


def _metadata(cfg: SimulatorConfig, seed: int, name: str) -> dict[str, Any]:
    return {
        "dataset": name,
        "models": list(cfg.model_names),
        "model_info": {
            m.name: {"price_in": m.price_in, "price_out": m.price_out, "params_b": m.params_b}
            for m in cfg.models
        },
        "score_type": "binary" if cfg.task == "binary" else "f1",
        "simulator": {
            "version": SIMULATOR_VERSION,
            "seed": seed,
            "config_hash": config_hash(cfg, seed),
            "config": cfg.to_dict(),
        },
    }


def _truth_frame(models: tuple[str, ...], splits: list[tuple[str, np.ndarray, TruthTable]]) -> pd.DataFrame:
    """``split,query_id,model,mu_q,mu_c,sigma_q`` from ``(split, query ids, truth)`` per split
    (floats round-trip exactly through CSV)."""
    parts = []
    for split, query_ids, t in splits:
        Q, M = t.mu_q.shape
        parts.append(
            pd.DataFrame(
                {
                    "split": split,
                    "query_id": np.repeat(np.asarray(query_ids, dtype=object), M),
                    "model": np.tile(np.asarray(models, dtype=object), Q),
                    "mu_q": t.mu_q.ravel(),
                    "mu_c": t.mu_c.ravel(),
                    "sigma_q": t.sigma_q.ravel(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _truth_part(sp: SimulatedSplit) -> tuple[str, np.ndarray, TruthTable]:
    return sp.split, sp.queries["query_id"].to_numpy(dtype=object), sp.truth


def write_data(data: SimulatedData, out_dir: str | os.PathLike, fmt: str = "jsonl") -> Path:
    """Write an in-memory simulation to ``<out_dir>/<data.name>/`` (each file atomically);
    ``fmt`` is ``jsonl``, ``jsonl.gz`` or ``parquet``."""
    return write_dars_tables(
        split_batches(data, "train"),
        split_batches(data, "test"),
        out_dir,
        data.name,
        metadata=_metadata(data.cfg, data.seed, data.name),
        truth=_truth_frame(data.models, [_truth_part(data.train), _truth_part(data.test)]),
        fmt=fmt,
    )


def _truth_rows(models: tuple[str, ...], part: tuple[str, np.ndarray, TruthTable]) -> bytes:
    """One split's ``truth.csv`` lines (no header)."""
    return truth_csv_rows(_truth_frame(models, [part]))


def _simulate_and_write_split(
    cfg: SimulatorConfig, seed: int, name: str, skill: np.ndarray, split: str, path: Path, fmt: str
) -> bytes:
    """Simulate one split and write its file; return its ``truth.csv`` lines (what the second
    process runs)."""
    sp = split_job(cfg, split, skill, seed)
    write_split_batches(path, _split_rows(cfg, name, sp), fmt)
    return _truth_rows(cfg.model_names, _truth_part(sp))


def simulate_to_files(
    cfg: SimulatorConfig, seed: int, name: str, out_dir: str | os.PathLike, fmt: str,
    workers: int | None = None,
) -> Path:  # fmt: skip
    """``write_data(simulate(cfg, seed, name), out_dir, fmt)``, the same files byte for byte; with
    two workers (:func:`~benchmark.data.simulator.sampling.split_workers`) a second process
    simulates and writes the test split, then formats the training split's ``truth.csv`` lines,
    while this one simulates and writes the (larger) training split."""
    if split_workers(cfg, workers) == 1:
        return write_data(simulate(cfg, seed, name=name, workers=1), out_dir, fmt)
    skill = world_skill(cfg, seed)
    seed = int(seed)
    folder = Path(out_dir) / name
    args = (cfg, seed, name, skill, "test", folder / split_file_name("test", fmt), fmt)
    with second_process() as pool:
        test_job = pool.submit(_simulate_and_write_split, *args)
        train = split_job(cfg, "train", skill, seed)
        train_part = _truth_part(train)
        rows_job = pool.submit(_truth_rows, cfg.model_names, train_part)
        write_split_batches(folder / split_file_name("train", fmt), _split_rows(cfg, name, train), fmt)
        del train
        try:
            test_rows, train_rows = test_job.result(), rows_job.result()
        except BrokenProcessPool:  # no usable second process (e.g. a __main__ read from stdin)
            test_rows, train_rows = _simulate_and_write_split(*args), _truth_rows(cfg.model_names, train_part)
    write_dars_side_files(folder, _metadata(cfg, seed, name), [train_rows, test_rows])
    return folder


def write_simulated(
    cfg: SimulatorConfig, out_dir: str | os.PathLike, name: str, seed: int, fmt: str = "jsonl"
) -> Path:
    """Simulate and write ``<out_dir>/<name>/{train,test}_scored_generations.<fmt>`` (``fmt``
    as in :func:`resolve_format`),
    ``metadata.json`` and ``truth.csv`` (each atomically). Returns ``<out_dir>/<name>``.

    Pass ``out_dir`` as the loader's ``data_dir``: ``load_dars_dir(out_dir, name)``.
    """
    _check_name(name)
    fmt = resolve_format(cfg, fmt)
    return simulate_to_files(cfg, seed, name, out_dir, fmt)


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"dataset name {name!r} must be a plain folder name")


def ensure_simulated(
    cfg: SimulatorConfig, cache_root: str | os.PathLike, name: str, seed: int, fmt: str = "auto",
    workers: int | None = None,
) -> Path:  # fmt: skip
    """The data_dir of a cached simulation, writing it first if it is not there yet.

    Files live in ``<cache_root>/<config_hash>/<name>/``, as ``fmt`` (``auto``: JSONL below
    :data:`PARQUET_FROM_OBSERVATIONS` observations, Parquet from there on: several times
    smaller and faster to write and read); the function returns ``<cache_root>/<config_hash>`` (the loader's ``data_dir``).
    The ``<name>`` folder is written in a temporary sibling and renamed into place, so a reader
    never sees a partial folder and concurrent callers (parallel sweeps) agree on one copy.
    """
    _check_name(name)
    fmt = resolve_format(cfg, fmt)
    data_dir = Path(cache_root).expanduser() / config_hash(cfg, seed)
    target = data_dir / name
    if target.is_dir():
        return data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=data_dir))
    try:
        simulate_to_files(cfg, seed, name, tmp, fmt, workers)
        try:
            os.rename(tmp / name, target)
        except OSError:
            if not target.is_dir():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return data_dir
