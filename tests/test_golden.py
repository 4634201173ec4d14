"""Golden test: a fixed set of cells, the diagnose and the leaderboard commands give the numbers
recorded before the issue-8 refactor, every one of them to 1e-12 (tests/golden_cells.py)."""

from __future__ import annotations

import json

from golden_cells import GOLDEN, compare, produce


def test_golden_numbers_unchanged(tmp_path):
    want = json.loads(GOLDEN.read_text())
    got = produce(tmp_path)
    problems = compare(got, want)
    assert not problems, f"{len(problems)} values differ:\n" + "\n".join(problems[:40])
