"""Each figure is a non-empty, valid PNG that matplotlib reads back; writes are atomic."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from evaluators.plots import plot_draw_histogram, plot_frontier, plot_instability, plot_variance

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

DIAG = {
    "gpqa": {
        "outcome_instability": 0.715,
        "winner_flip_rate": 0.970,
        "single_vs_da_disagreement": 0.5,
        "variance_input_side": 0.02,
        "variance_output_side": 0.15,
    },
    "drop-800": {
        "outcome_instability": 0.6,
        "winner_flip_rate": 0.665,
        "single_vs_da_disagreement": 0.471,
        "variance_input_side": 0.05,
        "variance_output_side": 0.04,
    },
}


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > 1000
    assert data[:8] == PNG_MAGIC
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    # No temporary file is left next to the figure.
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_plot_instability(tmp_path: Path):
    out = plot_instability(DIAG, tmp_path / "fig" / "instability.png")
    assert out == tmp_path / "fig" / "instability.png"
    _check_png(out)


def test_plot_variance(tmp_path: Path):
    _check_png(plot_variance(DIAG, tmp_path / "variance.png"))


def test_plot_missing_key_is_a_clear_error(tmp_path: Path):
    with pytest.raises(KeyError, match="gpqa"):
        plot_variance({"gpqa": {"variance_input_side": 0.1}}, tmp_path / "v.png")
    assert list(tmp_path.iterdir()) == []


def test_plot_draw_histogram(tmp_path: Path):
    values = np.random.default_rng(0).normal(0.6, 0.02, size=100)
    _check_png(plot_draw_histogram(values, tmp_path / "draws.png", dars_value=0.65, title="gpqa"))
    _check_png(plot_draw_histogram([0.5], tmp_path / "one.png"))
    with pytest.raises(ValueError, match="not finite"):
        plot_draw_histogram([0.5, np.nan], tmp_path / "bad.png")


def test_plot_frontier(tmp_path: Path):
    curves = {
        "mlp": (np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.5, 0.55, 0.8, 0.7])),
        "knn": (np.array([0.15, 0.35, np.nan]), np.array([0.52, 0.75, np.nan])),
    }
    fixed = {"gemma": (0.05, 0.4), "deepseek": (np.array([0.6]), np.array([0.85]))}
    path = tmp_path / "frontier.png"
    path.write_bytes(b"old")  # replaced atomically
    _check_png(plot_frontier(curves, fixed, path))


def test_plot_curves_writes_a_png_and_checks_shapes(tmp_path):
    from evaluators.plots import plot_curves

    series = {"single_shot": ([225, 450, 900], [0.46, 0.47, 0.465], [0.42, 0.42, 0.42], [0.51, 0.51, 0.51]),
              "dars 3x3": ([225, 450, 900], [0.50, 0.49, np.nan], [0.46, 0.44, np.nan], [0.55, 0.53, np.nan])}
    path = plot_curves(series, tmp_path / "c.png", title="t", xlabel="budget", ylabel="tU")
    img = mpimg.imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100
    with pytest.raises(ValueError, match="differ in length"):
        plot_curves({"a": ([1, 2], [0.1], [0.0], [0.2])}, tmp_path / "d.png")
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_curves({}, tmp_path / "e.png")
