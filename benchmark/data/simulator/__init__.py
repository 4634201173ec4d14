"""A simulator of DARS data with known ground truth (docs/simulator.md).

Split by job: :mod:`.text` (vocabularies, templates), :mod:`.config` (:class:`SimModel`,
:class:`SimulatorConfig`), :mod:`.truth` (exact quadrature), :mod:`.sampling` (the draws),
:mod:`.presets` and :mod:`.writing` (files through ``dars_format``, the on-disk cache).
"""

from benchmark.data.simulator.config import (
    DEFAULT_MODELS,
    DEFAULT_SPECIALISTS,
    DEFAULT_TOPICS,
    SIMULATOR_VERSION,
    SimModel,
    SimulatorConfig,
    config_hash,
)
from benchmark.data.simulator.presets import (
    PRESETS,
    default_preset,
    drop_like,
    gpqa_like,
    math_like,
)
from benchmark.data.simulator.sampling import SimulatedData, SimulatedSplit, simulate
from benchmark.data.simulator.text import TOPIC_VOCAB
from benchmark.data.simulator.truth import (
    TruthDetail,
    completion_stats,
    f1_variance_factor,
    normal_expect,
    pair_truth,
)
from benchmark.data.simulator.writing import (
    ensure_simulated,
    simulate_to_files,
    simulated_rows,
    split_batches,
    write_data,
    write_simulated,
)

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_SPECIALISTS",
    "DEFAULT_TOPICS",
    "PRESETS",
    "SIMULATOR_VERSION",
    "TOPIC_VOCAB",
    "SimModel",
    "SimulatedData",
    "SimulatedSplit",
    "SimulatorConfig",
    "TruthDetail",
    "completion_stats",
    "config_hash",
    "default_preset",
    "drop_like",
    "ensure_simulated",
    "f1_variance_factor",
    "gpqa_like",
    "math_like",
    "normal_expect",
    "pair_truth",
    "simulate",
    "simulate_to_files",
    "simulated_rows",
    "split_batches",
    "write_data",
    "write_simulated",
]
