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
    SPLIT_SUFFIXES,
    METADATA_FILE,
    TEST_FILE,
    TRAIN_FILE,
    TRUTH_FILE,
    read_dars_rows,
    split_file_name,
    write_dars_jsonl,
)
from benchmark.data.dataset import DarsDataset, ObservationBlock
from benchmark.data.dense import check_duplicates, dense_block, model_table, query_table, split_keys
from benchmark.data.errors import DataError, DataWarning, display_path, show
from benchmark.data.parsing import SplitColumns, first_index as _first, parse_metadata, parse_split
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
    if any((root / split_file_name(s, f)).exists() for s in ("train", "test") for f in _FORMATS):
        return root, name
    return root / name, name


_FORMATS = tuple(s.lstrip(".") for s in SPLIT_SUFFIXES)


def _check_file(path: Path) -> bool:
    """Whether an optional input file is there; a folder, a dangling or looping link, or an
    unreadable file in its place is an error, never silently skipped."""
    if path.is_symlink() and not path.exists():
        raise DataError(path, None, None, "cannot read the file: the link is broken or loops")
    if not path.exists():
        return False
    if path.is_dir():
        raise DataError(path, None, None, "is a folder, not a file")
    if not os.access(path, os.R_OK):
        raise DataError(path, None, None, "cannot read the file: permission denied")
    return True


def _split_path(folder: Path, split: str) -> Path:
    """The one ``<split>_scored_generations.{jsonl,jsonl.gz,parquet}`` of the folder."""
    found = [folder / split_file_name(split, f) for f in _FORMATS]
    found = [p for p in found if _check_file(p)]
    if len(found) > 1:
        raise DataError(
            found[0], None, None,
            f"split '{split}' has {len(found)} files ({', '.join(p.name for p in found)}); keep one",
        )  # fmt: skip
    if not found:
        raise DataError(folder / split_file_name(split), None, None, f"split '{split}' is empty: file not found")
    return found[0]


