"""Paper-shaped leaderboards on real ``results.json`` files written by the CLI.

The fixture runs one small multirun (``python -m benchmark.app.cli -m ...``, knn x {single_shot,
dars, input_only} x datasets dsA/dsB, 5 draws, TF-IDF, 30/20 queries) and deletes the knn dars
run on dsB (a missing cell). Two extra cells are run in-process (Hydra compose +
``run_from_config``): a single-shot run at another lambda (another setting) and a dars run on
dsA with another simulator seed (same name, other content). Shapes that need many settings
(protocol / beta sweeps, pooled duplicates) are built from copies of the real dicts.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from hydra import compose, initialize_config_dir

from benchmark.app.cli import run_from_config
from evaluators import leaderboard as L
from evaluators.frontier import FRONTIER_BOOTSTRAP, aiq

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
TINY = "dataset.overrides={n_train:30,n_test:20}"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _cli(args: list[str], cwd: Path, cache: Path, module: str = "benchmark.app.cli") -> subprocess.CompletedProcess:
    env = {**os.environ, "DARSBENCH_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _cell(out_dir: Path, cache: Path, overrides: list[str]) -> dict:
    os.environ["DARSBENCH_CACHE"] = str(cache)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["features=tfidf", TINY, *overrides])
    return run_from_config(cfg, out_dir, "knn")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lb")
    cache = root / "cache"
    sweep = root / "sweep"
    old = os.environ.get("DARSBENCH_CACHE")
    _cli(["-m", "router=knn", "supervision=single_shot,dars,input_only", "dataset.name=dsA,dsB",
          "supervision.n_draws=5", "features=tfidf", TINY, f"hydra.sweep.dir={sweep}"], root, cache)
    removed = None
    for f in sweep.rglob("results.json"):
        r = json.loads(f.read_text())
        if r["supervision"] == "dars" and r["dataset"]["name"] == "dsB":
            f.unlink()
            removed = f
    assert removed is not None
    extra = root / "extra"
    _cell(extra / "lam", cache, ["router=knn", "supervision=single_shot", "supervision.n_draws=5",
                                 "dataset.name=dsA", "cost.lam=0.1"])
    _cell(extra / "seed1", cache, ["router=knn", "supervision=dars", "dataset.name=dsA", "dataset.seed=1"])
    if old is None:
        os.environ.pop("DARSBENCH_CACHE", None)
    else:
        os.environ["DARSBENCH_CACHE"] = old
    return {"root": root, "sweep": sweep, "extra": extra}


def _sweep_results(runs) -> list[dict]:
    return L.load_results([runs["sweep"]])


def _find(results, mode, ds):
    (r,) = [r for r in results if r["supervision"] == mode and r["dataset"]["name"] == ds]
    return r


# --------------------------------------------------------------------------- Table 1
def test_table1_rows_columns_values_and_missing_cell(runs, tmp_path):
    results = _sweep_results(runs)
    assert len(results) == 5
    rep = L.build_leaderboards([runs["sweep"]], tmp_path, plots=False)
    (t1,) = rep.tables["table1"]
    f = t1.frame
    assert list(f["method"]) == ["knn", "knn + DARS"]
    assert [c for c in f.columns if c.endswith(("rU", "dU"))] == ["dsA rU", "dsA dU", "dsB rU", "dsB dU"]
    ss = _find(results, "single_shot", "dsA")
    row = f.set_index("method").loc["knn"]
    assert row["dsA rU"] == pytest.approx(ss["metrics"]["rU"]["mean"])
    assert row["dsA rU std"] == pytest.approx(ss["metrics"]["rU"]["std"])
    assert row["dsA rU n"] == 5
    dars = _find(results, "dars", "dsA")
    assert f.set_index("method").loc["knn + DARS", "dsA dU"] == pytest.approx(dars["metrics"]["dU"]["mean"])
    assert np.isnan(f.set_index("method").loc["knn + DARS", "dsB rU"])
    # Markdown: single-shot as mean ± std [95% interval], DARS as mean [interval], the missing
    # cell as a dash; the intervals are the runs' own bootstrap intervals and hold the mean.
    m = ss["metrics"]["rU"]
    lo, hi = m["ci"]
    assert lo < m["mean"] < hi
    assert f"| knn | {m['mean']:.4f} ± {m['std']:.4f} [{lo:.4f}, {hi:.4f}] |" in t1.markdown
    assert row["dsA rU low"] == lo and row["dsA rU high"] == hi and row["dsA rU runs"] == 1
    dr, dd = dars["metrics"]["rU"], dars["metrics"]["dU"]
    assert (f"| knn + DARS | {dr['mean']:.4f} [{dr['ci'][0]:.4f}, {dr['ci'][1]:.4f}] | "
            f"{dd['mean']:.4f} [{dd['ci'][0]:.4f}, {dd['ci'][1]:.4f}] | — | — |") in t1.markdown
    assert any("knn + DARS has no run on dsB" in x for x in rep.missing)
    assert "knn + DARS has no run on dsB" in rep.text


def test_table2_modes_in_spec_order_with_average(runs, tmp_path):
    results = _sweep_results(runs)
    rep = L.build_leaderboards([runs["sweep"]], tmp_path, plots=False)
    (t2,) = rep.tables["table2"]
    f = t2.frame.set_index("supervision")
    assert list(f.index) == list(L.MODE_ORDER)
    io = [_find(results, "input_only", d)["metrics"] for d in ("dsA", "dsB")]
    assert f.loc["input_only", "avg rU"] == pytest.approx((io[0]["rU"]["mean"] + io[1]["rU"]["mean"]) / 2)
    four = [io[0]["rU"]["mean"], io[0]["dU"]["mean"], io[1]["rU"]["mean"], io[1]["dU"]["mean"]]
    assert f.loc["input_only", "avg"] == pytest.approx(np.mean(four))
    # dars is missing on dsB: no average over an incomplete row.
    assert np.isnan(f.loc["dars", "avg rU"]) and "| dars |" in t2.markdown
    assert any("Table 2 (knn)" in x and "output_only has no run on dsA" in x for x in rep.missing)


def test_baseline_block(runs, tmp_path):
    results = _sweep_results(runs)
    rep = L.build_leaderboards([runs["sweep"]], tmp_path, plots=False)
    (b,) = rep.tables["baselines"]
    f = b.frame.set_index("baseline")
    assert list(f.index) == ["oracle", "best_fixed", "random"]
    ref = _find(results, "single_shot", "dsB")["baselines"]
    for name in ("oracle", "best_fixed", "random"):
        assert f.loc[name, "dsB rU"] == pytest.approx(ref[name]["rU"])
        assert f.loc[name, "dsB dU"] == pytest.approx(ref[name]["dU"])
    assert "best_fixed model:" in b.markdown


def test_settings_and_contents_are_never_mixed(runs, tmp_path):
    rep = L.build_leaderboards([runs["sweep"], runs["extra"]], tmp_path, plots=False)
    blocks = rep.tables["table1"]
    settings = [t.setting for t in blocks]
    assert any("lambda=0.05" in s for s in settings) and any("lambda=0.1" in s for s in settings)
    main = next(t for t in blocks if "lambda=0.05" in t.setting).frame.set_index("method")
    # The dataset.seed=1 data set is a seed replicate of dsA: one column, its DARS cell
    # aggregates the two data seeds (mean of the two runs, n=2).
    assert "dsA rU" in main.columns and not any(c.startswith("dsA@") for c in main.columns)
    seed1 = L.load_results([runs["extra"] / "seed1"])[0]
    seed0 = _find(_sweep_results(runs), "dars", "dsA")
    assert seed1["dataset"]["content_hash"] != seed0["dataset"]["content_hash"]
    assert main.loc["knn + DARS", "dsA rU runs"] == 2
    want = (seed0["metrics"]["rU"]["mean"] + seed1["metrics"]["rU"]["mean"]) / 2
    assert main.loc["knn + DARS", "dsA rU"] == pytest.approx(want)
    # Same name and same data seed but other contents: those are never mixed (name@hash).
    clash = copy.deepcopy(seed0)
    clash["dataset"]["content_hash"] = "f" * 64
    df = L.records_frame([seed0, clash])
    assert sorted(df["column"]) == sorted([f"dsA@{seed0['dataset']['content_hash'][:8]}", "dsA@ffffffff"])
    assert any("cost/protocol settings" in n for n in rep.notes)
    lam01 = next(t for t in blocks if "lambda=0.1" in t.setting).frame
    ss01 = L.load_results([runs["extra"] / "lam"])[0]
    col = [c for c in lam01.columns if c.endswith(" rU") and c.startswith("dsA")][0]
    assert lam01.set_index("method").loc["knn", col] == pytest.approx(ss01["metrics"]["rU"]["mean"])


# ------------------------------------------------------------------- sweeps, pooling
def _variants(results, field, values):
    out = []
    for r in results:
        for v in values:
            c = copy.deepcopy(r)
            if field == "protocol":
                nr, nd = map(int, v.split("x"))
                c["protocol"] = {"n_rewrites": nr, "n_decodes": nd}
            else:
                c["cost"]["beta"] = v
            c["metrics"]["rU"]["mean"] += 0.001 * len(out)
            out.append(c)
    return out


def test_protocol_and_risk_tables_from_edited_copies(runs, tmp_path):
    base = [r for r in _sweep_results(runs) if r["supervision"] == "dars"]
    prot = _variants(base, "protocol", ["5x5", "1x1", "3x3"])
    frame = L.records_frame(prot)
    rep = L.Report()
    (t,) = L.sweep_tables(frame, "protocol", ("rU", "dU"), rep)
    assert list(t.frame["protocol"]) == ["1x1", "3x3", "5x5"]
    assert t.frame.set_index("protocol").loc["1x1", "dsA rU"] == pytest.approx(prot[1]["metrics"]["rU"]["mean"])
    # Several protocols and no single-shot run: no Table 1 for these groups.
    assert L.table1(frame, ("rU",), L.Report()) == []
    risk = _variants(base, "beta", [0.0, 0.5, 0.1])
    (r,) = L.sweep_tables(L.records_frame(risk), "beta", ("rU",), L.Report())
    assert list(r.frame["beta"]) == [0.0, 0.1, 0.5]
    assert "| beta=0.5 |" in r.markdown


def test_seed_replicates_are_aggregated_with_a_t_interval(runs):
    ss = _find(_sweep_results(runs), "single_shot", "dsA")
    a, b = copy.deepcopy(ss), copy.deepcopy(ss)
    b["seed"] = 7
    b["metrics"]["rU"] = {"mean": a["metrics"]["rU"]["mean"] + 0.1, "std": 0.02, "n": 5, "ci": [0, 1]}
    rep = L.Report()
    (t,) = L.table1(L.records_frame([a, b]), ("rU",), rep)
    cell = t.frame.set_index("method").loc["knn"]
    m1, s1 = a["metrics"]["rU"]["mean"], a["metrics"]["rU"]["std"]
    assert cell["dsA rU"] == pytest.approx(m1 + 0.05)
    assert cell["dsA rU std"] == pytest.approx(np.sqrt((s1**2 + 0.02**2) / 2 + 0.05**2))
    # Two seeds 0.1 apart: sd = 0.1 / sqrt(2), half-width t(0.975, 1) * sd / sqrt(2) = 12.7062 * 0.05.
    assert cell["dsA rU low"] == pytest.approx(m1 + 0.05 - 12.7062047 * 0.05)
    assert cell["dsA rU high"] == pytest.approx(m1 + 0.05 + 12.7062047 * 0.05)
    assert cell["dsA rU runs"] == 2
    assert "(n=2)" in t.markdown
    assert not rep.notes  # seed replicates are the design, not a clash
    c = copy.deepcopy(b)
    c["n_draws"] = 9
    rep = L.Report()
    L.table1(L.records_frame([a, c]), ("rU",), rep)
    assert any("2 runs aggregated" in n and "n_draws" in n for n in rep.notes)


# ------------------------------------------------------------------------- frontier
def test_frontier_table_uses_the_hull_and_a_shared_range(runs, tmp_path):
    results = _sweep_results(runs)
    rep = L.build_leaderboards([runs["sweep"]], tmp_path, plots=False, budgets=(0.05, 10.0))
    tabs = {t.title: t for t in rep.tables["frontier"]}
    assert set(tabs) == {"Frontier dsA", "Frontier dsB"}
    f = tabs["Frontier dsA"].frame.set_index("method")
    assert {"knn", "knn + DARS", "knn (input_only)", "fixed models (hull)"} <= set(f.index)
    dars = _find(results, "dars", "dsA")
    fr = dars["frontier"]
    c = 0.5 * (np.array(fr["rC"]) + np.array(fr["dC"]))
    q = 0.5 * (np.array(fr["rQ"]) + np.array(fr["dQ"]))
    fixed = dars["baselines"]["fixed_models"]
    fc = [0.5 * (v["rC"] + v["dC"]) for v in fixed.values()]
    hi = max(max(fc), *[  # largest cost over every curve and fixed model of the dataset
        max(0.5 * (np.array(r["frontier"]["rC"]) + np.array(r["frontier"]["dC"])))
        for r in results if r["dataset"]["name"] == "dsA"])
    assert f.loc["knn + DARS", "aiq"] == pytest.approx(aiq(c, q, (0.0, hi)))
    # A budget above every cost reaches the best quality.
    assert f.loc["knn + DARS", "Q@10"] == pytest.approx(q.max())


# ----------------------------------------------------------------------------- CLI
def test_cli_writes_tables_plots_and_headers(runs, tmp_path):
    from benchmark.app.leaderboard import main

    out = tmp_path / "board"
    rc = main([str(runs["sweep"]), "-o", str(out), "--note", "sweep: darsbench -m ...", "--quiet"])
    assert rc == 0
    for name in ("README.md", "table1.md", "table1.csv", "table2.md", "table2.csv", "baselines.md",
                 "baselines.csv", "frontier.md", "frontier.csv", "leaderboard.md", "leaderboard.csv"):
        assert (out / name).exists(), name
    first = (out / "table1.md").read_text().splitlines()[0]
    assert first.startswith("<!-- generated by: darsbench-leaderboard ") and "--quiet" in first
    assert (out / "table1.md").read_text().splitlines()[1] == "<!-- sweep: darsbench -m ... -->"
    csv = pd.read_csv(out / "table1.csv", comment="#")
    assert list(csv["method"]) == ["knn", "knn + DARS"]
    assert (out / "table1.csv").read_text().startswith("# generated by: darsbench-leaderboard")
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["frontier_dsA.png", "frontier_dsB.png", "hist_dsA_knn.png", "hist_dsB_knn.png"]
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == PNG_MAGIC
    readme = (out / "README.md").read_text()
    assert "## Missing cells" in readme and "knn + DARS has no run on dsB" in readme
    assert "![](frontier_dsA.png)" in readme


def test_cli_errors(tmp_path, capsys):
    from benchmark.app.leaderboard import main

    assert main([str(tmp_path / "nope")]) == 2
    assert main([str(tmp_path), str(tmp_path)]) == 2  # several paths need --out
    assert main([str(tmp_path)]) == 1  # no results
    assert "no results.json" in capsys.readouterr().err


def test_console_script_runs(runs, tmp_path):
    out = tmp_path / "b"
    env = {**os.environ}
    exe = Path(sys.executable).with_name("darsbench-leaderboard")
    if not exe.exists():
        pytest.skip("console script not installed")
    proc = subprocess.run([str(exe), str(runs["sweep"]), "-o", str(out)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Table 1" in proc.stdout and (out / "README.md").exists()


# ------------------------------------------------------------------- long table, io
def test_long_leaderboard_still_written_by_sweep(runs):
    text = (runs["sweep"] / "leaderboard.md").read_text()
    assert "| knn | single_shot |" in text and "| oracle |" in text
    # The sweep's own paper tables (LeaderboardCallback) were written too.
    assert (runs["sweep"] / "leaderboard" / "table1.md").exists()


def test_find_results_skips_tracker_copies(tmp_path):
    (tmp_path / "job" / "wandb" / "offline-run-x" / "files").mkdir(parents=True)
    (tmp_path / "job" / "results.json").write_text("{}")
    (tmp_path / "job" / "wandb" / "offline-run-x" / "files" / "results.json").write_text("{}")
    assert L.find_results([tmp_path]) == [tmp_path / "job" / "results.json"]


def test_bad_json_names_the_file(tmp_path):
    (tmp_path / "results.json").write_text("{oops")
    with pytest.raises(ValueError, match="results.json:1"):
        L.load_results([tmp_path])


def test_protocol_label():
    assert L.protocol_label(None) == "full"
    assert L.protocol_label({"n_rewrites": 3, "n_decodes": 3}) == "3x3"
    assert L.protocol_label({"n_rewrites": None, "n_decodes": 1}) == "allx1"


def test_draws_column_when_single_shot_rows_differ(runs):
    ss = _find(_sweep_results(runs), "single_shot", "dsA")
    other = copy.deepcopy(ss)
    other["router"] = "mlp"
    for v in other["metrics"].values():
        v["n"] = 20
    rep = L.Report()
    (t,) = L.table1(L.records_frame([ss, other]), ("rU",), rep)
    assert t.markdown.splitlines()[2].endswith("| draws |")
    assert list(t.frame["draws"]) == [20, 0, 5, 0]  # mlp, mlp + DARS, knn, knn + DARS
    assert any("different numbers of draws" in n for n in rep.notes)
    # Same number of draws everywhere: no extra column.
    (t,) = L.table1(L.records_frame([ss]), ("rU",), L.Report())
    assert "draws" not in t.markdown


def test_simple_table_values_and_cost_column():
    """The per-sweep table: baseline and router rows carry the results' numbers; cost = mean(rC, dC)."""
    from evaluators.leaderboard import leaderboard_frame, to_markdown

    def m(mean, std=0.0, n=1):
        return {"mean": mean, "std": std, "n": n}

    base = {k: 0.5 for k in ("rU", "dU", "rQ", "dQ")}
    res = {
        "dataset": {"name": "toy", "content_hash": "abc"},
        "cost": {"lam": 0.05, "beta": 0.2, "norm": "minmax"},
        "protocol": {"n_rewrites": None, "n_decodes": None},
        "router": "knn", "supervision": "single_shot", "n_draws": 3, "seed": 0,
        "metrics": {"rU": m(0.6, 0.01, 3), "dU": m(0.7, 0.02, 3), "rQ": m(0.65, 0.0, 3),
                    "dQ": m(0.75, 0.0, 3), "rC": m(0.2, 0.0, 3), "dC": m(0.4, 0.0, 3)},
        "baselines": {"oracle": {**base, "rU": 0.9, "rC": 0.1, "dC": 0.3}},
    }
    f = leaderboard_frame([res]).set_index("method")
    assert f.loc["knn", "rU"] == 0.6 and f.loc["knn", "rU_std"] == 0.01
    assert f.loc["knn", "cost"] == pytest.approx(0.3)  # (0.2 + 0.4) / 2
    assert f.loc["oracle", "rU"] == 0.9 and f.loc["oracle", "cost"] == pytest.approx(0.2)
    text = to_markdown(f.reset_index())
    assert "| knn | single_shot | 0.6000 ± 0.0100 | 0.7000 ± 0.0200 |" in text
    assert "| oracle | - | 0.9000 |" in text


