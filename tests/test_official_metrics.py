"""chosen_decoding_instability (issue 15): the chosen model's decoding-view spread, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.data.dataset import ObservationBlock
from evaluators.metrics import chosen_decoding_instability


def test_chosen_decoding_instability_by_hand():
    nan = np.nan
    # [Q=2, M=2, V=1, S=3]
    score = np.array([[[[1, 0, 1]], [[1, 1, 1]]], [[[0, nan, nan]], [[0, 1, nan]]]], dtype=float)
    present = ~np.isnan(score)
    block = ObservationBlock(score, np.zeros_like(score), present, np.array([-1]), np.arange(3))
    # q0m0 {1,0,1}: ddof=1 var (1/9 + 4/9 + 1/9) / 2 = 1/3; q0m1 {1,1,1}: 0; q1m0 one value: 0;
    # q1m1 {0,1}: var 0.5.
    got = chosen_decoding_instability(block, np.array([[0, 1], [1, 0]]))
    np.testing.assert_allclose(got, [(np.sqrt(1 / 3) + np.sqrt(0.5)) / 2, 0.0])
    assert chosen_decoding_instability(block, np.array([0, 1])) == pytest.approx(
        (np.sqrt(1 / 3) + np.sqrt(0.5)) / 2)
