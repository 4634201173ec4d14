"""The data layer's error and warning types, and how values are shown in their messages
(docs/data.md, "Errors")."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MISSING = object()  # sentinel: field absent from a JSON object



class DataError(ValueError):
    """Invalid DARS input. ``path`` is the file, ``line`` the 1-based line (None when the
    problem is the whole file), ``field`` the offending field (None for malformed JSON or a
    whole-file problem)."""

    def __init__(
        self,
        path: str | os.PathLike,
        line: int | None,
        field: str | None,
        detail: str,
        *,
        other_line: int | None = None,
    ) -> None:
        self.path = str(path)
        self.line = None if line is None else int(line)
        self.field = field
        self.detail = detail
        self.other_line = None if other_line is None else int(other_line)
        where = display_path(path) + ("" if line is None else f":{int(line)}")
        what = "" if field is None else f"field '{field}': "
        super().__init__(f"{where}: {what}{detail}")

    def __reduce__(self) -> tuple:  # picklable across processes (joblib launcher)
        return (
            type(self),
            (self.path, self.line, self.field, self.detail),
            {"other_line": self.other_line},
        )


class DataWarning(UserWarning):
    """Something in the data is surprising but loadable (reported with counts)."""


def display_path(path: str | os.PathLike) -> str:
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def show(value: Any) -> str:
    """A short printable form of a JSON value for error messages."""
    if value is MISSING:
        return "<missing>"
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 80 else text[:76] + "...'"
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

