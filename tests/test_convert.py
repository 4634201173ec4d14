"""``darsbench-convert dcrouter``: hand-written sources, bad inputs, and the real LLMRouter data."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from benchmark.app.convert import (
    DCROUTER_MODELS,
    DCROUTER_PARAMS_B,
    TEST_VIEWS_NOTE,
    ConvertError,
    convert_dcrouter,
    main,
)
from benchmark.data.loader import load_dars_dir

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "benchmark/data/datasets/llmrouter-dcrouter"

A, B, C = "m-a", "m-b", "m-c"


def _write_src(folder: Path, train: object, test: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.json").write_text(json.dumps(train))
    (folder / "test.json").write_text(json.dumps(test))
    return folder


def _small(tmp_path: Path) -> Path:
    train = [
        {"question": "What is 2+2?", "scores": {A: 1.0, B: 0.0, C: 1.0}, "cluster_id": 0},
        {"question": "Capital of France?", "scores": {B: 1.0, A: 0.5, C: 0.0}, "cluster_id": 2},
        {"question": "Spell 'cat'.", "scores": {C: 0.25, B: 1, A: 0}, "cluster_id": 1},
    ]
    test = [
        {"question": "What is 3+3?", "scores": {A: 0.0, B: 1.0, C: 0.75}},
        {"question": "Capital of Spain?", "scores": {A: 1.0, B: 1.0, C: 0.0}},
    ]
    return _write_src(tmp_path / "src", train, test)


def _costs(tmp_path: Path, table: dict) -> str:
    path = tmp_path / "costs.json"
    path.write_text(json.dumps(table))
    return str(path)


def test_small_source_round_trips_exact_arrays(tmp_path):
    src = _small(tmp_path)
    costs = _costs(tmp_path, {A: 0.5, B: 2.0, C: 1.0, "unused": 9.0})
    rep = convert_dcrouter(src, tmp_path / "data", cost_proxy=costs, name="toy")
    assert (rep.n_train, rep.n_test, rep.n_train_rows, rep.n_test_rows) == (3, 2, 9, 12)
    ds = load_dars_dir(tmp_path / "data", "toy", use_cache=False)
    assert ds.models == (A, B, C)  # key order of the first item (not the SOURCE.md pool)
    assert ds.train.score.shape == (3, 3, 1, 1) and ds.train.present.all()
    np.testing.assert_array_equal(
        ds.train.score[:, :, 0, 0], [[1.0, 0.0, 1.0], [0.5, 1.0, 0.0], [0.0, 1.0, 0.25]]
    )
    np.testing.assert_array_equal(ds.train.cost[:, :, 0, 0], np.tile([0.5, 2.0, 1.0], (3, 1)))
    want_test = [[0.0, 1.0, 0.75], [1.0, 1.0, 0.0]]
    for block, view in ((ds.test_rewrite, 0), (ds.test_decoding, -1)):
        assert block.score.shape == (2, 3, 1, 1) and block.present.all()
        assert block.view_ids.tolist() == [view] and block.decode_ids.tolist() == [0]
        np.testing.assert_array_equal(block.score[:, :, 0, 0], want_test)
    assert ds.train_queries["query_id"].tolist() == ["train-00000", "train-00001", "train-00002"]
    assert ds.test_queries["query_id"].tolist() == ["test-00000", "test-00001"]
    assert ds.train_queries["original_question"].tolist()[1] == "Capital of France?"
    assert ds.test_queries["text"].tolist()[0] == "What is 3+3?"
    meta = json.loads((tmp_path / "data/toy/metadata.json").read_text())
    assert meta["models"] == [A, B, C] and meta["test_views"] == TEST_VIEWS_NOTE
    assert meta["cost_proxy"] == f"json:{costs}" and meta["cost_per_call"] == {A: 0.5, B: 2.0, C: 1.0}
    rows = [json.loads(x) for x in (tmp_path / "data/toy/train_scored_generations.jsonl").read_text().splitlines()]
    assert [r["cluster_id"] for r in rows[::3]] == [0, 2, 1]
    assert [r["score_type"] for r in rows[6:9]] == ["binary", "binary", "f1"]
    assert all(r["prompt_variant_id"] == 0 and r["decode_id"] == 0 and "usage" not in r for r in rows)


def test_cost_proxies_uniform_and_params(tmp_path):
    src = _small(tmp_path)
    rep = convert_dcrouter(src, tmp_path / "data", cost_proxy="uniform", name="u")
    assert rep.costs == {A: 0.0, B: 0.0, C: 0.0}
    assert json.loads((tmp_path / "data/u/metadata.json").read_text())["cost_proxy"] == "uniform"
    with pytest.raises(ConvertError, match="no parameter count"):  # toy model names: params unknown
        convert_dcrouter(src, tmp_path / "data", cost_proxy="params")
    with pytest.raises(ConvertError, match=r"no cost for models \['m-c'\]"):
        convert_dcrouter(src, tmp_path / "data", cost_proxy=_costs(tmp_path, {A: 1, B: 2}))
    with pytest.raises(ConvertError, match="neither"):
        convert_dcrouter(src, tmp_path / "data", cost_proxy="tokens")
    # The CLI needs an explicit proxy (no default).
    with pytest.raises(SystemExit):
        main(["dcrouter", "--src", str(src), "--out", str(tmp_path / "data")])


def test_params_proxy_uses_source_pool_order(tmp_path):
    rev = list(reversed(DCROUTER_MODELS))  # item key order must not decide the pool order
    item = {"question": "q", "scores": {m: 1.0 for m in rev}, "cluster_id": 0}
    src = _write_src(tmp_path / "src", [item], [{"question": "t", "scores": {m: 0.0 for m in rev}}])
    convert_dcrouter(src, tmp_path / "data", cost_proxy="params")
    meta = json.loads((tmp_path / "data/dcrouter/metadata.json").read_text())
    assert meta["models"] == list(DCROUTER_MODELS)
    assert [meta["model_info"][m]["params_b"] for m in DCROUTER_MODELS] == [8, 7, 70, 51, 7, 9, 8, 7, 49]
    ds = load_dars_dir(tmp_path / "data", "dcrouter", use_cache=False)
    np.testing.assert_array_equal(ds.train.cost[0, :, 0, 0], [DCROUTER_PARAMS_B[m] for m in DCROUTER_MODELS])


@pytest.mark.parametrize(
    ("split", "bad", "index", "field", "detail"),
    [
        ("train", {"scores": {A: 1.0, B: 0.0, C: 1.0}}, 1, "question", "required field is missing"),
        ("train", {"question": "  ", "scores": {A: 1.0, B: 0.0, C: 1.0}}, 1, "question", "empty"),
        ("test", {"question": "q"}, 1, "scores", "required field is missing"),
        ("train", {"question": "q", "scores": {A: 1.5, B: 0.0, C: 1.0}}, 1, f"scores.{A}", "outside [0, 1]"),
        ("train", {"question": "q", "scores": {A: 1.0, B: -0.1, C: 1.0}}, 1, f"scores.{B}", "outside [0, 1]"),
        ("test", {"question": "q", "scores": {A: float("nan"), B: 0.0, C: 1.0}}, 1, f"scores.{A}", "not finite"),
        ("test", {"question": "q", "scores": {A: "1", B: 0.0, C: 1.0}}, 1, f"scores.{A}", "not a number"),
        ("train", {"question": "q", "scores": {A: 1.0, B: 0.0}}, 1, "scores", "missing ['m-c']"),
        ("test", {"question": "q", "scores": {A: 1.0, B: 0.0, C: 1.0, "m-d": 0.0}}, 1, "scores", "unexpected ['m-d']"),
        ("train", ["not", "an", "object"], 1, "<item>", "expected a JSON object"),
    ],
)
def test_bad_items_raise_with_file_item_and_field(tmp_path, split, bad, index, field, detail):
    good = {"question": "ok", "scores": {A: 1.0, B: 0.0, C: 1.0}}
    train, test = [good, good], [good, good]
    (train if split == "train" else test)[index] = bad
    src = _write_src(tmp_path / "src", train, test)
    with pytest.raises(ConvertError) as info:
        convert_dcrouter(src, tmp_path / "data", cost_proxy="uniform")
    err = info.value
    assert Path(err.path).name == f"{split}.json" and err.index == index and err.field == field
    assert detail in str(err) and f"{split}.json item {index}: field '{field}'" in str(err)
    assert "1 of 2 items" in str(err)
    assert not (tmp_path / "data").exists()  # nothing written


def test_problems_are_counted_and_drop_invalid_reports_them(tmp_path, capsys):
    good = {"question": "ok", "scores": {A: 1.0, B: 0.0, C: 1.0}}
    train = [good, {"question": "x", "scores": {A: 2.0, B: 0.0, C: 1.0}}, good, {"scores": {}}]
    src = _write_src(tmp_path / "src", train, [good])
    with pytest.raises(ConvertError, match=r"3 problem\(s\) in train.json: 2 of 4 items") as info:
        convert_dcrouter(src, tmp_path / "data", cost_proxy="uniform")
    assert info.value.n_problems == 3
    assert main(["dcrouter", "--src", str(src), "--out", str(tmp_path / "data"), "--cost-proxy", "uniform"]) == 2
    assert "train.json item 1: field 'scores.m-a'" in capsys.readouterr().err
    rc = main(["dcrouter", "--src", str(src), "--out", str(tmp_path / "data"), "--cost-proxy", "uniform",
               "--drop-invalid"])
    out = capsys.readouterr()
    assert rc == 0 and "dropped 3 problem(s)" in out.err and "train.json item 3: field 'question'" in out.err
    ds = load_dars_dir(tmp_path / "data", "dcrouter", use_cache=False)
    assert ds.train.n_queries == 2
    meta = json.loads((tmp_path / "data/dcrouter/metadata.json").read_text())
    assert len(meta["dropped_items"]) == 3


def test_whole_file_problems(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.json").write_text("{not json")
    with pytest.raises(ConvertError, match="train.json: malformed JSON"):
        convert_dcrouter(src, tmp_path / "data", cost_proxy="uniform")
    (src / "train.json").write_text(json.dumps({"question": "q"}))
    with pytest.raises(ConvertError, match="expected a JSON list"):
        convert_dcrouter(src, tmp_path / "data", cost_proxy="uniform")
    (src / "train.json").write_text("[]")
    with pytest.raises(ConvertError, match="train.json: the file has no items"):
        convert_dcrouter(src, tmp_path / "data", cost_proxy="uniform")
    (src / "train.json").write_text(json.dumps([{"question": "q", "scores": {A: 1.0}}]))
    with pytest.raises(ConvertError, match="test.json: file not found"):
        convert_dcrouter(src, tmp_path / "data", cost_proxy="uniform")


def test_real_dcrouter_converts_loads_and_runs(tmp_path, monkeypatch):
    assert {"train.json", "test.json", "LICENSE", "SOURCE.md"} <= {p.name for p in REAL.iterdir()}  # shipped
    from hydra import compose, initialize_config_dir

    from benchmark.app.cli import run_from_config

    data = tmp_path / "data"
    rep = convert_dcrouter(REAL, data, cost_proxy="params")
    assert rep.dropped == [] and rep.models == list(DCROUTER_MODELS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the converted data loads without any DataWarning
        ds = load_dars_dir(data, "dcrouter", use_cache=False)
    assert ds.train.score.shape == (5608, 9, 1, 1) and ds.train.present.all()
    assert ds.test_rewrite.score.shape == (500, 9, 1, 1) and ds.test_rewrite.present.all()
    np.testing.assert_array_equal(ds.test_rewrite.score, ds.test_decoding.score)
    assert ds.models == DCROUTER_MODELS
    assert ds.model_table["params_b"].tolist() == [8, 7, 70, 51, 7, 9, 8, 7, 49]
    src_train = json.loads((REAL / "train.json").read_text())
    np.testing.assert_array_equal(
        ds.train.score[:, :, 0, 0], [[it["scores"][m] for m in DCROUTER_MODELS] for it in src_train]
    )

    cache = tmp_path / "cache"
    monkeypatch.setenv("DARSBENCH_CACHE", str(cache))
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["dataset=dars", "dataset.name=dcrouter", f"dataset.data_dir={data}", "router=knn",
                       "supervision=single_shot", "supervision.n_draws=2", "features=tfidf",
                       f"cache_dir={cache}"],
        )
    res = run_from_config(cfg, tmp_path / "run", "knn")
    b, m = res["baselines"], res["metrics"]
    assert res["dataset"]["n_train_queries"] == 5608 and res["dataset"]["n_test_queries"] == 500
    assert b["oracle"]["rU"] >= b["best_fixed"]["rU"] >= b["random"]["rU"] - 0.02
    assert b["oracle"]["rU"] >= m["rU"]["mean"]
    assert 0.0 <= m["rQ"]["mean"] <= 1.0
    assert m["rU"]["mean"] == pytest.approx(m["dU"]["mean"])  # both views hold the same observation
    assert m["rU"]["std"] == pytest.approx(0.0)  # one observation per pair: every draw is the same


def test_cli_default_src_is_the_shipped_copy(tmp_path, capsys):
    assert main(["dcrouter", "--out", str(tmp_path / "d"), "--cost-proxy", "uniform"]) == 0
    out = capsys.readouterr().out
    assert "train: 5608 queries x 9 models = 50472 rows" in out and "test:  500 queries" in out
    assert (tmp_path / "d" / "dcrouter" / "metadata.json").is_file()
