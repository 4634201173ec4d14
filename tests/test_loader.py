"""Tests for the DARS JSONL loader (benchmark/data/loader.py). Every file is really written to disk."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.data import loader
from benchmark.data.loader import (
    TEST_FILE,
    TRAIN_FILE,
    DataError,
    DataWarning,
    check_release_facts,
    load_dars_dir,
    read_dars_rows,
    write_dars_jsonl,
)

NAME = "toy"


def row(split: str, q: str, m: str, v: int, s: int, score: float, cost: float, **extra) -> dict:
    r = {
        "dataset": NAME,
        "split": split,
        "query_id": q,
        "model": m,
        "score": score,
        "cost": cost,
        "prompt_variant_id": v,
        "decode_id": s,
    }
    r.update(extra)
    return r


def base_train() -> list[dict]:
    """2 queries (qB first in the file) x 2 models x 2 rewrites x 2 decodes = 16 rows."""
    rows = []
    for qi, q in enumerate(["qB", "qA"]):
        for mi, m in enumerate(["zeta", "alpha"]):
            for v in (0, 1):
                for s in (0, 1):
                    score = 0.1 * (qi * 8 + mi * 4 + v * 2 + s) / 2
                    cost = 0.001 * (1 + qi * 8 + mi * 4 + v * 2 + s)
                    rows.append(row("train", q, m, v, s, score, cost, original_question=f"What is {q}?"))
    return rows


def base_test() -> list[dict]:
    """2 test queries x 2 models: 2 rewrites x 1 decode, and the original x 3 decodes."""
    rows = []
    for q in ("t1", "t2"):
        for m in ("alpha", "zeta"):
            for v in (0, 1):
                rows.append(row("test", q, m, v, 0, 1.0, 0.002, observation_type="prompt_variation",
                                original_question=f"Test {q}?"))
            for s in (0, 1, 2):
                rows.append(row("test", q, m, -1, s, 0.0, 0.003, observation_type="decoding_variation",
                                original_question=f"Test {q}?"))
    return rows


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def write_rows(folder: Path, train: list[dict] | None, test: list[dict] | None, metadata=None) -> Path:
    if train is not None:
        write_lines(folder / TRAIN_FILE, [json.dumps(r) for r in train])
    if test is not None:
        write_lines(folder / TEST_FILE, [json.dumps(r) for r in test])
    if metadata is not None:
        (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


def load(tmp_path: Path, **kw):
    kw.setdefault("cache_dir", tmp_path / "cache")
    return load_dars_dir(tmp_path / "data", NAME, **kw)


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return write_rows(tmp_path / "data" / NAME, base_train(), base_test())


# ------------------------------------------------------------------------------- round trip


def test_round_trip_exact_arrays_with_a_missing_observation(tmp_path: Path) -> None:
    rows = [
        row("train", "q1", "mB", 0, 0, 1.0, 0.5),
        row("train", "q1", "mB", 0, 1, 0.0, 0.25),
        row("train", "q1", "mA", 3, 0, 0.75, 2.0),
        row("train", "q0", "mA", 0, 1, 0.5, 0.0),
        # (q1, mA, 0, 0), (q1, mA, 0, 1), (q1, mA, 3, 1), ... absent
    ]
    test = [
        row("test", "t", "mA", 2, 0, 1.0, 0.1, observation_type="prompt_variation"),
        row("test", "t", "mB", -1, 7, 0.0, 0.2, observation_type="decoding_variation"),
    ]
    write_rows(tmp_path / "data" / NAME, rows, test)
    with pytest.warns(DataWarning, match="queries have no question text"):
        ds = load(tmp_path)
    assert ds.train_queries["text"].tolist() == ["", ""]
    assert ds.train_queries["original_question"].tolist() == [None, None]
    assert ds.models == ("mA", "mB")  # no metadata: sorted
    assert ds.train_queries["query_id"].tolist() == ["q1", "q0"]  # first appearance
    b = ds.train
    assert b.view_ids.tolist() == [0, 3] and b.decode_ids.tolist() == [0, 1]
    assert b.score.shape == (2, 2, 2, 2)
    nan = np.nan
    want_score = np.array(
        [  # q1
            [[[nan, nan], [0.75, nan]],  # mA: views 0, 3 x decodes 0, 1
             [[1.0, 0.0], [nan, nan]]],  # mB
            # q0
            [[[nan, 0.5], [nan, nan]],
             [[nan, nan], [nan, nan]]],
        ]
    )  # fmt: skip
    want_cost = np.array(
        [
            [[[nan, nan], [2.0, nan]], [[0.5, 0.25], [nan, nan]]],
            [[[nan, 0.0], [nan, nan]], [[nan, nan], [nan, nan]]],
        ]
    )
    np.testing.assert_array_equal(b.score, want_score)
    np.testing.assert_array_equal(b.cost, want_cost)
    np.testing.assert_array_equal(b.present, ~np.isnan(want_score))
    assert b.n_observations == 4
    assert ds.test_rewrite.score.shape == (1, 2, 1, 1)
    assert ds.test_decoding.view_ids.tolist() == [-1] and ds.test_decoding.decode_ids.tolist() == [7]
    np.testing.assert_array_equal(ds.test_decoding.present[0, :, 0, 0], [False, True])
    np.testing.assert_array_equal(ds.test_rewrite.score[0, :, 0, 0], [1.0, nan])
    assert ds.cost_scale is None  # raw USD
    assert ds.train_truth is None and ds.test_truth is None


def test_writer_round_trip_from_dataframe(tmp_path: Path) -> None:
    train = pd.DataFrame(base_train())
    train["gold"] = [None] * (len(train) - 1) + ["42"]  # None cells become absent fields
    folder = write_dars_jsonl(train, base_test(), tmp_path / "data", NAME, metadata={"models": ["zeta", "alpha"]})
    assert folder == tmp_path / "data" / NAME
    first = json.loads((folder / TRAIN_FILE).read_text().splitlines()[0])
    assert "gold" not in first
    ds = load(tmp_path)
    assert ds.models == ("zeta", "alpha")
    assert ds.train.n_observations == 16
    assert ds.train_queries["gold"].tolist() == [None, "42"]


def test_writer_rejects_nan(tmp_path: Path) -> None:
    rows = base_train()
    rows[0]["score"] = float("nan")
    with pytest.raises(ValueError):
        write_dars_jsonl(rows, base_test(), tmp_path, NAME)


def test_train_block_values_and_query_table(data_dir: Path, tmp_path: Path) -> None:
    ds = load(tmp_path)
    assert ds.models == ("alpha", "zeta")
    assert ds.train_queries["query_id"].tolist() == ["qB", "qA"]
    # qA (2nd query), zeta (file mi=0 -> pool index 1), v=1, s=0: score 0.1*(8+0+2+0)/2
    assert ds.train.score[1, 1, 1, 0] == pytest.approx(0.5)
    assert ds.train.cost[1, 1, 1, 0] == pytest.approx(0.011)
    assert ds.train.present.all()
    assert ds.train_queries["text"].tolist() == ["What is qB?", "What is qA?"]
    assert list(ds.train_queries.columns[:4]) == ["query_id", "text", "original_question", "context"]


def test_test_views_split_and_share_query_order(data_dir: Path, tmp_path: Path) -> None:
    test = base_test()
    test = [r for r in test if not (r["query_id"] == "t1" and r["decode_id"] == 2)]
    write_rows(data_dir, None, test)
    ds = load(tmp_path)
    assert ds.test_queries["query_id"].tolist() == ["t1", "t2"]
    r, d = ds.test_rewrite, ds.test_decoding
    assert r.view_ids.tolist() == [0, 1] and r.decode_ids.tolist() == [0]
    assert d.view_ids.tolist() == [-1] and d.decode_ids.tolist() == [0, 1, 2]
    assert r.n_queries == d.n_queries == 2
    assert r.present.all()
    assert not d.present[0, :, :, 2].any() and d.present[0, :, :, :2].all() and d.present[1].all()
    assert np.isnan(d.score[0, :, :, 2]).all()  # t1 has no decode 2: masked
    np.testing.assert_array_equal(d.score[1], 0.0)


def test_a_test_query_without_one_view_is_rejected(data_dir: Path, tmp_path: Path) -> None:
    """Issue 11: it used to load, then end the run in the oracle baseline with no file or query."""
    test = [r for r in base_test() if not (r["query_id"] == "t1" and r["observation_type"] == "decoding_variation")]
    write_rows(data_dir, None, test)
    with pytest.raises(DataError, match=r"test_scored_generations.jsonl: field 'observation_type': "
                       r"test query 't1' has no 'decoding_variation' rows \(1 test queries lack this view\)"):
        load(tmp_path)


def test_folder_given_directly(data_dir: Path, tmp_path: Path) -> None:
    ds = load_dars_dir(data_dir, cache_dir=tmp_path / "cache")
    assert ds.name == NAME
    with pytest.warns(DataWarning, match="rows say dataset 'toy', loaded as 'renamed'"):
        assert load_dars_dir(data_dir, "renamed", use_cache=False).name == "renamed"


# ------------------------------------------------------------------------------- pool order


def test_pool_order_from_metadata_and_model_table(data_dir: Path, tmp_path: Path) -> None:
    meta = {
        "dataset": NAME,
        "models": ["zeta", "alpha"],
        "model_info": {"zeta": {"price_in": 0.1, "price_out": 0.4, "params_b": None},
                       "alpha": {"price_in": 1.0, "price_out": 2.0, "params_b": 70}},
    }
    (data_dir / "metadata.json").write_text(json.dumps(meta))
    ds = load(tmp_path)
    assert ds.models == ("zeta", "alpha")
    assert ds.model_table["model"].tolist() == ["zeta", "alpha"]
    np.testing.assert_array_equal(ds.model_table["price_in"], [0.1, 1.0])
    np.testing.assert_array_equal(ds.model_table["params_b"], [np.nan, 70.0])
    # the pool axis follows metadata: zeta is model 0 now
    assert ds.train.score[1, 0, 1, 0] == pytest.approx(0.5)
    assert ds.source["metadata"]["models"] == ["zeta", "alpha"]


def test_pool_order_sorted_without_metadata(data_dir: Path, tmp_path: Path) -> None:
    ds = load(tmp_path)
    assert ds.models == ("alpha", "zeta")
    assert list(ds.model_table.columns) == ["model"]


def test_metadata_model_without_data_is_dropped_with_warning(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "metadata.json").write_text(json.dumps({"models": ["ghost", "zeta", "alpha"]}))
    with pytest.warns(DataWarning, match="ghost"):
        ds = load(tmp_path)
    assert ds.models == ("zeta", "alpha")


def test_data_model_missing_from_metadata(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "metadata.json").write_text(json.dumps({"models": ["zeta"]}))
    with pytest.raises(DataError) as exc:
        load(tmp_path)
    e = exc.value
    assert (Path(e.path).name, e.line, e.field) == (TRAIN_FILE, 5, "model")
    assert f"{NAME}/{TRAIN_FILE}:5: field 'model'" in str(e) and "'alpha'" in str(e)


def test_bad_metadata(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "metadata.json").write_text(json.dumps({"models": ["zeta", "zeta"]}))
    with pytest.raises(DataError, match=r"metadata.json: field 'models'"):
        load(tmp_path)
    (data_dir / "metadata.json").write_text(json.dumps({"model_info": {"zeta": {"price_in": -1}}}))
    with pytest.raises(DataError, match=r"field 'model_info.zeta.price_in'"):
        load(tmp_path)


# ------------------------------------------------------------------------------- cost, text, extras


def test_usage_cost_fallback_and_top_level_wins(data_dir: Path, tmp_path: Path) -> None:
    train = base_train()
    del train[0]["cost"]
    train[0]["usage"] = {"prompt_tokens": 3, "cost": 0.125}
    train[1]["cost"] = None
    train[1]["usage"] = {"cost": 0.25}
    train[2]["usage"] = {"cost": 99.0}  # top-level cost 0.003 wins
    write_rows(data_dir, train, None)
    ds = load(tmp_path)
    # rows 0..2: qB, zeta (pool 1), v=0, s=0 / s=1 / v=1 s=0
    assert ds.train.cost[0, 1, 0, 0] == 0.125
    assert ds.train.cost[0, 1, 0, 1] == 0.25
    assert ds.train.cost[0, 1, 1, 0] == pytest.approx(0.003)
    assert ds.source["n_cost_from_usage"] == 2


def test_extra_fields_kept(data_dir: Path, tmp_path: Path) -> None:
    train = base_train()
    long_passage = "P" * 1500
    for r in train:
        r["my_extra"] = {"anything": [1, 2]}
        r["finish_reason"] = "stop"
        del r["original_question"]
        r["question"] = f"Q {r['query_id']}"
        r["input_question"] = f"rewrite {r['prompt_variant_id']} of {r['query_id']}"
        r["passage"] = long_passage
        r["gold_answer"] = ["span a", "span b"]
    write_rows(data_dir, train, None)
    ds = load(tmp_path)
    assert ds.source["extra_fields"] == ["my_extra"]
    t = ds.train_queries
    assert t["original_question"].tolist() == ["Q qB", "Q qA"]  # from `question`
    assert t["context"].tolist() == [long_passage] * 2  # full context kept, from `passage`
    assert t["text"].iat[0] == "P" * 1200 + "\nQuestion: Q qB"
    assert t["gold"].iat[0] == '["span a", "span b"]'  # non-string values JSON-encoded
    assert t["input_question"].iat[0] == "rewrite 0 of qB"  # smallest prompt_variant_id
    rows = read_dars_rows(data_dir / TRAIN_FILE)
    assert len(rows) == 16 and rows["line"].tolist()[:2] == [1, 2]
    assert rows["my_extra.anything"].iat[0] == [1, 2]
    assert rows["finish_reason"].iat[0] == "stop"


def test_text_without_question_is_the_context(data_dir: Path, tmp_path: Path) -> None:
    train = base_train()
    for r in train:
        del r["original_question"]
        r["context"] = "C" * 1300 if r["query_id"] == "qB" else ""
    write_rows(data_dir, train, None)
    with pytest.warns(DataWarning, match="2 of 2 queries have no question text"):
        ds = load(tmp_path)
    assert ds.train_queries["text"].tolist() == ["C" * 1200, ""]
    assert ds.train_queries["context"].tolist() == ["C" * 1300, ""]


def test_blank_lines_and_line_separator_in_strings(data_dir: Path, tmp_path: Path) -> None:
    lines = [json.dumps(r, ensure_ascii=False) for r in base_train()]
    lines[0] = json.dumps({**base_train()[0], "original_question": "a\u2028b"}, ensure_ascii=False)
    lines.insert(3, "   ")
    lines.insert(5, "")
    write_lines(data_dir / TRAIN_FILE, lines)
    with pytest.warns(DataWarning, match="'original_question' differs between the rows of 1 queries"):
        ds = load(tmp_path)
    assert ds.train.n_observations == 16
    assert ds.train_queries["original_question"].iat[0] == "a\u2028b"
    # a bad row after the blank lines reports its physical line number
    lines[10] = lines[10].replace('"score": ', '"score": 7, "x": ')
    write_lines(data_dir / TRAIN_FILE, lines)
    with pytest.raises(DataError) as exc:
        load(tmp_path)
    assert exc.value.line == 11 and exc.value.field == "score"


def test_integer_query_ids_become_strings(data_dir: Path, tmp_path: Path) -> None:
    train = base_train()
    for r in train:
        r["query_id"] = 7 if r["query_id"] == "qB" else 3
    write_rows(data_dir, train, None)
    ds = load(tmp_path)
    assert ds.train_queries["query_id"].tolist() == ["7", "3"]


# ------------------------------------------------------------------------------- validation


def _bad_train(i: int, **changes) -> list[str]:
    rows = base_train()
    for k, v in changes.items():
        if v is KeyError:
            del rows[i][k]
        else:
            rows[i][k] = v
    return [json.dumps(r) for r in rows]


def _bad_test(i: int, **changes) -> list[str]:
    rows = base_test()
    for k, v in changes.items():
        if v is KeyError:
            del rows[i][k]
        else:
            rows[i][k] = v
    return [json.dumps(r) for r in rows]


def _replace_line(lines: list[str], i: int, text: str) -> list[str]:
    lines = list(lines)
    lines[i] = text
    return lines


_GOOD_TRAIN = [json.dumps(r) for r in base_train()]
_GOOD_TEST = [json.dumps(r) for r in base_test()]

# (id, file, lines, expected line, expected field, message fragment)
BAD_CASES = [
    ("malformed-json", TRAIN_FILE, _replace_line(_GOOD_TRAIN, 2, '{"dataset": "toy",'), 3, None, "malformed JSON"),
    ("not-an-object", TRAIN_FILE, _replace_line(_GOOD_TRAIN, 4, "[1, 2]"), 5, None, "expected a JSON object"),
    ("missing-field", TRAIN_FILE, _bad_train(5, decode_id=KeyError), 6, "decode_id", "required field is missing"),
    ("missing-model", TEST_FILE, _bad_test(2, model=KeyError), 3, "model", "required field is missing"),
    ("null-field", TRAIN_FILE, _bad_train(1, query_id=None), 2, "query_id", "null"),
    ("score-above-1", TRAIN_FILE, _bad_train(16 - 1, score=1.5), 16, "score", "value 1.5 is outside [0, 1]"),
    ("score-negative", TRAIN_FILE, _bad_train(0, score=-0.5), 1, "score", "outside [0, 1]"),
    ("score-nan", TRAIN_FILE, _bad_train(3, score=float("nan")), 4, "score", "not finite"),
    ("score-inf", TEST_FILE, _bad_test(1, score=float("inf")), 2, "score", "not finite"),
    ("score-string", TRAIN_FILE, _bad_train(2, score="1"), 3, "score", "is not a number"),
    ("score-bool", TRAIN_FILE, _bad_train(2, score=True), 3, "score", "is not a number"),
    ("cost-negative", TRAIN_FILE, _bad_train(7, cost=-0.01), 8, "cost", "value -0.01 is negative"),
    ("cost-inf", TEST_FILE, _bad_test(4, cost=float("inf")), 5, "cost", "not finite"),
    ("cost-missing", TRAIN_FILE, _bad_train(6, cost=KeyError), 7, "cost", "no 'usage.cost'"),
    ("cost-null", TRAIN_FILE, _bad_train(6, cost=None), 7, "cost", "null is not allowed and there is no 'usage.cost'"),
    ("usage-cost-negative", TRAIN_FILE, _bad_train(6, cost=KeyError, usage={"cost": -1}), 7, "usage.cost", "negative"),
    ("usage-cost-string", TEST_FILE, _bad_test(6, cost=None, usage={"cost": "0.1"}), 7, "usage.cost", "not a number"),
    ("variant-float", TRAIN_FILE, _bad_train(9, prompt_variant_id=1.5), 10, "prompt_variant_id", "not an integer"),
    ("decode-string", TRAIN_FILE, _bad_train(9, decode_id="0"), 10, "decode_id", "not an integer"),
    ("bad-observation-type", TEST_FILE, _bad_test(3, observation_type="rewrite"), 4, "observation_type", "'rewrite'"),
    ("missing-observation-type", TEST_FILE, _bad_test(6, observation_type=KeyError), 7, "observation_type", "missing"),
    ("wrong-split-value", TRAIN_FILE, _bad_train(4, split="test"), 5, "split", "expected 'train'"),
    ("mixed-dataset", TRAIN_FILE, _bad_train(8, dataset="other"), 9, "dataset", "one file holds one dataset"),
    ("mixed-query-id-types", TRAIN_FILE, _bad_train(8, query_id=5), 9, "query_id", "one id type"),
    ("test-model-not-in-train", TEST_FILE, _bad_test(5, model="newcomer"), 6, "model", "no training observations"),
    ("model-empty", TRAIN_FILE, _bad_train(3, model=""), 4, "model", "value '' is empty"),
    ("model-blank", TEST_FILE, _bad_test(2, model="  "), 3, "model", "is empty"),
    ("query-id-empty", TRAIN_FILE, _bad_train(6, query_id=""), 7, "query_id", "is empty"),
    ("duplicate-train", TRAIN_FILE, _GOOD_TRAIN[:12] + [_GOOD_TRAIN[1]] + _GOOD_TRAIN[12:], 13,
     "query_id, model, prompt_variant_id, decode_id", "first seen on line 2"),
    ("duplicate-test", TEST_FILE, _GOOD_TEST + [_GOOD_TEST[4]], len(_GOOD_TEST) + 1,
     "query_id, model, prompt_variant_id, decode_id", "first seen on line 5"),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_validation_errors_name_file_line_field(data_dir: Path, tmp_path: Path, case) -> None:
    _, fname, lines, line, field, fragment = case
    write_lines(data_dir / fname, lines)
    with pytest.raises(DataError) as exc:
        load(tmp_path, use_cache=False)
    e = exc.value
    msg = str(e)
    assert Path(e.path) == data_dir / fname
    assert e.line == line and e.field == field, msg
    assert msg.startswith(f"{NAME}/{fname}:{line}: "), msg
    if field is not None:
        assert f"field '{field}'" in msg
    assert fragment in msg
    assert isinstance(e, ValueError)


def test_duplicate_names_both_lines(data_dir: Path, tmp_path: Path) -> None:
    write_lines(data_dir / TRAIN_FILE, _GOOD_TRAIN + [_GOOD_TRAIN[0]])
    with pytest.raises(DataError) as exc:
        load(tmp_path)
    assert (exc.value.line, exc.value.other_line) == (17, 1)
    assert "query_id='qB', model='zeta', prompt_variant_id=0, decode_id=0" in str(exc.value)


def test_earliest_bad_row_is_reported(data_dir: Path, tmp_path: Path) -> None:
    rows = base_train()
    del rows[6]["model"]
    del rows[2]["cost"]
    write_rows(data_dir, rows, None)
    with pytest.raises(DataError) as exc:
        load(tmp_path)
    assert (exc.value.line, exc.value.field) == (3, "cost")


def test_data_error_pickles(data_dir: Path, tmp_path: Path) -> None:
    import pickle

    write_lines(data_dir / TRAIN_FILE, _GOOD_TRAIN + [_GOOD_TRAIN[0]])
    with pytest.raises(DataError) as exc:
        load(tmp_path)
    back = pickle.loads(pickle.dumps(exc.value))
    assert str(back) == str(exc.value)
    assert (back.path, back.line, back.field, back.other_line) == (exc.value.path, 17, exc.value.field, 1)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset folder not found"):
        load_dars_dir(tmp_path / "nowhere", "gpqa", use_cache=False)


@pytest.mark.parametrize("content", [None, "", "\n  \n"])
def test_empty_split(data_dir: Path, tmp_path: Path, content) -> None:
    path = data_dir / TEST_FILE
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    with pytest.raises(DataError, match=rf"{NAME}/{TEST_FILE}: split 'test' is empty") as exc:
        load(tmp_path)
    assert exc.value.line is None and Path(exc.value.path) == path


def test_test_file_needs_both_views(data_dir: Path, tmp_path: Path) -> None:
    write_rows(data_dir, None, [r for r in base_test() if r["observation_type"] == "prompt_variation"])
    with pytest.raises(DataError, match="no 'decoding_variation' rows") as exc:
        load(tmp_path)
    assert exc.value.field == "observation_type"


def test_query_in_both_splits_warns(data_dir: Path, tmp_path: Path) -> None:
    test = base_test()
    for r in test:
        if r["query_id"] == "t1":
            r["query_id"] = "qA"
    write_rows(data_dir, None, test)
    with pytest.warns(DataWarning, match="1 query_id\\(s\\) appear in both"):
        load(tmp_path)


def test_view_sign_convention_warns(data_dir: Path, tmp_path: Path) -> None:
    test = base_test()
    for r in test:
        if r["observation_type"] == "decoding_variation":
            r["prompt_variant_id"] = 9
    write_rows(data_dir, None, test)
    with pytest.warns(DataWarning, match="decoding_variation rows have prompt_variant_id >= 0"):
        ds = load(tmp_path)
    assert ds.test_decoding.view_ids.tolist() == [9]


def test_clean_data_gives_no_warnings(data_dir: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(tmp_path)


# ------------------------------------------------------------------------------- cache


def test_cache_hit_skips_parsing(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    truth = pd.DataFrame(
        [("train", q, m, 0.5, 0.01, 0.1) for q in ("qA", "qB") for m in ("zeta", "alpha")]
        + [("test", q, m, 0.25, 0.02, 0.0) for q in ("t1", "t2") for m in ("alpha", "zeta")],
        columns=["split", "query_id", "model", "mu_q", "mu_c", "sigma_q"],
    )
    truth.to_csv(data_dir / "truth.csv", index=False)
    cold = load(tmp_path)
    assert cold.source["from_cache"] is False
    assert len(cold.source["paths"]) == 3

    def boom(*a, **k):
        raise AssertionError("parsed despite the cache")

    monkeypatch.setattr(loader, "parse_split", boom)
    warm = load(tmp_path)
    assert warm.source["from_cache"] is True
    assert warm.source["content_hash"] == cold.source["content_hash"]
    assert warm.models == cold.models and warm.name == cold.name
    for b in ("train", "test_rewrite", "test_decoding"):
        for a in ("score", "cost", "present", "view_ids", "decode_ids"):
            np.testing.assert_array_equal(getattr(getattr(warm, b), a), getattr(getattr(cold, b), a))
    for t in ("train_queries", "test_queries", "model_table"):
        pd.testing.assert_frame_equal(getattr(warm, t), getattr(cold, t))
    for t in ("train_truth", "test_truth"):
        np.testing.assert_array_equal(getattr(warm, t).mu_q, getattr(cold, t).mu_q)

    # changed content -> different hash -> parses again
    write_lines(data_dir / TRAIN_FILE, _GOOD_TRAIN[:-1])
    with pytest.raises(AssertionError, match="parsed despite the cache"):
        load(tmp_path)


def test_cache_replays_warnings(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "metadata.json").write_text(json.dumps({"models": ["ghost", "zeta", "alpha"]}))
    with pytest.warns(DataWarning, match="ghost"):
        load(tmp_path)
    with pytest.warns(DataWarning, match="ghost"):
        assert load(tmp_path).source["from_cache"] is True


def test_cache_default_dir_and_opt_out(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DARSBENCH_CACHE", str(tmp_path / "envcache"))
    ds = load_dars_dir(tmp_path / "data", NAME)
    assert ds.source["cache_path"].startswith(str(tmp_path / "envcache"))
    assert (Path(ds.source["cache_path"]) / "meta.json").is_file()
    ds = load_dars_dir(tmp_path / "data", NAME, cache_dir=tmp_path / "other", use_cache=False)
    assert ds.source["from_cache"] is False and not (tmp_path / "other").exists()


def test_damaged_cache_is_rebuilt(data_dir: Path, tmp_path: Path) -> None:
    first = load(tmp_path)
    (Path(first.source["cache_path"]) / "train.score.npy").write_bytes(b"garbage")
    with pytest.warns(DataWarning, match="unreadable cache"):
        again = load(tmp_path)
    assert again.source["from_cache"] is False
    assert load(tmp_path).source["from_cache"] is True


# ------------------------------------------------------------------------------- truth.csv


def test_truth_aligned_to_block_order(data_dir: Path, tmp_path: Path) -> None:
    rows = [("test", "t2", "zeta", 0.9, 0.04, 0.3), ("train", "qA", "alpha", 0.1, 0.01, 0.0),
            ("train", "qB", "zeta", 0.2, 0.02, 0.1), ("train", "qB", "alpha", 0.3, 0.03, 0.2),
            ("train", "qA", "zeta", 0.4, 0.05, 0.4), ("test", "t1", "alpha", 1.0, 0.0, 0.0),
            ("test", "t1", "zeta", 0.0, 0.0, 0.0), ("test", "t2", "alpha", 0.5, 0.0, 0.0)]  # fmt: skip
    pd.DataFrame(rows, columns=["split", "query_id", "model", "mu_q", "mu_c", "sigma_q"]).to_csv(
        data_dir / "truth.csv", index=False
    )
    ds = load(tmp_path)
    # block order: queries (qB, qA), models (alpha, zeta)
    np.testing.assert_array_equal(ds.train_truth.mu_q, [[0.3, 0.2], [0.1, 0.4]])
    np.testing.assert_array_equal(ds.train_truth.mu_c, [[0.03, 0.02], [0.01, 0.05]])
    np.testing.assert_array_equal(ds.train_truth.sigma_q, [[0.2, 0.1], [0.0, 0.4]])
    np.testing.assert_array_equal(ds.test_truth.mu_q, [[1.0, 0.0], [0.5, 0.9]])


@pytest.mark.parametrize(
    "edit, line, field, fragment",
    [
        (lambda f: f.drop(index=3), None, "query_id, model", "1 train (query, model) pairs have no row"),
        (lambda f: f.assign(query_id=f.query_id.where(f.index != 2, "nope")), 4, "query_id", "'nope'"),
        (lambda f: f.assign(mu_q=f.mu_q.where(f.index != 1, 1.5)), 3, "mu_q", "outside [0, 1]"),
        (lambda f: pd.concat([f, f.iloc[[0]]]), 6, "query_id, model", "first on line 2"),
    ],
)
def test_truth_errors(data_dir: Path, tmp_path: Path, edit, line, field, fragment) -> None:
    frame = pd.DataFrame(
        [("train", q, m, 0.5, 0.01, 0.1) for q in ("qA", "qB") for m in ("zeta", "alpha")],
        columns=["split", "query_id", "model", "mu_q", "mu_c", "sigma_q"],
    )
    edit(frame).to_csv(data_dir / "truth.csv", index=False)
    with pytest.raises(DataError) as exc:
        load(tmp_path)
    e = exc.value
    assert Path(e.path).name == "truth.csv" and e.line == line and e.field == field
    assert fragment in str(e)


# ------------------------------------------------------------------------------- release facts


def test_release_facts(tmp_path: Path) -> None:
    train = [{**r, "dataset": "gpqa"} for r in base_train()]
    test = [{**r, "dataset": "gpqa"} for r in base_test()]
    write_rows(tmp_path / "data" / "gpqa", train, test)
    with pytest.warns(DataWarning, match="official release"):
        ds = load_dars_dir(tmp_path / "data", "gpqa", cache_dir=tmp_path / "cache")
    facts = check_release_facts(ds)
    assert any("16 train rows, release has 30000" in w for w in facts)
    assert any("2 training queries, release has 200" in w for w in facts)
    assert any("scores are not 0 or 1" in w for w in facts)
    assert any("models missing" in w for w in facts)


def test_release_facts_other_name(data_dir: Path, tmp_path: Path) -> None:
    assert check_release_facts(load(tmp_path)) == []
