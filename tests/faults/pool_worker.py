"""A pool worker for tests/faults/test_orphans.py: the production guard, then a start-up that
may be slow (as a decoder loading its graph)."""

import os
import time

from pipeline.children import die_with_parent


def init(parent_pid: int, slow: bool) -> None:
    if slow:
        time.sleep(2.0)  # the parent is killed meanwhile
    die_with_parent(parent_pid)


def pid() -> int:
    return os.getpid()
