"""The columnar loader (issue 9) against the per-row loader it replaced: bit-identical results on
randomized ragged data, the same errors (file, line, field, text) with the bad row in the middle of
a many-block file, .jsonl.gz and .parquet equal to .jsonl; and the issue-11 odd files and cache
failures.

The per-row loader's outputs on the cases below are recorded in tests/golden/loader_reference.json
(array digests, table digests, source fields, warnings, error text/line/field) by
``python tests/record_loader_reference.py``, which runs commit d74f5ed's benchmark/data/loader.py
on the data this module generates (seeded, so regenerated identically here)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmark.data import parsing
from benchmark.data.errors import DataError, DataWarning
from benchmark.data.loader import TEST_FILE, TRAIN_FILE, load_dars_dir

REFERENCE = Path(__file__).parent / "golden" / "loader_reference.json"
PARITY_SEEDS = range(12)
#: Mid-file error cases where the per-row loader ended in a traceback (nothing to compare with).
LEGACY_CRASHED = frozenset({"huge-integer", "deep-nesting"})

NAME = "toy"


# ---------------------------------------------------------------------------- random data


def random_rows(rng: np.random.Generator, int_ids: bool = False) -> tuple[list[dict], list[dict]]:
    """Ragged DARS rows: masked cells, text fields that vary between rows, unknown fields of
    mixed types, ``usage.cost`` fallbacks, integral floats as ids, shuffled row order."""
    models = [f"m{k}" for k in rng.permutation(int(rng.integers(2, 5)))]
    def qid(split: str, k: int):
        return int(k + (0 if split == "train" else 1000)) if int_ids else f"{split}-{k}"

    def extras(r: dict, q: int, v: int) -> None:
        if rng.random() < 0.8:
            r["original_question"] = f"question {q}?" if rng.random() < 0.95 else f"other wording {q}?"
        if rng.random() < 0.5:
            r["input_question"] = f"rewrite {v} of {q}"
        if rng.random() < 0.3:
            r["context"] = "passage " * int(rng.integers(1, 300)) + str(q)
        if rng.random() < 0.3:
            r["gold"] = str(q % 7)
        if rng.random() < 0.3:
            r["finish_reason"] = str(rng.choice(["stop", "length"]))
        if rng.random() < 0.2:
            r["extra_" + str(rng.integers(3))] = [1, {"a": None}] if rng.random() < 0.5 else "x"
        if rng.random() < 0.3:
            r["usage"] = {"prompt_tokens": int(rng.integers(100)), "cost": r["cost"]}
            if rng.random() < 0.5:
                del r["cost"]

    train = []
    for q in range(int(rng.integers(3, 30))):
        for m in models:
            for v in range(int(rng.integers(1, 4))):
                for s in range(int(rng.integers(1, 4))):
                    if rng.random() < 0.2:
                        continue  # a masked cell
                    r = {"dataset": NAME, "split": "train", "query_id": qid("train", q), "model": m,
                         "score": float(rng.random()) if rng.random() < 0.7 else int(rng.integers(2)),
                         "cost": float(rng.random() * 1e-3),
                         "prompt_variant_id": v if rng.random() < 0.9 else float(v), "decode_id": s}  # fmt: skip
                    extras(r, q, v)
                    train.append(r)
    test = []
    for q in range(int(rng.integers(2, 20))):
        for obs, views, decodes in (("prompt_variation", range(3), [0]), ("decoding_variation", [-1], range(3))):
            keep = [(m, v, s) for m in models for v in views for s in decodes if rng.random() < 0.8]
            keep = keep or [(models[0], list(views)[0], list(decodes)[0])]  # both views per query
            for m, v, s in keep:
                r = {"dataset": NAME, "split": "test", "query_id": qid("test", q), "model": m,
                     "prompt_variant_id": v, "decode_id": s, "observation_type": obs,
                     "score": float(rng.integers(2)), "cost": float(rng.random() * 1e-3)}  # fmt: skip
                extras(r, q, v)
                test.append(r)
    order = rng.permutation(len(train))
    return [train[i] for i in order], test


def write_jsonl(path: Path, rows: list[dict], rng: np.random.Generator, bom=False, crlf=False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for r in rows:
        lines.append(json.dumps(r, ensure_ascii=bool(rng.random() < 0.5)))
        if rng.random() < 0.05:
            lines.append("" if rng.random() < 0.5 else "   \t")
    end = "\r\n" if crlf else "\n"
    text = end.join(lines) + (end if rng.random() < 0.8 else "")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))


def load_with_warnings(load, folder: Path):
    """``load(folder, NAME, use_cache=False)`` and the messages of the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load(folder, NAME, use_cache=False)
    return ds, [str(x.message) for x in caught]


