"""Tests of the neural routers (docs/spec.md §5): planted signal, losses, draws, determinism, inputs.

EmbedLLM, MIRT, RM-softmax and GraphRouter share ``routers.neural``; their own details are in
``test_rm_softmax.py`` and ``test_graphrouter.py``.
"""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from benchmark.data.dataset import ObservationBlock
from routers.embedllm import EmbedLLMNet, EmbedLLMRouter
from routers.graphrouter import GraphRouter
from routers.mirt import MIRTNet, MIRTRouter
from routers import neural
from routers.neural import (
    STREAM_INIT,
    DrawBatches,
    StackedParams,
    TrainingConfig,
    encode_rows,
    seeded_init,
    stream_seed,
    validation_split,
)
from routers.rm_softmax import RMSoftmaxRouter
from supervision.modes import Targets, make_targets

ROUTERS = {
    "embedllm": EmbedLLMRouter,
    "mirt": MIRTRouter,
    "rm_softmax": RMSoftmaxRouter,
    "graphrouter": GraphRouter,
}
# Tiny architectures for the exactness tests (draws, determinism, inputs).
TINY = {
    "embedllm": dict(dim=8, training=dict(epochs=2, batch_size=32)),
    "mirt": dict(latent=4, hidden=(8,), training=dict(epochs=2, batch_size=16)),
    "rm_softmax": dict(hidden=(8, 8), training=dict(epochs=2, batch_size=32)),
    "graphrouter": dict(dim=8, edge_hidden=(8, 8), training=dict(epochs=2, batch_size=16)),
}


def tiny_params(name: str, **training) -> dict:
    """TINY[name] with some training fields replaced."""
    params = dict(TINY[name])
    params["training"] = {**params["training"], **training}
    return params
LAM, BETA = 0.05, 0.2


# ------------------------------------------------------------------------------ helpers
def planted(n_train=120, n_test=90, d=16, n_topics=3, views=2, decodes=2, seed=0):
    """Topic features (one-hot + noise); model k is best on topic k (0.9 vs 0.25).

    Returns X_train, X_test, test topics, the training ObservationBlock (Bernoulli scores,
    costs 0.2..0.4 with a little noise), the true quality ``[topic, model]`` and true costs.
    """
    rng = np.random.default_rng(seed)
    quality = np.full((n_topics, n_topics), 0.25)
    np.fill_diagonal(quality, 0.9)
    cost = np.linspace(0.2, 0.4, n_topics)

    def features(n):
        topic = rng.integers(0, n_topics, n)
        X = rng.normal(0.0, 0.3, (n, d))
        X[np.arange(n), topic] += 1.0
        return X, topic

    X_train, t_train = features(n_train)
    X_test, t_test = features(n_test)
    shape = (n_train, n_topics, views, decodes)
    score = (rng.random(shape) < quality[t_train][..., None, None]).astype(float)
    c = cost[None, :, None, None] + rng.normal(0.0, 0.01, shape)
    block = ObservationBlock(score, c, np.ones(shape, bool), np.arange(views), np.arange(decodes))
    return X_train, X_test, t_test, block, quality, cost


def decisions(router, X, lams=(0.0, 0.05, 0.1)) -> np.ndarray:
    """Everything a fitted router outputs on X: signals, or logits at a few lambdas."""
    if router.predicts_signals:
        p = router.predict(X)
        return np.stack([p.mu_q, p.mu_c, p.sigma_q])
    return np.stack([router.logits(X, lam) for lam in lams])


@pytest.fixture(scope="module")
def tiny():
    X_train, X_test, _, block, _, _ = planted(n_train=40, n_test=10, d=8)
    return X_train, X_test, block


