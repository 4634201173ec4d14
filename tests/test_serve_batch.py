"""Micro-batched routing in darsbench-serve: a query routed in a batch gets exactly the decision it
gets routed alone (knn over TF-IDF and MiniLM bundles saved by real cells), and the batcher keeps
a failing query's error to its own request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from benchmark.app.cli import build_spec
from benchmark.app.run import run_cell
from benchmark.app.serve import QueryRouter, Route, RouteBatcher
from benchmark.features import TfidfFeaturizer
from routers.bundle import QueryEncoder, load_bundle

CONF = Path(__file__).resolve().parents[1] / "conf"


def _bundle_and_texts(tmp: Path, features: str, n_test: int, *extra: str) -> tuple[QueryRouter, list[str]]:
    overrides = ["router=knn", "supervision=dars", f"features={features}", "save_router=true",
                 f"dataset.overrides={{n_train:120,n_test:{n_test}}}", "cost.lam=0.1",
                 f"cache_dir={tmp / 'cache'}", *extra]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    run_cell(build_spec(cfg, "knn"), tmp / features, config=None)
    data = instantiate(cfg.dataset).load(tmp / "cache")
    return QueryRouter(load_bundle(tmp / features / "router")), data.test_queries["text"].tolist()


def _settings(n: int) -> list[tuple[float, float]]:
    """Per-request (lambda, beta): mostly the default, some others, so batches mix settings."""
    grid = [(0.1, 0.0), (0.1, 0.0), (0.0, 0.0), (0.5, 0.2), (2.0, 0.0)]
    return [grid[i % len(grid)] for i in range(n)]


def test_tfidf_batch_routes_exactly_as_one_by_one(tmp_path):
    router, texts = _bundle_and_texts(tmp_path, "tfidf", 150)
    settings = _settings(len(texts))
    alone = [router.route(t, lam, beta) for t, (lam, beta) in zip(texts, settings)]
    for size in (2, 7, 32, len(texts)):
        batched: list[Route] = []
        for lo in range(0, len(texts), size):
            batched += router.route_many(texts[lo:lo + size], settings[lo:lo + size])
        # Same ranking and the same predictions to the bit (sparse rows are encoded and scored
        # independently of the other rows of the batch).
        assert [r.ranking for r in batched] == [r.ranking for r in alone]
        assert [r.predicted for r in batched] == [r.predicted for r in alone]
        assert {r.batch for r in batched} >= {min(size, len(texts))}
    # The settings matter: lambda changes some decisions, so mixing them in a batch is tested.
    assert len({tuple(r.ranking) for r in alone}) > 1
    lam_dec = [router.route(t, 2.0, 0.0).chosen for t in texts]
    assert lam_dec != [router.route(t, 0.0, 0.0).chosen for t in texts]


def test_minilm_batch_embeddings_and_decisions_match_one_by_one(tmp_path):
    router, texts = _bundle_and_texts(tmp_path, "minilm", 80)
    # Padding to the batch's longest text changes the floating-point path, not the embedding.
    emb_alone = np.vstack([router.bundle.features([t]) for t in texts])
    emb_batch = router.bundle.features(texts)
    cos = (emb_alone * emb_batch).sum(1) / np.linalg.norm(emb_alone, axis=1) / np.linalg.norm(emb_batch, axis=1)
    assert np.abs(1.0 - cos).max() <= 1e-5
    settings = _settings(len(texts))
    alone = [router.route(t, lam, beta) for t, (lam, beta) in zip(texts, settings)]
    batched = router.route_many(texts[:40], settings[:40]) + router.route_many(texts[40:], settings[40:])
    assert [r.ranking for r in batched] == [r.ranking for r in alone]
    for a, b in zip(alone, batched):
        for name in a.predicted:
            np.testing.assert_allclose(list(b.predicted[name].values()), list(a.predicted[name].values()),
                                       rtol=0, atol=1e-6)


@pytest.mark.parametrize("in_thread", [False, True])
def test_batcher_groups_concurrent_queries_and_isolates_a_failure(tmp_path, in_thread):
    router, texts = _bundle_and_texts(tmp_path, "tfidf", 40)

    class FailsOnBoom(QueryRouter):
        """The real router, except that a query containing 'boom' raises (a router failure)."""

        def __init__(self, inner: QueryRouter) -> None:
            self.__dict__.update(inner.__dict__)
            self.calls: list[int] = []

        def route_many(self, qs, settings):
            self.calls.append(len(qs))
            if any("boom" in q for q in qs):
                raise RuntimeError("boom")
            return super().route_many(qs, settings)

    failing = FailsOnBoom(router)
    queries = texts[:20] + ["boom"] + texts[20:]

    async def main() -> list:
        batcher = RouteBatcher(failing, max_batch=64, in_thread=in_thread)
        tasks = [asyncio.ensure_future(batcher.route(q, 0.1, 0.0)) for q in queries]
        await asyncio.sleep(0)  # every request queues its query (as when read in one loop turn)
        batcher.start()
        try:
            return await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            batcher.stop()

    results = asyncio.run(main())
    assert isinstance(results[20], RuntimeError)
    ok = [r for i, r in enumerate(results) if i != 20]
    assert [r.ranking for r in ok] == [router.route(t, 0.1, 0.0).ranking for t in texts]
    # Submitted together: one batch of all 41, then one call per query to find the failure.
    assert failing.calls[0] == len(queries) and len(failing.calls) == 1 + len(queries)
    assert all(r.batch == 1 for r in ok)  # re-routed alone after the batch failed


def test_routing_threads_split_the_queue_in_equal_shares():
    share = RouteBatcher.share
    assert share(1, 0, 32) == 1
    assert share(5, 0, 32) == 5  # alone: everything queued
    assert share(5, 1, 32) == 3 and share(2, 1, 32) == 1  # two threads: ceil(5 / 2), then the rest
    assert share(9, 2, 32) == 3 and share(10, 2, 32) == 4
    assert share(100, 1, 32) == 32  # never above max_batch
    assert share(3, 7, 32) == 1  # more idle threads than queries: one each


@pytest.mark.parametrize("sublinear", [False, True])
def test_fast_tfidf_encoding_equals_scikit_learn_to_the_bit(sublinear):
    train = ["What is 12 plus 30?", "Explain the proof of the theorem, step by step.",
             "plus plus minus times", "Übersetze: the cat sat on the mat", "x y z", "the the the"]
    enc = QueryEncoder.fit(TfidfFeaturizer((1, 2), None, 1, True, sublinear), train)
    queries = [*train, "", "no known words here", "THE the The tHe plus", "the cat the cat the cat",
               "sat on", "ÜBERSETZE the mat, plus 12"]
    fast = enc.encode(queries)
    reference = sp.csr_matrix(enc._vectorizer.transform(queries), dtype=np.float64)
    for a, b in ((fast.data, reference.data), (fast.indices, reference.indices),
                 (fast.indptr, reference.indptr)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert fast.shape == reference.shape and fast.nnz > 0
    # hand-computed row: "sat on" holds the unigrams sat, on and the bigram "sat on", each once;
    # with equal counts the row is idf / |idf| over those three terms
    row = fast[queries.index("sat on")]
    idf = enc.idf[row.indices]
    assert sorted(enc._vectorizer.get_feature_names_out()[row.indices]) == ["on", "sat", "sat on"]
    np.testing.assert_allclose(row.data, idf / np.linalg.norm(idf), rtol=1e-15)
