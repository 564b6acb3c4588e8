"""Worker processes that die with their parent.

A pool worker (decoding, features) that outlives a killed ``stnas`` would keep a core and the
pool's ``resource_tracker`` busy for minutes with nobody to read its results. Each worker
asks the kernel for SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``, Linux) and,
since the parent may have died before the worker got that far (it was still importing),
exits at once when its parent is no longer the one that started it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Called first thing in a worker (a pool ``initializer``) with the parent's pid."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except OSError:  # no libc to ask: the check below still catches a dead parent
            pass
    if os.getppid() != parent_pid:
        os._exit(1)