def _canon(v):
    """A type-tagged JSON form of one table cell: equal only for equal types and values (floats bit for bit)."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return ["bool", bool(v)]
    if isinstance(v, (int, np.integer)):
        return [type(v).__name__, str(int(v))]
    if isinstance(v, (float, np.floating)):
        return [type(v).__name__, float(v).hex()]
    if isinstance(v, (list, tuple)):
        return [type(v).__name__, [_canon(x) for x in v]]
    if isinstance(v, dict):
        return ["dict", [[_canon(k), _canon(x)] for k, x in v.items()]]
    return [type(v).__name__, repr(v)]


def _digest_values(values) -> str:
    """sha256 of dtype, shape and contents: the bytes for numbers, the type-tagged cells for objects."""
    values = np.asarray(values)
    h = hashlib.sha256(f"{values.dtype.str}|{values.shape}|".encode())
    if values.dtype == object:
        cells = json.dumps([_canon(v) for v in values.ravel()], ensure_ascii=False)
        h.update(cells.encode("utf-8", "surrogatepass"))
    else:
        h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


def table_digest(frame: pd.DataFrame) -> dict:
    """Column names, dtypes, index type and a digest per column: any difference in cells shows up."""
    return {
        "shape": list(frame.shape),
        "columns": [str(c) for c in frame.columns],
        "dtypes": [str(t) for t in frame.dtypes],
        "index": [type(frame.index).__name__, str(frame.index.name), _digest_values(frame.index.to_numpy())],
        "cells": {str(c): _digest_values(frame[c].to_numpy()) for c in frame.columns},
    }


def dataset_digest(ds) -> dict:
    """What the parity test compares, in JSON form: arrays as sha256 of dtype+shape+bytes, tables as
    digests, the ``source`` fields, which truth tables exist."""
    arrays = {}
    for b in ("train", "test_rewrite", "test_decoding"):
        for a in ("score", "cost", "present", "view_ids", "decode_ids"):
            x = np.asarray(getattr(getattr(ds, b), a))
            arrays[f"{b}.{a}"] = {"dtype": x.dtype.str, "shape": list(x.shape), "sha256": _digest_values(x)}
    out = {
        "name": ds.name,
        "models": list(ds.models),
        "arrays": arrays,
        "tables": {t: table_digest(getattr(ds, t)) for t in ("train_queries", "test_queries", "model_table")},
        "truth": {t: getattr(ds, t) is not None for t in ("train_truth", "test_truth")},
        "source": {k: ds.source[k] for k in ("extra_fields", "n_cost_from_usage", "metadata")},
    }
    return json.loads(json.dumps(out))


@functools.cache
def reference() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def assert_matches_reference(got: dict, want: dict) -> None:
    for k in ("name", "models", "truth", "source"):
        assert got[k] == want[k], k
    assert got["arrays"].keys() == want["arrays"].keys()
    for k, v in want["arrays"].items():
        assert got["arrays"][k] == v, k  # dtype, shape and bytes
    for t, v in want["tables"].items():
        assert got["tables"][t] == v, t
    assert got == want


def assert_same_dataset(old, new) -> None:
    assert new.models == old.models and new.name == old.name
    for b in ("train", "test_rewrite", "test_decoding"):
        for a in ("score", "cost", "present", "view_ids", "decode_ids"):
            x, y = getattr(getattr(new, b), a), getattr(getattr(old, b), a)
            assert x.dtype == y.dtype and x.shape == y.shape, (b, a)
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), (b, a)  # bit for bit
    for t in ("train_queries", "test_queries", "model_table"):
        pd.testing.assert_frame_equal(getattr(new, t), getattr(old, t))
    for t in ("train_truth", "test_truth"):
        assert (getattr(new, t) is None) == (getattr(old, t) is None)
    for k in ("extra_fields", "n_cost_from_usage", "metadata"):
        assert new.source[k] == old.source[k], k


def parity_folder(parent: Path, seed: int) -> Path:
    """The randomized ragged release of one seed (the same bytes for the recording and the test)."""
    rng = np.random.default_rng(seed)
    train, test = random_rows(rng, int_ids=seed % 4 == 3)
    folder = parent / NAME
    write_jsonl(folder / TRAIN_FILE, train, rng, bom=seed % 3 == 0, crlf=seed % 2 == 0)
    write_jsonl(folder / TEST_FILE, test, rng, crlf=seed % 5 == 0)
    if seed % 2:
        meta = {"models": sorted({r["model"] for r in train}, reverse=True), "dataset": NAME,
                "model_info": {r["model"]: {"price_in": 1e-7} for r in train[:1]}}  # fmt: skip
        (folder / "metadata.json").write_text(json.dumps(meta))
    return folder


def numeric_gold_folder(parent: Path) -> Path:
    """Text fields that are numbers (fast path) or mixed types (precise path)."""
    rng = np.random.default_rng(5)
    train, test = random_rows(rng)
    for k, r in enumerate(train):
        r["gold"] = k % 3 if k < len(train) // 2 else [k % 2]
    for r in test:
        r["gold"] = 7
    folder = parent / NAME
    write_jsonl(folder / TRAIN_FILE, train, rng)
    write_jsonl(folder / TEST_FILE, test, rng)
    return folder


def test_reference_covers_every_case():
    ref = reference()
    assert sorted(ref["datasets"]) == sorted([f"seed-{s}" for s in PARITY_SEEDS] + ["numeric-gold"])
    assert sorted(ref["errors"]) == sorted(set(MID_CASES) - LEGACY_CRASHED)


def test_the_digest_sees_a_one_bit_or_one_type_difference(tmp_path):
    """The recorded form is as strict as comparing the objects: a flipped bit, a changed dtype or shape,
    an int or float where text was, a -0.0 for a 0.0, a renamed index all change it."""
    ds = load_dars_dir(numeric_gold_folder(tmp_path), NAME, use_cache=False)
    base = dataset_digest(ds)
    score = ds.train.score
    score.view(np.uint64).ravel()[0] ^= 1  # the last bit of one score
    assert dataset_digest(ds)["arrays"]["train.score"] != base["arrays"]["train.score"]
    score.view(np.uint64).ravel()[0] ^= 1
    views = ds.train.view_ids
    assert _digest_values(views.astype(np.int32)) != base["arrays"]["train.view_ids"]["sha256"]
    assert _digest_values(views.reshape(1, -1)) != base["arrays"]["train.view_ids"]["sha256"]
    q = ds.train_queries
    g = q.columns.get_loc("gold")
    assert q.iat[0, g] == "0"  # numeric gold is kept as text
    for value in (0, 0.0, "0.0", ["0"]):
        q2 = q.copy()
        q2.iat[0, g] = value
        assert table_digest(q2)["cells"]["gold"] != base["tables"]["train_queries"]["cells"]["gold"]
    assert table_digest(q.rename_axis("qi"))["index"] != base["tables"]["train_queries"]["index"]
    assert _digest_values(np.array([0.0, 1.0])) != _digest_values(np.array([-0.0, 1.0]))
    assert table_digest(q.astype({"query_id": "string"}))["dtypes"] != base["tables"]["train_queries"]["dtypes"]


@pytest.mark.parametrize("seed", PARITY_SEEDS)
@pytest.mark.parametrize("block_bytes", [700, parsing.BLOCK_BYTES])
def test_parity_with_the_per_row_loader(tmp_path, monkeypatch, seed, block_bytes):
    monkeypatch.setattr(parsing, "BLOCK_BYTES", block_bytes)
    new, w_new = load_with_warnings(load_dars_dir, parity_folder(tmp_path, seed))
    want = reference()["datasets"][f"seed-{seed}"]
    assert_matches_reference(dataset_digest(new), want["dataset"])
    assert w_new == want["warnings"]


def test_huge_integer_in_an_unknown_field_loads(tmp_path, monkeypatch):
    """Read as a float by both paths (the precise one used to end in a traceback)."""
    train, test = _big_rows()
    train[5]["x"] = "HUGE"
    folder = tmp_path / NAME
    folder.mkdir()
    for f, rows in ((TRAIN_FILE, train), (TEST_FILE, test)):
        text = "".join(json.dumps(r) + "\n" for r in rows)
        (folder / f).write_text(text.replace('"HUGE"', "9" * 5000))
    fast = load_dars_dir(folder, NAME, use_cache=False)
    monkeypatch.setattr(parsing, "_fast_block", lambda *a: None)  # every block the precise way
    precise = load_dars_dir(folder, NAME, use_cache=False)
    assert_same_dataset(fast, precise)
    assert fast.source["extra_fields"] == ["x"]


def test_numeric_gold_and_mixed_text_types_match(tmp_path):
    """Text fields that are numbers (fast path) or mixed types (precise path) as before."""
    new, w_new = load_with_warnings(load_dars_dir, numeric_gold_folder(tmp_path))
    want = reference()["datasets"]["numeric-gold"]
    assert_matches_reference(dataset_digest(new), want["dataset"])
    assert w_new == want["warnings"]


# --------------------------------------------------------- errors in the middle of many blocks


def _big_rows() -> tuple[list[dict], list[dict]]:
    train = [{"dataset": NAME, "split": "train", "query_id": f"q{q}", "model": m, "score": 0.5,
              "cost": 0.001, "prompt_variant_id": v, "decode_id": s, "original_question": f"Q{q}?"}
             for q in range(60) for m in ("ma", "mb") for v in range(2) for s in range(2)]  # fmt: skip
    test = [{"dataset": NAME, "split": "test", "query_id": f"t{q}", "model": m, "score": 1.0, "cost": 0.002,
             "prompt_variant_id": v, "decode_id": s, "observation_type": o}
            for q in range(40) for m in ("ma", "mb")
            for o, v, s in (("prompt_variation", 0, 0), ("prompt_variation", 1, 0),
                            ("decoding_variation", -1, 0), ("decoding_variation", -1, 1))]  # fmt: skip
    return train, test


def _edit(key, value):
    def f(r: dict) -> str:
        r = dict(r)
        if value is KeyError:
            del r[key]
        else:
            r[key] = value
        return json.dumps(r)

    return f


MID_CASES = {
    "malformed-json": (TRAIN_FILE, lambda r: '{"dataset": "toy",'),
    "not-an-object": (TRAIN_FILE, lambda r: "[1, 2]"),
    "two-objects-on-a-line": (TRAIN_FILE, lambda r: json.dumps(r) + json.dumps(r)),
    "deep-nesting": (TRAIN_FILE, lambda r: json.dumps(r)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    "huge-integer": (TRAIN_FILE, lambda r: re.sub(r'"decode_id": \d+', '"decode_id": ' + "9" * 5000, json.dumps(r))),
    "huge-integer-id": (TRAIN_FILE, _edit("decode_id", 10**30)),
    "huge-number-score": (TRAIN_FILE, lambda r: json.dumps(r).replace('"score": 0.5', '"score": 1e400')),
    "bad-utf8": (TRAIN_FILE, lambda r: json.dumps(r).replace("Q", "\udcff")),
    "missing-field": (TRAIN_FILE, _edit("decode_id", KeyError)),
    "null-field": (TRAIN_FILE, _edit("query_id", None)),
    "score-above-1": (TRAIN_FILE, _edit("score", 1.5)),
    "score-nan": (TRAIN_FILE, _edit("score", float("nan"))),
    "score-string": (TRAIN_FILE, _edit("score", "1")),
    "score-bool": (TRAIN_FILE, _edit("score", True)),
    "cost-negative": (TRAIN_FILE, _edit("cost", -0.01)),
    "cost-missing": (TRAIN_FILE, _edit("cost", KeyError)),
    "usage-cost-negative": (TRAIN_FILE, lambda r: json.dumps({**{k: v for k, v in r.items() if k != "cost"},
                                                              "usage": {"cost": -1}})),  # fmt: skip
    "variant-float": (TRAIN_FILE, _edit("prompt_variant_id", 1.5)),
    "decode-string": (TRAIN_FILE, _edit("decode_id", "0")),
    "wrong-split": (TRAIN_FILE, _edit("split", "test")),
    "mixed-dataset": (TRAIN_FILE, _edit("dataset", "other")),
    "mixed-query-id-types": (TRAIN_FILE, _edit("query_id", 5)),
    "model-blank": (TRAIN_FILE, _edit("model", "  ")),
    "duplicate": (TRAIN_FILE, lambda r: json.dumps({**r, "query_id": "q3", "model": "ma",
                                                     "prompt_variant_id": 1, "decode_id": 0})),  # fmt: skip
    "bad-observation-type": (TEST_FILE, _edit("observation_type", "rewrite")),
    "test-model-not-in-train": (TEST_FILE, _edit("model", "newcomer")),
}


def mid_error_folder(parent: Path, case: str) -> tuple[Path, str, int]:
    """A release whose ``case`` row sits in the middle of a file; returns (folder, file name, row index)."""
    fname, edit = MID_CASES[case]
    train, test = _big_rows()
    rows = train if fname == TRAIN_FILE else test
    mid = len(rows) // 2 + 3
    lines = [json.dumps(r) for r in rows]
    lines[mid] = edit(rows[mid])
    folder = parent / NAME
    folder.mkdir(parents=True)
    for f, ls in ((TRAIN_FILE, [json.dumps(r) for r in train]), (TEST_FILE, [json.dumps(r) for r in test])):
        data = "\n".join(lines if f == fname else ls) + "\n"
        (folder / f).write_bytes(data.encode("utf-8", errors="surrogateescape"))
    return folder, fname, mid


def error_record(exc: Exception, folder: Path) -> dict:
    """The error's text (the temporary folder written as ``<dir>``), line and field."""
    return {"message": str(exc).replace(str(folder.parent), "<dir>"), "line": exc.line, "field": exc.field}


