"""Thread counts pinned so that a run computes the same numbers however busy the machine is.

What varies a result bit for bit on one machine is the number of threads a reduction is split
over: MKL's matrix products and torch's parallel loops add partial sums in an order that
depends on it (measured on the tts debug retrain: 1 vs 2 threads, max weight difference
1.3e-2 after two epochs). By default nothing fixes that number: torch takes it from the CPU
affinity of the process when it first computes (``taskset``, a batch scheduler's cpuset and
``OMP_NUM_THREADS`` all change it), and MKL runs with ``MKL_DYNAMIC=TRUE``, which lets it use
fewer threads than asked. So every stage:

* sets ``MKL_DYNAMIC=FALSE`` and ``OMP_DYNAMIC=FALSE`` before torch is loaded
  (:func:`disable_dynamic_threads`, called by the ``stnas`` command and the tests), and
* sets torch's thread count explicitly (:func:`pin_threads`, config key ``num_threads``,
  0 = ``OMP_NUM_THREADS`` if set, else the CPUs this process may use when it starts) and
  records it in ``stage.json``;
  resuming with another count is allowed but warned about: the continuation is then not
  bit-identical to an uninterrupted run.

Across machines (other CPU kinds, other SIMD code paths in MKL and oneDNN, other thread
counts) results may differ in the last bits, and training amplifies that.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)
_DYNAMIC_VARS = ("MKL_DYNAMIC", "OMP_DYNAMIC")


def disable_dynamic_threads() -> None:
    """Turn off MKL's and OpenMP's run-time choice of thread counts (effective only before
    torch is imported; a value the user set is kept)."""
    for var in _DYNAMIC_VARS:
        os.environ.setdefault(var, "FALSE")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _env_threads() -> int:
    try:
        return max(0, int(os.environ.get("OMP_NUM_THREADS", "0")))
    except ValueError:
        return 0


def pin_threads(num_threads: int = 0) -> int:
    """Set torch's intra-op thread count (MKL and OpenMP follow it); returns the count.

    Args:
        num_threads: > 0 exactly that many; 0 ``OMP_NUM_THREADS`` when set (torchrun sets 1
            per rank), else the CPUs available to the process.
    """
    import torch

    if num_threads < 0:
        raise ValueError(f"num_threads must be >= 0, got {num_threads}")
    n = num_threads or _env_threads() or available_cpus()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    for var in _DYNAMIC_VARS:
        if os.environ.get(var, "").upper() not in ("FALSE", "0"):
            log.warning(
                "%s is not FALSE: the math libraries may change their thread counts "
                "at run time, and results may differ between runs",
                var,
            )
    return n
