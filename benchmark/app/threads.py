"""Threads of one cell: parallel cells split the cores instead of each taking all of them.

The count comes from ``threads=`` when set, else from where the cell runs: its Ray task's CPUs,
``SLURM_CPUS_PER_TASK``, or the cores divided by ``hydra.launcher.n_jobs`` (joblib launcher).
It is applied to BLAS / OpenMP (threadpoolctl and the ``*_NUM_THREADS`` variables that child
processes and later-loaded libraries read), torch and joblib (``LOKY_MAX_CPU_COUNT``). README,
"Sweeps on Ray and Slurm".
"""

from __future__ import annotations

import os
import sys
from typing import Any

from threadpoolctl import threadpool_limits

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "LOKY_MAX_CPU_COUNT")


def ray_task_cpus() -> int | None:
    """CPUs assigned to the current Ray task; None outside a Ray worker. Ray is an optional
    dependency: it is only consulted when the launcher has already imported it."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    try:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # noqa: BLE001 - the driver process has no task resources
        return None
    return max(1, int(cpus)) if cpus else None


def cell_threads(requested: Any, launcher: Any = None, cpu_count: int | None = None) -> int | None:
    """The thread count of one cell; None means "leave the libraries' defaults" (a single run
    or the basic launcher, which runs one cell at a time)."""
    if requested not in (None, "", "null"):
        n = int(requested)
        if n < 1:
            raise ValueError(f"threads={requested}: must be a positive number of threads or null")
        return n
    cpus = ray_task_cpus()
    if cpus:
        return cpus
    slurm = os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm:
        return max(1, int(slurm))
    n_jobs = launcher.get("n_jobs") if launcher is not None and hasattr(launcher, "get") else None
    if n_jobs:
        cores = cpu_count or os.cpu_count() or 1
        n_jobs = int(n_jobs)
        parallel = cores if n_jobs < 0 else min(n_jobs, cores)
        return max(1, cores // max(1, parallel))
    return None


def limit_threads(n: int | None) -> int | None:
    """Apply ``n`` threads to BLAS / OpenMP, torch (when loaded) and joblib; None: no change."""
    if n is None:
        return None
    for var in THREAD_VARIABLES:
        os.environ[var] = str(n)
    threadpool_limits(limits=n)
    torch = sys.modules.get("torch")  # set only when a router has loaded it
    if torch is not None:
        torch.set_num_threads(n)
    return n
