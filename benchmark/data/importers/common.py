"""Shared parts of the importers and exporters: the error type naming file, row and field.

See docs/convert.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

_MAX_LISTED = 10  # problems quoted in an error message / drop report


class ConvertError(ValueError):
    """Invalid converter input. ``path`` is the file, ``index`` the 0-based item index (None for
    a whole-file problem), ``field`` the offending field (e.g. ``scores.gemma-2-9b-it``)."""

    def __init__(self, path: str | os.PathLike, index: int | None, field: str | None, detail: str,
                 *, n_problems: int = 1, problems: Sequence["Problem"] = ()) -> None:
        self.path = str(path)
        self.index = index
        self.field = field
        self.detail = detail
        self.n_problems = n_problems
        self.problems = list(problems)
        where = Path(path).name + ("" if index is None else f" item {index}")
        what = "" if field is None else f"field '{field}': "
        super().__init__(f"{where}: {what}{detail}")


@dataclass(frozen=True)
class Problem:
    path: str
    index: int
    field: str
    detail: str

    def __str__(self) -> str:
        return f"{Path(self.path).name} item {self.index}: field '{self.field}': {self.detail}"


def show(value: Any) -> str:
    """A short JSON rendering of a bad value for an error message."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