def _read_small(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(path, None, None, f"cannot read the file: {exc.strerror or exc}") from None


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
    if not folder.is_dir():
        raise DataError(folder, None, None, f"dataset folder not found (expected {TRAIN_FILE} and {TEST_FILE} in it)")
    paths: dict[str, Path | None] = {"train": _split_path(folder, "train"), "test": _split_path(folder, "test")}
    for role, fname in (("metadata", METADATA_FILE), ("truth", TRUTH_FILE)):
        paths[role] = folder / fname if _check_file(folder / fname) else None
    present = {role: p for role, p in paths.items() if p is not None}
    source_paths = [str(p) for p in present.values()]
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = _content_hash(name, present, cache_root if use_cache else None)

    cache_folder = None
    if use_cache:
        cache_folder = _cache_folder(cache_root, name, key)
        hit = None
        try:
            hit = _read_cache(cache_folder, key)
        except Exception as exc:  # a damaged cache entry is rebuilt, never trusted
            warnings.warn(f"ignoring unreadable cache {cache_folder}: {exc}", DataWarning, stacklevel=2)
        if hit is not None:
            parts, meta = hit
            for msg in meta.get("warnings", []):
                warnings.warn(msg, DataWarning, stacklevel=2)
            return DarsDataset(
                **parts,
                source={
                    "paths": source_paths,
                    "content_hash": key,
                    "from_cache": True,
                    "cache_path": str(cache_folder),
                    "metadata": meta.get("metadata", {}),
                    "extra_fields": meta.get("extra_fields", []),
                    "n_cost_from_usage": meta.get("n_cost_from_usage", 0),
                    "loader_version": LOADER_VERSION,
                },
            )

    notes: list[str] = []
    ds, extra = _build_dataset(name, paths, notes)
    ds = replace(
        ds,
        source={
            "paths": source_paths,
            "content_hash": key,
            "from_cache": False,
            "cache_path": None if cache_folder is None else str(cache_folder),
            **extra,
            "loader_version": LOADER_VERSION,
        },
    )
    if cache_folder is not None:
        try:
            _write_cache(cache_folder, ds, key, {**extra, "warnings": notes})
        except Exception as exc:  # the cache is an optimisation; never fail the load on it
            notes.append(f"could not write the cache {cache_folder} (loading uncached): {exc}")
    for msg in notes:
        warnings.warn(msg, DataWarning, stacklevel=2)
    return ds


def _build_dataset(name: str, paths: dict[str, Path | None], notes: list[str]) -> tuple[DarsDataset, dict]:
    """Parse the files and assemble the dataset; append warnings to ``notes``."""
    meta = parse_metadata(paths["metadata"], _read_small(paths["metadata"])) if paths["metadata"] else {}
    train = parse_split(paths["train"], "train")
    test = parse_split(paths["test"], "test")

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
    train_models = train.model_names  # order of first appearance
    in_train = (pd.Index(train_models).get_indexer(test.model_names) >= 0)[test.m]
    if not in_train.all():
        i = _first(~in_train)
        raise test.err(
            i, "model",
            f"model {show(test.model_names[test.m[i]])} has no training observations ({paths['train'].name})",
        )  # fmt: skip
    if meta.get("models") is not None:
        models = list(meta["models"])
        known = (pd.Index(models).get_indexer(train_models) >= 0)[train.m]
        if not known.all():
            i = _first(~known)
            raise train.err(
                i, "model", f"model {show(train_models[train.m[i]])} is not listed in {METADATA_FILE} 'models'"
            )
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
    no_test = sorted(set(train_models) - set(test.model_names))
    if no_test:
        notes.append(
            f"{paths['test'].name}: {len(no_test)} model(s) have no test observations: {', '.join(no_test)}"
        )
    n_m = len(models)
    pool = pd.Index(models)

    # ---- train block
    train_ids = train.query_ids
    q_train = train.q
    m_train = pool.get_indexer(train_models)[train.m]
    check_duplicates(train, split_keys(train, q_train, m_train, len(train_ids), n_m))
    train_block = dense_block(
        q_train, len(train_ids), m_train, n_m, train.variant, train.decode, train.score, train.cost
    )

    # ---- test blocks (one shared query order)
    test_ids = test.query_ids
    q_test = test.q
    m_test = pool.get_indexer(test.model_names)[test.m]
    check_duplicates(test, split_keys(test, q_test, m_test, len(test_ids), n_m))
    blocks: dict[str, ObservationBlock] = {}
    for code, (obs_type, attr) in enumerate(OBSERVATION_TYPES.items()):
        sel = test.observation_type == code
        if not sel.any():
            raise DataError(
                test.path, None, "observation_type", f"no {obs_type!r} rows: the test file needs both views"
            )
        blocks[attr] = dense_block(
            q_test[sel], len(test_ids), m_test[sel], n_m,
            test.variant[sel], test.decode[sel], test.score[sel], test.cost[sel],
        )  # fmt: skip
        _check_test_view(test, blocks[attr], obs_type)
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
    if paths["truth"] is not None:
        truth = parse_truth(
            paths["truth"], _read_small(paths["truth"]), {"train": train_ids, "test": test_ids}, models, notes
        )

    ds = DarsDataset(
        name=name,
        models=tuple(models),
        train=train_block,
        test_rewrite=blocks["test_rewrite"],
        test_decoding=blocks["test_decoding"],
        train_queries=query_table(train, notes),
        test_queries=query_table(test, notes),
        model_table=model_table(models, meta, notes),
        train_truth=truth["train"],
        test_truth=truth["test"],
    )
    if paths["truth"] is None:
        notes.extend(check_release_facts(ds))
    extra = {
        "metadata": meta,
        "extra_fields": sorted(set(train.extra_fields) | set(test.extra_fields)),
        "n_cost_from_usage": train.n_cost_from_usage + test.n_cost_from_usage,
    }
    return ds, extra


def _check_test_view(test: SplitColumns, block: ObservationBlock, obs_type: str) -> None:
    """Every test query needs rows in both views: with none, no model's utility on that view
    is defined and the oracle and the router's score have nothing to compare (docs/data.md,
    "Gaps: rejected or reported"). A single (query, model) pair without rows is allowed; the
    metrics leave it out and warn with the count."""
    has_rows = block.present.any(axis=(1, 2, 3))  # [Q]
    if has_rows.all():
        return
    missing = np.flatnonzero(~has_rows)
    raise DataError(
        test.path, None, "observation_type",
        f"test query {show(test.query_ids[missing[0]])} has no {obs_type!r} rows "
        f"({missing.size} test queries lack this view); every test query needs both views",
    )  # fmt: skip
