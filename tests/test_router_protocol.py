"""The router protocol (routers/base.py): scores/route/decide for all, predict for signal routers,
scikit-learn parameters, the shared training config, and adding a router with one class + YAML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from sklearn.base import clone

from evaluators.frontier import route_sweep
from routers.base import Router, SignalRouter, Signals
from routers.knn import KNNRouter
from routers.neural import NeuralRouter, TrainingConfig
from supervision.modes import Targets

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
ROUTER_YAMLS = sorted(p.stem for p in (CONF / "router").glob("*.yaml"))


def _router(name: str, *overrides: str) -> Router:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"router={name}", *overrides])
    return instantiate(cfg.router)


def _targets(mu_q, mu_c, sigma=None) -> Targets:
    mu_q, mu_c = np.asarray(mu_q, float), np.asarray(mu_c, float)
    sigma = np.zeros_like(mu_q) if sigma is None else np.asarray(sigma, float)
    return Targets("dars", mu_q, mu_c, sigma, True, np.ones(mu_q.shape, int))


@pytest.mark.parametrize("name", ROUTER_YAMLS)
def test_every_router_answers_the_protocol(name):
    router = _router(name)
    assert isinstance(router, Router)
    # predict exists exactly on signal routers: the capability is the class, never a raise.
    assert router.predicts_signals == isinstance(router, SignalRouter)
    assert callable(getattr(type(router), "predict", None)) == router.predicts_signals
    # scikit-learn parameters: get_params round-trips through clone and set_params.
    params = router.get_params(deep=False)
    twin = clone(router)
    assert type(twin) is type(router) and twin.get_params(deep=False).keys() == params.keys()
    assert repr(twin).startswith(type(router).__name__ + "(")


@pytest.mark.parametrize("name", ["embedllm", "mirt", "rm_softmax", "graphrouter"])
def test_training_yaml_equals_the_class_defaults(name):
    router = _router(name)
    assert isinstance(router, NeuralRouter)
    assert isinstance(router.training, TrainingConfig)
    # YAML and code agree (n_jobs included), so `darsbench router=X` and `X()` train alike.
    assert router.training == type(router).default_training == type(router)().training_config()
    assert router.training.n_jobs == TrainingConfig().n_jobs == 1
    assert _router(name, "router.training.epochs=3").training_config().epochs == 3


def test_training_mapping_replaces_fields_of_the_router_defaults():
    from routers.embedllm import EmbedLLMRouter

    cfg = EmbedLLMRouter(training={"epochs": 2}).training_config()
    assert (cfg.epochs, cfg.batch_size) == (2, 2048)  # embedllm's own batch size kept


def test_set_params_and_clone_keep_parameters_unchanged():
    r = KNNRouter(k=3)
    assert r.get_params() == {"k": 3, "eps": 1e-8}
    r.set_params(k=5)
    assert clone(r).k == 5 and repr(r) == "KNNRouter(k=5)"


def test_signal_router_scores_route_grid_and_decide():
    X = np.array([[0.0], [1.0], [10.0]])
    mu_q = np.array([[0.9, 0.5], [0.8, 0.6], [0.2, 0.3]])
    mu_c = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1]])
    r = KNNRouter(k=1).fit(X, _targets(mu_q, mu_c))
    # k=1 on the training points themselves: predictions are the targets.
    u = r.scores(X, 0.5, 0.2)
    np.testing.assert_allclose(u, mu_q - 0.5 * mu_c)
    # Row 0 ties at 0.45 and goes to the cheaper model; rows 1 and 2 prefer model 1.
    assert r.route(X, 0.5, 0.2).tolist() == [1, 1, 1]
    lams = [0.0, 0.5, 1.0]
    d = r.decide(X, 0.5, 0.2)
    assert set(d.outputs) == {"mu_q", "mu_c", "sigma_q"}
    grid = r.route_grid(X, lams, 0.2, d)
    np.testing.assert_array_equal(grid, route_sweep(d.signals, lams, 0.2))
    np.testing.assert_array_equal(grid[1], d.choices)
    assert grid[0].tolist() == [0, 0, 1]


class _LinearScores(Router):
    """A non-signal router for the test: score_m = w_m - lam * c_m (fixed, no fitting)."""

    def __init__(self, w=(1.0, 0.5), c=(1.0, 0.0)):
        self.w = w
        self.c = c

    def _fit_single(self, X, targets, *, lam, beta, seed):
        self.seen_ = X.shape[0]

    def scores(self, X, lam, beta):
        row = np.asarray(self.w) - lam * np.asarray(self.c)
        return np.tile(row, (X.shape[0], 1))


def test_plain_router_routes_by_argmax_of_scores():
    X = np.zeros((2, 1))
    r = _LinearScores().fit(X, _targets(np.full((2, 2), 0.5), np.full((2, 2), 0.5)))
    assert r.predicts_signals is False and not isinstance(r, SignalRouter)
    d = r.decide(X, 0.2, 0.0)
    assert d.signals is None and list(d.outputs) == ["score"]
    assert d.choices.tolist() == [0, 0]  # 0.8 > 0.5
    assert r.route_grid(X, [0.2, 0.6], 0.0).tolist() == [[0, 0], [1, 1]]  # 0.4 < 0.5


# --------------------------------------------------------------- a new router, end to end
NEW_ROUTER = '''
"""A router that predicts each model's mean training targets for every query."""