# ------------------------------------------------------------------------ planted signal
@pytest.mark.parametrize("name", list(ROUTERS))
def test_planted_signal_beats_best_fixed_model(name):
    X_train, X_test, t_test, block, quality, cost = planted()
    targets = make_targets(block, "dars")
    router = ROUTERS[name]().fit(X_train, targets, lam=LAM, beta=BETA, seed=0)  # the defaults of docs/spec.md
    chosen = router.route(X_test, LAM, BETA)
    true_u = quality[t_test] - LAM * cost[None, :]  # true utility of every (test query, model)
    router_u = true_u[np.arange(len(t_test)), chosen].mean()
    best_fixed = true_u.mean(axis=0).max()
    oracle = true_u.max(axis=1).mean()
    assert router_u > best_fixed + 0.6 * (oracle - best_fixed), (name, router_u, best_fixed, oracle)


# ---------------------------------------------------------------------------- the losses
def test_embedllm_score_target_and_loss_by_hand():
    mu_q = np.array([[0.9, 0.5], [0.2, np.nan]])
    sigma = np.array([[0.3, 0.0], [0.5, np.nan]])
    mu_c = np.array([[0.1, 0.7], [0.2, np.nan]])
    t = Targets("dars", mu_q, mu_c, sigma, True, np.ones((2, 2), int))
    router = EmbedLLMRouter(dim=3)
    data = router._draw_data(t, beta=0.5)
    # clip(mu_q - 0.5 * sigma, 0, 1): 0.75, 0.5 / 0.0 (clipped from -0.05), missing.
    np.testing.assert_allclose(data["y"][..., 0].numpy(), [[0.75, 0.5], [0.0, 0.0]], atol=1e-7)
    np.testing.assert_array_equal(data["ok"][..., 0].numpy(), [[1, 1], [1, 0]])
    np.testing.assert_allclose(data["y"][..., 1].numpy(), [[0.1, 0.7], [0.2, 0.0]], atol=1e-7)
    ex = router._examples(data, np.arange(2))
    assert ex.tolist() == [[0, 0], [0, 1], [1, 0]]  # the missing pair is no example

    torch.manual_seed(0)
    net = EmbedLLMNet(4, 2, dim=3, noise=0.0)
    X = torch.randn(2, 4)
    z = (X @ net.proj.weight.T + net.proj.bias).detach().numpy().astype(float)
    emb = net.model_emb.weight.detach().numpy()
    bias = net.score_bias.detach().numpy()
    wc, bc = net.cost_head.weight.detach().numpy(), net.cost_head.bias.detach().numpy()
    q, m = ex[:, 0].numpy(), ex[:, 1].numpy()
    logit = (z[q] * emb[m]).sum(1) + bias[m]
    y = data["y"][..., 0].numpy()[q, m]
    bce = np.mean(np.log1p(np.exp(-logit)) + (1 - y) * logit)  # BCE with logits
    cost = (z @ wc.T + bc)[q, m]
    mse = np.mean((cost - mu_c[q, m]) ** 2)
    with torch.no_grad():
        assert float(net.loss(X, data, ex, None)) == pytest.approx(bce + mse, rel=1e-5)


def test_mirt_loss_weights_by_hand():
    rng = np.random.default_rng(1)
    mu_q, mu_c, sigma = rng.random((3, 3, 2))
    mu_c[2, 1] = np.nan  # a missing cost target is skipped by the cost loss only
    t = Targets("dars", mu_q, mu_c, sigma, True, np.ones((3, 2), int))
    router = MIRTRouter(latent=2, hidden=(4,))
    data = router._draw_data(t, beta=0.2)
    ex = router._examples(data, np.arange(3))
    torch.manual_seed(0)
    net = MIRTNet(5, 2, latent=2, hidden=(4,), weights=(1.0, 1.0, 0.5))
    X = torch.randn(3, 5)
    theta = net.ability(X).detach().numpy().astype(float)
    q, m = ex[:, 0].numpy(), ex[:, 1].numpy()

    def head(k):  # a^k_m . theta - b^k_m: weight row k * M + m, bias = -difficulty
        rows = slice(2 * k, 2 * k + 2)
        w, b = net.heads.weight[rows].detach().numpy(), net.heads.bias[rows].detach().numpy()
        return (theta @ w.T + b)[q, m]

    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    s = head(0)
    bce = np.mean(np.log1p(np.exp(-s)) + (1 - mu_q[q, m]) * s)
    ok = np.isfinite(mu_c[q, m])
    mse_c = np.mean((sig(head(1)) - mu_c[q, m])[ok] ** 2)
    mse_s = np.mean((sig(head(2)) - sigma[q, m]) ** 2)
    expected = bce + mse_c + 0.5 * mse_s
    with torch.no_grad():
        assert float(net.loss(X, data, ex, None)) == pytest.approx(expected, rel=1e-5)


