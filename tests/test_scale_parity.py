"""Parity of the memory-bounded and faster code paths of issue 9 with what they replaced:
single-shot drawing by index lookup (both samplers), lambda-grid selection chunk by chunk, and
the simulator's outputs (recorded before its speed-up). docs/data.md, "Loading at scale"."""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields, replace

import numpy as np
import pyarrow.parquet as pq
import pytest

from benchmark.data.dataset import ObservationBlock
from benchmark.data.simulator import PRESETS, simulate
from benchmark.data.simulator.intstream import BoundedInts
from benchmark.data.simulator.writing import simulate_to_files
from routers.knn import k_smallest
from supervision import utility as utility_module
from supervision.modes import make_targets
from supervision.utility import select_grid, select_models, utility


# ----------------------------------------------------------------- single-shot drawing
def _ragged_block(rng: np.random.Generator, q=37, m=5, v=4, s=6) -> ObservationBlock:
    """Random ragged data: pairs with 0, 1 or many observations, holes anywhere."""
    present = rng.random((q, m, v, s)) < rng.choice([0.0, 0.05, 0.5, 1.0], size=(q, m, 1, 1))
    present[0, 0] = False  # a pair with none
    present[1, 1] = False
    present[1, 1, 2, 3] = True  # a pair with exactly one
    score = np.where(present, rng.random(present.shape), np.nan)
    cost = np.where(present, rng.lognormal(-8, 1, present.shape), np.nan)
    return ObservationBlock(score, cost, present, np.arange(v) - 1, np.arange(s))


def _old_single_shot(block, n_draws, seed, sampler):
    """The previous implementation: a ``[D, Q*M, V*S]`` cumulative-count comparison."""
    q, m, v, s = block.score.shape
    present = block.present.reshape(q * m, v * s)
    n = present.sum(axis=1)
    if sampler == "darsbench":
        u = np.stack([np.random.default_rng(seed + d).random((q, m)).reshape(-1) for d in range(n_draws)])
        rank = np.floor(u * n).astype(np.int64)
    else:
        groups = np.flatnonzero(n > 0)
        rank = np.zeros((n_draws, q * m), dtype=np.int64)
        for d in range(n_draws):
            rank[d, groups] = np.random.default_rng(seed + d).integers(0, n[groups])
    k = (np.cumsum(present, axis=-1)[None] > rank[..., None]).argmax(axis=-1)
    has = np.broadcast_to(n > 0, k.shape)
    pair = np.arange(q * m)[None, :]
    shape = (n_draws, q, m)
    mu_q = np.where(has, block.score.reshape(q * m, -1)[pair, k], np.nan).reshape(shape)
    mu_c = np.where(has, block.cost.reshape(q * m, -1)[pair, k], np.nan).reshape(shape)
    return mu_q, mu_c, np.where(has, 0.0, np.nan).reshape(shape), has.astype(np.int64).reshape(shape)


@pytest.mark.parametrize("sampler", ["darsbench", "official"])
@pytest.mark.parametrize("data_seed", [0, 1, 2])
def test_single_shot_index_lookup_equals_the_comparison(sampler, data_seed):
    block = _ragged_block(np.random.default_rng(data_seed))
    t = make_targets(block, "single_shot", n_draws=9, seed=5 + data_seed, sampler=sampler)
    want = _old_single_shot(block, 9, 5 + data_seed, sampler)
    for got, ref in zip((t.mu_q, t.mu_c, t.sigma_q, t.n_obs), want):
        assert got.shape == ref.shape and got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)  # bit for bit, NaN where NaN
    # the draws really differ and every drawn value is one of the pair's own observations
    assert not np.array_equal(t.mu_q[0], t.mu_q[1], equal_nan=True)
    d, qi, mi = np.nonzero(~np.isnan(t.mu_q))
    obs = block.score[qi, mi].reshape(qi.size, -1)
    assert (obs == t.mu_q[d, qi, mi][:, None]).any(axis=1).all()


def test_single_shot_pair_with_one_observation_always_draws_it():
    block = _ragged_block(np.random.default_rng(3))
    t = make_targets(block, "single_shot", n_draws=4, seed=0)
    assert (t.mu_q[:, 1, 1] == block.score[1, 1, 2, 3]).all()
    assert np.isnan(t.mu_q[:, 0, 0]).all() and (t.n_obs[:, 0, 0] == 0).all()


# --------------------------------------------------------------------- lambda-grid selection
def _old_select_grid(mu_q, mu_c, sigma_q, lams, beta):
    lam = np.asarray(lams, dtype=float).reshape((-1,) + (1,) * mu_q.ndim)
    return select_models(utility(mu_q[None], mu_c[None], sigma_q[None], lam, beta), mu_c[None])