# ------------------------------------------------------------------ uncertainty (issue 13)
def test_intervals_recomputed_from_the_decisions_file(runs):
    """results.json's intervals are the bootstrap of the decisions file's per-query values."""
    from evaluators import uncertainty as U

    for res in _sweep_results(runs):
        if res["dataset"]["name"] != "dsA" or res["supervision"] not in ("single_shot", "dars"):
            continue
        ids, vals = L.records.per_query_values(res, ("rU", "dU", "tU"))
        boot = res["bootstrap"]
        rs = U.resamples(len(ids), res["n_draws"], boot["resamples"], boot["seed"])
        for m in ("rU", "dU", "tU"):
            assert U.point_estimate(vals[m]) == pytest.approx(res["metrics"][m]["mean"], abs=1e-12)
            lo, hi = U.interval(vals[m], rs)
            assert res["metrics"][m]["ci"] == pytest.approx([lo, hi], abs=1e-12)
        assert vals["rU"].shape == (res["n_draws"], res["dataset"]["n_test_queries"])


def test_table1_paired_difference_from_decisions(runs, tmp_path):
    from evaluators import uncertainty as U

    rep = L.build_leaderboards([runs["sweep"]], tmp_path, plots=False)
    (t,) = rep.tables["table1_diff"]
    f = t.frame.set_index(["dataset", "metric"])
    results = _sweep_results(runs)
    ss, dars = _find(results, "single_shot", "dsA"), _find(results, "dars", "dsA")
    _, a = L.records.per_query_values(dars, ("rU", "dU", "tU"))
    _, b = L.records.per_query_values(ss, ("rU", "dU", "tU"))
    for m in ("rU", "dU", "tU"):
        want = U.paired_difference(a[m], b[m], resamples_n=dars["bootstrap"]["resamples"],
                                   seed=dars["bootstrap"]["seed"])
        row = f.loc[("dsA", m)]
        assert row["diff"] == pytest.approx(dars["metrics"][m]["mean"] - ss["metrics"][m]["mean"], abs=1e-12)
        assert (row["low"], row["high"], row["p"]) == pytest.approx((want["low"], want["high"], want["p"]))
    # Holm over the table's cells; dsB has no dars run, so no comparison there.
    assert set(t.frame["dataset"]) == {"dsA"} and (t.frame["correction"] == "holm").all()
    np.testing.assert_allclose(t.frame["p_adjusted"], U.holm(t.frame["p"].to_numpy()))
    assert "Holm over the 3 cells" in t.markdown
    # Table 2's comparisons: dars against the ablated mode input_only, on dsA and dsB.
    (t2,) = rep.tables["table2_diff"]
    assert set(t2.frame["b"]) == {"input_only"} and set(t2.frame["dataset"]) == {"dsA"}