def test_embedllm_predicts_zero_sigma_and_warns_on_other_beta(tiny):
    X_train, X_test, block = tiny
    router = EmbedLLMRouter(**TINY["embedllm"]).fit(
        X_train, make_targets(block, "dars"), lam=LAM, beta=BETA
    )
    assert (router.predict(X_test).sigma_q == 0).all()
    with pytest.warns(UserWarning, match="beta=0.2"):
        router.route(X_test, LAM, 0.5)


# ------------------------------------------------------------------ draws in one pass
@pytest.mark.parametrize("name", list(ROUTERS))
def test_batched_draws_identical_to_one_by_one(name, tiny):
    X_train, X_test, block = tiny
    targets = make_targets(block, "single_shot", n_draws=3, seed=5)
    out = {}
    for batch in (True, False):
        router = ROUTERS[name](**tiny_params(name, batch_draws=batch))
        router.fit(X_train, targets, lam=LAM, beta=BETA, seed=11)
        assert hasattr(router, "nets_") == batch and hasattr(router, "members_") != batch
        out[batch] = decisions(router, X_test)
    assert out[True].shape[1:] == (3, len(X_test), 3)
    np.testing.assert_array_equal(out[True], out[False])
    # The draws differ from each other (their own targets and seeds).
    assert not np.array_equal(out[True][:, 0], out[True][:, 1])


def test_draw_d_is_a_single_fit_with_seed_plus_d(tiny):
    X_train, X_test, block = tiny
    targets = make_targets(block, "single_shot", n_draws=3, seed=5)
    batched = MIRTRouter(**TINY["mirt"]).fit(X_train, targets, seed=11).predict(X_test)
    single = MIRTRouter(**TINY["mirt"]).fit(X_train, targets.draw(2), seed=13).predict(X_test)
    np.testing.assert_array_equal(batched.mu_q[2], single.mu_q)
    np.testing.assert_array_equal(batched.sigma_q[2], single.sigma_q)


def test_early_stopping_per_draw_identical_to_one_by_one(tiny):
    X_train, X_test, block = tiny
    targets = make_targets(block, "single_shot", n_draws=3, seed=5)
    kw = dict(epochs=40, lr=1e-2, early_stopping=True, val_fraction=0.25, patience=2)
    out, best = {}, {}
    for batch in (True, False):
        router = MIRTRouter(**tiny_params("mirt", **kw, batch_draws=batch)).fit(X_train, targets, seed=3)
        out[batch], best[batch] = decisions(router, X_test), router.best_epochs_
    assert best[True] == best[False]
    # The draws stopped early, at different epochs.
    assert len(set(best[True])) > 1 and max(best[True]) < 39
    np.testing.assert_array_equal(out[True], out[False])


def test_draws_in_processes_identical(tiny):
    X_train, X_test, block = tiny
    targets = make_targets(block, "single_shot", n_draws=3, seed=5)
    one = RMSoftmaxRouter(**tiny_params("rm_softmax", n_jobs=1)).fit(X_train, targets, seed=2)
    two = RMSoftmaxRouter(**tiny_params("rm_softmax", n_jobs=2)).fit(X_train, targets, seed=2)
    np.testing.assert_array_equal(decisions(one, X_test), decisions(two, X_test))


def test_draw_batches_follow_each_draws_own_seed():
    both = list(DrawBatches([5, 3], batch_size=2, seeds=[7, 8]))
    alone = list(DrawBatches([5], batch_size=2, seeds=[7]))
    assert len(both) == 3  # ceil(5 / 2); the 3-example draw runs out after 2 batches
    assert [b[0].tolist() for b in both] == [b[0].tolist() for b in alone]
    assert both[2][1].numel() == 0
    assert sorted(torch.cat([b[0] for b in both]).tolist()) == list(range(5))


