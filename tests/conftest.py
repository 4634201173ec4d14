"""Shared test fixtures: an isolated cache and offline defaults."""

from __future__ import annotations

import os

import pytest

from benchmark.app import resolvers  # noqa: F401 - registers ${darsbench.*} for tests that compose conf/ directly

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    """A fresh cache folder for one test (DARSBENCH_CACHE points at it)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("DARSBENCH_CACHE", str(path))
    return path
