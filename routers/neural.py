"""Shared machinery of the neural routers: :class:`TrainingConfig`, one Lightning routine, draws.

:class:`NeuralRouter` fits a chunk of single-shot draws in ONE Lightning run and spreads chunks
over ``n_jobs`` processes: :class:`DrawModule` loops over the draws' networks (bit-identical to
one run per draw), :class:`StackedDrawModule` trains them as one network with stacked
parameters. Determinism, draw batching and early stopping: docs/routers_neural.md.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import random
import sys
import warnings
from abc import abstractmethod
from dataclasses import dataclass, replace
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import lightning as L

from joblib import Parallel, delayed
from tqdm.auto import tqdm

from routers.base import Router, SignalRouter, Signals, check_features
from supervision.modes import Targets

#: Independent random streams of one draw's seed.
STREAM_INIT, STREAM_SHUFFLE, STREAM_NOISE, STREAM_SPLIT = range(4)

#: Seconds a fit runs before its progress bar (``TrainingConfig.progress``) appears.
PROGRESS_DELAY_S = 3.0

#: How a chunk of single-shot draws is trained (``TrainingConfig.draws``).
DRAW_PATHS = ("stacked", "exact")

#: Parameter memory (weights + gradient + two Adam moments) allowed for one chunk of draws
#: trained in one pass; more draws are split into several chunks.
CHUNK_BYTES = 1 << 30

_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")
_QUIET_WARNINGS = (
    r".*does not have many workers.*",
    r".*num_workers.*",
    r".*smaller than the logging interval.*",
    r".*GPU available but not used.*",
    r".*`IterableDataset` has `__len__` defined.*",
    r".*torch\.jit\.script.*",
    r".*You defined a `validation_step` but have no `val_dataloader`.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
)


@dataclass(frozen=True)
class TrainingConfig:
    """Training settings shared by every neural router (the ``training:`` sub-config).

    Attributes:
        epochs, batch_size, lr: Adam schedule; a batch holds examples of the router's table
            ((query, model) pairs, (query, lambda) rows or supervised edges).
        early_stopping: hold out ``val_fraction`` of the TRAINING queries per draw (seeded) and
            stop a draw after ``patience`` epochs without validation improvement, restoring its
            best weights. Off by default: the reference setting fixes the epoch counts.
        batch_draws: fit single-shot draws in chunks of one Lightning run each (True) or one
            router per draw (False). Same numbers either way.
        n_jobs: processes over which chunks of draws are spread (``-1``: all cores). Same
            numbers for any value.
        draws: how a chunk of draws is trained: ``"exact"`` (default, the reference: a loop
            over the draws' networks, bit-identical to one fit per draw) or ``"stacked"`` (one
            vectorised network with parameters stacked along a draw axis: batched matmuls, one
            Adam over the stack). Losses and gradients agree to float32 rounding; after
            training, rounding can grow (docs/routers_neural.md gives the measured gap).
        progress: a tqdm bar over the training steps of a chunk of draws, shown once it has
            run for a few seconds; ``None`` (default): only when stderr is a terminal.
    """

    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    early_stopping: bool = False
    val_fraction: float = 0.1
    patience: int = 5
    batch_draws: bool = True
    n_jobs: int = 1
    draws: str = "exact"
    progress: bool | None = None

    def __post_init__(self) -> None:
        if int(self.epochs) < 1 or int(self.batch_size) < 1 or float(self.lr) <= 0:
            raise ValueError(
                f"training: epochs and batch_size must be >= 1 and lr > 0, got epochs="
                f"{self.epochs}, batch_size={self.batch_size}, lr={self.lr}"
            )
        if int(self.patience) < 1:
            raise ValueError(f"training: patience must be >= 1, got {self.patience}")
        if self.early_stopping and not 0.0 < float(self.val_fraction) < 1.0:
            raise ValueError(f"training: val_fraction must be in (0, 1), got {self.val_fraction}")
        if int(self.n_jobs) == 0 or int(self.n_jobs) < -1:
            raise ValueError(f"training: n_jobs must be >= 1 or -1, got {self.n_jobs}")
        if self.draws not in DRAW_PATHS:
            raise ValueError(f"training: draws must be one of {DRAW_PATHS}, got {self.draws!r}")


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """``Linear`` layers between consecutive ``sizes`` with ReLU between them (not after)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(int(a), int(b)))
    return nn.Sequential(*layers)