def test_validation_split_and_stream_seeds():
    tr, va = validation_split(20, 0.1, seed=4)
    assert len(va) == 2 and len(tr) == 18 and not set(tr) & set(va)
    assert np.array_equal(validation_split(20, 0.1, seed=4)[1], va)
    assert len(validation_split(20, 0.0, seed=4)[1]) == 0
    assert stream_seed(3, 0) != stream_seed(3, 1) != stream_seed(4, 1)
    X = torch.arange(12.0).reshape(4, 3)
    rows = torch.tensor([2, 0, 2, 3])
    torch.testing.assert_close(encode_rows(lambda x: 2 * x, X, rows), 2 * X[rows])


# --------------------------------------------------------------- determinism and state
@pytest.mark.parametrize("name", list(ROUTERS))
def test_same_seed_same_numbers(name, tiny):
    X_train, X_test, block = tiny
    targets = make_targets(block, "dars")
    a = decisions(ROUTERS[name](**TINY[name]).fit(X_train, targets, seed=1), X_test)
    b = decisions(ROUTERS[name](**TINY[name]).fit(X_train, targets, seed=1), X_test)
    c = decisions(ROUTERS[name](**TINY[name]).fit(X_train, targets, seed=2), X_test)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fit_leaves_global_state_alone(tiny):
    X_train, _, block = tiny
    threads = torch.get_num_threads()
    np.random.seed(123)
    random.seed(123)
    torch.manual_seed(123)
    expected = (np.random.random(), random.random(), torch.rand(1).item())
    np.random.seed(123)
    random.seed(123)
    torch.manual_seed(123)
    MIRTRouter(**TINY["mirt"]).fit(X_train, make_targets(block, "dars"), seed=9)
    assert (np.random.random(), random.random(), torch.rand(1).item()) == expected
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


def test_fit_is_quiet(tiny, capsys):
    X_train, _, block = tiny
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GraphRouter(**TINY["graphrouter"]).fit(X_train, make_targets(block, "dars"))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# ------------------------------------------------------------------------------- inputs
@pytest.mark.parametrize("name", list(ROUTERS))
def test_sparse_features_equal_dense(name, tiny):
    X_train, X_test, block = tiny
    X_train = np.where(np.abs(X_train) > 0.4, X_train, 0.0)  # some zeros
    targets = make_targets(block, "dars")
    dense = ROUTERS[name](**TINY[name]).fit(X_train, targets, seed=0)
    sparse = ROUTERS[name](**TINY[name]).fit(sp.csr_matrix(X_train), targets, seed=0)
    np.testing.assert_array_equal(
        decisions(dense, X_test), decisions(sparse, sp.csr_matrix(X_test))
    )
    with pytest.raises(ValueError, match="feature columns"):
        dense.route(X_test[:, :-1], LAM, BETA)


@pytest.mark.parametrize("name", list(ROUTERS))
def test_missing_pairs_are_skipped(name, tiny):
    X_train, X_test, block = tiny
    present = block.present.copy()
    present[:5, 1] = False  # five queries never observed with model 1
    present[7, :] = False  # one query with no observation at all
    gone = ObservationBlock(
        np.where(present, block.score, np.nan),
        np.where(present, block.cost, np.nan),
        present,
        block.view_ids,
        block.decode_ids,
    )
    targets = make_targets(gone, "dars")
    assert np.isnan(targets.mu_q).sum() == 5 + 3
    router = ROUTERS[name](**TINY[name]).fit(X_train, targets, seed=0)
    out = decisions(router, X_test)
    assert np.isfinite(out).all()
    if name != "rm_softmax":
        ex = router._examples(router._draw_data(targets, BETA), np.arange(len(X_train)))
        assert len(ex) == np.isfinite(targets.mu_q).sum()