@pytest.mark.parametrize("case", sorted(MID_CASES))
def test_errors_in_the_middle_of_a_many_block_file(tmp_path, monkeypatch, case):
    monkeypatch.setattr(parsing, "BLOCK_BYTES", 2000)  # about 15 rows per block
    folder, fname, mid = mid_error_folder(tmp_path, case)
    with pytest.raises(DataError) as new:
        load_dars_dir(folder, NAME, use_cache=False)
    assert new.value.line == mid + 1, str(new.value)
    assert new.value.path == str(folder / fname)
    if case == "huge-integer":  # the old loader ended in a traceback here
        assert "value Infinity is not an integer" in str(new.value)
    elif case == "deep-nesting":  # and here
        assert "malformed JSON" in str(new.value)
    else:
        assert error_record(new.value, folder) == reference()["errors"][case]


# ------------------------------------------------------------------------ other formats


def _folder_with(tmp_path: Path, fmt: str, train: list[dict], test: list[dict]) -> Path:
    folder = tmp_path / fmt / NAME
    folder.mkdir(parents=True)
    for split, rows in (("train", train), ("test", test)):
        path = folder / f"{split}_scored_generations.{fmt}"
        if fmt == "jsonl.gz":
            with gzip.open(path, "wt", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(r) + "\n" for r in rows))
        elif fmt == "parquet":
            pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=50)
        else:
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / fmt


