"""OmegaConf resolvers of the config tree: ``${darsbench.stamp:}`` and ``${darsbench.safe:text}``.

Registered when this module is imported (every Hydra CLI imports it before composing). See the
README, "Config tree".
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import datetime

from omegaconf import OmegaConf

#: Longest job-folder name made from overrides (file systems allow 255 bytes).
MAX_NAME = 160

_STAMP: list[str] = []
_UNSAFE = re.compile(r"[/\\\x00-\x1f]+")


def run_stamp() -> str:
    """``<date>/<time>-<microseconds>-<pid>``: sorts by start time and never repeats between
    processes; fixed for the life of this process (a sweep's jobs share their sweep's stamp)."""
    if not _STAMP:
        now = datetime.now()
        _STAMP.append(f"{now:%Y-%m-%d}/{now:%H-%M-%S}-{now:%f}-{os.getpid()}")
    return _STAMP[0]


def safe_name(text: str) -> str:
    """One folder name from override values: path separators and control characters become
    ``_`` (an absolute ``dataset.data_dir`` no longer nests folders); a name
    longer than :data:`MAX_NAME` keeps its start and gets a hash of the whole text."""
    text = str(text)
    name = _UNSAFE.sub("_", text).strip("_") if text else ""
    if name in (".", ".."):
        name = name.replace(".", "_")
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]
        name = f"{name[: MAX_NAME - 11]}-{digest}"
    return name


def register() -> None:
    OmegaConf.register_new_resolver("darsbench.stamp", run_stamp, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("darsbench.safe", safe_name, replace=True)


register()