@pytest.mark.parametrize("name", list(ROUTERS))
def test_model_without_any_target_is_an_error(name, tiny):
    X_train, _, block = tiny
    t = make_targets(block, "dars")
    mu_q = t.mu_q.copy()
    mu_q[:, 2] = np.nan
    bad = Targets("dars", mu_q, t.mu_c, t.sigma_q, True, t.n_obs)
    with pytest.raises(ValueError, match="model 2 has no finite training target"):
        ROUTERS[name](**TINY[name]).fit(X_train, bad)


def test_unfitted_and_bad_hyperparameters():
    with pytest.raises(RuntimeError, match="not fitted"):
        MIRTRouter().predict(np.zeros((1, 3)))
    with pytest.raises(ValueError):
        MIRTRouter(loss_weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="epochs"):
        TrainingConfig(epochs=0)
    with pytest.raises(ValueError, match="val_fraction"):
        TrainingConfig(early_stopping=True, val_fraction=0.0)
    with pytest.raises(TypeError, match="training must be"):
        EmbedLLMRouter(training=3).training_config()
    assert math.isclose(EmbedLLMRouter().noise, 0.05)


# ---------------------------------------------------------------------- stacked draws
def _draw_nets(name, X, targets, seeds):
    """Each draw's freshly initialised network, target tensors and example table."""
    router = ROUTERS[name](**TINY[name])
    Xt = router._features(X, fit=True)
    nets, data, examples = [], [], []
    for d, s in enumerate(seeds):
        t = targets.draw(d)
        with seeded_init(stream_seed(s, STREAM_INIT)):
            net = router._new_net(Xt.shape[1], t.mu_q.shape[-1])
        dd = router._draw_data(t, BETA)
        router._prepare_net(net, dd)
        nets.append(net)
        data.append(dd)
        examples.append(router._examples(dd, np.arange(len(X))))
    return Xt, nets, data, examples


