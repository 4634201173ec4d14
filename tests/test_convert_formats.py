"""Importers (RouterBench, generic long table) on fixtures in the published layouts, the seeded
split, and the exports (RouterBench wide layout, LLMRouter) with their round trips."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.app.convert import FORMATS, main
from benchmark.data.importers.common import ConvertError
from benchmark.data.importers.dcrouter import convert_dcrouter
from benchmark.data.importers.llmrouter import convert_llmrouter
from benchmark.data.importers.llmrouterbench import convert_llmrouterbench
from benchmark.data.importers.longtable import seeded_split
from benchmark.data.importers.routerbench import convert_routerbench, export_routerbench, query_tasks
from benchmark.data.importers.table import convert_table
from benchmark.data.loader import load_dars_dir

FIX = Path(__file__).resolve().parent / "fixtures" / "convert"
RB = FIX / "routerbench_0shot_sample.pkl"
COLS = {"query": "qid", "model": "llm", "score": "correct", "cost": "usd", "text": "question", "task": "topic"}


def _rows(folder: Path, split: str) -> list[dict]:
    return [json.loads(x) for x in (folder / f"{split}_scored_generations.jsonl").read_text().splitlines() if x.strip()]


def _pairs(ds) -> dict[tuple[str, str, str], tuple[float, float]]:
    """(split, query, model) -> (score, cost) of the single observation per pair."""
    out = {}
    for split, block, qs in (("train", ds.train, ds.train_queries), ("test", ds.test_rewrite, ds.test_queries)):
        assert block.present.sum(axis=(2, 3)).max() == 1
        for qi, q in enumerate(qs["query_id"]):
            for mi, m in enumerate(ds.models):
                out[(split, str(q), m)] = (float(block.score[qi, mi, 0, 0]), float(block.cost[qi, mi, 0, 0]))
    return out


# ----------------------------------------------------------------------------------------- RouterBench
def test_routerbench_fixture_converts_with_real_costs(tmp_path):
    rep = convert_routerbench(RB, tmp_path, name="rb", test_fraction=0.3, seed=1)
    src = pd.read_pickle(RB)
    assert len(rep.models) == 11 and rep.models[5] == "gpt-4-1106-preview"
    assert rep.n_train_queries + rep.n_test_queries == 10 and rep.duplicate_texts == 2
    # stratified by eval_name: round(0.3 * 4) = 1 of 4 mmlu, 1 of 4 gsm8k, round(0.6) = 1 of 2 mtbench
    assert rep.n_test_queries == 3
    assert any("rU == dU" in c for c in rep.cannot_know) and any("no train/test split" in c for c in rep.cannot_know)
    rows = {(r["query_id"], r["model"]): r for r in _rows(rep.folder, "train") + _rows(rep.folder, "test")}
    r = rows[("mmlu-astronomy.val.1", "claude-v1")]  # i = 1, j = 2: score (1 + 2) % 3 == 0 -> 1; cost 1e-5 * 3 * 2
    assert r["score"] == 1.0 and r["cost"] == pytest.approx(6e-5) and r["task_type"] == "mmlu-astronomy"
    assert r["output_text"] == "answer of claude-v1 to mmlu-astronomy.val.1"
    r = rows[("mtbench.0", "WizardLM/WizardLM-13B-V1.2")]  # i = 8, j = 0: round(0.1 * 8, 1)
    assert r["score"] == pytest.approx(0.8) and r["original_question"] == "Write a haiku about the sea.\n\nNow make it rhyme."
    for (q, m), row in rows.items():
        s = src.loc[src["sample_id"] == q].iloc[0]
        assert row["score"] == s[m] and row["cost"] == s[f"{m}|total_cost"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_dars_dir(tmp_path, "rb", use_cache=False)
    assert ds.train.score.shape == (7, 11, 1, 1) and ds.test_rewrite.score.shape == (3, 11, 1, 1)
    np.testing.assert_array_equal(ds.test_rewrite.score, ds.test_decoding.score)


def test_routerbench_overlap_is_reported(tmp_path):
    # some seeds put one of the two "closest star" prompts in test and the other in train
    overlaps = {s: convert_routerbench(RB, tmp_path / str(s), name="rb", seed=s, test_fraction=0.5).train_test_overlap
                for s in range(6)}
    assert set(overlaps.values()) <= {0, 1} and 1 in overlaps.values()


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda f: f.drop(columns=["eval_name"]), "field 'eval_name': column not found"),
    (lambda f: f.drop(columns=["claude-v2"]), "field 'claude-v2': column not found"),
    (lambda f: f.assign(**{"claude-v2": ["yes"] + [1.0] * 9}), "row 1: field 'claude-v2': value \"yes\" is not a number"),
    (lambda f: f.assign(**{"gpt-4-1106-preview|total_cost": [0.1, 0.1, -1.0] + [0.1] * 7}),
     "row 3: field 'gpt-4-1106-preview|total_cost': value -1.0 is below 0"),
    (lambda f: f.assign(sample_id=["a", "a"] + [f"s{i}" for i in range(8)]),
     "row 2: field 'sample_id': repeats the observation of row 1 (query 'a', model 'WizardLM/WizardLM-13B-V1.2')"),
])
def test_routerbench_bad_input_names_file_row_and_column(tmp_path, mutate, needle):
    bad = tmp_path / "bad.pkl"
    mutate(pd.read_pickle(RB)).to_pickle(bad)
    with pytest.raises(ConvertError) as exc:
        convert_routerbench(bad, tmp_path / "out", name="rb")
    assert str(exc.value).startswith("bad.pkl") and needle in str(exc.value), str(exc.value)


# ----------------------------------------------------------------------------------------- generic table
def test_table_repeated_rows_become_decodes(tmp_path):
    rep = convert_table(FIX / "long_table.csv", tmp_path, COLS, name="tab", test_fraction=0.25, seed=0)
    assert rep.repeated_as_decodes == 4 * 2 * 2  # 4 even queries x 2 models x 2 extra samples
    assert rep.n_test_queries == 2 and rep.n_train_queries == 6  # 1 of 4 per topic
    ds = load_dars_dir(tmp_path, "tab", use_cache=False)
    assert ds.train.decode_ids.tolist() == [0, 1, 2]
    rows = [r for r in _rows(rep.folder, "train") + _rows(rep.folder, "test")
            if r["query_id"] == "p2" and r["model"] == "large" and r.get("observation_type") != "decoding_variation"]
    # p2 / large: correct = (2 + rep + 1) % 2 for rep = 0, 1, 2 -> 1, 0, 1 as decodes 0, 1, 2
    assert [(r["decode_id"], r["score"], r["cost"]) for r in sorted(rows, key=lambda r: r["decode_id"])] == \
        [(0, 1.0, 0.01), (1, 0.0, 0.01), (2, 1.0, 0.01)]
    # odd queries were sampled once: their pairs have one decode, the grid masks the rest
    q1 = list(ds.train_queries["query_id"]).index("p1") if "p1" in set(ds.train_queries["query_id"]) else None
    if q1 is not None:
        assert ds.train.present[q1].sum() == 2


def test_table_with_views_decodes_and_split(tmp_path):
    cols = {"query": "q", "model": "m", "score": "s", "cost": "c", "variant": "v", "decode": "d", "split": "split", "text": "text"}
    rep = convert_table(FIX / "long_table.jsonl", tmp_path, cols, name="js")
    assert rep.split == "from the source" and rep.n_test_queries == 1 and rep.repeated_as_decodes == 0
    ds = load_dars_dir(tmp_path, "js", use_cache=False)
    assert ds.train.score.shape == (3, 2, 2, 2) and ds.test_decoding.view_ids.tolist() == [-1]
    assert ds.test_rewrite.score[0, 1, 0, 1] == 0.25 * ((3 + 0 + 1) % 5)  # j3, large, v0, d1


@pytest.mark.parametrize(("src", "cols", "needle"), [
    ("long_table.csv", {**COLS, "cost": "price"}, "field 'price': column not found (--cost)"),
    ("long_table.jsonl", {"query": "q", "model": "m", "score": "text", "cost": "c"},
     "line 1: field 'text': value \"json prompt 0\" is not a number"),
])
def test_table_errors_name_file_row_and_column(tmp_path, src, cols, needle):
    with pytest.raises(ConvertError) as exc:
        convert_table(FIX / src, tmp_path, cols, name="x")
    assert str(exc.value).startswith(src) and needle in str(exc.value), str(exc.value)


def test_table_error_row_numbers_are_data_rows_and_physical_lines(tmp_path):
    csv = tmp_path / "t.csv"
    frame = pd.read_csv(FIX / "long_table.csv")
    frame["correct"] = frame["correct"].astype(float)
    frame.loc[4, "correct"] = 1.5
    frame.to_csv(csv, index=False)
    with pytest.raises(ConvertError, match=r"t.csv row 5: field 'correct': value \"1.5\" is outside \[0, 1\]"):
        convert_table(csv, tmp_path / "o", COLS, name="x")
    lines = (FIX / "long_table.jsonl").read_text().splitlines()
    k = lines.index("") + 1  # the row after the blank line: line k + 1 of the file
    bad = json.loads(lines[k])
    bad["s"] = "high"
    lines[k] = json.dumps(bad)
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    cols = {"query": "q", "model": "m", "score": "s", "cost": "c"}
    with pytest.raises(ConvertError, match=rf"t.jsonl line {k + 1}: field 's': value \"high\" is not a number"):
        convert_table(tmp_path / "t.jsonl", tmp_path / "o", cols, name="x")


def test_seeded_split_is_deterministic_stratified_and_order_free():
    q = np.array([f"q{i}" for i in range(20)])
    t = np.array(["a"] * 10 + ["b"] * 5 + ["c"] * 5)
    s1 = seeded_split(q, t, 0.2, seed=7)
    perm = np.random.default_rng(0).permutation(20)
    s2 = seeded_split(q[perm], t[perm], 0.2, seed=7)
    assert set(q[s1]) == set(q[perm][s2])
    assert [int(s1[t == k].sum()) for k in "abc"] == [2, 1, 1]
    assert set(q[seeded_split(q, t, 0.2, seed=8)]) != set(q[s1])


# ----------------------------------------------------------------------------------------- exports
def test_dars_routerbench_dars_round_trip_keeps_every_score_and_cost(tmp_path):
    rep = convert_routerbench(RB, tmp_path / "a", name="rb", seed=2)
    ds = load_dars_dir(tmp_path / "a", "rb", use_cache=False)
    for suffix in (".parquet", ".pkl", ".csv"):
        wide = tmp_path / f"wide{suffix}"
        export_routerbench(ds, wide, tasks=query_tasks(rep.folder))
        back = convert_routerbench(wide, tmp_path / f"b{suffix}", name="rb", seed=99)  # the split column wins
        assert back.split == "from the source"
        ds2 = load_dars_dir(tmp_path / f"b{suffix}", "rb", use_cache=False)
        assert ds2.models == ds.models and _pairs(ds2) == _pairs(ds)
    frame = pd.read_parquet(tmp_path / "wide.parquet")
    assert list(frame.columns[:4]) == ["sample_id", "prompt", "eval_name", "oracle_model_to_route_to"]
    assert len(frame.columns) == 4 + 3 * 11 + 1  # + split
    row = frame.set_index("sample_id").loc["grade-school-math.dev.0"]
    scores = {m: row[m] for m in ds.models}
    best = max(scores.values())
    assert row["oracle_model_to_route_to"] == min((m for m in ds.models if scores[m] == best),
                                                  key=lambda m: row[f"{m}|total_cost"])


def test_export_llmrouter_reads_back_with_the_dcrouter_importer(tmp_path):
    convert_routerbench(RB, tmp_path / "a", name="rb", seed=2)
    assert main(["export-llmrouter", "--data-dir", str(tmp_path / "a"), "--name", "rb", "--out", str(tmp_path / "llm")]) == 0
    items = json.loads((tmp_path / "llm" / "train.json").read_text())
    assert set(items[0]) == {"question", "scores"} and len(items[0]["scores"]) == 11
    convert_dcrouter(tmp_path / "llm", tmp_path / "b", cost_proxy="uniform", name="back")
    ds, ds2 = load_dars_dir(tmp_path / "a", "rb", use_cache=False), load_dars_dir(tmp_path / "b", "back", use_cache=False)
    np.testing.assert_array_equal(ds2.train.score, ds.train.score)
    np.testing.assert_array_equal(ds2.test_rewrite.score, ds.test_rewrite.score)


def test_cli_help_lists_every_format_and_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for fmt, line in FORMATS.items():
        assert f"  {fmt:<19} {line}" in out
    shutil.copy(FIX / "long_table.csv", tmp_path / "t.csv")
    code = main(["table", "--src", str(tmp_path / "t.csv"), "--out", str(tmp_path), "--name", "x", "--query", "qid",
                 "--model", "llm", "--score", "nope", "--cost", "usd"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "field 'nope': column not found" in err[0]
    assert main(["routerbench", "--src", str(RB), "--out", str(tmp_path), "--name", "rb"]) == 0
    assert "CANNOT KNOW" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------- LLMRouterBench
LRB = FIX / "llmrouterbench" / "bench"


def test_llmrouterbench_latest_run_real_costs_and_overlap(tmp_path):
    rep = convert_llmrouterbench(LRB, tmp_path, name="lrb", test_fraction=0.25, seed=0)
    assert rep.models == ["Deepseek-v3-0324", "GPT-5-chat", "Qwen3-235b-a22b-2507"]  # sorted folders
    assert rep.n_train_queries == 6 and rep.n_test_queries == 2  # 1 of 4 per dataset
    assert rep.duplicate_texts == 2  # "Find x if 2x = 10." in aime and gpqa
    assert any("1 older result file" in c for c in rep.cannot_know)
    rows = {(r["query_id"], r["model"]): r for r in _rows(rep.folder, "train") + _rows(rep.folder, "test")}
    r = rows[("aime/1", "GPT-5-chat")]  # i = 1, j = 0: score (1 + 0) % 2 = 1 from the LATEST run (older has 0)
    assert r["score"] == 1.0 and r["cost"] == pytest.approx(1e-3 * (21 + 100) / 100)
    assert r["original_question"] == "What is 7 * 6?" and r["task_type"] == "aime"
    r = rows[("gpqa/3", "Qwen3-235b-a22b-2507")]  # i = 3, j = 2: score 1, cost 5e-5 * (23 + 120) / 100
    assert r["score"] == 1.0 and r["cost"] == pytest.approx(5e-5 * 143 / 100)
    overlaps = {s: convert_llmrouterbench(LRB, tmp_path / f"s{s}", name="lrb", seed=s, test_fraction=0.5).train_test_overlap
                for s in range(6)}
    assert set(overlaps.values()) <= {0, 1} and 1 in overlaps.values()


def test_llmrouterbench_missing_cost_and_bad_values(tmp_path):
    bench = tmp_path / "bench"
    shutil.copytree(LRB, bench)
    f = bench / "gpqa" / "test" / "GPT-5-chat" / "2025-09-01_10-00-00.json"
    data = json.loads(f.read_text())
    del data["records"][2]["cost"]
    f.write_text(json.dumps(data))
    with pytest.raises(ConvertError, match=r"2025-09-01_10-00-00.json record 2: field 'cost': no cost recorded"):
        convert_llmrouterbench(bench, tmp_path / "o")
    rep = convert_llmrouterbench(bench, tmp_path / "o", missing_cost="zero")
    assert any("GPT-5-chat" in c and "cost set to 0" in c for c in rep.cannot_know)
    data["records"][1]["score"] = "high"
    f.write_text(json.dumps(data))
    with pytest.raises(ConvertError, match=r"record 1: field 'score': value \"high\" is not a number in \[0, 1\]"):
        convert_llmrouterbench(bench, tmp_path / "o", missing_cost="zero")


# ----------------------------------------------------------------------------------------- LLMRouter general format
LR = FIX / "llmrouter"


def test_llmrouter_general_format_costs_split_and_no_key_field(tmp_path):
    rep = convert_llmrouter(LR / "routing_data_train.jsonl", LR / "routing_data_test.jsonl", tmp_path, name="lr",
                            llm_data=LR / "default_llm.json")
    assert rep.split == "from the source" and rep.n_train_queries == 4 and rep.n_test_queries == 2
    assert rep.train_test_overlap == 1  # embedding_id 1 is in both files
    rows = {(r["query_id"], r["model"]): r for r in _rows(rep.folder, "train") + _rows(rep.folder, "test")}
    r = rows[("train-e2", "llama-3.1-70b-instruct")]  # eid 2, j 1: tokens 60 in, 25 out at $0.88 / 1M each
    assert r["score"] == 1.0 and r["cost"] == pytest.approx((60 * 0.88 + 25 * 0.88) / 1e6) and r["task_type"] == "humaneval"
    r = rows[("test-e4", "qwen2.5-7b-instruct")]  # eid 4, j 0: 80 in, 5 out at $0.2 / 1M
    assert r["score"] == 0.0 and r["cost"] == pytest.approx(85 * 0.2 / 1e6)
    for f in rep.folder.iterdir():
        assert b"rivTkKeBPm" not in f.read_bytes() and b"api_key_used\":" not in f.read_bytes().replace(b"[\"api_key_used\"]", b"")
    load_dars_dir(tmp_path, "lr", use_cache=False)


def test_llmrouter_errors(tmp_path):
    bad = tmp_path / "train.jsonl"
    lines = (LR / "routing_data_train.jsonl").read_text().splitlines()
    rec = json.loads(lines[3])
    rec["performance"] = "good"
    lines[3] = json.dumps(rec)
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConvertError, match=r"train.jsonl line 4: field 'performance': value \"good\" is not a number"):
        convert_llmrouter(bad, LR / "routing_data_test.jsonl", tmp_path / "o", llm_data=LR / "default_llm.json")
    prices = json.loads((LR / "default_llm.json").read_text())
    del prices["qwen2.5-7b-instruct"]
    (tmp_path / "llm.json").write_text(json.dumps(prices))
    with pytest.raises(ConvertError, match=r"llm.json: field 'qwen2.5-7b-instruct': model of the routing data has no price"):
        convert_llmrouter(LR / "routing_data_train.jsonl", LR / "routing_data_test.jsonl", tmp_path / "o",
                          llm_data=tmp_path / "llm.json")
    rep = convert_llmrouter(LR / "routing_data_train.jsonl", LR / "routing_data_test.jsonl", tmp_path / "p",
                            cost_proxy="tokens")
    assert any("cost proxy 'tokens'" in c for c in rep.cannot_know)