def test_select_grid_in_chunks_equals_one_pass(monkeypatch):
    rng = np.random.default_rng(0)
    shape = (3, 41, 6)  # [D, Q, M]
    mu_q = rng.random(shape).round(1)  # coarse values: many exact ties
    mu_c = rng.random(shape).round(1)
    sigma = rng.random(shape)
    mu_q[0, 0, :3] = np.nan
    lams = [0.0, 0.1, 0.5, 2.0]
    want = _old_select_grid(mu_q, mu_c, sigma, lams, 0.3)
    monkeypatch.setattr(utility_module, "GRID_CHUNK_ELEMENTS", 7 * 6)  # 7 rows a chunk: ragged end
    got = select_grid(mu_q, mu_c, sigma, lams, 0.3)
    assert got.shape == (4, 3, 41) and got.dtype == np.int64
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(got)) > 2


# --------------------------------------------------------------------------------- simulator
#: What the interpolated truth (simulator version 2) moved, by at most a few ulps.
_MOVED = frozenset({"mu_c", "mean_completion_tokens", "var_input", "var_output"})


def _full_fingerprint(data, skip: frozenset = frozenset()) -> str:
    """Every array, text and table a simulation returns (less the truth arrays named in ``skip``)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(data.skill).tobytes())
    for sp in (data.train, data.test):
        h.update(json.dumps(sp.queries.astype(str).values.tolist()).encode())
        h.update(np.ascontiguousarray(sp.queries["difficulty"].to_numpy()).tobytes())
        h.update(json.dumps([sp.view_questions, sp.view_prompts], sort_keys=True).encode())
        for d in (sp.prompt_tokens, sp.completion_tokens, sp.truncated, sp.parse_success, sp.temperatures):
            for k in sorted(d):
                h.update(k.encode())
                h.update(np.ascontiguousarray(d[k]).tobytes())
        for k in sorted(sp.blocks):
            b = sp.blocks[k]
            for a in (b.score, b.cost, b.present, b.view_ids, b.decode_ids):
                h.update(np.ascontiguousarray(a).tobytes())
        truth = {"mu_q": sp.truth.mu_q, "mu_c": sp.truth.mu_c, "sigma_q": sp.truth.sigma_q}
        for name, a in (*truth.items(), ("base_logit", sp.base_logit)):
            if name not in skip:
                h.update(np.ascontiguousarray(a).tobytes())
        for f in fields(sp.detail):
            a = getattr(sp.detail, f.name)
            if a is not None and f.name not in skip:
                h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


#: n_train=23, n_test=17. First hash: everything but the arrays in :data:`_MOVED`, recorded before
#: the simulator's speed-up (issue 9) and unchanged since; second: everything, recorded with the
#: interpolated truth (simulator version 2).
_FINGERPRINTS = {
    ('default', 0): ('88a2c0624c2359cb71df3feb016550226048fe5f6195f6abb78361b3fbf745a4', '8bb054f78504725bff04278d12122d9272cddc40b3ca043bdd0c4aed85b2b754'),
    ('default', 5): ('b23c87488d24717df8ecf8c4bf6d9522d36f486a8e20ab708c1d879445f193af', '51bf1e9162f7fde0d02096934772a77f7b459792fc29e592a9256c0107723f26'),
    ('drop_like', 0): ('8ffcd349cffd29031305dc83a28c7cb7815cdc601734c390a8f02d3ca1987e36', '77a17e80d99f2e6027c2939dc3c8252db746810689508d097b2f1095e88f86e1'),
    ('drop_like', 5): ('b87a3a372eb9cec078a4ab83e034f57c724402b5ce22b95a9ab90802f26525d6', 'd32437e420b520f7dbd36ed0bfddb23229f509b7948184d1bee0faf044fa22db'),
    ('gpqa_like', 0): ('f7936931fea9f16c2a27c91064acd4ac54894c84de936f6978421fa1bd03611c', 'b2fc5fee8d21707a081024289e48a1a6ef2422df553ba0075bda32ede0faeb38'),
    ('gpqa_like', 5): ('fbbcde2060888b691288d00c30f0b7897b474b7db37d05f8207ecbf6a4ba80cf', '7a155b5c11e1b997e54f5f95e61f9ed548b82d269d8cdf998e6535a9ab0046ec'),
    ('math_like', 0): ('7ea1ca12dcfc13d2654e80aa8f04367f2d9d9c859c90b1d0b78c4b301e0a2f1f', 'a7e4e2f0a9d0dbacc9efac482b6b8864d2065d81241323023da496c1b102130b'),
    ('math_like', 5): ('b42af3187f7305b2613c504e650828071d39660c431a8164f6a983b673aaacca', '141e325619d913336243f81d312f3d1eb102861eb89fc46543c3d2bf09e30cd3'),
}
#: default preset, seed 2, n_train=400, n_test=60: more pairs than one chunk of the exact truth.
_LARGE_FINGERPRINT = ("0ce865a3aa515d35ff707beb8a79125e99543b93508bed2108e1757191710d05",
                      "7898fec864a1aea0280b9ee7fe033f132b0c3f6ab68696b259ac61c30c71b779")  # fmt: skip


@pytest.mark.parametrize("preset,seed", sorted(_FINGERPRINTS))
def test_simulator_output_identical_to_the_recorded_reference(preset, seed):
    data = simulate(replace(PRESETS[preset], n_train=23, n_test=17), seed)
    assert _full_fingerprint(data, _MOVED) == _FINGERPRINTS[(preset, seed)][0]
    assert _full_fingerprint(data) == _FINGERPRINTS[(preset, seed)][1]


def test_simulator_output_identical_across_truth_chunks():
    data = simulate(replace(PRESETS["default"], n_train=400, n_test=60), 2)
    assert (_full_fingerprint(data, _MOVED), _full_fingerprint(data)) == _LARGE_FINGERPRINT


@pytest.mark.parametrize("preset,seed", [("drop_like", 5), ("gpqa_like", 0)])
def test_simulator_splits_in_two_processes_give_the_same_output(preset, seed):
    data = simulate(replace(PRESETS[preset], n_train=23, n_test=17), seed, workers=2)
    assert _full_fingerprint(data) == _FINGERPRINTS[(preset, seed)][1]


# ------------------------------------------------------------- numpy's integers, replayed
def _numpy_and_replay(seed: int):
    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    a.integers(3)  # leave half of a 64-bit output cached in both
    b.integers(3)
    return a, b, BoundedInts(b)


@pytest.mark.parametrize("seed", range(40))
def test_bounded_ints_replay_numpy_draw_for_draw(seed):
    """Same numbers and same generator state afterwards, for every call the simulator makes;
    ranges near 2**31 take Lemire's rejection branch about half the time."""
    a, b, ints = _numpy_and_replay(seed)
    plan = np.random.default_rng(1000 + seed).integers(6, size=60)
    for k in plan:
        if k == 0:
            for n in (1, 2, 4, 98, 998, 2**31 + 1, 3 * 2**30, 2**32 - 5):
                assert ints.integers(n) == int(a.integers(n))
        elif k == 1:
            assert ints.integers(1700, 2000) == int(a.integers(1700, 2000))
        elif k == 2:
            highs = [4, 4, 1, 2, 2**31 + 7]
            assert ints.integers_each(highs) == a.integers(np.array(highs)).tolist()
        elif k == 3:  # masked rejection: 17..23 draw under the mask 31
            for n in (24, 1, 2, 17):
                assert ints.permutation(n) == a.permutation(n).tolist()
        elif k == 4:
            assert ints.distinct(2, 1000, 4) == a.choice(np.arange(2, 1000), 4, replace=False).tolist()
        else:
            assert ints.distinct(0, 7, 7) == a.choice(np.arange(7), 7, replace=False).tolist()
    ints.close()
    assert b.bit_generator.state == a.bit_generator.state
    assert b.random() == a.random() and int(b.integers(10**6)) == int(a.integers(10**6))
    with pytest.raises(RuntimeError):
        ints.integers(5)  # a closed replay cannot draw on



