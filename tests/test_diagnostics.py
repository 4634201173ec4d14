"""docs/spec.md §7 diagnostics on a hand-computed block.

The block: 4 queries x 2 models (A = 0, B = 1) x 2 views x 2 decodes, lam = 0.5. Observation
index k = v * 2 + s, i.e. (v0 d0, v0 d1, v1 d0, v1 d1). Per-observation utility u = q - lam * c.

Q0  A: q 1 1 | 1 1, c 0.2          -> u 0.9 0.9 0.9 0.9
    B: q 1 0 | 0 1, c 0.1          -> u 0.95 -0.05 -0.05 0.95
    labels B A A B (flips); DA: A 1 - 0.1 = 0.9 > B 0.5 - 0.05 = 0.45 -> A; disagree at k0, k3
Q1  A: q 1 1 | 0 0, c 0.2          -> u 0.9 0.9 -0.1 -0.1
    B: q 0.95 1 | 0.5 0, c 0.1 0.2 | 0.2 0.0 -> u 0.9 0.9 0.4 0.0
    k0 tie at 0.9, B cheaper -> B; k1 tie at 0.9, equal cost -> pool order A; k2 B; k3 B
    labels B A B B (flips); DA: A 0.5 - 0.1 = 0.4, B 0.6125 - 0.0625 = 0.55 -> B; disagree k1
Q2  A: q 1 - | 1 0 (v0 d1 absent), c 0.2 -> u 0.9 - 0.9 -0.1
    B: q 0 0 | 0 0, c 0.4          -> u -0.2 everywhere
    position: labels A - A A (k1 masked; no flip); DA: A 2/3 - 0.1 > B -0.2 -> A; no disagreement
    rank: A's present obs at ranks 0, 1, 2 are cells k0, k2, k3 -> labels A A A -, no flip
Q3  A: q 1 0 | 1 0, c 0.2;  B: no observation at all -> no label; left out of flip/disagreement

Outcome instability: observed pairs Q0A Q0B Q1A Q1B Q2A Q2B Q3A (7); unstable Q0B Q1A Q1B Q2A
Q3A (5) -> 5/7.  Winner flip: labelled queries Q0 Q1 Q2; flips Q0 Q1 -> 2/3.
Disagreement: unmasked (query, k) 4 + 4 + 3 = 11; disagreements 2 + 1 + 0 = 3 -> 3/11.

Variance (ddof=0) per pair: input = var of per-view means, output = mean of within-view vars.
  Q0A 0 / 0 / total 0;  Q0B view means .5 .5 -> 0 / (.25 + .25)/2 = .25 / .25
  Q1A means 1 0 -> .25 / 0 / .25
  Q1B means .975 .25 -> .3625^2 = .13140625 / (.025^2 + .25^2)/2 = .0315625 / .16296875
  Q2A means 1 (one obs) and .5 -> .0625 / (0 + .25)/2 = .125 / var(1, 1, 0) = 2/9
      (unequal groups: .0625 + .125 = .1875 != 2/9)
  Q2B 0 / 0 / 0;  Q3A means .5 .5 -> 0 / .25 / .25
  averages over the 7 pairs: input .44390625/7, output .6565625/7, total (.91296875 + 2/9)/7
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from benchmark.data.dataset import ObservationBlock
from evaluators.diagnostics import (
    diagnose,
    draw_summary,
    outcome_instability,
    single_shot_labels,
    single_vs_da_disagreement,
    variance_decomposition,
    winner_flip_rate,
)

LAM = 0.5
N = np.nan


def _block(score: list, cost: list) -> ObservationBlock:
    s = np.array(score, dtype=float).reshape(-1, 2, 2, 2)
    c = np.array(cost, dtype=float).reshape(s.shape)
    present = ~np.isnan(s)
    return ObservationBlock(
        score=s,
        cost=np.where(present, c, np.nan),
        present=present,
        view_ids=np.array([0, 1]),
        decode_ids=np.array([0, 1]),
    )


def hand_block() -> ObservationBlock:
    score = [
        [[1, 1, 1, 1], [1, 0, 0, 1]],  # Q0: A, B  (flat v0d0 v0d1 v1d0 v1d1)
        [[1, 1, 0, 0], [0.95, 1, 0.5, 0]],  # Q1
        [[1, N, 1, 0], [0, 0, 0, 0]],  # Q2
        [[1, 0, 1, 0], [N, N, N, N]],  # Q3
    ]
    cost = [
        [[0.2] * 4, [0.1] * 4],
        [[0.2] * 4, [0.1, 0.2, 0.2, 0.0]],
        [[0.2] * 4, [0.4] * 4],
        [[0.2] * 4, [0.0] * 4],
    ]
    return _block(score, cost)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_outcome_instability_excludes_unobserved_pairs_and_warns():
    with pytest.warns(UserWarning, match="1 of 8"):
        assert outcome_instability(hand_block()) == pytest.approx(5 / 7)


def test_outcome_instability_threshold():
    # Differences at 1e-12 are equal; at 1e-6 they are not.
    tiny = _block([[[0.5, 0.5 + 1e-12, 0.5, 0.5], [0.5, 0.5 + 1e-6, 0.5, 0.5]]], [[[0] * 4] * 2])
    assert outcome_instability(tiny) == pytest.approx(0.5)


def test_single_shot_labels_position_and_rank():
    pos = quiet(single_shot_labels, hand_block(), LAM)
    assert pos.shape == (4, 4)  # [K, Q]
    np.testing.assert_array_equal(
        pos.T,
        [[1, 0, 0, 1], [1, 0, 1, 1], [0, -1, 0, 0], [-1, -1, -1, -1]],
    )
    rank = quiet(single_shot_labels, hand_block(), LAM, align="rank")
    np.testing.assert_array_equal(rank.T[2], [0, 0, 0, -1])
    np.testing.assert_array_equal(rank.T[:2], pos.T[:2])  # complete queries: same labels
    with pytest.raises(ValueError, match="alignment"):
        single_shot_labels(hand_block(), LAM, align="cell")


def test_labels_depend_on_lambda():
    # lam = 0 on Q0: k0 and k3 tie at u = 1 and B is cheaper -> B; k1, k2 -> A.
    lab = quiet(single_shot_labels, hand_block(), 0.0)
    np.testing.assert_array_equal(lab.T[0], [1, 0, 0, 1])
    # lam = 2 on Q1 k0: A 1 - 0.4 = 0.6 < B 0.95 - 0.2 = 0.75 -> B; k1: A 0.6 = B 0.6, equal
    # cost -> A; k2: A -0.4 < B 0.1 -> B; k3: A -0.4 < B 0 -> B.
    lab = quiet(single_shot_labels, hand_block(), 2.0)
    np.testing.assert_array_equal(lab.T[1], [1, 0, 1, 1])


def test_winner_flip_rate():
    with pytest.warns(UserWarning, match="1 of 4 queries"):
        assert winner_flip_rate(hand_block(), LAM) == pytest.approx(2 / 3)
    assert quiet(winner_flip_rate, hand_block(), LAM, align="rank") == pytest.approx(2 / 3)


def test_single_vs_da_disagreement():
    with pytest.warns(UserWarning, match="1 of 4 queries"):
        assert single_vs_da_disagreement(hand_block(), LAM) == pytest.approx(3 / 11)
    # rank alignment: Q2 also has 3 unmasked indices, all agreeing with DA.
    got = quiet(single_vs_da_disagreement, hand_block(), LAM, align="rank")
    assert got == pytest.approx(3 / 11)


def test_single_label_per_query_cannot_flip():
    one = hand_block().subset_views(np.array([True, False])).subset_decodes(np.array([True, False]))
    # Only k0 remains: Q0 B, Q1 B, Q2 A, Q3 unlabelled -> no flips; DA on v0d0 alone equals it.
    assert quiet(winner_flip_rate, one, LAM) == 0.0
    assert quiet(single_vs_da_disagreement, one, LAM) == 0.0


def test_variance_decomposition_hand_values():
    with pytest.warns(UserWarning, match="1 of 8"):
        got = variance_decomposition(hand_block(), per_model=True)
    assert got["input_side"] == pytest.approx(0.44390625 / 7)
    assert got["output_side"] == pytest.approx(0.6565625 / 7)
    assert got["total"] == pytest.approx((0.91296875 + 2 / 9) / 7)
    assert got["input_share"] == pytest.approx(0.44390625 / (0.44390625 + 0.6565625))
    pm = got["per_model"]
    # A: input (0 + .25 + .0625 + 0)/4, output (0 + 0 + .125 + .25)/4
    # B: input (0 + .13140625 + 0)/3, output (.25 + .0315625 + 0)/3
    np.testing.assert_allclose(pm["input_side"], [0.3125 / 4, 0.13140625 / 3])
    np.testing.assert_allclose(pm["output_side"], [0.375 / 4, 0.2815625 / 3])
    # totals: A (0 + .25 + 2/9 + .25)/4, B (.25 + .16296875 + 0)/3
    np.testing.assert_allclose(pm["total"], [(0.5 + 2 / 9) / 4, 0.41296875 / 3])


def test_law_of_total_variance_exact_case():
    # One pair, views [0, 1] and [1, 1]: view means .5, 1 -> input .0625; within .25, 0 ->
    # output .125; all four scores 0 1 1 1: mean .75, total var .1875 = .0625 + .125.
    b = _block([[[0, 1, 1, 1], [0, 1, 1, 1]]], [[[0] * 4] * 2])
    got = variance_decomposition(b)
    assert got["input_side"] == 0.0625
    assert got["output_side"] == 0.125
    assert got["total"] == 0.1875
    assert got["input_side"] + got["output_side"] == got["total"]


def test_law_of_total_variance_random_complete_block():
    rng = np.random.default_rng(0)
    s = rng.random((5, 3, 4, 3))
    b = ObservationBlock(s, rng.random(s.shape), np.ones(s.shape, bool), np.arange(4), np.arange(3))
    got = variance_decomposition(b)
    assert got["input_side"] + got["output_side"] == pytest.approx(got["total"], rel=1e-12)


def test_diagnose_matches_the_functions():
    b = hand_block()
    with pytest.warns(UserWarning):
        d = diagnose(b, LAM)
    v = quiet(variance_decomposition, b)
    assert d["outcome_instability"] == pytest.approx(5 / 7)
    assert d["winner_flip_rate"] == pytest.approx(2 / 3)
    assert d["single_vs_da_disagreement"] == pytest.approx(3 / 11)
    assert d["variance_input_side"] == v["input_side"]
    assert d["variance_output_side"] == v["output_side"]
    assert d["variance_total"] == v["total"]
    assert d["variance_input_share"] == v["input_share"]
    assert (d["n_queries"], d["n_models"], d["n_pairs_observed"]) == (4, 2, 7)
    assert (d["n_queries_labelled"], d["n_label_positions"]) == (3, 11)
    assert d["lam"] == LAM and d["align"] == "position"


def test_empty_block_is_an_error():
    b = _block([[[N] * 4, [N] * 4]], [[[0] * 4] * 2])
    with pytest.raises(ValueError, match="no"):
        quiet(outcome_instability, b)
    with pytest.raises(ValueError):
        quiet(winner_flip_rate, b)
    with pytest.raises(ValueError):
        quiet(diagnose, b)


def test_draw_summary():
    # 0..20: mean 10, squared deviations sum 21 * (21^2 - 1) / 12 = 770; sample std (ddof=1,
    # the default) sqrt(770 / 20) = sqrt(38.5); population std sqrt(770 / 21); p5 = 1, p95 = 19.
    got = draw_summary(np.arange(21.0))
    assert got["mean"] == 10.0
    assert got["std"] == pytest.approx(np.sqrt(38.5))
    assert draw_summary(np.arange(21.0), ddof=0)["std"] == pytest.approx(np.sqrt(770 / 21))
    assert draw_summary([4.0])["std"] == 0.0
    assert (got["min"], got["max"], got["p5"], got["p95"], got["n"]) == (0.0, 20.0, 1.0, 19.0, 21)
    assert draw_summary([1.0, 3.0], ddof=1)["std"] == pytest.approx(np.sqrt(2.0))
    with pytest.raises(ValueError, match="not finite"):
        draw_summary([1.0, np.nan])
    with pytest.raises(ValueError, match="no values"):
        draw_summary([])


def _loop_reference(block: ObservationBlock, lam: float) -> dict[str, float]:
    """Plain-Python reference (position alignment), one pair / query at a time."""
    q_n, m_n, v_n, s_n = block.score.shape
    unstable, observed, flips, labelled, dis, n_pos = 0, 0, 0, 0, 0, 0
    inp, out, tot = [], [], []
    for x in range(q_n):
        for m in range(m_n):
            vals = block.score[x, m][block.present[x, m]]
            if vals.size == 0:
                continue
            observed += 1
            unstable += int(vals.max() - vals.min() > 1e-9)
            means, withins = [], []
            for v in range(v_n):
                g = block.score[x, m, v][block.present[x, m, v]]
                if g.size:
                    means.append(g.mean())
                    withins.append(g.var())
            inp.append(np.var(means))
            out.append(np.mean(withins))
            tot.append(vals.var())
        labels = []
        for k in range(v_n * s_n):
            v, s = divmod(k, s_n)
            if not block.present[x, :, v, s].all():
                continue
            u = block.score[x, :, v, s] - lam * block.cost[x, :, v, s]
            best = [m for m in range(m_n) if u[m] >= u.max() - 1e-12]
            c = block.cost[x, best, v, s]
            labels.append(best[int(np.argmin(c))])
        if not labels:
            continue
        labelled += 1
        flips += int(len(set(labels)) > 1)
        mask = block.present[x]
        mu_q = np.array([block.score[x, m][mask[m]].mean() for m in range(m_n)])
        mu_c = np.array([block.cost[x, m][mask[m]].mean() for m in range(m_n)])
        u = mu_q - lam * mu_c
        best = [m for m in range(m_n) if u[m] >= u.max() - 1e-12]
        da = best[int(np.argmin(mu_c[best]))]
        dis += sum(lab != da for lab in labels)
        n_pos += len(labels)
    return {
        "outcome_instability": unstable / observed,
        "winner_flip_rate": flips / labelled,
        "single_vs_da_disagreement": dis / n_pos,
        "variance_input_side": float(np.mean(inp)),
        "variance_output_side": float(np.mean(out)),
        "variance_total": float(np.mean(tot)),
    }


def test_diagnose_matches_loop_reference_on_random_masked_block():
    rng = np.random.default_rng(3)
    shape = (30, 4, 3, 3)
    score = rng.integers(0, 2, shape).astype(float)  # binary scores: many ties in utility
    score[:15, 1] = rng.random((15,) + shape[2:])  # a continuous-score model on half
    cost = np.round(rng.random(shape), 1)  # coarse costs: cost ties too
    present = rng.random(shape) > 0.1
    present[0, 2] = False  # an unobserved pair: query 0 has no label
    block = ObservationBlock(
        np.where(present, score, np.nan), np.where(present, cost, np.nan), present,
        np.arange(3), np.arange(3),
    )
    got = quiet(diagnose, block, 0.3)
    for key, want in _loop_reference(block, 0.3).items():
        assert got[key] == pytest.approx(want, rel=1e-12), key