@pytest.mark.parametrize("name", list(ROUTERS))
def test_stacked_loss_and_gradient_equal_each_draws_own(name, tiny):
    X_train, _, block = tiny
    targets = make_targets(block, "single_shot", n_draws=3, seed=5)
    X, nets, data, examples = _draw_nets(name, X_train, targets, [4, 5, 6])
    g = torch.Generator().manual_seed(0)
    pos = torch.stack([torch.randperm(len(examples[0]), generator=g)[:17] for _ in nets])
    batch = torch.stack([e[p] for e, p in zip(examples, pos)])
    noise = lambda d: torch.Generator().manual_seed(100 + d)  # noqa: E731
    stack = StackedParams(nets)
    # Stacking keeps every draw's own initialisation, bit for bit.
    for d, net in enumerate(nets):
        for n, p in net.named_parameters():
            assert torch.equal(stack.tensors()[n][d], p)
    stacked_data = {k: torch.stack([dd[k] for dd in data]) for k in data[0]}
    losses = nets[0].stacked_loss(
        stack.tensors(), X, stacked_data, batch, [noise(d) for d in range(3)]
    )
    own = torch.stack([n.loss(X, dd, b, noise(d)) for d, (n, dd, b) in enumerate(zip(nets, data, batch))])
    torch.testing.assert_close(losses, own, rtol=1e-6, atol=1e-7)
    assert len(set(own.tolist())) == 3  # the draws' losses differ
    losses.sum().backward()
    own.sum().backward()
    for n, p in stack.tensors().items():
        expected = torch.stack([dict(net.named_parameters())[n].grad for net in nets])
        torch.testing.assert_close(p.grad, expected, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", list(ROUTERS))
def test_stacked_draws_agree_with_exact_and_with_single_fits(name, tiny):
    X_train, X_test, block = tiny
    targets = make_targets(block, "single_shot", n_draws=3, seed=5)
    out = {}
    for path in ("stacked", "exact"):
        router = ROUTERS[name](**tiny_params(name, draws=path))
        router.fit(X_train, targets, lam=LAM, beta=BETA, seed=11)
        assert {net.fit_path for net in router._fitted_nets()} == {path}
        out[path] = decisions(router, X_test)
    np.testing.assert_allclose(out["stacked"], out["exact"], rtol=0, atol=1e-5)
    # Draw 2 of the stacked fit is a single fit of draw 2 with seed 11 + 2: its own
    # initialisation, minibatch order and noise (draw 1 is a different network).
    single = ROUTERS[name](**TINY[name]).fit(X_train, targets.draw(2), lam=LAM, beta=BETA, seed=13)
    one = decisions(single, X_test)[:, None]
    np.testing.assert_allclose(out["stacked"][:, 2:3], one, rtol=0, atol=1e-5)
    assert np.abs(out["stacked"][:, 1:2] - one).max() > 1e-3


def test_stacked_params_round_trip(tiny):
    X_train, _, block = tiny
    targets = make_targets(block, "single_shot", n_draws=2, seed=5)
    _, nets, _, _ = _draw_nets("graphrouter", X_train, targets, [0, 1])
    stack = StackedParams(nets)
    assert stack.names == [n for n, _ in nets[0].named_parameters()]
    state = stack.draw_state(1)
    with torch.no_grad():
        for p in stack.stacked:
            p.mul_(2.0)
    stack.load_draw_state(1, state)
    fresh = _draw_nets("graphrouter", X_train, targets, [7, 8])[1]
    stack.write_back(fresh)
    for (n, a), (_, b) in zip(nets[0].named_parameters(), fresh[0].named_parameters()):
        torch.testing.assert_close(b, 2.0 * a, rtol=0, atol=0)
    for (n, a), (_, b) in zip(nets[1].named_parameters(), fresh[1].named_parameters()):
        assert torch.equal(a, b)


def test_draws_with_different_example_tables_take_the_exact_path(tiny):
    X_train, X_test, block = tiny
    t = make_targets(block, "single_shot", n_draws=3, seed=5)
    mu_q = t.mu_q.copy()
    mu_q[1, 3, 0] = np.nan  # draw 1 lacks one pair: its example table is shorter
    targets = Targets("single_shot", mu_q, t.mu_c, t.sigma_q, False, t.n_obs)
    for name in ("mirt", "graphrouter"):
        router = ROUTERS[name](**tiny_params(name, draws="stacked")).fit(X_train, targets, seed=2)
        assert {net.fit_path for net in router._fitted_nets()} == {"exact"}
        ref = ROUTERS[name](**tiny_params(name, batch_draws=False)).fit(X_train, targets, seed=2)
        np.testing.assert_array_equal(decisions(router, X_test), decisions(ref, X_test))


def test_stacked_early_stopping_agrees_with_exact(tiny):
    X_train, X_test, block = tiny
    targets = make_targets(block, "single_shot", n_draws=3, seed=5)
    kw = dict(epochs=40, lr=1e-2, early_stopping=True, val_fraction=0.25, patience=2)
    out, best = {}, {}
    for path in ("stacked", "exact"):
        router = MIRTRouter(**tiny_params("mirt", **kw, draws=path)).fit(X_train, targets, seed=3)
        assert {net.fit_path for net in router._fitted_nets()} == {path}
        out[path], best[path] = decisions(router, X_test), router.best_epochs_
    assert best["stacked"] == best["exact"]
    assert len(set(best["stacked"])) > 1 and max(best["stacked"]) < 39
    np.testing.assert_allclose(out["stacked"], out["exact"], rtol=0, atol=1e-5)


def test_training_config_rejects_unknown_draw_path():
    with pytest.raises(ValueError, match="draws must be one of"):
        TrainingConfig(draws="vmap")


def test_progress_bar_on_draws_only_when_asked(tiny, capsys, monkeypatch):
    X_train, _, block = tiny
    targets = make_targets(block, "single_shot", n_draws=2, seed=5)
    monkeypatch.setattr(neural, "PROGRESS_DELAY_S", 0.0)
    MIRTRouter(**TINY["mirt"]).fit(X_train, targets)  # progress=None: stderr is no terminal
    assert capsys.readouterr().err == ""
    MIRTRouter(**tiny_params("mirt", progress=True)).fit(X_train, targets)
    err = capsys.readouterr().err
    assert "MIRTRouter: 2 draws" in err and "step" in err