def _handmade(root: Path, seed: int, data_seed: int, ru: float, mode: str = "dars") -> None:
    """A minimal results.json of one run (no decisions file)."""
    def metric(v):
        return {"mean": v, "std": 0.0, "n": 1, "ci": [v - 0.1, v + 0.1]}

    base = {"rU": 0.5, "dU": 0.5, "rQ": 0.5, "dQ": 0.5, "rC": 0.1, "dC": 0.1}
    res = {
        "dataset": {"name": "toy", "content_hash": f"hash{data_seed}"},
        "cost": {"lam": 0.05, "beta": 0.0, "norm": "minmax"},
        "protocol": {"n_rewrites": None, "n_decodes": None},
        "router": "knn", "supervision": mode, "n_draws": 1, "seed": seed,
        "metrics": {"rU": metric(ru), "dU": metric(ru / 2), "rQ": metric(ru), "dQ": metric(ru),
                    "rC": metric(0.1), "dC": metric(0.1)},
        "baselines": {"oracle": {**base, "rU": 0.9 + data_seed / 100}, "best_fixed": base, "random": base},
        "config": {"dataset": {"seed": data_seed}},
    }
    folder = root / f"{mode}_{seed}_{data_seed}"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(res))


def test_seed_aggregation_on_handmade_results(tmp_path):
    for seed, data_seed, ru in ((0, 0, 0.60), (1, 1, 0.70), (2, 2, 0.80)):
        _handmade(tmp_path / "runs", seed, data_seed, ru)
    rep = L.build_leaderboards([tmp_path / "runs"], tmp_path / "out", plots=False)
    (t,) = rep.tables["table1"]
    row = t.frame.set_index("method").loc["knn + DARS"]
    half = 4.30265273 * 0.1 / np.sqrt(3)  # t(0.975, 2) * s / sqrt(n), s = 0.1
    assert row["toy rU"] == pytest.approx(0.7) and row["toy rU runs"] == 3
    assert (row["toy rU low"], row["toy rU high"]) == pytest.approx((0.7 - half, 0.7 + half))
    assert "0.7000 [" in t.markdown and "(n=3)" in t.markdown
    # Baselines: one value per data content, aggregated the same way (oracle 0.90, 0.91, 0.92).
    (b,) = rep.tables["baselines"]
    orc = b.frame.set_index("baseline").loc["oracle"]
    assert orc["toy rU"] == pytest.approx(0.91) and orc["toy rU runs"] == 3
    # One run alone keeps its own bootstrap interval.
    _handmade(tmp_path / "one", 0, 0, 0.6)
    (t,) = L.build_leaderboards([tmp_path / "one"], tmp_path / "o1", plots=False).tables["table1"]
    row = t.frame.set_index("method").loc["knn + DARS"]
    assert (row["toy rU low"], row["toy rU high"], row["toy rU runs"]) == pytest.approx((0.5, 0.7, 1))


