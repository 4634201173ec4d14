"""Supervision modes, utility, selection and labels (docs/spec.md §3-§4) on hand-computed arrays.

Every expected value is a literal worked out by hand; the arithmetic is in the comment beside it.
The block used throughout (``hand_block``) has 2 queries x 2 models x 3 rewrites x 3 decodes;
absent cells store a *garbage 0* (score 0, cost 0) with ``present = False``, so any code that
counts a missing observation as 0 gets different numbers.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from benchmark.data.dataset import ObservationBlock, apply_protocol
from supervision.modes import MODES, Targets, make_targets, single_shot
from supervision.stats import masked_mean, masked_std, masked_var
from supervision.utility import TIE_ATOL, select_models, softmax, utility

X = None  # an absent observation in the literals below
NAN_ = float("nan")

# query 0, model 0 (9 observations)       query 0, model 1 (6 observations, 3 absent)
#   view 0: q [1, 0, 1]  c [.1, .2, .3]      view 0: q [.5, .5, X]  c [.4, .6, X]
#   view 1: q [0, 0, 1]  c [.2, .2, .2]      view 1: q [1,  X,  X]  c [.5, X,  X]
#   view 2: q [1, 1, 1]  c [.3, .1, .2]      view 2: q [0,  1,  1]  c [.6, .5, .4]
# query 1, model 0: one observation (view 1, decode 2: q 1, c .3); query 1, model 1: none.
Q_SCORES = [
    [[[1, 0, 1], [0, 0, 1], [1, 1, 1]], [[0.5, 0.5, X], [1, X, X], [0, 1, 1]]],
    [[[X, X, X], [X, X, 1], [X, X, X]], [[X, X, X], [X, X, X], [X, X, X]]],
]
Q_COSTS = [
    [[[0.1, 0.2, 0.3], [0.2, 0.2, 0.2], [0.3, 0.1, 0.2]], [[0.4, 0.6, X], [0.5, X, X], [0.6, 0.5, 0.4]]],
    [[[X, X, X], [X, X, 0.3], [X, X, X]], [[X, X, X], [X, X, X], [X, X, X]]],
]


def from_lists(scores, costs, view_ids=None, decode_ids=None, garbage=0.0) -> ObservationBlock:
    present = np.array([[[[v is not None for v in d] for d in vw] for vw in m] for m in scores])
    fill = lambda a: np.array(  # noqa: E731
        [[[[garbage if v is None else v for v in d] for d in vw] for vw in m] for m in a], float
    )
    score, cost = fill(scores), fill(costs)
    v, s = score.shape[2], score.shape[3]
    return ObservationBlock(
        score=score,
        cost=cost,
        present=present,
        view_ids=np.asarray(view_ids if view_ids is not None else range(v), np.int64),
        decode_ids=np.asarray(decode_ids if decode_ids is not None else range(s), np.int64),
    )


@pytest.fixture(params=[0.0, np.nan], ids=["garbage0", "nan"])
def hand_block(request):
    return from_lists(Q_SCORES, Q_COSTS, garbage=request.param)


def close(a, b, tol=1e-12):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), atol=tol, rtol=0, equal_nan=True)


# ------------------------------------------------------------------------------ masked stats
def test_masked_stats_single_and_empty():
    v = np.array([[3.0, 99.0], [5.0, 7.0], [0.0, 0.0]])
    m = np.array([[True, False], [True, True], [False, False]])
    close(masked_mean(v, m, 1), [3.0, 6.0, NAN_])  # 3/1, (5+7)/2, nothing
    close(masked_var(v, m, 1, ddof=1), [0.0, 2.0, NAN_])  # single -> 0; ((-1)^2 + 1^2)/1
    close(masked_var(v, m, 1, ddof=0), [0.0, 1.0, NAN_])  # 2/2
    close(masked_std(v, m, (0, 1), ddof=1), math.sqrt(4.0))  # {3,5,7}: (4+0+4)/2 = 4



# ----------------------------------------------------------------------- deterministic modes
def test_dars_full(hand_block):
    t = make_targets(hand_block, "dars")
    # q0m0: 9 scores sum 6 -> 2/3; ddof=1 var: 6*(1/3)^2 + 3*(2/3)^2 = 6/9+12/9 = 2, /8 = .25 -> .5
    #       costs sum .6+.6+.6 = 1.8 -> .2
    # q0m1: scores .5,.5,1,0,1,1 sum 4 -> 2/3; dev^2 = 2/36 + 3*4/36 + 16/36 = 30/36, /5 = 1/6
    #       costs .4+.6+.5+.6+.5+.4 = 3.0 -> .5
    # q1m0: one observation -> mu 1, c .3, sigma 0;  q1m1: no observation -> NaN
    close(t.mu_q, [[2 / 3, 2 / 3], [1.0, NAN_]])
    close(t.mu_c, [[0.2, 0.5], [0.3, NAN_]])
    close(t.sigma_q, [[0.5, math.sqrt(1 / 6)], [0.0, NAN_]])
    assert t.n_obs.tolist() == [[9, 6], [1, 0]]
    assert t.uses_risk and t.mode == "dars" and not t.has_draws


def test_dars_no_risk(hand_block):
    t = make_targets(hand_block, "dars_no_risk")
    close(t.mu_q, [[2 / 3, 2 / 3], [1.0, NAN_]])
    close(t.mu_c, [[0.2, 0.5], [0.3, NAN_]])
    close(t.sigma_q, [[0.0, 0.0], [0.0, NAN_]])
    assert not t.uses_risk and t.effective_beta(0.2) == 0.0
    # U ignores beta: q0m0 2/3 - .05*.2 = .656666..; q0m1 2/3 - .05*.5 = .641666..
    close(t.utility(0.05, 0.2), [[0.6566666666666667, 0.6416666666666667], [0.985, NAN_]])


def test_dars_rewrite_risk(hand_block):
    t = make_targets(hand_block, "dars_rewrite_risk")
    # q0m0 per-rewrite means 2/3, 1/3, 1 -> mean 2/3; ddof=1 var (0 + 1/9 + 1/9)/2 = 1/9 -> 1/3
    # q0m1 per-rewrite means .5, 1, 2/3 -> mean 13/18; devs -4/18, 5/18, -1/18
    #      -> (16+25+1)/324 / 2 = 7/108 -> sqrt(7/108) = .2545875386
    # q1m0: a single rewrite -> 0
    close(t.sigma_q, [[1 / 3, math.sqrt(7 / 108)], [0.0, NAN_]])
    # mu_q is the pooled mean over observations (2/3), NOT the mean of rewrite means (13/18)
    close(t.mu_q, [[2 / 3, 2 / 3], [1.0, NAN_]])
    close(t.mu_c, [[0.2, 0.5], [0.3, NAN_]])


def test_dars_decode_risk(hand_block):
    t = make_targets(hand_block, "dars_decode_risk")
    # q0m0 within-rewrite ddof=1 vars: [1,0,1] -> (1/9+4/9+1/9)/2 = 1/3; [0,0,1] -> 1/3; [1,1,1] -> 0
    #      mean over 3 rewrites 2/9 -> sqrt(2)/3 = .4714045208
    # q0m1: [.5,.5] -> 0; [1] (one decode) -> 0; [0,1,1] -> (4/9+1/9+1/9)/2 = 1/3
    #      mean over 3 rewrites = 1/9 -> 1/3   (a one-decode rewrite counts as 0 in the mean)
    close(t.sigma_q, [[math.sqrt(2) / 3, 1 / 3], [0.0, NAN_]])
    close(t.mu_q, [[2 / 3, 2 / 3], [1.0, NAN_]])


def test_input_only(hand_block):
    t = make_targets(hand_block, "input_only")
    # decode 0 of every rewrite. q0m0: q 1, 0, 1 -> 2/3, devs 1/3,-2/3,1/3 -> 6/9/2 = 1/3 -> sqrt(1/3)
    #                                   c .1, .2, .3 -> .2
    # q0m1: q .5, 1, 0 -> .5, devs 0, .5, -.5 -> .5/2 = .25 -> .5;  c .4, .5, .6 -> .5
    # q1m0: its only observation is decode 2 -> nothing used -> NaN (not 0)
    close(t.mu_q, [[2 / 3, 0.5], [NAN_, NAN_]])
    close(t.mu_c, [[0.2, 0.5], [NAN_, NAN_]])
    close(t.sigma_q, [[math.sqrt(1 / 3), 0.5], [NAN_, NAN_]])
    assert t.n_obs.tolist() == [[3, 3], [0, 0]]


def test_output_only_without_original_uses_rewrite_0(hand_block):
    t = make_targets(hand_block, "output_only")
    # rewrite 0, every decode. q0m0: [1,0,1] -> 2/3, sd sqrt(1/3), c (.1+.2+.3)/3 = .2
    # q0m1: [.5,.5] -> .5, sd 0, c (.4+.6)/2 = .5;  q1m0: nothing in view 0 -> NaN
    close(t.mu_q, [[2 / 3, 0.5], [NAN_, NAN_]])
    close(t.mu_c, [[0.2, 0.5], [NAN_, NAN_]])
    close(t.sigma_q, [[math.sqrt(1 / 3), 0.0], [NAN_, NAN_]])
    assert t.n_obs.tolist() == [[3, 2], [0, 0]]


def test_output_and_input_only_with_an_original_view():
    # Same numbers, but view ids [-1, 0, 1]: view index 0 is now the ORIGINAL query.
    b = from_lists(Q_SCORES, Q_COSTS, view_ids=[-1, 0, 1])
    out = make_targets(b, "output_only")
    # the original view (index 0) -> identical to the previous test; had it taken rewrite 0
    # (index 1) q0m0 would be [0,0,1] -> 1/3.
    close(out.mu_q, [[2 / 3, 0.5], [NAN_, NAN_]])
    close(out.sigma_q, [[math.sqrt(1 / 3), 0.0], [NAN_, NAN_]])
    inp = make_targets(b, "input_only")
    # rewrites only (ids 0, 1 = indices 1, 2), decode 0: q0m0 q 0, 1 -> .5, var (.25+.25)/1 -> sqrt(.5)
    #   c .2, .3 -> .25;  q0m1 q 1, 0 -> .5, sd sqrt(.5), c .5, .6 -> .55
    close(inp.mu_q, [[0.5, 0.5], [NAN_, NAN_]])
    close(inp.mu_c, [[0.25, 0.55], [NAN_, NAN_]])
    close(inp.sigma_q, [[math.sqrt(0.5), math.sqrt(0.5)], [NAN_, NAN_]])


def test_output_only_rewrite_ids_not_starting_at_0():
    # no original and no rewrite id 0: the first (smallest) rewrite id, here 2
    b = from_lists(Q_SCORES, Q_COSTS, view_ids=[2, 5, 7])
    close(make_targets(b, "output_only").mu_q, [[2 / 3, 0.5], [NAN_, NAN_]])


def test_protocol_then_mode(hand_block):
    b = apply_protocol(hand_block, 2, 2)
    t = make_targets(b, "dars")
    # q0m0 views 0-1 x decodes 0-1: [1,0],[0,0] -> .25; devs .75,-.25,-.25,-.25 -> (.5625+.1875)/3 = .25 -> .5
    #      c .1,.2,.2,.2 -> .175
    # q0m1: [.5,.5],[1,X] -> 2/3; devs -1/6,-1/6,1/3 -> 6/36/2 = 1/12 -> .2886751346; c .4,.6,.5 -> .5
    # q1m0: its only observation (view 1, decode 2) is cut -> NaN
    close(t.mu_q, [[0.25, 2 / 3], [NAN_, NAN_]])
    close(t.mu_c, [[0.175, 0.5], [NAN_, NAN_]])
    close(t.sigma_q, [[0.5, math.sqrt(1 / 12)], [NAN_, NAN_]])
    # 1x1 protocol: one observation per pair -> sigma 0 in every risk mode
    one = apply_protocol(hand_block, 1, 1)
    for mode in ("dars", "dars_rewrite_risk", "dars_decode_risk", "input_only", "output_only"):
        close(make_targets(one, mode).sigma_q, [[0.0, 0.0], [NAN_, NAN_]])
        close(make_targets(one, mode).mu_q, [[1.0, 0.5], [NAN_, NAN_]])


# --------------------------------------------------------------------- utility and labels
def test_utilities_and_hard_labels(hand_block):
    lam, beta = 0.05, 0.2
    t = {m: make_targets(hand_block, m) for m in MODES if m != "single_shot"}
    # dars:    q0m0 2/3 - .05*.2 - .2*.5 = .556667; q0m1 2/3 - .025 - .2*sqrt(1/6) = .560017 -> m1
    close(t["dars"].utility(lam, beta)[0], [2 / 3 - 0.01 - 0.1, 2 / 3 - 0.025 - 0.2 * math.sqrt(1 / 6)])
    # no risk: .656667 vs .641667 -> m0
    # rewrite: .656667 - .2/3 = .59  vs .641667 - .2*.2545875 = .590749 -> m1
    close(t["dars_rewrite_risk"].utility(lam, beta)[0], [0.59, 2 / 3 - 0.025 - 0.2 * math.sqrt(7 / 108)])
    # decode:  .656667 - .2*.4714045 = .562386 vs .641667 - .2/3 = .575 -> m1
    close(t["dars_decode_risk"].utility(lam, beta)[0], [2 / 3 - 0.01 - 0.2 * math.sqrt(2) / 3, 0.575])
    # q1: only model 0 has targets -> 0
    for mode in ("dars", "dars_no_risk", "dars_rewrite_risk", "dars_decode_risk"):
        expect = {"dars": 1, "dars_no_risk": 0, "dars_rewrite_risk": 1, "dars_decode_risk": 1}[mode]
        assert t[mode].hard_labels(lam, beta).tolist() == [expect, 0], mode
    # input/output only: q0 -> m0 (.541197 vs .375; .541197 vs .475); q1 has no target at all
    q0 = np.array([0])
    for mode in ("input_only", "output_only"):
        sub = Targets(mode, t[mode].mu_q[q0], t[mode].mu_c[q0], t[mode].sigma_q[q0], True, t[mode].n_obs[q0])
        assert sub.hard_labels(lam, beta).tolist() == [0]
        with pytest.raises(ValueError, match="no model with a finite utility"):
            t[mode].hard_labels(lam, beta)


def test_soft_labels(hand_block):
    t = make_targets(hand_block, "dars_no_risk")
    # q0: U = [.656667, .641667]: softmax = [1, e^-.015] / (1 + e^-.015)
    p1 = math.exp(-0.015) / (1 + math.exp(-0.015))
    close(t.soft_labels(0.05, 0.2)[0], [1 - p1, p1])
    # tau = .005: U/tau = [131.33, 128.33] -> [1, e^-3] / (1 + e^-3)
    p1 = math.exp(-3) / (1 + math.exp(-3))
    close(t.soft_labels(0.05, 0.2, tau=0.005)[0], [1 - p1, p1])
    # q1: model 1 has no target -> probability 0, not NaN
    close(t.soft_labels(0.05, 0.2)[1], [1.0, 0.0])


def test_softmax_by_hand():
    close(softmax(np.array([math.log(3), 0.0])), [0.75, 0.25])  # 3/(3+1), 1/(3+1)
    close(softmax(np.array([2 * math.log(3), 0.0]), tau=2), [0.75, 0.25])
    # no overflow: [1000, 1000, 1000 - ln 2] -> [1, 1, .5] / 2.5
    close(softmax(np.array([1000.0, 1000.0, 1000.0 - math.log(2)])), [0.4, 0.4, 0.2])
    with pytest.raises(ValueError):
        softmax(np.array([0.0]), tau=0)


def test_utility_formula():
    # .8 - .5*.4 - .25*.2 = .8 - .2 - .05 = .55
    close(utility(np.array(0.8), np.array(0.4), np.array(0.2), 0.5, 0.25), 0.55)
    close(utility(np.array(0.8), np.array(0.4), None, 0.5, 0.25), 0.6)  # no sigma
    # beta = 0 leaves NaN sigma out
    close(utility(np.array(0.8), np.array(0.4), np.array(NAN_), 0.5, 0.0), 0.6)


# ------------------------------------------------------------------------------ tie-breaking
def test_select_models_ties():
    # clear max wins even if more expensive
    assert select_models(np.array([0.7, 0.5]), np.array([0.9, 0.1])).item() == 0
    # equal U -> lower cost wins (index 2 costs .2 < .3)
    assert select_models(np.array([0.5, 0.7, 0.7]), np.array([0.1, 0.3, 0.2])).item() == 2
    # equal U and equal cost -> pool order (index 1 before 2)
    assert select_models(np.array([0.7, 0.7, 0.7]), np.array([0.2, 0.1, 0.1])).item() == 1
    # all equal -> the first model
    assert select_models(np.zeros(3), np.zeros(3)).item() == 0
    # NaN utility never wins; a row of NaN is an error
    assert select_models(np.array([NAN_, 0.1]), np.array([0.0, 1.0])).item() == 1
    with pytest.raises(ValueError):
        select_models(np.array([[NAN_, NAN_]]), np.zeros((1, 2)))
    # batched [D, Q, M]
    u = np.array([[[1.0, 1.0], [0.0, 1.0]], [[2.0, 1.0], [3.0, 3.0]]])
    c = np.array([[[0.5, 0.4], [0.0, 0.0]], [[0.0, 0.0], [0.1, 0.1]]])
    assert select_models(u, c).tolist() == [[1, 1], [0, 0]]


def test_select_models_float_noise_is_a_tie():
    # .1 + .2 = .30000000000000004 vs .3: the same number to a researcher; cheaper model wins
    u = np.array([0.1 + 0.2, 0.3])
    assert u[0] != u[1] and abs(u[0] - u[1]) < TIE_ATOL
    assert select_models(u, np.array([0.5, 0.4])).item() == 1
    # a real difference of 1e-9 is not a tie
    assert select_models(np.array([0.3 + 1e-9, 0.3]), np.array([0.5, 0.4])).item() == 0


def test_cost_tie_does_not_depend_on_summation_order():
    # Two models with the SAME observations (scores all 1; costs .2, .35, .05) in a different
    # decode order. mu_c is .2 for both mathematically, but float sums in a different order can
    # differ in the last bit ((.2+.35)+.05 vs (.05+.2)+.35). docs/spec.md §3: equal U, equal mu_c ->
    # pool order -> model 0.
    b = from_lists([[[[1, 1, 1]], [[1, 1, 1]]]], [[[[0.2, 0.35, 0.05]], [[0.05, 0.2, 0.35]]]])
    t = make_targets(b, "dars")
    assert abs(t.mu_c[0, 0] - t.mu_c[0, 1]) < 1e-15
    assert t.hard_labels(0.05, 0.2).tolist() == [0]
    assert select_models(np.array([0.5, 0.5]), np.array([0.2, np.nextafter(0.2, 0)])).item() == 0
    # a real cost difference still decides
    assert select_models(np.array([0.5, 0.5]), np.array([0.2, 0.2 - 1e-9])).item() == 1


def test_hard_label_tie_through_targets():
    # two models with identical score distributions; model 1 cheaper -> 1; then equal cost -> 0
    sc = [[[[1, 0]], [[0, 1]]]]  # 1 query, 2 models, 1 view, 2 decodes
    b = from_lists(sc, [[[[0.3, 0.3]], [[0.2, 0.2]]]])
    # U0 = .5 - lam*.3 - beta*sqrt(.5), U1 = .5 - lam*.2 - ... -> with lam = 0 they tie on U
    assert make_targets(b, "dars").hard_labels(0.0, 0.2).tolist() == [1]
    b = from_lists(sc, [[[[0.3, 0.3]], [[0.1, 0.5]]]])  # same mean cost .3
    assert make_targets(b, "dars").hard_labels(0.0, 0.2).tolist() == [0]
    assert make_targets(b, "dars").hard_labels(0.05, 0.2).tolist() == [0]


# ------------------------------------------------------------------------------ single shot
def _coded_block():
    # 1 query x 2 models x 3 views x 3 decodes; cost = 10*v + s + 1 identifies the cell, score = cost/100
    present = np.ones((1, 2, 3, 3), bool)
    present[0, 0, 1, :] = False  # model 0: view 1 missing entirely -> 6 observations
    present[0, 1] = False
    present[0, 1, 2, 1] = True  # model 1: one observation
    code = np.array([[[[10 * v + s + 1 for s in range(3)] for v in range(3)]] * 2], float)
    score = np.where(present, code / 100, 0.0)
    cost = np.where(present, code, 0.0)
    return ObservationBlock(score, cost, present, np.arange(3), np.arange(3))


def test_single_shot_basic_contract(hand_block):
    t = single_shot(hand_block, n_draws=7, seed=11)
    assert t.mu_q.shape == (7, 2, 2) and t.has_draws and t.n_draws == 7
    assert not t.uses_risk and t.effective_beta(0.2) == 0.0
    close(t.sigma_q, np.broadcast_to([[0.0, 0.0], [0.0, NAN_]], (7, 2, 2)))
    assert np.isnan(t.mu_q[:, 1, 1]).all() and np.isnan(t.mu_c[:, 1, 1]).all()
    # q1m0 has one observation: every draw is it (q 1, c .3)
    close(t.mu_q[:, 1, 0], np.ones(7))
    close(t.mu_c[:, 1, 0], np.full(7, 0.3))
    assert t.n_obs.tolist() == [[[1, 1], [1, 0]]] * 7
    # utility has no risk term even with beta > 0, labels have a draw axis [D, Q]
    close(t.utility(0.05, 0.2), t.mu_q - 0.05 * t.mu_c)
    assert t.hard_labels(0.05, 0.2).shape == (7, 2)
    # draws are views of the same targets
    close(t.draw(3).mu_q, t.mu_q[3])
    assert make_targets(hand_block, "single_shot", n_draws=7, seed=11).mu_q.tobytes() == t.mu_q.tobytes()


def test_single_shot_draws_only_present_and_paired_observations():
    b = _coded_block()
    t = single_shot(b, n_draws=300, seed=5)
    allowed0 = {1, 2, 3, 21, 22, 23}  # view 1 (codes 11-13) is absent
    assert set(t.mu_c[:, 0, 0].tolist()) <= allowed0
    assert set(t.mu_c[:, 0, 1].tolist()) == {22.0}
    close(t.mu_q * 100, t.mu_c)  # score and cost come from the SAME observation


def test_single_shot_is_uniform_over_present_observations():
    b = _coded_block()
    n = 6000
    t = single_shot(b, n_draws=n, seed=0)
    freq = Counter(t.mu_c[:, 0, 0].tolist())
    assert set(freq) == {1, 2, 3, 21, 22, 23}
    # each of 6 observations has p = 1/6; sd of a frequency = sqrt(p(1-p)/n) = .0048; 5 sd = .024
    for k, c in freq.items():
        assert abs(c / n - 1 / 6) < 0.024, (k, c)
    # chi-square with 5 dof: 99.9% quantile is 20.5
    chi2 = sum((c - n / 6) ** 2 / (n / 6) for c in freq.values())
    assert chi2 < 20.5


def test_single_shot_seed_rule():
    b = _coded_block()
    a = single_shot(b, n_draws=5, seed=3)
    again = single_shot(b, n_draws=5, seed=3)
    np.testing.assert_array_equal(a.mu_q, again.mu_q)
    # draw d uses seed + d: draw d of seed 3 == draw 0 of seed 3 + d
    for d in range(5):
        np.testing.assert_array_equal(single_shot(b, n_draws=1, seed=3 + d).mu_q[0], a.mu_q[d])
    # the documented rule: u = default_rng(seed + d).random((Q, M)); floor(u * n)-th present
    # observation of the pair in (prompt_variant_id, decode_id) order
    order0 = [1, 2, 3, 21, 22, 23]
    for d in range(5):
        u = np.random.default_rng(3 + d).random((1, 2))
        assert a.mu_c[d, 0, 0] == order0[int(math.floor(u[0, 0] * 6))]
    # different seeds give different draw sequences
    assert not np.array_equal(single_shot(b, n_draws=20, seed=0).mu_c, single_shot(b, n_draws=20, seed=100).mu_c)


def test_single_shot_errors_and_dispatch(hand_block):
    with pytest.raises(ValueError):
        single_shot(hand_block, n_draws=0)
    with pytest.raises(ValueError, match="unknown supervision mode"):
        make_targets(hand_block, "dars_full")
    assert set(MODES) == {
        "single_shot", "input_only", "output_only", "dars_no_risk",
        "dars_rewrite_risk", "dars_decode_risk", "dars",
    }


def test_stacked_and_draw_of_deterministic_targets(hand_block):
    t = make_targets(hand_block, "dars")
    s = t.stacked()
    assert s.mu_q.shape == (1, 2, 2) and s.n_draws == 1
    assert t.draw(0) is t
    with pytest.raises(IndexError):
        t.draw(1)
