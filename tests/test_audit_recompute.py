"""The independent audit (bench/audit_results.py): real CLI sweeps pass it, corrupted result
files fail it, and its own small formulas agree with hand-computed values."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import audit_results as A  # noqa: E402

SMALL = ["features=tfidf", "supervision.n_draws=3", "bootstrap.resamples=200", "dataset=gpqa_like",
         "hydra/launcher=basic", "print_table=false"]


def _sweep(out: Path, cache: Path, args: list[str]) -> Path:
    env = {**os.environ, "DARSBENCH_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "benchmark.app.cli", "-m", *SMALL, *args,
                           f"hydra.sweep.dir={out}"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    cache = root / "cache"
    table1 = _sweep(root / "table1", cache, [
        "router=knn", "supervision=single_shot,dars", "seed=0,1", "dataset.overrides={n_train: 40, n_test: 24}"])
    budget = _sweep(root / "budget", cache, [
        "arm=single_shot,dars_3x3,dars_1x5", "train.budget=45,90", "router=knn",
        "dataset.overrides={n_train: 90, n_test: 24}"])
    return {"table1": table1, "budget": budget, "root": root}


def test_audit_passes_on_real_sweeps(sweeps, capsys):
    assert A.main([str(sweeps["table1"]), str(sweeps["budget"])]) == 0
    out = capsys.readouterr().out
    assert "table1_diff.csv: knn gpqa_like tU dars-single_shot" in out
    assert "budget_diff.csv: knn gpqa_like tU dars 3x3-single_shot B=45" in out
    assert "training generations of every model = B" in out


def test_router_seeds_are_aggregated_and_compared_across_seeds(sweeps):
    """A ``seed`` sweep axis gives one row per router (not ``knn[seed=0]``, ``knn[seed=1]``), and
    DARS - single-shot is a t-test across the two seeds' paired differences."""
    cells = [json.loads(p.read_text()) for p in sweeps["table1"].glob("*/results.json")]
    assert len(cells) == 4 and {c["router"] for c in cells} == {"knn"}
    diff = pd.read_csv(sweeps["table1"] / "leaderboard" / "table1_diff.csv", comment="#")
    assert (diff["pairs"] == 2).all() and (diff["method"] == "t across seeds").all()


def test_budget_sweep_cells_are_one_router_with_every_arm_at_b(sweeps):
    """Arms and budgets given as sweep axes label cells with the plain router name, so the
    budget tables and their paired differences exist (they did not before the sweep's label
    fix); every arm's cell uses exactly B generations per model."""
    cells = [json.loads(p.read_text()) for p in sweeps["budget"].glob("*/results.json")]
    assert len(cells) == 6 and {c["router"] for c in cells} == {"knn"}
    for c in cells:
        assert c["training"]["generations"]["per_model"] == c["training"]["budget_per_model"]
    diff = pd.read_csv(sweeps["budget"] / "leaderboard" / "budget_diff.csv", comment="#")
    assert set(diff["arm"]) == {"dars 3x3", "dars 1x5"} and set(diff["budget"]) == {45, 90}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_json(path: Path, edit) -> None:
    res = json.loads(path.read_text())
    edit(res)
    path.write_text(json.dumps(res))


@pytest.mark.parametrize("what", ["ci", "mean", "baseline", "generations"])
def test_audit_fails_on_a_corrupted_results_value(sweeps, tmp_path, what, capsys):
    sweep = _copy(sweeps["budget"] if what == "generations" else sweeps["table1"], tmp_path / "s")
    path = sorted(sweep.glob("*/results.json"))[0]

    def edit(res):
        if what == "ci":
            res["metrics"]["tU"]["ci"][1] += 1e-6
        elif what == "mean":
            res["metrics"]["rU"]["mean"] += 1e-6
        elif what == "baseline":
            res["baselines"]["oracle"]["dU"] -= 1e-6
        else:
            res["training"]["generations"]["total"] += 1

    _edit_json(path, edit)
    assert A.main([str(sweep)]) == 1
    assert "1 above" in capsys.readouterr().out.splitlines()[-1]


def test_audit_fails_on_a_corrupted_paired_difference(sweeps, tmp_path):
    sweep = _copy(sweeps["table1"], tmp_path / "s")
    csv = sweep / "leaderboard" / "table1_diff.csv"
    text = csv.read_text().splitlines()
    header = [ln for ln in text if ln.startswith("#")]
    frame = pd.read_csv(csv, comment="#")
    frame.loc[0, "p"] = min(1.0, frame.loc[0, "p"] + 0.01)
    csv.write_text("\n".join(header) + "\n" + frame.to_csv(index=False))
    assert A.main([str(sweep)]) == 1