def _handmade_frontier(root: Path, data_seed: int, mode: str, v: float, noise: np.ndarray) -> None:
    """A results.json with a flat frontier at quality ``v`` over costs 0 and 1 (AIQ = v on
    [0, 1]), two fixed models (0, 0.3) and (1, 0.4) (hull AIQ 0.35), and its bootstrap file:
    replicate ``b`` moves every quality by ``noise[b]``."""
    _handmade(root, 0, data_seed, v, mode)
    folder = root / f"{mode}_0_{data_seed}"
    res = json.loads((folder / "results.json").read_text())
    res["dataset"]["n_test_queries"] = 20
    res["bootstrap"] = {"resamples": noise.size, "seed": 0}
    res["frontier"] = {"lams": [0.0, 1.0], "rC": [0.0, 1.0], "dC": [0.0, 1.0], "rQ": [v, v], "dQ": [v, v]}
    res["baselines"]["fixed_models"] = {
        "m0": {"rC": 0.0, "dC": 0.0, "rQ": 0.3, "dQ": 0.3}, "m1": {"rC": 1.0, "dC": 1.0, "rQ": 0.4, "dQ": 0.4},
    }
    (folder / "results.json").write_text(json.dumps(res))
    cost = np.repeat([[0.0], [1.0]], noise.size, axis=1)
    qual = v + np.broadcast_to(noise, (2, noise.size))
    fixed_q = np.stack([0.3 + noise, 0.4 + noise])
    np.savez(folder / FRONTIER_BOOTSTRAP, lams=np.array([0.0, 1.0]), models=np.array(["m0", "m1"]),
             rC=cost, dC=cost, rQ=qual, dQ=qual, fixed_rC=cost, fixed_dC=cost, fixed_rQ=fixed_q, fixed_dQ=fixed_q)