# ------------------------------------------------------------------ kNN neighbour selection
@pytest.mark.parametrize("k", [1, 3, 16, 40, 41])
def test_k_smallest_equals_the_stable_argsort(k):
    """Coarse values give many ties, also across the k-th place; -0.0 ties with 0.0."""
    rng = np.random.default_rng(k)
    d2 = rng.integers(0, 6, size=(57, 41)).astype(float)
    d2[0] = 0.0  # a row of ties only
    d2[1, ::2] = -0.0
    d2[2] = np.arange(41)[::-1]
    got = k_smallest(d2, k)
    np.testing.assert_array_equal(got, np.argsort(d2, axis=1, kind="stable")[:, :k])
    assert got.shape == (57, min(k, 41))
    d2[3, 5] = np.inf
    d2[4, 7] = -np.inf
    d2[5, :3] = np.nan  # NaN sorts last
    np.testing.assert_array_equal(k_smallest(d2, k), np.argsort(d2, axis=1, kind="stable")[:, :k])
    d2[6, :] = np.nan  # fewer than k comparable values in a row
    np.testing.assert_array_equal(k_smallest(d2, k), np.argsort(d2, axis=1, kind="stable")[:, :k])


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_files_written_from_two_processes_are_the_same_bytes(tmp_path, fmt):
    """The training split simulated and written by a second process: the same folder (JSONL and
    side files byte for byte) as one process writing everything."""
    cfg = replace(PRESETS["gpqa_like"], n_train=9, n_test=6)
    one = simulate_to_files(cfg, 4, "syn", tmp_path / "one", fmt, workers=1)
    two = simulate_to_files(cfg, 4, "syn", tmp_path / "two", fmt, workers=2)
    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in two.iterdir()) and len(names) == 4
    for name in names:
        if name.endswith(".parquet"):  # Arrow's Parquet bytes vary from write to write; the table does not
            assert pq.read_table(one / name).equals(pq.read_table(two / name)), name
        else:
            assert (one / name).read_bytes() == (two / name).read_bytes(), name
