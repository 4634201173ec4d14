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
from benchmark.data.io import atomic_write_frame, atomic_write_json, atomic_write_npy

#: Part of every content hash (the data's identity, shown in result files); kept at "1" so
#: the same files keep the same hash.
LOADER_VERSION = "1"
#: Bump whenever the cached result for the same input bytes changes (old entries are ignored).
CACHE_FORMAT = 2
_HASH_CHUNK = 16 << 20


def default_cache_dir() -> Path:
    """``$DARSBENCH_CACHE`` if set, else ``~/.cache/darsbench``."""
    env = os.environ.get("DARSBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "darsbench"


_BLOCKS = ("train", "test_rewrite", "test_decoding")
_BLOCK_ARRAYS = ("score", "cost", "present", "view_ids", "decode_ids")
_TRUTH_ARRAYS = ("mu_q", "mu_c", "sigma_q")
_ROLES = ("metadata", "test", "train", "truth")


def _stat_key(name: str, paths: dict[str, Path]) -> str:
    h = hashlib.sha256(f"{LOADER_VERSION}\0{name}\0".encode())
    for role in sorted(paths):
        st = paths[role].stat()
        h.update(f"{role}\0{paths[role].resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0".encode())
    return h.hexdigest()


def content_hash(name: str, paths: dict[str, Path], cache_root: Path | None = None) -> str:
    """sha256 over the dataset name and the bytes of its files (absent roles marked absent).

    The files are read in chunks. With ``cache_root``, the hash of files whose path, size,
    modification time and inode are unchanged is looked up in ``<cache_root>/dars/index/``
    instead of re-reading them (a reload then costs about the size of the arrays).
    """
    index = None
    if cache_root is not None:
        index = cache_root / "dars" / "index" / f"{_stat_key(name, paths)}.json"
        try:
            known = json.loads(index.read_text(encoding="utf-8"))["content_hash"]
            if isinstance(known, str) and len(known) == 64:
                return known
        except (OSError, ValueError, KeyError, TypeError):
            pass
    h = hashlib.sha256()
    h.update(f"darsbench-loader-v{LOADER_VERSION}\0{name}\0".encode())
    for role in _ROLES:
        path = paths.get(role)
        if path is None:
            h.update(f"{role}\0absent\0".encode())
            continue
        h.update(f"{role}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                h.update(chunk)
    digest = h.hexdigest()
    if index is not None:
        try:
            atomic_write_json(index, {"content_hash": digest})
        except OSError:
            pass  # the index only saves reading the files again
    return digest


def cache_folder(cache_root: Path, name: str, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "dataset"
    return cache_root / "dars" / f"{safe}-{key[:24]}"


def write_cache(folder: Path, ds: DarsDataset, key: str, extra: dict) -> None:
    """Arrays as ``.npy`` files (memory-mapped on reading), tables as Parquet, ``meta.json``
    last (its presence, with the matching hash and format, marks a complete entry)."""
    arrays: dict[str, np.ndarray] = {}
    for b in _BLOCKS:
        block = getattr(ds, b)
        for a in _BLOCK_ARRAYS:
            arrays[f"{b}.{a}"] = getattr(block, a)
    for split in ("train", "test"):
        truth = getattr(ds, f"{split}_truth")
        if truth is not None:
            for a in _TRUTH_ARRAYS:
                arrays[f"{split}_truth.{a}"] = getattr(truth, a)
    for k, arr in arrays.items():
        atomic_write_npy(folder / f"{k}.npy", arr)
    atomic_write_frame(folder / "train_queries.parquet", ds.train_queries)
    atomic_write_frame(folder / "test_queries.parquet", ds.test_queries)
    atomic_write_frame(folder / "model_table.parquet", ds.model_table)
    atomic_write_json(
        folder / "meta.json",
        {
            "loader_version": LOADER_VERSION,
            "cache_format": CACHE_FORMAT,
            "content_hash": key,
            "name": ds.name,
            "models": list(ds.models),
            "arrays": sorted(arrays),
            **extra,
        },
    )


def read_cache(folder: Path, key: str) -> tuple[dict, dict] | None:
    """The cached parts, or None when there is no complete entry for ``key``. Arrays are
    memory-mapped copy-on-write: pages are read when used, and writing to them never touches
    the cache."""
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if (
        meta.get("content_hash") != key
        or meta.get("loader_version") != LOADER_VERSION
        or meta.get("cache_format") != CACHE_FORMAT
    ):
        return None
    arrays = {k: np.load(folder / f"{k}.npy", mmap_mode="c", allow_pickle=False) for k in meta["arrays"]}
    parts: dict[str, Any] = {}
    for b in _BLOCKS:
        parts[b] = ObservationBlock(**{a: arrays[f"{b}.{a}"] for a in _BLOCK_ARRAYS})
    for split in ("train", "test"):
        parts[f"{split}_truth"] = (
            TruthTable(**{a: arrays[f"{split}_truth.{a}"] for a in _TRUTH_ARRAYS})
            if f"{split}_truth.mu_q" in arrays
            else None
        )
    for t in ("train_queries", "test_queries", "model_table"):
        parts[t] = normalise_table(pd.read_parquet(folder / f"{t}.parquet"))
    parts["models"] = tuple(meta["models"])
    parts["name"] = meta["name"]
    return parts, meta