def test_aiq_intervals_and_paired_difference_on_handmade_frontiers(tmp_path):
    noise = np.linspace(-0.02, 0.02, 41)
    # One data seed: DARS is single-shot + 0.05 in every replicate -> a zero-width interval.
    _handmade_frontier(tmp_path / "one", 0, "dars", 0.65, noise)
    _handmade_frontier(tmp_path / "one", 0, "single_shot", 0.60, noise)
    rep = L.build_leaderboards([tmp_path / "one"], tmp_path / "o1", plots=False)
    (f,) = rep.tables["frontier"]
    f = f.frame.set_index("method")
    assert f.loc["knn + DARS", "aiq"] == pytest.approx(0.65)
    assert (f.loc["knn + DARS", "aiq_low"], f.loc["knn + DARS", "aiq_high"]) == pytest.approx(
        (0.65 + np.quantile(noise, 0.025), 0.65 + np.quantile(noise, 0.975)))
    assert f.loc["fixed models (hull)", "aiq"] == pytest.approx(0.35)
    (d,) = rep.tables["frontier_diff"]
    row = d.frame.iloc[0]
    assert (row["router"], row["a"], row["b"], row["pairs"]) == ("knn", "dars", "single_shot", 1)
    assert (row["diff"], row["low"], row["high"]) == pytest.approx((0.05, 0.05, 0.05))
    assert row["p"] == pytest.approx(2 / 42) and bool(row["significant"])
    # Identical arms: p = 1, interval [0, 0].
    _handmade_frontier(tmp_path / "same", 0, "dars", 0.6, noise)
    _handmade_frontier(tmp_path / "same", 0, "single_shot", 0.6, noise)
    (d,) = L.build_leaderboards([tmp_path / "same"], tmp_path / "o2", plots=False).tables["frontier_diff"]
    assert (d.frame["diff"].iloc[0], d.frame["low"].iloc[0], d.frame["high"].iloc[0], d.frame["p"].iloc[0]) == (
        pytest.approx(0.0), 0.0, 0.0, 1.0)
    # Three data seeds: mean and Student-t interval across seeds; t-test of the differences.
    for s, (va, vb) in enumerate(((0.60, 0.55), (0.70, 0.60), (0.80, 0.65))):
        _handmade_frontier(tmp_path / "three", s, "dars", va, noise)
        _handmade_frontier(tmp_path / "three", s, "single_shot", vb, noise)
    rep = L.build_leaderboards([tmp_path / "three"], tmp_path / "o3", plots=False)
    (f,) = rep.tables["frontier"]
    r = f.frame.set_index("method").loc["knn + DARS"]
    half = 4.30265273 * 0.1 / np.sqrt(3)
    assert (r["aiq"], r["aiq_low"], r["aiq_high"], r["runs"]) == pytest.approx((0.7, 0.7 - half, 0.7 + half, 3))
    assert "(n=3)" in f.markdown
    (d,) = rep.tables["frontier_diff"]
    row = d.frame.iloc[0]
    # differences 0.05, 0.10, 0.15: t = 0.1 / (0.05 / sqrt(3)) = 3.4641 with 2 df
    assert (row["diff"], row["pairs"]) == (pytest.approx(0.1), 3)
    assert row["p"] == pytest.approx(2 * stats.t.sf(0.1 / (0.05 / np.sqrt(3)), 2))
    assert (row["low"], row["high"]) == pytest.approx((0.1 - 4.30265273 * 0.05 / np.sqrt(3),
                                                       0.1 + 4.30265273 * 0.05 / np.sqrt(3)))


def test_frontier_without_bootstrap_files_says_so(tmp_path):
    _handmade_frontier(tmp_path / "r", 0, "dars", 0.65, np.zeros(5))
    (tmp_path / "r" / "dars_0_0" / FRONTIER_BOOTSTRAP).unlink()
    rep = L.build_leaderboards([tmp_path / "r"], tmp_path / "o", plots=False)
    (f,) = rep.tables["frontier"]
    assert np.isnan(f.frame.set_index("method").loc["knn + DARS", "aiq_low"])
    assert any("no AIQ intervals" in n for n in rep.notes)