import numpy as np

from routers.base import SignalRouter, Signals


class MeanRouter(SignalRouter):
    def __init__(self, shrink: float = 0.0):
        self.shrink = shrink

    def _fit_single(self, X, targets, *, lam, beta, seed):
        self.means_ = np.stack(
            [np.nanmean(v, axis=0) for v in (targets.mu_q, targets.mu_c, targets.sigma_q)]
        ) * (1.0 - self.shrink)

    def _predict_single(self, X):
        n = X.shape[0]
        return Signals(*(np.tile(m, (n, 1)) for m in self.means_))
'''


def test_a_new_router_is_one_class_and_one_yaml(tmp_path):
    pkg = tmp_path / "src"
    pkg.mkdir()
    (pkg / "mean_router.py").write_text(textwrap.dedent(NEW_ROUTER))
    conf = tmp_path / "conf" / "router"
    conf.mkdir(parents=True)
    (conf / "mean.yaml").write_text("_target_: mean_router.MeanRouter\nshrink: 0.0\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(pkg), str(REPO)]),
        "DARSBENCH_CACHE": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
    }
    outs = {}
    for mode, extra in (("dars", []), ("single_shot", ["supervision.n_draws=3"])):
        out = tmp_path / mode
        proc = subprocess.run(
            [sys.executable, "-m", "benchmark.app.cli", f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
             "router=mean", f"supervision={mode}", *extra, "features=tfidf",
             "dataset.overrides={n_train:30,n_test:12}", "save_router=true", f"hydra.run.dir={out}"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        assert "| mean |" in proc.stdout  # the leaderboard table takes an unknown router
        outs[mode] = out
    res = json.loads((outs["dars"] / "results.json").read_text())
    assert res["router"] == "mean"
    dec = pd.read_parquet(outs["dars"] / "decisions.parquet")
    # The same prediction for every query: one chosen model throughout.
    assert dec["chosen"].nunique() == 1 and len(dec) == 12
    assert {f"mu_q[{m}]" for m in res["dataset"]["models"]} <= set(dec.columns)
    ss = pd.read_parquet(outs["single_shot"] / "decisions.parquet")
    assert sorted(ss["draw"].unique()) == [0, 1, 2]
    # The saved bundle of the new router loads back (generic state: numpy arrays).
    sys.path.insert(0, str(pkg))
    try:
        from routers.bundle import load_bundle

        bundle = load_bundle(outs["dars"] / "router")
        X = bundle.encoder.encode(["any question"])
        row = dec.iloc[0]
        assert bundle.pool[bundle.router.route(X, res["cost"]["lam"], res["cost"]["beta_effective"])[0]] == row["chosen"]
    finally:
        sys.path.remove(str(pkg))
        sys.modules.pop("mean_router", None)


def test_signals_select_grid_equals_select_per_lambda():
    rng = np.random.default_rng(0)
    sig = Signals(rng.random((2, 5, 3)), rng.random((2, 5, 3)), rng.random((2, 5, 3)))
    lams = [0.0, 0.3, 2.0]
    grid = sig.select_grid(lams, 0.1)
    for i, lam in enumerate(lams):
        np.testing.assert_array_equal(grid[i], sig.select(lam, 0.1))