# ------------------------------------------------------------------------------------ seeds
def stream_seed(seed: int, stream: int) -> int:
    """A 63-bit seed for random stream ``stream`` of draw seed ``seed`` (independent streams)."""
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seeds must be non-negative integers, got {seed}")
    state = np.random.SeedSequence([seed, int(stream)]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


def torch_generator(seed: int, stream: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded for stream ``stream`` of draw seed ``seed``."""
    return torch.Generator().manual_seed(stream_seed(seed, stream))


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Seed the global torch RNG for a network's initialisation; restore it afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def validation_split(n_queries: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, validation) query indices; ``fraction`` of the queries go to validation.

    ``fraction == 0`` keeps every query for training. At least one query stays on each side.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    idx = np.arange(n_queries)
    if fraction == 0.0:
        return idx, idx[:0]
    if n_queries < 2:
        raise ValueError("early stopping needs at least 2 training queries")
    n_val = min(max(1, int(round(fraction * n_queries))), n_queries - 1)
    perm = np.random.default_rng(seed).permutation(n_queries)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


# --------------------------------------------------------------------------------- features
def feature_tensor(X: Any, n_features: int | None = None, *, where: str) -> torch.Tensor:
    """Dense float32 ``[Q, d]`` tensor of dense or sparse features (NaN / wrong width: error)."""
    X = check_features(X, n_features, where=where)
    arr = X.toarray() if sp.issparse(X) else X
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def masked_column_means(values: torch.Tensor, weight: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Per column ``k`` of ``[B, K]`` values, the mean over the rows where ``weight`` is 1.

    ``dim`` is the row axis (1 for stacked ``[D, B, K]`` values: one mean per draw and column).
    """
    return (values * weight).sum(dim=dim) / weight.sum(dim=dim).clamp_min(1.0)


def stacked_targets(*values: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``[Q, M, K]`` float32 targets (NaN set to 0) and ``[Q, M, K]`` 0/1 finite mask.

    One tensor per draw, so a minibatch gathers all its targets with one index operation.
    """
    parts = [target_tensor(v) for v in values]
    return torch.stack([p[0] for p in parts], dim=-1), torch.stack([p[1] for p in parts], dim=-1)


def gather_models(per_query: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``per_query[b, ..., m[b]]``: ``[B, K, M]`` -> ``[B, K]`` (or ``[B, M]`` -> ``[B]``)."""
    if per_query.dim() == 2:
        return per_query.gather(1, m[:, None])[:, 0]
    idx = m.view(-1, 1, 1).expand(-1, per_query.shape[1], 1)
    return per_query.gather(2, idx)[..., 0]


def target_tensor(values: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(float32 values with NaN set to 0, float32 0/1 mask of the finite entries)."""
    finite = np.isfinite(values)
    vals = torch.from_numpy(np.where(finite, values, 0.0).astype(np.float32))
    return vals, torch.from_numpy(finite.astype(np.float32))


def pair_examples(mask: np.ndarray, queries: np.ndarray) -> torch.Tensor:
    """``[P, 2]`` (query, model) index pairs where ``mask`` is true, restricted to ``queries``.

    Row-major order (query, then model), so the example list is the same for every seed.
    """
    keep = np.zeros(mask.shape[0], dtype=bool)
    keep[queries] = True
    q, m = np.nonzero(mask & keep[:, None])
    return torch.from_numpy(np.stack([q, m], axis=1).astype(np.int64))


def encode_rows(
    encode: Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor, rows: torch.Tensor
) -> torch.Tensor:
    """``encode(X[rows])``, computed once per distinct row: ``encode(X[unique])[inverse]``.

    A minibatch of (query, model) pairs or (query, lambda) rows repeats queries; the query
    encoder runs once per distinct query of the batch. ``encode`` must act row by row.
    """
    uniq, inverse = torch.unique(rows, sorted=True, return_inverse=True)
    return encode(X[uniq])[inverse]


# -------------------------------------------------------------------------------- the nets
class DrawNet(nn.Module):
    """The network of one fitted router (one draw)."""

    @abstractmethod
    def loss(
        self,
        X: torch.Tensor,
        data: dict[str, torch.Tensor],
        examples: torch.Tensor,
        noise: torch.Generator | None,
    ) -> torch.Tensor:
        """Scalar loss on the training ``examples`` (rows of the router's example table).

        ``X``: training features ``[Q, d]``; ``data``: this draw's target tensors; ``noise``:
        the draw's noise generator while training, ``None`` for the validation loss.
        """

    def stacked_loss(
        self,
        P: Mapping[str, torch.Tensor],
        X: torch.Tensor,
        data: dict[str, torch.Tensor],
        examples: torch.Tensor,
        noise: Sequence[torch.Generator] | None,
    ) -> torch.Tensor:
        """Per-draw losses ``[D]`` of ``D`` networks of this one's architecture at once.

        ``P``: this network's parameter names -> tensors stacked along a leading draw axis;
        ``data``: the draws' target tensors stacked the same way; ``examples``: ``[D, B, 2]``
        rows of each draw's example table; ``noise``: one generator per draw, or ``None``.
        Draw ``d``'s loss equals ``loss`` of the network with parameters ``P[.][d]`` up to
        float32 rounding. Not implemented: the router trains draws with the exact path.
        """
        raise NotImplementedError

    def can_stack(self, data: Sequence[dict[str, torch.Tensor]]) -> bool:
        """Whether draws with these target tensors can share one stacked network (hook)."""
        return True


class DrawBatches(IterableDataset):
    """Minibatches for ``D`` draws at once: each item is a list of ``D`` LongTensors.

    Item ``t`` of an epoch holds, for every draw, the positions of its ``t``-th minibatch in
    its own example table. With ``seeds`` each draw reshuffles every epoch with its own
    generator; without, positions come in order (used for the one-batch validation set). A
    draw with fewer examples gets empty tensors once its epoch is done.
    """

    def __init__(self, sizes: Sequence[int], batch_size: int, seeds: Sequence[int] | None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.sizes = [int(n) for n in sizes]
        self.batch_size = int(batch_size)
        self.generators = (
            None if seeds is None else [torch_generator(s, STREAM_SHUFFLE) for s in seeds]
        )

    def __len__(self) -> int:
        return max(1, max(math.ceil(n / self.batch_size) for n in self.sizes))

    def __iter__(self) -> Iterator[list[torch.Tensor]]:
        if self.generators is None:
            orders = [torch.arange(n) for n in self.sizes]
        else:
            orders = [torch.randperm(n, generator=g) for n, g in zip(self.sizes, self.generators)]
        for step in range(len(self)):
            lo, hi = step * self.batch_size, (step + 1) * self.batch_size
            yield [o[lo:hi] for o in orders]


class DrawModule(L.LightningModule):
    """A LightningModule training ``D`` independent draw networks together.

    Manual optimisation: per step, every active draw with a minibatch computes its loss and
    back-propagates it on its own (freeing its graph), then one Adam step updates all
    parameters. Parameters of a draw without a minibatch have no gradient and Adam skips them.
    """

    def __init__(
        self,
        nets: Sequence[DrawNet],
        X: torch.Tensor,
        data: Sequence[dict[str, torch.Tensor]],
        train_examples: Sequence[torch.Tensor],
        val_examples: Sequence[torch.Tensor] | None,
        noise_seeds: Sequence[int],
        lr: float,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.nets = nn.ModuleList(nets)
        self.lr = float(lr)
        self._X = X
        self._data = list(data)
        self._train = list(train_examples)
        self._val = None if val_examples is None else list(val_examples)
        self._noise = [torch_generator(s, STREAM_NOISE) for s in noise_seeds]
        #: False once a draw stopped early (its parameters get no more updates).
        self.active = [True] * len(self.nets)
        #: Validation loss per draw after the last validation epoch (NaN: no examples).
        self.val_losses: list[float] = [math.nan] * len(self.nets)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        opt = self.optimizers()
        opt.zero_grad(set_to_none=True)
        for d, pos in enumerate(batch):
            if pos.numel() == 0 or not self.active[d]:
                continue
            loss = self.nets[d].loss(self._X, self._data[d], self._train[d][pos], self._noise[d])
            self.manual_backward(loss)
        opt.step()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        assert self._val is not None
        self.val_losses = [
            math.nan
            if pos.numel() == 0
            else float(self.nets[d].loss(self._X, self._data[d], self._val[d][pos], None))
            for d, pos in enumerate(batch)
        ]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr, fused=True)

    def draw_state(self, d: int) -> dict[str, torch.Tensor]:
        """A copy of draw ``d``'s parameters and buffers."""
        return copy.deepcopy(self.nets[d].state_dict())

    def load_draw_state(self, d: int, state: Mapping[str, torch.Tensor]) -> None:
        """Overwrite draw ``d``'s parameters and buffers."""
        self.nets[d].load_state_dict(state)


# --------------------------------------------------------------------- stacked draws
def stacked_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``D`` linear maps at once: ``x`` ``[D, R, in]`` (or ``[R, in]``, shared by every draw),
    ``weight`` ``[D, out, in]``, ``bias`` ``[D, out]`` -> ``[D, R, out]``."""
    out = torch.matmul(x, weight.transpose(1, 2))
    return out if bias is None else out + bias[:, None, :]


def stacked_sequential(
    seq: nn.Sequential, prefix: str, P: Mapping[str, torch.Tensor], x: torch.Tensor, start: int = 0
) -> torch.Tensor:
    """Apply ``seq[start:]`` (``Linear`` / ``ReLU`` / nested ``Sequential``) with the stacked
    parameters ``P[f"{prefix}.{i}.weight"]`` ``[D, ...]`` of its layers."""
    for i in range(start, len(seq)):
        layer, name = seq[i], f"{prefix}.{i}"
        if isinstance(layer, nn.Linear):
            x = stacked_linear(x, P[f"{name}.weight"], P.get(f"{name}.bias"))
        elif isinstance(layer, nn.ReLU):
            x = torch.relu(x)
        elif isinstance(layer, nn.Sequential):
            x = stacked_sequential(layer, name, P, x)
        else:
            raise TypeError(f"stacked_sequential: unsupported layer {type(layer).__name__}")
    return x


def gather_rows(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values[d, index[d, b]]``: ``[D, R, ...]`` gathered by ``[D, B]`` -> ``[D, B, ...]``."""
    D, B = index.shape
    tail = values.shape[2:]
    idx = index.reshape(D, B, *([1] * len(tail))).expand(D, B, *tail)
    return values.gather(1, idx)


def gather_pairs(values: torch.Tensor, q: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``values[d, q[d, b], m[d, b]]``: ``[D, Q, M, ...]`` by ``[D, B]`` pairs -> ``[D, B, ...]``."""
    D, Q, M = values.shape[:3]
    return gather_rows(values.reshape(D, Q * M, *values.shape[3:]), q * M + m)


class StackedParams(nn.Module):
    """The parameters of ``D`` networks of one architecture, stacked: name -> ``[D, *shape]``.

    Built from the draws' initialised networks (each draw keeps its own initialisation);
    :meth:`write_back` copies the trained values into them.
    """

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        super().__init__()
        self.names = [name for name, _ in nets[0].named_parameters()]
        per_net = [dict(net.named_parameters()) for net in nets]
        self.stacked = nn.ParameterList(
            nn.Parameter(torch.stack([p[name].detach() for p in per_net])) for name in self.names
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        """Name -> stacked parameter ``[D, *shape]``."""
        return dict(zip(self.names, self.stacked))

    def draw_state(self, d: int) -> dict[str, torch.Tensor]:
        """A copy of draw ``d``'s parameters."""
        return {name: p[d].detach().clone() for name, p in zip(self.names, self.stacked)}

    def load_draw_state(self, d: int, state: Mapping[str, torch.Tensor]) -> None:
        """Overwrite draw ``d``'s parameters."""
        with torch.no_grad():
            for name, p in zip(self.names, self.stacked):
                p[d].copy_(state[name])

    def write_back(self, nets: Sequence[nn.Module]) -> None:
        """Copy draw ``d``'s parameters into ``nets[d]``."""
        with torch.no_grad():
            for d, net in enumerate(nets):
                params = dict(net.named_parameters())
                for name, p in zip(self.names, self.stacked):
                    params[name].copy_(p[d])


class StackedDrawModule(L.LightningModule):
    """A LightningModule training ``D`` draws as ONE stacked network (see :class:`DrawModule`).

    Every step gathers each draw's own minibatch (``[D, B]`` positions from its own
    shuffling), computes all draws' losses with batched matmuls
    (:meth:`DrawNet.stacked_loss`), back-propagates their sum (draw ``d``'s parameters get
    exactly draw ``d``'s gradient: the draws share no parameter) and takes one Adam step
    over the stack. Adam is element-wise, so one step over a ``[D, ...]`` tensor is ``D``
    per-draw steps. The draws must have example tables of one size.

    Early stopping: a frozen draw keeps being updated (its loss is part of the stacked
    computation) but :class:`PerDrawEarlyStopping` ignores it from then on and restores its
    best weights at the end, which is what the exact path keeps.
    """

    def __init__(
        self,
        nets: Sequence[DrawNet],
        X: torch.Tensor,
        data: Sequence[dict[str, torch.Tensor]],
        train_examples: Sequence[torch.Tensor],
        val_examples: Sequence[torch.Tensor] | None,
        noise_seeds: Sequence[int],
        lr: float,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.stack = StackedParams(nets)
        # Hyperparameters and fixed structure (graph, buffers); kept out of this module's
        # submodules so that its parameters are the stack alone.
        object.__setattr__(self, "_template", nets[0])
        self.n_draws = len(nets)
        self.lr = float(lr)
        self._X = X
        self._data = {k: torch.stack([dd[k] for dd in data]) for k in data[0]}
        self._train = torch.stack(list(train_examples))
        self._val = None if val_examples is None else torch.stack(list(val_examples))
        self._noise = [torch_generator(s, STREAM_NOISE) for s in noise_seeds]
        self.active = [True] * self.n_draws
        self.val_losses: list[float] = [math.nan] * self.n_draws

    def _losses(self, table: torch.Tensor, batch: list[torch.Tensor], noise: bool) -> torch.Tensor:
        pos = torch.stack(batch)
        examples = table.gather(1, pos[..., None].expand(-1, -1, table.shape[-1]))
        return self._template.stacked_loss(
            self.stack.tensors(), self._X, self._data, examples, self._noise if noise else None
        )

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        opt = self.optimizers()
        opt.zero_grad(set_to_none=True)
        self.manual_backward(self._losses(self._train, batch, noise=True).sum())
        opt.step()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        assert self._val is not None
        if batch[0].numel() == 0:
            self.val_losses = [math.nan] * self.n_draws
            return
        self.val_losses = [float(v) for v in self._losses(self._val, batch, noise=False)]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.stack.parameters(), lr=self.lr, fused=True)

    def draw_state(self, d: int) -> dict[str, torch.Tensor]:
        return self.stack.draw_state(d)

    def load_draw_state(self, d: int, state: Mapping[str, torch.Tensor]) -> None:
        self.stack.load_draw_state(d, state)


class PerDrawEarlyStopping(L.Callback):
    """Early stopping per draw on its validation loss, restoring each draw's best weights.

    A draw whose validation loss has not improved for ``patience`` epochs is frozen
    (``module.active[d] = False``); training ends when every draw is frozen or at
    ``max_epochs``. At the end every draw gets the weights of its best epoch. A draw with no
    validation example never stops early and keeps its last weights.
    """

    def __init__(self, patience: int) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience = int(patience)

    def on_fit_start(self, trainer: L.Trainer, pl_module: DrawModule) -> None:
        n = len(pl_module.active)
        self.best = [math.inf] * n
        self.wait = [0] * n
        self.best_epoch: list[int | None] = [None] * n
        self.states: list[dict[str, torch.Tensor] | None] = [None] * n

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: DrawModule) -> None:
        if trainer.sanity_checking:
            return
        for d, loss in enumerate(pl_module.val_losses):
            if not pl_module.active[d] or not math.isfinite(loss):
                continue
            if loss < self.best[d]:
                self.best[d], self.wait[d] = loss, 0
                self.best_epoch[d] = trainer.current_epoch
                self.states[d] = pl_module.draw_state(d)
            else:
                self.wait[d] += 1
                if self.wait[d] >= self.patience:
                    pl_module.active[d] = False
        if not any(pl_module.active):
            trainer.should_stop = True

    def on_fit_end(self, trainer: L.Trainer, pl_module: DrawModule) -> None:
        for d, state in enumerate(self.states):
            if state is not None:
                pl_module.load_draw_state(d, state)


class DrawProgress(L.Callback):
    """A tqdm bar over the training steps of one fit, shown once it has run ``delay`` seconds."""

    def __init__(self, desc: str, delay: float | None = None) -> None:
        self.desc = desc
        self.delay = PROGRESS_DELAY_S if delay is None else float(delay)
        self.bar: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = int(trainer.max_epochs) * int(trainer.num_training_batches)
        self.bar = tqdm(total=total, desc=self.desc, unit="step", delay=self.delay, leave=False)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.bar.update(1)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.bar.close()


# ------------------------------------------------------------------------ training routine
@contextlib.contextmanager
def numerics_context() -> Iterator[None]:
    """Single-threaded torch numerics (restored afterwards): same numbers on any machine load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _training_context() -> Iterator[None]:
    """Quiet Lightning, single thread, and global state (RNGs, determinism flag) restored."""
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    env_keys = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG")
    env = {k: os.environ.get(k) for k in env_keys}
    py_state, np_state = random.getstate(), np.random.get_state()
    levels = {name: logging.getLogger(name).level for name in _LIGHTNING_LOGGERS}
    try:
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings(), numerics_context():
            for pattern in _QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            for name in _LIGHTNING_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
            yield
    finally:
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        random.setstate(py_state)
        np.random.set_state(np_state)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def train_module(
    module: DrawModule,
    train_batches: DrawBatches,
    val_batches: DrawBatches | None = None,
    *,
    max_epochs: int,
    seed: int,
    patience: int | None = None,
    progress: str | None = None,
) -> PerDrawEarlyStopping | None:
    """Train ``module`` with a CPU ``lightning.Trainer``; the one routine of every neural router.

    Deterministic (``deterministic=True``, ``seed_everything``, single thread) and quiet (no
    progress bar, summary, logger or checkpoints; Lightning's info logs and data-loader
    warnings silenced). Global state it touches (RNGs, the deterministic-algorithms flag,
    thread count, Lightning's environment variables and log levels) is restored afterwards.
    With ``val_batches`` and ``patience`` it stops each draw early on its validation loss and
    returns the :class:`PerDrawEarlyStopping` callback (best epochs); else ``None``. With
    ``progress`` (a description) a :class:`DrawProgress` bar shows the steps once the fit has
    run :data:`PROGRESS_DELAY_S` seconds.
    """
    if max_epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {max_epochs}")
    stopper = PerDrawEarlyStopping(patience) if (val_batches is not None and patience) else None
    with _training_context():
        L.seed_everything(int(seed) % (2**32), workers=True, verbose=False)
        trainer = L.Trainer(
            max_epochs=int(max_epochs),
            accelerator="cpu",
            devices=1,
            enable_progress_bar=False,
            enable_model_summary=False,
            logger=False,
            enable_checkpointing=False,
            deterministic=True,
            num_sanity_val_steps=0,
            limit_val_batches=1.0 if stopper is not None else 0,
            callbacks=[cb for cb in (stopper, progress and DrawProgress(progress)) if cb],
        )
        trainer.fit(
            module,
            train_dataloaders=DataLoader(train_batches, batch_size=None),
            val_dataloaders=(
                DataLoader(val_batches, batch_size=None) if stopper is not None else None
            ),
        )
    module.eval()
    return stopper


# ------------------------------------------------------------------------ router base class
class NeuralRouter(Router):
    """Base class of the neural routers: draw-batched fitting through :func:`train_module`.

    A subclass takes its architecture hyperparameters and ``training: TrainingConfig | None``
    in ``__init__`` (``None``: the class's :attr:`default_training`; a mapping: fields replaced
    in it), and implements :meth:`_new_net`, :meth:`_draw_data` and :meth:`_examples`.
    """

    #: The router's own training defaults (epochs and batch size differ between routers).
    default_training: ClassVar[TrainingConfig] = TrainingConfig()

    training: TrainingConfig | Mapping[str, Any] | None

    def training_config(self) -> TrainingConfig:
        """The effective :class:`TrainingConfig` of this router."""
        t = self.training
        if t is None:
            return self.default_training
        if isinstance(t, TrainingConfig):
            return t
        if isinstance(t, Mapping):
            return replace(self.default_training, **dict(t))
        raise TypeError(
            f"{type(self).__name__}: training must be a TrainingConfig, a mapping or None, "
            f"got {type(t).__name__}"
        )

    def _show_progress(self) -> bool:
        """``training.progress``, or (``None``) whether stderr is a terminal."""
        show = self.training_config().progress
        return sys.stderr.isatty() if show is None else bool(show)

    def _draw_jobs(self) -> int:
        return int(self.training_config().n_jobs)

    # ----------------------------------------------------------------- subclass contract
    @abstractmethod
    def _new_net(self, n_features: int, n_models: int) -> DrawNet:
        """A freshly initialised network (called under :func:`seeded_init`)."""

    @abstractmethod
    def _draw_data(self, targets: Targets, beta: float) -> dict[str, torch.Tensor]:
        """Target tensors of one draw (2-d targets ``[Q, M]``; ``beta`` effective)."""

    @abstractmethod
    def _examples(self, data: dict[str, torch.Tensor], queries: np.ndarray) -> torch.Tensor:
        """The draw's example table restricted to the training ``queries`` (LongTensor)."""

    def _prepare_net(self, net: DrawNet, data: dict[str, torch.Tensor]) -> None:
        """Hook: attach draw-specific fixed structure to a new net (default: nothing)."""

    # ----------------------------------------------------------------------- fitting
    def _fit_group(
        self, X: torch.Tensor, targets: Sequence[Targets], seeds: Sequence[int], beta: float
    ) -> list[DrawNet]:
        """Fit one network per (targets, seed) in ONE Lightning run; return the networks."""
        cfg = self.training_config()
        n_q = X.shape[0]
        nets, data, train_ex, val_ex = [], [], [], []
        for t, s in zip(targets, seeds):
            unseen = np.flatnonzero(~np.isfinite(t.mu_q).any(axis=0))
            if unseen.size:
                raise ValueError(
                    f"{type(self).__name__}: model {int(unseen[0])} has no finite training "
                    "target 'mu_q' at all"
                )
            with seeded_init(stream_seed(s, STREAM_INIT)):
                net = self._new_net(X.shape[1], t.mu_q.shape[-1])
            dd = self._draw_data(t, beta)
            self._prepare_net(net, dd)
            frac = float(cfg.val_fraction) if cfg.early_stopping else 0.0
            train_q, val_q = validation_split(n_q, frac, stream_seed(s, STREAM_SPLIT))
            tr = self._examples(dd, train_q)
            if len(tr) == 0:
                raise ValueError(f"{type(self).__name__}: no finite training target to fit")
            nets.append(net)
            data.append(dd)
            train_ex.append(tr)
            val_ex.append(self._examples(dd, val_q))
        module_class = (
            StackedDrawModule if self._stackable(cfg, nets, data, train_ex, val_ex) else DrawModule
        )
        module = module_class(
            nets, X, data, train_ex, val_ex if cfg.early_stopping else None, seeds, float(cfg.lr)
        )
        val_batches = None
        if cfg.early_stopping:
            sizes = [len(v) for v in val_ex]
            val_batches = DrawBatches(sizes, max(1, max(sizes)), None)
        stopper = train_module(
            module,
            DrawBatches([len(e) for e in train_ex], int(cfg.batch_size), seeds),
            val_batches,
            max_epochs=int(cfg.epochs),
            seed=seeds[0],
            patience=int(cfg.patience) if cfg.early_stopping else None,
            progress=(
                f"{type(self).__name__}: {len(nets)} draws ({module_class.__name__})"
                if len(nets) > 1 and self._show_progress()
                else None
            ),
        )
        if isinstance(module, StackedDrawModule):
            module.stack.write_back(nets)
        for d, net in enumerate(nets):
            net.eval()
            net.best_epoch = None if stopper is None else stopper.best_epoch[d]
            net.fit_path = "stacked" if isinstance(module, StackedDrawModule) else "exact"
        return nets

    @staticmethod
    def _stackable(
        cfg: TrainingConfig,
        nets: Sequence[DrawNet],
        data: Sequence[dict[str, torch.Tensor]],
        train_ex: Sequence[torch.Tensor],
        val_ex: Sequence[torch.Tensor],
    ) -> bool:
        """Whether a chunk of draws trains as one stacked network (``cfg.draws == "stacked"``).

        Needs more than one draw (a single fit always takes the exact path), a network with a
        :meth:`DrawNet.stacked_loss`, and example tables of one size in every draw (true for
        single-shot draws: a pair observed once is observed in every draw); otherwise the
        exact path trains the chunk, with the same numbers up to rounding.
        """
        if cfg.draws != "stacked" or len(nets) < 2:
            return False
        if type(nets[0]).stacked_loss is DrawNet.stacked_loss or not nets[0].can_stack(data):
            return False
        return len({len(e) for e in train_ex}) == 1 and len({len(e) for e in val_ex}) == 1

    def _features(self, X: Any, *, fit: bool) -> torch.Tensor:
        name = type(self).__name__
        if fit:
            Xt = feature_tensor(X, where=f"{name}.fit")
            self.n_features_ = Xt.shape[1]
            return Xt
        self._check_fitted()
        return feature_tensor(X, self.n_features_, where=f"{name}.predict")

    def _fit_single(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        Xt = X if isinstance(X, torch.Tensor) else self._features(X, fit=True)
        self._remember_training(Xt, [targets])
        self.nets_ = self._fit_group(Xt, [targets], [seed], beta)

    def _remember_training(self, X: torch.Tensor, targets: Sequence[Targets]) -> None:
        """Hook: keep what prediction needs from the training data (default: nothing)."""

    def _chunks(self, n_draws: int, n_features: int, n_models: int) -> list[np.ndarray]:
        """Contiguous chunks of draw indices: memory-bounded, at least one per process."""
        if n_draws == 1:
            return [np.arange(1)]
        with seeded_init(0):
            probe = self._new_net(n_features, n_models)
        n_params = sum(p.numel() for p in probe.parameters())
        per_chunk = max(1, CHUNK_BYTES // max(1, 16 * n_params))
        n_chunks = max(math.ceil(n_draws / per_chunk), min(self._workers(), n_draws))
        return [c for c in np.array_split(np.arange(n_draws), n_chunks) if c.size]

    def _workers(self) -> int:
        n_jobs = self._draw_jobs()
        return (os.cpu_count() or 1) if n_jobs == -1 else max(1, n_jobs)

    def _fit_draws(self, X: Any, targets: Targets, *, lam: float, beta: float, seed: int) -> None:
        for attr in ("members_", "nets_"):
            self.__dict__.pop(attr, None)
        if not self.training_config().batch_draws:
            self._features(X, fit=True)
            super()._fit_draws(X, targets, lam=lam, beta=beta, seed=seed)
            return
        Xt = self._features(X, fit=True)
        draws = [targets.draw(d) for d in range(targets.n_draws)]
        self._remember_training(Xt, draws)
        seeds = [seed + d for d in range(targets.n_draws)]
        chunks = self._chunks(len(draws), Xt.shape[1], targets.mu_q.shape[-1])
        jobs = [([draws[i] for i in c], [seeds[i] for i in c]) for c in chunks]
        if len(jobs) == 1 or self._workers() == 1:
            groups = [self._fit_group(Xt, t, s, beta) for t, s in jobs]
        else:
            template = copy.copy(self)
            groups = Parallel(n_jobs=min(self._workers(), len(jobs)))(
                delayed(_fit_group_job)(template, Xt.numpy(), t, s, beta) for t, s in jobs
            )
        self.nets_ = [net for group in groups for net in group]

    def _fitted_state(self) -> dict[str, Any]:
        state = super()._fitted_state()
        if "nets_" in state:
            state["nets_"] = [
                {"state_dict": dict(net.state_dict()), "best_epoch": net.best_epoch}
                for net in state["nets_"]
            ]
        return state

    def _restore_fitted_state(self, state: dict[str, Any]) -> None:
        nets = state.pop("nets_", None)
        super()._restore_fitted_state(state)
        if nets is not None:
            self.nets_ = [self._load_net(n["state_dict"], n["best_epoch"]) for n in nets]

    def _load_net(self, state_dict: dict[str, torch.Tensor], best_epoch: int | None) -> DrawNet:
        with seeded_init(0):  # the weights are overwritten; keep the global RNG untouched
            net = self._new_net(self.n_features_, self.n_models_)
        self._prepare_loaded_net(net, state_dict)
        net.load_state_dict(state_dict)
        net.best_epoch = best_epoch
        return net.eval()

    def _prepare_loaded_net(self, net: DrawNet, state_dict: dict[str, torch.Tensor]) -> None:
        """Hook: restore structure a state_dict cannot carry (default: nothing)."""

    def _fitted_nets(self) -> list[DrawNet]:
        """One fitted network per draw (draw-batched or per-draw members)."""
        self._check_fitted()
        if "nets_" in self.__dict__:
            return list(self.nets_)
        return [m.nets_[0] for m in self.members_]

    @property
    def best_epochs_(self) -> list[int | None]:
        """Per draw, the 0-based epoch whose weights were kept by early stopping (else None)."""
        return [net.best_epoch for net in self._fitted_nets()]


class NeuralSignalRouter(NeuralRouter, SignalRouter):
    """A neural router whose network predicts (mu_q, mu_c, sigma_q): implement ``_net_signals``."""

    @abstractmethod
    def _net_signals(self, net: DrawNet, X: torch.Tensor) -> Signals:
        """Unclipped float64 signals ``[Q, M]`` of one fitted network on features ``X``."""

    def _predict_single(self, X: Any) -> Signals:
        Xt = X if isinstance(X, torch.Tensor) else self._features(X, fit=False)
        with torch.no_grad(), numerics_context():
            return self._net_signals(self.nets_[0], Xt)

    def _predict_draws(self, X: Any) -> Signals:
        Xt = self._features(X, fit=False)
        if "nets_" not in self.__dict__:  # fitted one router per draw (batch_draws=False)
            return Signals.stack([m._predict_single(Xt) for m in self.members_])
        with torch.no_grad(), numerics_context():
            return Signals.stack([self._net_signals(net, Xt) for net in self.nets_])


def _fit_group_job(
    template: NeuralRouter,
    X: np.ndarray,
    targets: Sequence[Targets],
    seeds: Sequence[int],
    beta: float,
) -> list[DrawNet]:
    """Process entry point: fit one chunk of draws (see :meth:`NeuralRouter._fit_group`)."""
    return template._fit_group(torch.from_numpy(X), targets, seeds, beta)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """float64 numpy copy of a tensor."""
    return t.detach().to(torch.float64).numpy()