@pytest.mark.parametrize("fmt", ["jsonl.gz", "parquet"])
def test_gz_and_parquet_equal_jsonl(tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(parsing, "PARQUET_BATCH_ROWS", 64)
    monkeypatch.setattr(parsing, "BLOCK_BYTES", 3000)
    train, test = _big_rows()
    for k, r in enumerate(train):  # text that varies between rows, and a usage.cost fallback
        r["input_question"] = f"view {r['prompt_variant_id']} of {r['query_id']}"
        if k % 7 == 3:
            r["usage"] = {"cost": r.pop("cost")}
        else:
            r["usage"] = {"cost": None}
    ref = load_dars_dir(_folder_with(tmp_path, "jsonl", train, test) / NAME, NAME, use_cache=False)
    got = load_dars_dir(_folder_with(tmp_path, fmt, train, test) / NAME, NAME, use_cache=False)
    assert_same_dataset(ref, got)


def test_parquet_errors_name_the_row(tmp_path):
    train, test = _big_rows()
    train[77]["score"] = 2.0
    folder = _folder_with(tmp_path, "parquet", train, test) / NAME
    with pytest.raises(DataError, match=r"train_scored_generations.parquet:78: field 'score': value 2.0 is outside"):
        load_dars_dir(folder, NAME, use_cache=False)


def test_two_formats_of_one_split_is_an_error(tmp_path):
    train, test = _big_rows()
    folder = _folder_with(tmp_path, "jsonl", train, test) / NAME
    (folder / "train_scored_generations.parquet").write_bytes(b"x")
    with pytest.raises(DataError, match="split 'train' has 2 files"):
        load_dars_dir(folder, NAME, use_cache=False)


def test_corrupt_gzip_is_a_data_error(tmp_path):
    train, test = _big_rows()
    folder = _folder_with(tmp_path, "jsonl.gz", train, test) / NAME
    path = folder / "train_scored_generations.jsonl.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="train_scored_generations.jsonl.gz: cannot read the file"):
        load_dars_dir(folder, NAME, use_cache=False)


# ------------------------------------------------------------------- cache (issue 9 and 11)


def test_cached_reload_is_memory_mapped_and_equal(tmp_path):
    train, test = _big_rows()
    folder = _folder_with(tmp_path, "jsonl", train, test) / NAME
    cold = load_dars_dir(folder, NAME, cache_dir=tmp_path / "c")
    warm = load_dars_dir(folder, NAME, cache_dir=tmp_path / "c")
    assert not cold.source["from_cache"] and warm.source["from_cache"]
    assert isinstance(warm.train.score, np.memmap)
    assert_same_dataset(cold, warm)
    warm.train.score[0, 0, 0, 0] = 0.0  # copy-on-write: the cache is not touched
    again = load_dars_dir(folder, NAME, cache_dir=tmp_path / "c")
    assert again.train.score[0, 0, 0, 0] == cold.train.score[0, 0, 0, 0]
    # an edit of the file (new size / time) re-hashes and re-parses
    (folder / TRAIN_FILE).write_text((folder / TRAIN_FILE).read_text().replace('"score": 0.5', '"score": 0.25', 1))
    assert not load_dars_dir(folder, NAME, cache_dir=tmp_path / "c").source["from_cache"]


def test_unwritable_cache_warns_and_loads(tmp_path):
    train, test = _big_rows()
    folder = _folder_with(tmp_path, "jsonl", train, test) / NAME
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("not a folder")  # every write below it fails, as on a full or read-only disk
    with pytest.warns(DataWarning, match="could not write the cache .*loading uncached"):
        ds = load_dars_dir(folder, NAME, cache_dir=blocker)
    assert ds.train.score.shape == (60, 2, 2, 2) and not ds.source["from_cache"]


def test_unwritable_simulator_cache_warns_and_simulates(tmp_path):
    from benchmark.data.sources import SyntheticSource

    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("x")
    src = SyntheticSource(overrides={"n_train": 4, "n_test": 3})
    with pytest.warns(DataWarning, match="simulator cache .* is unusable"):
        ds = src.load(blocker)
    assert ds.train.score.shape == (4, 6, 5, 5)


def test_damaged_simulator_cache_warns_and_simulates(tmp_path):
    from benchmark.data.simulator import config_hash
    from benchmark.data.sources import SyntheticSource

    src = SyntheticSource(overrides={"n_train": 4, "n_test": 3})
    first = src.load(tmp_path)
    f = tmp_path / "simulated" / config_hash(src.simulator_config(), 0) / "synthetic" / TRAIN_FILE
    f.write_text(f.read_text()[:-200])  # truncated: the last line is cut
    with pytest.warns(DataWarning, match="simulator cache .* is unusable"):
        again = src.load(tmp_path)
    assert_same_dataset(first, again)


def test_unwritable_feature_cache_warns_and_computes(tmp_path):
    from benchmark.features import TfidfFeaturizer, compute_features

    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("x")
    with pytest.warns(UserWarning, match="could not write the feature cache"):
        pair = compute_features(TfidfFeaturizer(), ["a cat", "a dog"], ["the cat"], blocker)
    assert pair[0].shape[0] == 2 and not pair.from_cache and pair.path is None


# ---------------------------------------------------------------------- odd files (issue 11)


def test_a_folder_where_a_file_should_be(tmp_path):
    train, test = _big_rows()
    folder = _folder_with(tmp_path, "jsonl", train, test) / NAME
    (folder / TRAIN_FILE).unlink()
    (folder / TRAIN_FILE).mkdir()
    with pytest.raises(DataError, match=f"{NAME}/{TRAIN_FILE}: is a folder, not a file"):
        load_dars_dir(folder, NAME, use_cache=False)


@pytest.mark.parametrize("kind", ["folder", "loop", "deep", "huge-int"])
def test_odd_metadata_json(tmp_path, kind):
    train, test = _big_rows()
    folder = _folder_with(tmp_path, "jsonl", train, test) / NAME
    meta = folder / "metadata.json"
    if kind == "folder":
        meta.mkdir()
        want = "metadata.json: is a folder, not a file"
    elif kind == "loop":
        os.symlink(meta, meta)
        want = "metadata.json: cannot read the file: the link is broken or loops"
    elif kind == "deep":
        meta.write_text("[" * 100_000 + "]" * 100_000)
        want = "metadata.json: malformed JSON: nested too deeply"
    else:
        meta.write_text('{"x": ' + "1" * 5000 + "}")
        want = "metadata.json: malformed JSON: Exceeds the limit"
    with pytest.raises(DataError, match=want):
        load_dars_dir(folder, NAME, use_cache=False)


@pytest.mark.parametrize("fmt", ["jsonl.gz", "parquet"])
def test_simulator_formats_load_equal(tmp_path, monkeypatch, fmt):
    """The simulator's Parquet (dictionary-encoded text) and gzip files load like its JSONL."""
    from dataclasses import replace

    from benchmark.data.simulator import PRESETS, simulate, write_data, writing

    monkeypatch.setattr(writing, "BATCH_ROWS", 500)
    monkeypatch.setattr(parsing, "PARQUET_BATCH_ROWS", 300)
    data = simulate(replace(PRESETS["drop_like"], n_train=9, n_test=5), 4, name="syn")
    write_data(data, tmp_path / "a")
    write_data(data, tmp_path / "b", fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref = load_dars_dir(tmp_path / "a", "syn", use_cache=False)
        got = load_dars_dir(tmp_path / "b", "syn", use_cache=False)
    assert_same_dataset(ref, got)
    for a in ("mu_q", "mu_c", "sigma_q"):
        np.testing.assert_array_equal(got.test_truth.__getattribute__(a), ref.test_truth.__getattribute__(a))


def test_large_simulations_are_cached_as_parquet(tmp_path, monkeypatch):
    from benchmark.data.simulator import SimulatorConfig, ensure_simulated, writing

    monkeypatch.setattr(writing, "PARQUET_FROM_OBSERVATIONS", 1000)
    small = ensure_simulated(SimulatorConfig(n_train=2, n_test=2), tmp_path, "s", 0)
    large = ensure_simulated(SimulatorConfig(n_train=8, n_test=4), tmp_path, "s", 0)
    assert (small / "s" / TRAIN_FILE).is_file()
    assert (large / "s" / "train_scored_generations.parquet").is_file()
    assert load_dars_dir(large, "s", use_cache=False).train.score.shape == (8, 6, 5, 5)


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "parquet"])
def test_read_dars_rows_reads_every_format(tmp_path, fmt):
    from benchmark.data.dars_format import read_dars_rows

    train, test = _big_rows()
    train[0]["finish_reason"] = "length"  # on the first row: the Parquet helper takes its fields
    folder = _folder_with(tmp_path, fmt, train, test) / NAME
    frame = read_dars_rows(folder / f"train_scored_generations.{fmt}")
    assert len(frame) == len(train) and frame["line"].tolist()[:3] == [1, 2, 3]
    assert frame.loc[0, "finish_reason"] == "length" and frame.loc[3, "score"] == 0.5
