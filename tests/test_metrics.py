"""Evaluation metrics and baselines (SPEC §5-§6) on hand-computed arrays, and a randomized
comparison of the whole pipeline with the independent loop-based reference
(``tests/independent_ref.py``) built from flat DARS rows.

Hand-computed views use lambda = 0.5 so the arithmetic stays on simple fractions. Absent
observations store a garbage 0 with ``present = False``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

import independent_ref as ref
from benchmark.data.dataset import DarsDataset, ObservationBlock, TruthTable, apply_protocol, normalise_costs
from evaluators.baselines import baseline_results, evaluate_policy
from evaluators import metrics as M
from supervision.modes import make_targets

X = None
NAN = float("nan")
LAM = 0.5


def from_lists(scores, costs, view_ids, decode_ids) -> ObservationBlock:
    present = np.array([[[[v is not None for v in d] for d in vw] for vw in m] for m in scores])
    fill = lambda a: np.array([[[[0.0 if v is None else v for v in d] for d in vw] for vw in m] for m in a], float)  # noqa: E731
    return ObservationBlock(fill(scores), fill(costs), present, np.array(view_ids), np.array(decode_ids))


def close(a, b, tol=1e-12):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), atol=tol, rtol=0, equal_nan=True)


# ---- rewrite view: 3 queries x 3 models x 3 rewrites x 1 decode (costs already normalised)
#  Q0: m0 q [1,1,0] c [.2,.2,.2] -> q 2/3, c .2, u 2/3-.1 = 17/30
#      m1 q [1,1,1] c [.6,.6,.9] -> q 1,   c .7, u 1-.35 = .65   (per obs: .7,.7,.55 -> .65)
#      m2 q [0,0,0] c [0,0,0]    -> q 0,   c 0,  u 0
#  Q1: m0 q [0,1,X] c [.1,.3,X]  -> q .5,  c .2, u .4      (absent cell NOT counted as 0)
#      m1 q [0,0,1] c [.5,.5,.5] -> q 1/3, c .5, u 1/12
#      m2 q [1,0,0] c [.1,.1,.1] -> q 1/3, c .1, u 17/60
#  Q2: m0 q [1,1,1] c [.4,.4,.4] -> q 1, c .4, u .8
#      m1 identical to m0        -> u .8 (tie, equal cost -> pool order: m0)
#      m2 no observation         -> NaN
R_SCORES = [
    [[[1], [1], [0]], [[1], [1], [1]], [[0], [0], [0]]],
    [[[0], [1], [X]], [[0], [0], [1]], [[1], [0], [0]]],
    [[[1], [1], [1]], [[1], [1], [1]], [[X], [X], [X]]],
]
R_COSTS = [
    [[[0.2], [0.2], [0.2]], [[0.6], [0.6], [0.9]], [[0.0], [0.0], [0.0]]],
    [[[0.1], [0.3], [X]], [[0.5], [0.5], [0.5]], [[0.1], [0.1], [0.1]]],
    [[[0.4], [0.4], [0.4]], [[0.4], [0.4], [0.4]], [[X], [X], [X]]],
]
# ---- decoding view: 3 queries x 3 models x 1 original view (id -1) x 3 decodes
#  Q0: m0 q [1,0,0] c .3 -> u 1/3-.15 = 11/60; m1 q [1,1,0] c .8 -> 2/3-.4 = 16/60;
#      m2 q [0,0,1] c .1 -> 1/3-.05 = 17/60
#  Q1: m0 q [1,1,1] c .5 -> .75; m1 q 0 c 0 -> 0; m2 q [1,.75,.875] (mean .875) c .25 -> .75
#      (U tie m0 / m2 -> lower cost m2)
#  Q2: m0 q [1,X,0] c [.2,X,.4] -> q .5 c .3 u .35; m1 q .5 c .2 -> .4; m2 q 0 c 1 -> -.5
D_SCORES = [
    [[[1, 0, 0]], [[1, 1, 0]], [[0, 0, 1]]],
    [[[1, 1, 1]], [[0, 0, 0]], [[1, 0.75, 0.875]]],
    [[[1, X, 0]], [[0.5, 0.5, 0.5]], [[0, 0, 0]]],
]
D_COSTS = [
    [[[0.3] * 3], [[0.8] * 3], [[0.1] * 3]],
    [[[0.5] * 3], [[0.0] * 3], [[0.25] * 3]],
    [[[0.2, X, 0.4]], [[0.2] * 3], [[1.0] * 3]],
]


@pytest.fixture()
def r_block():
    return from_lists(R_SCORES, R_COSTS, [0, 1, 2], [0])


@pytest.fixture()
def d_block():
    return from_lists(D_SCORES, D_COSTS, [-1], [0, 1, 2])


@pytest.fixture()
def stats(r_block, d_block):
    return {"r": M.ViewStats.from_block(r_block), "d": M.ViewStats.from_block(d_block)}


# ------------------------------------------------------------------------------ view stats
def test_view_stats(stats):
    r = stats["r"]
    close(r.q, [[2 / 3, 1, 0], [0.5, 1 / 3, 1 / 3], [1, 1, NAN]])
    close(r.c, [[0.2, 0.7, 0.0], [0.2, 0.5, 0.1], [0.4, 0.4, NAN]])
    close(r.u(LAM), [[17 / 30, 0.65, 0.0], [0.4, 1 / 12, 17 / 60], [0.8, 0.8, NAN]])
    close(stats["d"].u(LAM), [[11 / 60, 16 / 60, 17 / 60], [0.75, 0.0, 0.75], [0.35, 0.4, -0.5]])


def test_view_u_is_the_mean_per_observation_utility(r_block, d_block):
    # SPEC §6: mean over the pair's observations of q - lam * c~ (checked cell by cell)
    for b in (r_block, d_block):
        per_obs = np.where(b.present, b.score - LAM * b.cost, 0.0).sum(axis=(2, 3))
        n = b.present.sum(axis=(2, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = np.where(n > 0, per_obs / n, np.nan)
        close(M.ViewStats.from_block(b).u(LAM), expected)


# ------------------------------------------------------------------------------- a policy
def test_policy_metrics_and_shares(stats):
    res = M.evaluate_choices(stats["r"], np.array([2, 1, 0]), LAM)
    close(res["U"], (0 + 1 / 12 + 0.8) / 3)  # = 53/180
    close(res["Q"], (0 + 1 / 3 + 1) / 3)  # = 4/9
    close(res["C"], (0 + 0.5 + 0.4) / 3)  # = .3
    close(res["share"], [1 / 3, 1 / 3, 1 / 3])
    res = M.evaluate_choices(stats["d"], np.array([0, 0, 1]), LAM)
    close(res["U"], (11 / 60 + 0.75 + 0.4) / 3)
    close(res["Q"], (1 / 3 + 1 + 0.5) / 3)  # = 11/18
    close(res["C"], (0.3 + 0.5 + 0.2) / 3)
    close(res["share"], [2 / 3, 1 / 3, 0])


def test_missing_chosen_pair_is_left_out_not_zero(stats):
    # Q2 routed to m2, which has no rewrite observation: mean over Q0, Q1 only
    with pytest.warns(UserWarning, match="no observation"):
        res = M.evaluate_choices(stats["r"], np.array([0, 2, 2]), LAM)
    close(res["U"], (17 / 30 + 17 / 60) / 2)  # = .425 (scored as 0 it would be .2833)
    close(res["Q"], (2 / 3 + 1 / 3) / 2)  # = .5
    close(res["C"], (0.2 + 0.1) / 2)  # = .15
    close(res["share"], [1 / 3, 0, 2 / 3])  # shares still count every query


def test_draw_axis(stats):
    ch = np.array([[1, 0, 0], [0, 0, 0], [2, 1, 0]])  # [D=3, Q=3]
    res = M.evaluate_choices(stats["r"], ch, LAM)
    # oracle 37/60 = 111/180; all-m0 53/90 = 106/180; [2,1,0] 53/180
    close(res["U"], [111 / 180, 106 / 180, 53 / 180])
    close(res["share"], [[2 / 3, 1 / 3, 0], [1, 0, 0], [1 / 3, 1 / 3, 1 / 3]])
    with pytest.raises(ValueError):
        M.evaluate_choices(stats["r"], np.array([0, 1]), LAM)  # wrong number of queries
    with pytest.raises(ValueError):
        M.evaluate_choices(stats["r"], np.array([0, 1, 3]), LAM)  # outside the pool


# ------------------------------------------------------------------------------ baselines
def test_oracle(stats):
    # rewrite: Q0 max(.5667, .65, 0) -> m1; Q1 max(.4, .0833, .2833) -> m0; Q2 tie .8/.8 same cost -> m0
    assert M.oracle_choices(stats["r"], LAM).tolist() == [1, 0, 0]
    res = M.evaluate_choices(stats["r"], M.oracle_choices(stats["r"], LAM), LAM)
    close(res["U"], (0.65 + 0.4 + 0.8) / 3)  # = 37/60
    close(res["Q"], (1 + 0.5 + 1) / 3)  # = 5/6
    close(res["C"], (0.7 + 0.2 + 0.4) / 3)  # = 13/30
    # decoding: Q0 m2 (17/60); Q1 tie .75 m0 (c .5) / m2 (c .25) -> m2; Q2 m1 (.4)
    assert M.oracle_choices(stats["d"], LAM).tolist() == [2, 2, 1]
    res = M.evaluate_choices(stats["d"], M.oracle_choices(stats["d"], LAM), LAM)
    close(res["U"], (17 / 60 + 0.75 + 0.4) / 3)  # = 43/90
    close(res["Q"], (1 / 3 + 0.875 + 0.5) / 3)  # = 41/72
    close(res["C"], (0.1 + 0.25 + 0.2) / 3)  # = 11/60


def test_best_fixed(stats):
    # rewrite: m0 (17/30 + .4 + .8)/3 = 53/90 = .5889; m1 (.65 + 1/12 + .8)/3 = 23/45 = .5111;
    #          m2 (0 + 17/60)/2 = .1417 (its queries only) -> m0
    assert M.best_fixed_choice(stats["r"], LAM) == 0
    # decoding: m0 (11/60 + .75 + .35)/3 = 77/180; m1 (16/60 + 0 + .4)/3 = 40/180; m2 32/180 -> m0
    assert M.best_fixed_choice(stats["d"], LAM) == 0
    # a tie on mean utility goes to the lower mean cost, then to pool order
    tie = M.ViewStats(q=np.array([[1.0, 0.9, 0.9]]), c=np.array([[0.4, 0.2, 0.2]]))
    assert M.best_fixed_choice(tie, LAM) == 1  # U .8, .8, .8 ; costs .4, .2, .2


def test_random(stats):
    res = M.random_metrics(stats["r"], LAM)
    # per query mean over the models observed in the view, then over queries:
    # U: Q0 (17/30+.65+0)/3 = 73/180; Q1 (.4+1/12+17/60)/3 = 46/180; Q2 (.8+.8)/2 = 144/180 -> 263/540
    close(res["U"], 263 / 540)
    close(res["Q"], 35 / 54)  # (5/9 + 7/18 + 1)/3
    close(res["C"], 29 / 90)  # (.3 + 4/15 + .4)/3
    close(res["share"], [1 / 3] * 3)
    res = M.random_metrics(stats["d"], LAM)
    close(res["U"], 149 / 540)  # (44/180 + 90/180 + 15/180)/3
    close(res["Q"], 101 / 216)  # (4/9 + 5/8 + 1/3)/3
    close(res["C"], 23 / 60)  # (.4 + .25 + .5)/3


def test_gap_closed():
    # r view: oracle 111/180, best fixed 106/180; a router at 53/180 -> (53-106)/(111-106) = -10.6
    close(M.gap_closed(np.array(53 / 180), 106 / 180, 111 / 180), -10.6, tol=1e-9)
    close(M.gap_closed(np.array([0.6, 0.7, 0.8]), 0.6, 0.8), [0.0, 0.5, 1.0])
    assert np.isnan(M.gap_closed(np.array(0.5), 0.6, 0.6))  # oracle == best fixed


def test_cheapest_and_largest():
    mu_c = np.array([[0.3, 0.1, 0.5], [0.3, 0.1, 0.7]])  # per model means .3, .1, .6
    assert M.cheapest_choice(mu_c) == 1
    assert M.largest_choice(np.array([70.0, 8.0, 24.0]), mu_c) == 0
    assert M.largest_choice(None, mu_c) == 2  # no sizes: most expensive
    assert M.largest_choice(np.array([70.0, NAN, 24.0]), mu_c) == 2  # incomplete sizes
    assert M.cheapest_choice(np.array([[0.2, 0.2]])) == 0  # tie -> pool order


def _truth() -> TruthTable:
    return TruthTable(
        mu_q=np.array([[0.9, 0.5, 0.2], [0.4, 0.8, 0.6], [0.7, 0.7, 0.1]]),
        mu_c=np.array([[0.5, 0.1, 0.0], [0.2, 0.6, 0.1], [0.3, 0.3, 0.9]]),
        sigma_q=np.array([[0.1, 0.0, 0.2], [0.3, 0.1, 0.0], [0.0, 0.0, 0.4]]),
    )


def test_true_utility():
    # lam .5, beta .2: u = mu_q - .5 mu_c - .2 sigma
    # Q0: .9-.25-.02 = .63 | .5-.05-0 = .45 | .2-0-.04 = .16         -> best 0
    # Q1: .4-.1-.06 = .24  | .8-.3-.02 = .48 | .6-.05-0 = .55         -> best 2
    # Q2: .7-.15 = .55     | .7-.15 = .55    | .1-.45-.08 = -.43       -> tie, equal cost -> 0
    truth = _truth()
    assert M.true_oracle_choices(truth, LAM, 0.2).tolist() == [0, 2, 0]
    res = M.true_utility(truth, np.array([0, 2, 2]), LAM, 0.2)
    close(res["tU"], (0.63 + 0.55 - 0.43) / 3)  # = .25
    close(res["tQ"], (0.9 + 0.6 + 0.1) / 3)
    close(res["t_best"], 2 / 3)
    res = M.true_utility(truth, np.array([[0, 2, 0], [1, 1, 1]]), LAM, 0.2)
    close(res["tU"], [(0.63 + 0.55 + 0.55) / 3, (0.45 + 0.48 + 0.55) / 3])
    close(res["t_best"], [1.0, 0.0])  # best is [0, 2, 0]: all match / none match


# ------------------------------------------------------------ run.py: evaluate_policy, baselines
def _dataset(r_block, d_block, truth=None, params_b=(70.0, 8.0, 24.0), train=None):
    if train is None:
        # train: 2 queries x 3 models x 1 view x 2 decodes; per-model mean cost .3, .1, .6
        train = from_lists(
            [[[[1, 0]], [[1, 1]], [[0, 1]]], [[[1, 1]], [[0, 0]], [[1, X]]]],
            [[[[0.2, 0.4]], [[0.1, 0.1]], [[0.5, 0.5]]], [[[0.3, 0.3]], [[0.1, 0.1]], [[0.7, X]]]],
            [0], [0, 1],
        )
    table = {"model": ["a", "b", "c"]}
    if params_b is not None:
        table["params_b"] = list(params_b)
    return DarsDataset(
        name="hand", models=("a", "b", "c"), train=train, test_rewrite=r_block, test_decoding=d_block,
        train_queries=pd.DataFrame({"query_id": ["t0", "t1"], "text": ["x", "y"]}),
        test_queries=pd.DataFrame({"query_id": ["e0", "e1", "e2"], "text": ["x", "y", "z"]}),
        model_table=pd.DataFrame(table), test_truth=truth,
    )


def test_evaluate_policy_and_baselines(r_block, d_block, stats):
    truth = _truth()
    data = _dataset(r_block, d_block, truth=truth)
    vals, shares = evaluate_policy(data, stats, np.array([2, 1, 0]), LAM, 0.2)
    close(vals["rU"], 53 / 180)
    close(vals["rQ"], 4 / 9)
    close(vals["rC"], 0.3)
    close(vals["dU"], (17 / 60 + 0 + 0.35) / 3)  # d: Q0 m2, Q1 m1, Q2 m0
    close(vals["dQ"], (1 / 3 + 0 + 0.5) / 3)
    close(vals["dC"], (0.1 + 0.0 + 0.3) / 3)
    close(vals["tU"], (0.16 + 0.48 + 0.55) / 3)
    close(shares["r"], [1 / 3] * 3)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = baseline_results(data, stats, LAM, 0.2)
    close(b["oracle"]["rU"], 37 / 60)
    close(b["oracle"]["dU"], 43 / 90)
    close(b["oracle"]["rQ"], 5 / 6)
    close(b["oracle"]["dQ"], 41 / 72)
    assert b["oracle"]["r_share"] == pytest.approx({"a": 2 / 3, "b": 1 / 3, "c": 0.0})
    close(b["best_fixed"]["rU"], 53 / 90)
    close(b["best_fixed"]["dU"], 77 / 180)
    close(b["best_fixed"]["rQ"], 13 / 18)
    close(b["best_fixed"]["dQ"], 11 / 18)
    assert b["best_fixed"]["r_model"] == "a" and b["best_fixed"]["d_model"] == "a"
    close(b["random"]["rU"], 263 / 540)
    close(b["random"]["dU"], 149 / 540)
    close(b["random"]["rQ"], 35 / 54)
    close(b["random"]["dQ"], 101 / 216)
    # cheapest: training mean cost per model .3, .1, .6 -> "b": r [Q0 m1 .65, Q1 1/12, Q2 .8]
    assert b["cheapest"]["model"] == "b"
    close(b["cheapest"]["rU"], (0.65 + 1 / 12 + 0.8) / 3)
    close(b["cheapest"]["dU"], (16 / 60 + 0 + 0.4) / 3)
    # every fixed model on every view (frontier reference points)
    close(b["fixed_models"]["b"]["rU"], b["cheapest"]["rU"])
    close(b["fixed_models"]["a"]["dQ"], 11 / 18)
    # largest: params 70, 8, 24 -> "a" (= best fixed here)
    assert b["largest"]["model"] == "a"
    close(b["largest"]["rU"], 53 / 90)
    # truth: oracle tU (.63+.55+.55)/3; best fixed by mean true u: (1.42, 1.48, .28)/3 -> "b"
    close(b["oracle"]["tU"], 1.73 / 3)
    assert b["best_fixed"]["t_model"] == "b"
    close(b["best_fixed"]["tU"], 1.48 / 3)
    close(b["random"]["tU"], 3.18 / 9)
    close(b["random"]["tQ"], 4.9 / 9)
    # gap closed of the policy on r: (53/180 - 106/180) / (111/180 - 106/180)
    close(M.gap_closed(vals["rU"], b["best_fixed"]["rU"], b["oracle"]["rU"]), -10.6, tol=1e-9)


def test_evaluate_policy_with_single_shot_draws(r_block, d_block, stats):
    data = _dataset(r_block, d_block, truth=_truth())
    ch = np.array([[1, 0, 0], [2, 1, 0]])  # [D=2, Q=3]
    vals, shares = evaluate_policy(data, stats, ch, LAM, 0.2)
    close(vals["rU"], [111 / 180, 53 / 180])  # oracle choices; [2,1,0] as above
    close(vals["dU"], [(16 / 60 + 0.75 + 0.35) / 3, (17 / 60 + 0 + 0.35) / 3])
    close(vals["tU"], [(0.45 + 0.24 + 0.55) / 3, (0.16 + 0.48 + 0.55) / 3])
    close(shares["r"], [[2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3]])
    # gap closed per draw: (U - 106/180) / (111/180 - 106/180) -> [1, -10.6]
    close(M.gap_closed(vals["rU"], 106 / 180, 111 / 180), [1.0, -10.6], tol=1e-9)


def test_cheapest_and_largest_do_not_depend_on_the_supervision_mode(r_block, d_block, stats):
    # train: 1 query x 3 models x 2 rewrites x 1 decode. Over ALL training observations model
    # "b" is cheapest (.2 < .3 < .9); on rewrite 0 alone (output_only) model "a" is (.1 < .2).
    # A baseline is a property of the data: every supervision mode / protocol / seed must
    # report the same cheapest model (the leaderboard shows one baseline row per setting).
    train = from_lists(
        [[[[1], [1]], [[1], [1]], [[1], [1]]]],
        [[[[0.1], [0.5]], [[0.2], [0.2]], [[0.8], [1.0]]]],
        [0, 1], [0],
    )
    data = _dataset(r_block, d_block, train=train, params_b=None)
    # cheapest / largest come from every training observation, whatever the mode or protocol.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = baseline_results(data, stats, LAM, 0.2)
    assert (b["cheapest"]["model"], b["largest"]["model"]) == ("b", "c")


# ============================================================== randomized: independent reference
MODELS = ["zeta/m", "alpha/m", "mid/m"]  # pool order deliberately not sorted
PARAMS = {"zeta/m": 8.0, "alpha/m": 70.0, "mid/m": 24.0}
CASES = [
    # seed, discrete, train_original, equal_costs, protocol, lam, beta
    (0, True, False, False, (None, None), 0.05, 0.2),
    (1, True, False, False, (2, 2), 0.5, 0.5),
    (2, False, False, False, (None, None), 0.05, 0.2),
    (3, True, True, False, (None, None), 0.3, 0.2),
    (4, True, False, True, (3, 1), 0.05, 0.2),
    (5, True, True, False, (2, 3), 0.05, 1.0),
    (6, False, False, False, (1, 2), 0.2, 0.2),
    (7, True, False, False, (None, None), 0.0, 0.0),
    (8, True, False, False, (None, None), 0.0, 0.2),
    (9, True, True, False, (3, 2), 0.1, 0.3),
    (10, True, False, False, (2, 1), 0.05, 0.2),
    (12, False, True, False, (None, None), 0.05, 0.2),
]


def _harness_targets(data, mode, protocol, **kw):
    return make_targets(apply_protocol(data.train, *protocol), mode, **kw)


def _check_targets(reference, data, protocol, lam, beta):
    qids = list(data.train_queries["query_id"])
    for mode in ref.DETERMINISTIC_MODES:
        t = _harness_targets(data, mode, protocol)
        exp = reference.targets(mode, *protocol)
        for i, q in enumerate(qids):
            for j, m in enumerate(MODELS):
                got = (t.mu_q[i, j], t.mu_c[i, j], t.sigma_q[i, j])
                if (q, m) in exp:
                    assert got == pytest.approx(exp[(q, m)][:3], abs=1e-12), (mode, q, m)
                else:
                    assert np.isnan(got).all(), (mode, q, m)
        hard, soft = reference.labels(exp, mode, lam, beta, qids=qids)
        # hard labels for the queries with at least one target (a query with none has no label)
        some = ~np.isnan(t.mu_q).all(axis=1)
        labels = np.full(len(qids), -1)
        labels[some] = M.select_models(t.utility(lam, beta)[some], t.mu_c[some])
        if some.all():
            np.testing.assert_array_equal(t.hard_labels(lam, beta), labels)
        for i, q in enumerate(qids):
            want = -1 if hard[q] is None else MODELS.index(hard[q])
            assert labels[i] == want, (mode, q)
        sl = t.soft_labels(lam, beta)
        for i, q in enumerate(qids):
            if q in soft:
                assert sl[i] == pytest.approx([soft[q][m] for m in MODELS], abs=1e-12), (mode, q)
    # single shot: the documented draw rule, reproduced draw by draw
    t = _harness_targets(data, "single_shot", protocol, n_draws=4, seed=7)
    for d in range(4):
        exp = reference.single_shot_draw(7, d, *protocol, qids=qids)
        for i, q in enumerate(qids):
            for j, m in enumerate(MODELS):
                got = (t.mu_q[d, i, j], t.mu_c[d, i, j], t.sigma_q[d, i, j])
                if (q, m) in exp:
                    assert got == pytest.approx(exp[(q, m)][:3], abs=1e-12)
                else:
                    assert np.isnan(got).all()


def _check_metrics(reference, data, lam, beta, seed):
    stats = {p: M.ViewStats.from_block(b) for p, b in data.test_views.items()}
    qids = list(data.test_queries["query_id"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = baseline_results(data, stats, lam, beta)
        # a fixed routing policy that also picks pairs with no observation in a view
        rng = np.random.default_rng(seed + 100)
        choices = rng.integers(0, len(MODELS), size=len(qids))
        vals, shares = evaluate_policy(data, stats, choices, lam, beta)
    policy = {q: MODELS[c] for q, c in zip(qids, choices)}
    for v in ("r", "d"):
        exp = reference.policy(v, policy, lam)
        for k in ("U", "Q", "C"):
            assert vals[v + k] == pytest.approx(exp[k], abs=1e-12), (v, k)
        assert shares[v] == pytest.approx([exp["share"][m] for m in MODELS], abs=1e-12)
        och, orc = reference.oracle(v, lam)
        bf_m, bf = reference.best_fixed(v, lam)
        rnd = reference.random(v, lam)
        assert b["best_fixed"][v + "_model"] == bf_m
        for k in ("U", "Q", "C"):
            assert b["oracle"][v + k] == pytest.approx(orc[k], abs=1e-12), (v, k)
            assert b["best_fixed"][v + k] == pytest.approx(bf[k], abs=1e-12), (v, k)
            assert b["random"][v + k] == pytest.approx(rnd[k], abs=1e-12), (v, k)
        assert b["oracle"][v + "_share"] == pytest.approx(orc["share"], abs=1e-12)
        for name, m in (("cheapest", reference.cheapest()), ("largest", reference.largest())):
            assert b[name]["model"] == m, name
            e = reference.policy(v, {q: m for q in qids}, lam)
            for k in ("U", "Q", "C"):
                assert b[name][v + k] == pytest.approx(e[k], abs=1e-12), (name, v, k)
        gap = M.gap_closed(vals[v + "U"], b["best_fixed"][v + "U"], b["oracle"][v + "U"])
        exp_gap = ref.gap_closed(exp["U"], bf["U"], orc["U"])
        if math.isnan(exp_gap):
            assert np.isnan(gap)
        else:
            assert float(gap) == pytest.approx(exp_gap, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("seed,discrete,orig,equal_costs,protocol,lam,beta", CASES)
def test_against_independent_reference(seed, discrete, orig, equal_costs, protocol, lam, beta):
    rows = ref.make_rows(
        seed, MODELS, n_train=10, n_test=12, discrete=discrete, train_original=orig, equal_costs=equal_costs
    )
    reference = ref.Reference(rows, MODELS, "minmax", params_b=PARAMS)
    data = normalise_costs(ref.rows_to_dataset(rows, MODELS, params_b=PARAMS), "minmax")
    _check_targets(reference, data, protocol, lam, beta)
    _check_metrics(reference, data, lam, beta, seed)


@pytest.mark.parametrize("method", ["minmax", "max", "none"])
def test_reference_cost_normalisation(method):
    rows = ref.make_rows(11, MODELS, discrete=False)
    reference = ref.Reference(rows, MODELS, method)
    data = normalise_costs(ref.rows_to_dataset(rows, MODELS), method)
    exp = reference.targets("dars")
    t = make_targets(data.train, "dars")
    for i, q in enumerate(data.train_queries["query_id"]):
        for j, m in enumerate(MODELS):
            if (q, m) in exp:
                assert t.mu_c[i, j] == pytest.approx(exp[(q, m)][1], abs=1e-12)
    stats = M.ViewStats.from_block(data.test_rewrite)
    _, orc = reference.oracle("r", 0.05)
    got = M.evaluate_choices(stats, M.oracle_choices(stats, 0.05), 0.05)
    for k in ("U", "C"):
        assert float(got[k]) == pytest.approx(orc[k], abs=1e-12)


@pytest.mark.parametrize("seed", [0, 3])
def test_against_reference_through_the_loader(tmp_path, seed):
    """The same comparison through real JSONL files and ``benchmark.data.loader.load_dars_dir``."""
    loader = pytest.importorskip("benchmark.data.loader")
    rows = ref.make_rows(seed, MODELS, train_original=(seed == 3))
    for r in rows:
        r["dataset"] = "refds"
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    meta = {"models": MODELS, "model_info": {m: {"params_b": PARAMS[m]} for m in MODELS}}
    loader.write_dars_jsonl(train, test, tmp_path, "refds", metadata=meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = loader.load_dars_dir(tmp_path, "refds", cache_dir=tmp_path / "cache")
    assert list(raw.models) == MODELS  # pool order from metadata.json
    data = normalise_costs(raw, "minmax")
    reference = ref.Reference(rows, MODELS, "minmax", params_b=PARAMS)
    _check_targets(reference, data, (None, None), 0.05, 0.2)
    _check_targets(reference, data, (2, 2), 0.5, 0.5)
    _check_metrics(reference, data, 0.05, 0.2, seed)