def test_audit_fails_on_a_changed_decision(sweeps, tmp_path):
    sweep = _copy(sweeps["table1"], tmp_path / "s")
    cell = next(p.parent for p in sweep.glob("*/results.json")
                if json.loads(p.read_text())["supervision"] == "dars")
    dec = pd.read_parquet(cell / "decisions.parquet")
    models = json.loads((cell / "results.json").read_text())["dataset"]["models"]
    dec.loc[0, "chosen"] = next(m for m in models if m != dec.loc[0, "chosen"])
    dec.to_parquet(cell / "decisions.parquet")
    assert A.main([str(cell)]) == 1


# ----------------------------------------------------------- the audit's own formulas by hand
def test_holm_and_bh_by_hand():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.005])
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max
    np.testing.assert_allclose(A.holm(p), [0.03, 0.06, 0.06, np.nan, 0.02])
    # BH: 0.005*4/1=0.02, 0.01*4/2=0.02, 0.03*4/3=0.04, 0.04*4/4=0.04 -> running min from the top
    np.testing.assert_allclose(A.bh(p), [0.02, 0.04, 0.04, np.nan, 0.02])


def test_argbest_ties_go_to_lower_cost_then_pool_order():
    u = np.array([[0.5, 0.5 + 1e-13, 0.2], [0.1, 0.3, 0.3], [0.4, np.nan, 0.4]])
    c = np.array([[0.3, 0.4, 0.0], [0.0, 0.2, 0.2], [0.5, 0.0, 0.1]])
    np.testing.assert_array_equal(A.argbest(u, c), [0, 1, 2])


def test_replicates_and_paired_p_by_hand():
    v = np.array([[1.0, 3.0, np.nan]])
    wq = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
    # replicate 0: (2*1 + 3) / 3; replicate 1: 3 / 1 (the NaN query counts in neither sum)
    np.testing.assert_allclose(A.replicate_means(v, wq, np.ones((2, 1))), [5 / 3, 3.0])
    same = A.paired(np.array([0.2, 0.4, 0.6]), np.array([0.2, 0.4, 0.6]), 50, 0)
    assert same["diff"] == 0 and same["low"] == same["high"] == 0 and same["p"] == 1.0


def test_hull_aiq_by_hand():
    c = np.array([0.2, 0.6, 0.4, 0.8, np.nan])
    q = np.array([0.5, 0.9, 0.6, 0.8, 1.0])
    # hull (0.2, 0.5) -> (0.6, 0.9); (0.4, 0.6) lies below the chord, (0.8, 0.8) is dominated,
    # the NaN point is left out. Area on [0, 1]: 0 below 0.2, (0.5 + 0.9) / 2 * 0.4, 0.9 * 0.4.
    assert A.hull_aiq(c, q, 1.0) == pytest.approx(0.28 + 0.36, abs=1e-15)
    assert A.hull_aiq(c, q, 0.1) == 0.0
    assert A.hull_aiq(np.zeros(2), np.array([0.3, 0.7]), 0.0) == 0.7


def test_holm_floor_note_by_hand():
    """A single-seed bootstrap p-value is at least 2 / (B + 1), so with B = 2000 Holm can mark
    nothing in a table of more than 50 cells (a full Table 1 has 7 x 3 x 3 = 63): the leaderboard
    says so in its notes."""
    from evaluators import uncertainty as U
    from evaluators.leaderboard.tables import holm_floor_note

    floor = 2 / 2001
    f50 = pd.DataFrame({"p": [floor] * 50, "pairs": [1] * 50})
    f63 = pd.DataFrame({"p": [floor] * 63, "pairs": [1] * 63})
    assert (U.holm(f50["p"].to_numpy()) < 0.05).all()  # 50 * 2/2001 = 0.04998
    assert (U.holm(f63["p"].to_numpy()) >= 0.05).all()  # 63 * 2/2001 = 0.063
    assert holm_floor_note(f50, 2000, "holm", 0.05) is None
    note = holm_floor_note(f63, 2000, "holm", 0.05)
    assert "Holm over 63 cells" in note and "at least 2520" in note  # 126 / 2521 < 0.05 <= 126 / 2520
    assert holm_floor_note(f63, 2520, "holm", 0.05) is None
    assert holm_floor_note(f63, 2000, "bh", 0.05) is None
    assert holm_floor_note(f63.assign(pairs=5), 2000, "holm", 0.05) is None  # t-tests across seeds
