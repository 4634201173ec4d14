"""Simulator preset calibration: the SPEC §7 diagnostics (docs/analyses.md) of a preset's
simulated training split, to compare with the paper's values (docs/simulator.md, "Presets").

Usage: ``python bench/calibrate_presets.py [preset ...] [--seeds 0 1 2 ...]`` prints the
diagnostics of each preset, per seed and their mean.
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmark.data.dataset import normalise_costs
from benchmark.data.simulator import PRESETS, SimulatorConfig, simulate
from evaluators.diagnostics import diagnose


def simulated_diagnostics(
    cfg: SimulatorConfig, seed: int, lam: float = 0.05, cost_norm: str = "minmax"
) -> dict[str, float | int | str]:
    """SPEC §7 diagnostics of the simulated training split (what the presets are calibrated on).

    Costs are normalised over train and test together (``cost_norm``) before
    :func:`evaluators.diagnostics.diagnose` computes outcome instability, winner flip rate,
    single-vs-DA disagreement (at ``lam``) and the input-/output-side variance decomposition.
    The result also carries ``truth_input_share``: the exact infinite-decode share
    ``mean(var_input) / mean(sigma_q^2)`` over training pairs, and ``mean_score``.
    """
    data = simulate(cfg, seed)
    ds = normalise_costs(data.to_dataset(), cost_norm)  # type: ignore[arg-type]
    out = dict(diagnose(ds.train, lam))
    det = data.train.detail
    total = float((det.var_input + det.var_output).mean())
    out["truth_input_share"] = float(det.var_input.mean() / total) if total > 0 else float("nan")
    out["mean_score"] = float(np.nanmean(ds.train.score))
    return out


KEYS = (
    "outcome_instability",
    "winner_flip_rate",
    "single_vs_da_disagreement",
    "variance_input_share",
    "truth_input_share",
    "mean_score",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="*", default=sorted(PRESETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    args = parser.parse_args()
    for name in args.presets:
        rows = [simulated_diagnostics(PRESETS[name], s) for s in args.seeds]
        print(f"{name}:")
        for key in KEYS:
            vals = np.array([float(r[key]) for r in rows])
            print(f"  {key:28s} mean {vals.mean():.3f} sd {vals.std(ddof=1) if vals.size > 1 else 0:.3f}")


if __name__ == "__main__":
    main()
