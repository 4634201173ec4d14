"""The parse cache: a parsed dataset stored under ``<cache_dir>/dars/<name>-<hash>/`` and
read back instead of re-parsing unchanged files (docs/data.md, "Caching")."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.data.dataset import DarsDataset, ObservationBlock, TruthTable
from benchmark.data.dense import normalise_table
from benchmark.data.io import atomic_write_frame, atomic_write_json, atomic_write_npz

#: Bump whenever the parsed result for the same input bytes changes (invalidates caches).
LOADER_VERSION = "1"


def default_cache_dir() -> Path:
    """``$DARSBENCH_CACHE`` if set, else ``~/.cache/darsbench``."""
    env = os.environ.get("DARSBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "darsbench"


_BLOCKS = ("train", "test_rewrite", "test_decoding")
_BLOCK_ARRAYS = ("score", "cost", "present", "view_ids", "decode_ids")


def content_hash(name: str, files: dict[str, bytes | None]) -> str:
    h = hashlib.sha256()
    h.update(f"darsbench-loader-v{LOADER_VERSION}\0{name}\0".encode())
    for role in sorted(files):
        data = files[role]
        if data is None:
            h.update(f"{role}\0absent\0".encode())
        else:
            h.update(f"{role}\0{len(data)}\0".encode())
            h.update(data)
    return h.hexdigest()


def cache_folder(cache_root: Path, name: str, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "dataset"
    return cache_root / "dars" / f"{safe}-{key[:24]}"


def write_cache(folder: Path, ds: DarsDataset, key: str, extra: dict) -> None:
    arrays: dict[str, np.ndarray] = {}
    for b in _BLOCKS:
        block = getattr(ds, b)
        for a in _BLOCK_ARRAYS:
            arrays[f"{b}.{a}"] = getattr(block, a)
    for split in ("train", "test"):
        truth = getattr(ds, f"{split}_truth")
        if truth is not None:
            for a in ("mu_q", "mu_c", "sigma_q"):
                arrays[f"{split}_truth.{a}"] = getattr(truth, a)
    atomic_write_npz(folder / "arrays.npz", **arrays)
    atomic_write_frame(folder / "train_queries.parquet", ds.train_queries)
    atomic_write_frame(folder / "test_queries.parquet", ds.test_queries)
    atomic_write_frame(folder / "model_table.parquet", ds.model_table)
    # meta.json last: its presence (with the matching hash) marks a complete cache entry.
    atomic_write_json(
        folder / "meta.json",
        {
            "loader_version": LOADER_VERSION,
            "content_hash": key,
            "name": ds.name,
            "models": list(ds.models),
            **extra,
        },
    )


def read_cache(folder: Path, key: str) -> tuple[dict, dict] | None:
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("content_hash") != key or meta.get("loader_version") != LOADER_VERSION:
        return None
    with np.load(folder / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    parts: dict[str, Any] = {}
    for b in _BLOCKS:
        parts[b] = ObservationBlock(**{a: arrays[f"{b}.{a}"] for a in _BLOCK_ARRAYS})
    for split in ("train", "test"):
        key = f"{split}_truth.mu_q"
        parts[f"{split}_truth"] = (
            TruthTable(**{a: arrays[f"{split}_truth.{a}"] for a in ("mu_q", "mu_c", "sigma_q")})
            if key in arrays
            else None
        )
    for t in ("train_queries", "test_queries", "model_table"):
        parts[t] = normalise_table(pd.read_parquet(folder / f"{t}.parquet"))
    parts["models"] = tuple(meta["models"])
    parts["name"] = meta["name"]
    return parts, meta

