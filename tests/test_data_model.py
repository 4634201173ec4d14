"""The dense data model (SPEC §2), cost normalisation (SPEC §3) and the protocol (SPEC §4).

Every expected number is a literal computed by hand; the arithmetic is in the comment next to it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.data.errors import DataWarning
from supervision.modes import dars_full

from benchmark.data.dataset import (
    DarsDataset,
    ObservationBlock,
    TruthTable,
    apply_protocol,
    normalise_costs,
)

NAN = np.nan


def block(score, cost, view_ids=None, decode_ids=None, present=None) -> ObservationBlock:
    """A block from nested lists; NaN score marks an absent observation unless ``present`` is given."""
    score = np.asarray(score, dtype=float)
    cost = np.asarray(cost, dtype=float)
    if present is None:
        present = ~np.isnan(score)
    present = np.asarray(present, dtype=bool)
    v, s = score.shape[2], score.shape[3]
    return ObservationBlock(
        score=score,
        cost=cost,
        present=present,
        view_ids=np.asarray(view_ids if view_ids is not None else range(v), dtype=np.int64),
        decode_ids=np.asarray(decode_ids if decode_ids is not None else range(s), dtype=np.int64),
    )


def dataset(train, test_r, test_d, truth=None, models=("a", "b")) -> DarsDataset:
    nq_tr, nq_te = train.n_queries, test_r.n_queries
    return DarsDataset(
        name="t",
        models=tuple(models),
        train=train,
        test_rewrite=test_r,
        test_decoding=test_d,
        train_queries=pd.DataFrame({"query_id": [f"tr{i}" for i in range(nq_tr)], "text": ["x"] * nq_tr}),
        test_queries=pd.DataFrame({"query_id": [f"te{i}" for i in range(nq_te)], "text": ["y"] * nq_te}),
        model_table=pd.DataFrame({"model": list(models)}),
        test_truth=truth,
    )


# ------------------------------------------------------------------------------ ObservationBlock
def test_block_validates_shapes():
    s = np.zeros((1, 2, 2, 2))
    p = np.ones((1, 2, 2, 2), bool)
    with pytest.raises(ValueError, match="4-d"):
        ObservationBlock(s[0], s[0], p[0], np.arange(2), np.arange(2))
    with pytest.raises(ValueError, match="differ"):
        ObservationBlock(s, s[:, :1], p, np.arange(2), np.arange(2))
    with pytest.raises(ValueError, match="view_ids"):
        ObservationBlock(s, s, p, np.arange(3), np.arange(2))
    with pytest.raises(ValueError, match="boolean"):
        ObservationBlock(s, s, p.astype(int), np.arange(2), np.arange(2))
    b = ObservationBlock(s, s, p, np.arange(2), np.arange(2))
    assert (b.n_queries, b.n_models, b.n_observations) == (1, 2, 8)


def test_subsets_keep_ids_aligned():
    # score[q, m, v, s] = 100 q + 10 v + s (models equal), views [-1, 0, 3], decodes [0, 2]
    sc = np.array([[[[100 * q + 10 * v + s for s in range(2)] for v in range(3)]] * 2 for q in range(2)], float)
    b = block(sc, sc, view_ids=[-1, 0, 3], decode_ids=[0, 2])
    sv = b.subset_views(np.array([False, True, True]))
    assert sv.view_ids.tolist() == [0, 3]
    assert sv.score[1, 0, 1, 1] == 121.0  # q=1, old view 2, decode 1
    sd = b.subset_decodes(np.array([False, True]))
    assert sd.decode_ids.tolist() == [2] and sd.score[0, 1, 2, 0] == 21.0
    sq = b.subset_queries(np.array([1]))
    assert sq.n_queries == 1 and sq.score[0, 0, 0, 0] == 100.0


# -------------------------------------------------------------------------------- protocol
def _grid_block():
    # 1 query, 1 model, views [0, 1, 2], decodes [0, 1, 2]; score = v/10 + s/100 (distinguishable)
    sc = np.array([[[[v / 10 + s / 100 for s in range(3)] for v in range(3)]]])
    return block(sc, sc)


@pytest.mark.parametrize("nr,nd,views,decs", [
    (1, 1, [0], [0]),
    (1, 3, [0], [0, 1, 2]),
    (2, 2, [0, 1], [0, 1]),
    (3, 1, [0, 1, 2], [0]),
    (None, 2, [0, 1, 2], [0, 1]),
    (2, None, [0, 1], [0, 1, 2]),
    (None, None, [0, 1, 2], [0, 1, 2]),
])
def test_protocol_keeps_first_views_and_decodes(nr, nd, views, decs):
    b = apply_protocol(_grid_block(), nr, nd)
    assert b.view_ids.tolist() == views and b.decode_ids.tolist() == decs
    expected = np.array([[[[v / 10 + s / 100 for s in decs] for v in views]]])
    np.testing.assert_array_equal(b.score, expected)


def test_protocol_first_means_smallest_ids_not_positions_in_file():
    # views [-1, 2, 5] (sorted ascending by the data model): "first 2 views" = ids -1 and 2
    b = block(np.zeros((1, 1, 3, 2)), np.zeros((1, 1, 3, 2)), view_ids=[-1, 2, 5], decode_ids=[3, 7])
    p = apply_protocol(b, 2, 1)
    assert p.view_ids.tolist() == [-1, 2] and p.decode_ids.tolist() == [3]


@pytest.mark.parametrize("nr,nd", [(4, None), (None, 4), (0, 1), (1, 0), (5, 5)])
def test_protocol_asking_for_more_than_the_data_is_an_error(nr, nd):
    with pytest.raises(ValueError, match="protocol asks"):
        apply_protocol(_grid_block(), nr, nd)


def test_protocol_keeps_masks():
    sc = np.array([[[[1.0, NAN], [NAN, 0.0]]]])
    p = apply_protocol(block(sc, sc), 1, 2)
    assert p.present.tolist() == [[[[True, False]]]]


# ------------------------------------------------------------------------- cost normalisation
def _cost_dataset(extra_train_garbage=True):
    # train costs: 0.002, 0.004 and one ABSENT cell whose stored value is 100 (must be ignored,
    # since absent observations carry no data); test_r: 0.001, 0.003; test_d: 0.005
    tr_cost = np.array([[[[0.002, 0.004, 100.0 if extra_train_garbage else NAN]]]])
    tr_present = np.array([[[[True, True, False]]]])
    train = block(np.array([[[[1.0, 0.0, NAN]]]]), tr_cost, present=tr_present)
    test_r = block(np.array([[[[1.0, 1.0]]]]), np.array([[[[0.001, 0.003]]]]))
    test_d = block(np.array([[[[0.0]]]]), np.array([[[[0.005]]]]), view_ids=[-1])
    truth = TruthTable(mu_q=np.array([[0.5]]), mu_c=np.array([[0.003]]), sigma_q=np.array([[0.1]]))
    return dataset(train, test_r, test_d, truth=truth, models=("a",))


def test_minmax_over_train_and_test_together():
    d = normalise_costs(_cost_dataset(), "minmax")
    # c_min = 0.001 (test_r), c_max = 0.005 (test_d): c~ = (c - 0.001) / 0.004
    np.testing.assert_allclose(d.train.cost[0, 0, 0, :2], [0.25, 0.75], atol=1e-12)  # (.002-.001)/.004, (.004-.001)/.004
    np.testing.assert_allclose(d.test_rewrite.cost[0, 0, 0], [0.0, 0.5], atol=1e-12)  # 0/.004, .002/.004
    np.testing.assert_allclose(d.test_decoding.cost[0, 0, 0], [1.0], atol=1e-12)
    np.testing.assert_allclose(d.test_truth.mu_c, [[0.5]], atol=1e-12)  # truth uses the same map
    assert d.cost_scale.method == "minmax"
    assert d.cost_scale.offset == pytest.approx(0.001) and d.cost_scale.scale == pytest.approx(0.004)
    # scores untouched
    np.testing.assert_array_equal(d.train.score[d.train.present], [1.0, 0.0])


def test_max_and_none():
    d = normalise_costs(_cost_dataset(), "max")
    # c~ = c / 0.005
    np.testing.assert_allclose(d.train.cost[0, 0, 0, :2], [0.4, 0.8], atol=1e-12)
    np.testing.assert_allclose(d.test_rewrite.cost[0, 0, 0], [0.2, 0.6], atol=1e-12)
    np.testing.assert_allclose(d.test_decoding.cost[0, 0, 0], [1.0], atol=1e-12)
    d = normalise_costs(_cost_dataset(), "none")
    np.testing.assert_allclose(d.train.cost[0, 0, 0, :2], [0.002, 0.004], atol=0)
    np.testing.assert_allclose(d.test_decoding.cost[0, 0, 0], [0.005], atol=0)


def test_normalisation_errors_and_constant_costs():
    with pytest.raises(ValueError, match="unknown cost normalisation"):
        normalise_costs(_cost_dataset(), "zscore")
    d = normalise_costs(_cost_dataset())
    with pytest.raises(ValueError, match="already normalised"):
        normalise_costs(d)
    # every cost equal: min-max has no span; every normalised cost is 0 (not NaN / inf)
    tr = block(np.array([[[[1.0, 0.0]]]]), np.array([[[[0.3, 0.3]]]]))
    te = block(np.array([[[[1.0]]]]), np.array([[[[0.3]]]]))
    d = normalise_costs(dataset(tr, te, te, models=("a",)))
    np.testing.assert_array_equal(d.train.cost, [[[[0.0, 0.0]]]])


def test_normalisation_keeps_absent_cells_absent():
    d = normalise_costs(_cost_dataset(extra_train_garbage=False))
    assert not d.train.present[0, 0, 0, 2] and np.isnan(d.train.cost[0, 0, 0, 2])


def test_protocol_that_empties_a_training_pair_warns_with_the_count():
    """Issue 11: query 0 / model 1 has rows only at view 2; keeping one rewrite empties it."""
    sc = np.full((2, 2, 3, 1), 0.5)
    sc[0, 1, :2] = np.nan
    with pytest.warns(DataWarning, match="leaves 1 training \\(query, model\\) pairs"):
        p = apply_protocol(block(sc, sc), 1, 1)
    assert not p.present[0, 1].any() and p.present.sum() == 3
    # the supervision targets of that pair are NaN, never a filled value
    t = dars_full(p)
    assert np.isnan(t.mu_q[0, 1]) and np.isfinite(t.mu_q[1]).all()
