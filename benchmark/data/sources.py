"""Dataset sources: what ``conf/dataset/*.yaml`` instantiates.

A source is built from config values only (no I/O in the constructor) and ``load(cache_dir)``
returns a :class:`~benchmark.data.DarsDataset` with raw costs.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from benchmark.data.dataset import DarsDataset
from benchmark.data.errors import DataError, DataWarning
from benchmark.data.loader import default_cache_dir, load_dars_dir
from benchmark.data.simulator import PRESETS, SimulatorConfig, ensure_simulated, write_simulated

#: Datasets committed inside the package (``dataset=tinypool``).
EMBEDDED_ROOT = Path(__file__).resolve().parent / "datasets"


@dataclass
class DarsDirSource:
    """A directory in the DARS release layout: ``<data_dir>/<name>/{train,test}_scored_generations.jsonl``.

    ``data_dir`` may be omitted for the datasets embedded in the package (``tinypool``).
    """

    name: str
    data_dir: str | None = None

    def resolve_dir(self) -> Path:
        if self.data_dir in (None, "", "???"):
            embedded = EMBEDDED_ROOT / self.name
            if embedded.is_dir():
                return embedded
            raise ValueError(
                f"dataset {self.name!r}: set dataset.data_dir=/path/to/release "
                f"(the folder that holds {self.name}/train_scored_generations.jsonl)"
            )
        return Path(self.data_dir).expanduser()

    def load(self, cache_dir: str | Path | None = None) -> DarsDataset:
        return load_dars_dir(self.resolve_dir(), self.name, cache_dir=cache_dir)


@dataclass
class SyntheticSource:
    """The simulator (SPEC-shaped DARS data with known ground truth), written once and cached.

    ``preset`` names an entry of :data:`benchmark.data.simulator.PRESETS`; ``overrides`` replaces
    individual :class:`~benchmark.data.simulator.SimulatorConfig` fields (e.g. ``n_train: 40``).
    ``format`` is the file format of the cached simulation (``auto``: JSONL, Parquet from 500
    thousand observations on; or ``jsonl``, ``jsonl.gz``, ``parquet``).
    """

    name: str = "synthetic"
    preset: str = "default"
    seed: int = 0
    overrides: dict | None = None
    format: str = "auto"

    def simulator_config(self) -> SimulatorConfig:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown simulator preset {self.preset!r}; choose from {sorted(PRESETS)}")
        cfg = PRESETS[self.preset]
        if self.overrides:
            cfg = replace(cfg, **dict(self.overrides))
        return cfg

    def load(self, cache_dir: str | Path | None = None) -> DarsDataset:
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        cfg = self.simulator_config()
        try:
            data_dir = ensure_simulated(cfg, root / "simulated", self.name, self.seed, self.format)
            return load_dars_dir(data_dir, self.name, cache_dir=cache_dir)
        except (OSError, DataError) as exc:  # read-only, full or damaged simulator cache
            warnings.warn(
                f"simulator cache under {root / 'simulated'} is unusable ({exc}); simulating "
                "into a temporary folder, uncached",
                DataWarning,
                stacklevel=2,
            )
        with tempfile.TemporaryDirectory(prefix="darsbench-sim-") as tmp:
            write_simulated(cfg, tmp, self.name, self.seed, self.format)
            return load_dars_dir(tmp, self.name, use_cache=False)
