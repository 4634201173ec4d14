"""Load a DARS dataset folder into a :class:`~benchmark.data.dataset.DarsDataset` (docs/data.md).

This module orchestrates: read the files, parse and validate them (:mod:`.parsing`), build the
dense blocks and tables (:mod:`.dense`), attach truth (:mod:`.truth`), check release facts
(:mod:`.release`), and cache the result (:mod:`.cache`). Costs stay raw USD.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.cache import (
    LOADER_VERSION,
    cache_folder as _cache_folder,
    content_hash as _content_hash,
    default_cache_dir,
    read_cache as _read_cache,
    write_cache as _write_cache,
)
from benchmark.data.dars_format import (
    METADATA_FILE,
    TEST_FILE,
    TRAIN_FILE,
    TRUTH_FILE,
    read_dars_rows,
    write_dars_jsonl,
)
from benchmark.data.dataset import DarsDataset, ObservationBlock
from benchmark.data.dense import check_duplicates, dense_block, model_table, query_table, split_keys
from benchmark.data.errors import DataError, DataWarning, display_path, show
from benchmark.data.parsing import first_index as _first, parse_metadata, parse_split
from benchmark.data.release import check_release_facts
from benchmark.data.schema import OBSERVATION_TYPES
from benchmark.data.truth import parse_truth

__all__ = [
    "LOADER_VERSION",
    "TRAIN_FILE",
    "TEST_FILE",
    "METADATA_FILE",
    "TRUTH_FILE",
    "DataError",
    "DataWarning",
    "load_dars_dir",
    "check_release_facts",
    "write_dars_jsonl",
    "read_dars_rows",
    "default_cache_dir",
]


def _resolve_folder(data_dir: str | os.PathLike, name: str | None) -> tuple[Path, str]:
    root = Path(data_dir).expanduser()
    if name is None:
        return root, root.resolve().name
    if (root / name).is_dir():
        return root / name, name
    if (root / TRAIN_FILE).is_file() or (root / TEST_FILE).is_file():
        return root, name
    return root / name, name


def _read_optional(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def load_dars_dir(
    data_dir: str | os.PathLike,
    name: str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> DarsDataset:
    """Load one DARS dataset folder into a :class:`DarsDataset` with raw USD costs.

    Args:
        data_dir: the folder holding ``<name>/``, or the dataset folder itself.
        name: dataset folder name; defaults to the name of ``data_dir`` when ``data_dir`` is
            the dataset folder.
        cache_dir: cache root (default :func:`default_cache_dir`).
        use_cache: read and write the parse cache (False: always parse, write nothing).

    Returns:
        The dataset; ``source`` holds ``paths``, ``content_hash``, ``from_cache``,
        ``cache_path``, ``metadata``, ``extra_fields`` and ``n_cost_from_usage``.

    Raises:
        DataError: a missing/empty split file or any invalid row, naming file, line and field.
    """
    folder, name = _resolve_folder(data_dir, name)
    paths = {
        "train": folder / TRAIN_FILE,
        "test": folder / TEST_FILE,
        "metadata": folder / METADATA_FILE,
        "truth": folder / TRUTH_FILE,
    }
    if not folder.is_dir():
        raise DataError(folder, None, None, f"dataset folder not found (expected {TRAIN_FILE} and {TEST_FILE} in it)")
    files: dict[str, bytes | None] = {}
    for role, p in paths.items():
        files[role] = _read_optional(p)
        if role in ("train", "test") and files[role] is None:
            raise DataError(p, None, None, f"split '{role}' is empty: file not found")
    content_hash = _content_hash(name, files)
    source_paths = [str(p) for role, p in paths.items() if files[role] is not None]

    cache_folder = None
    if use_cache:
        cache_folder = _cache_folder(
            Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(),
            name,
            content_hash,
        )
        try:
            hit = _read_cache(cache_folder, content_hash)
        except Exception as exc:  # a damaged cache entry is rebuilt, never trusted
            warnings.warn(f"ignoring unreadable cache {cache_folder}: {exc}", DataWarning, stacklevel=2)
            hit = None
        if hit is not None:
            parts, meta = hit
            for msg in meta.get("warnings", []):
                warnings.warn(msg, DataWarning, stacklevel=2)
            return DarsDataset(
                **parts,
                source={
                    "paths": source_paths,
                    "content_hash": content_hash,
                    "from_cache": True,
                    "cache_path": str(cache_folder),
                    "metadata": meta.get("metadata", {}),
                    "extra_fields": meta.get("extra_fields", []),
                    "n_cost_from_usage": meta.get("n_cost_from_usage", 0),
                    "loader_version": LOADER_VERSION,
                },
            )

    notes: list[str] = []
    ds, extra = _build_dataset(name, paths, files, notes)
    ds = replace(
        ds,
        source={
            "paths": source_paths,
            "content_hash": content_hash,
            "from_cache": False,
            "cache_path": None if cache_folder is None else str(cache_folder),
            **extra,
            "loader_version": LOADER_VERSION,
        },
    )
    if cache_folder is not None:
        try:
            _write_cache(cache_folder, ds, content_hash, {**extra, "warnings": notes})
        except Exception as exc:  # the cache is an optimisation; never fail the load on it
            notes.append(f"could not write the cache {cache_folder}: {exc}")
    for msg in notes:
        warnings.warn(msg, DataWarning, stacklevel=2)
    return ds


def _build_dataset(
    name: str, paths: dict[str, Path], files: dict[str, bytes | None], notes: list[str]
) -> tuple[DarsDataset, dict]:
    """Parse the files (already read) and assemble the dataset; append warnings to ``notes``."""
    meta = parse_metadata(paths["metadata"], files["metadata"]) if files["metadata"] is not None else {}
    train = parse_split(paths["train"], files["train"], "train")
    test = parse_split(paths["test"], files["test"], "test")

    for rows in (train, test):
        if rows.dataset != name:
            notes.append(
                f"{display_path(rows.path)}: rows say dataset {rows.dataset!r}, loaded as {name!r}"
            )
    if train.dataset != test.dataset:
        raise DataError(
            test.path, int(test.lines[0]), "dataset",
            f"value {test.dataset!r} differs from the train file's {train.dataset!r}",
        )  # fmt: skip
    if "dataset" in meta and meta["dataset"] != train.dataset:
        notes.append(f"{METADATA_FILE}: dataset {meta['dataset']!r} differs from the rows' {train.dataset!r}")

    # ---- pool
    train_models = pd.unique(train.model)
    in_train = pd.Index(train_models).get_indexer(test.model) >= 0
    if not in_train.all():
        i = _first(~in_train)
        raise test.err(
            i, "model", f"model {show(test.model[i])} has no training observations ({TRAIN_FILE})"
        )
    if meta.get("models") is not None:
        models = list(meta["models"])
        known = pd.Index(models).get_indexer(train.model) >= 0
        if not known.all():
            i = _first(~known)
            raise train.err(i, "model", f"model {show(train.model[i])} is not listed in {METADATA_FILE} 'models'")
        have = set(train_models)
        unused = [m for m in models if m not in have]
        if unused:
            notes.append(
                f"{METADATA_FILE}: {len(unused)} listed model(s) have no observations and are left "
                f"out of the pool: {', '.join(unused)}"
            )
            models = [m for m in models if m in have]
    else:
        models = sorted(str(m) for m in train_models)
    no_test = sorted(set(train_models) - set(pd.unique(test.model)))
    if no_test:
        notes.append(
            f"{TEST_FILE}: {len(no_test)} model(s) have no test observations: {', '.join(no_test)}"
        )
    n_m = len(models)
    pool = pd.Index(models)

    # ---- train block
    q_train, train_ids = pd.factorize(train.query_id)
    train_ids = np.asarray(train_ids, dtype=object)
    m_train = pool.get_indexer(train.model)
    check_duplicates(train, split_keys(train, q_train, m_train, len(train_ids), n_m))
    train_block = dense_block(
        q_train, len(train_ids), m_train, n_m, train.variant, train.decode, train.score, train.cost
    )

    # ---- test blocks (one shared query order)
    q_test, test_ids = pd.factorize(test.query_id)
    test_ids = np.asarray(test_ids, dtype=object)
    m_test = pool.get_indexer(test.model)
    check_duplicates(test, split_keys(test, q_test, m_test, len(test_ids), n_m))
    blocks: dict[str, ObservationBlock] = {}
    for obs_type, attr in OBSERVATION_TYPES.items():
        sel = test.observation_type == obs_type
        if not sel.any():
            raise DataError(
                test.path, None, "observation_type", f"no {obs_type!r} rows: the test file needs both views"
            )
        blocks[attr] = dense_block(
            q_test[sel], len(test_ids), m_test[sel], n_m,
            test.variant[sel], test.decode[sel], test.score[sel], test.cost[sel],
        )  # fmt: skip
        # SPEC §2 convention: rewrites have prompt_variant_id >= 0, the original query < 0.
        wrong = (test.variant[sel] < 0) if obs_type == "prompt_variation" else (test.variant[sel] >= 0)
        if wrong.any():
            sign = "< 0" if obs_type == "prompt_variation" else ">= 0"
            notes.append(
                f"{display_path(test.path)}: {int(wrong.sum())} {obs_type} rows have "
                f"prompt_variant_id {sign} (expected {'>= 0' if sign == '< 0' else '< 0'}), "
                f"first on line {test.lines[np.flatnonzero(sel)[_first(wrong)]]}"
            )

    both = np.intersect1d(train_ids.astype(str), test_ids.astype(str))
    if both.size:
        notes.append(
            f"{both.size} query_id(s) appear in both the train and the test split, e.g. {both[0]!r}"
        )

    truth = {"train": None, "test": None}
    if files["truth"] is not None:
        truth = parse_truth(
            paths["truth"], files["truth"], {"train": train_ids, "test": test_ids}, models, notes
        )

    ds = DarsDataset(
        name=name,
        models=tuple(models),
        train=train_block,
        test_rewrite=blocks["test_rewrite"],
        test_decoding=blocks["test_decoding"],
        train_queries=query_table(train, q_train, train_ids, notes),
        test_queries=query_table(test, q_test, test_ids, notes),
        model_table=model_table(models, meta, notes),
        train_truth=truth["train"],
        test_truth=truth["test"],
    )
    if files["truth"] is None:
        notes.extend(check_release_facts(ds))
    extra = {
        "metadata": meta,
        "extra_fields": sorted(set(train.extra_fields) | set(test.extra_fields)),
        "n_cost_from_usage": train.n_cost_from_usage + test.n_cost_from_usage,
    }
    return ds, extra

