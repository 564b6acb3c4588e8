"""One process at a time per stage dir and data dir: ``flock`` on ``<dir>/.lock``.

A stage takes an exclusive lock on the dir it writes (``prep`` its data dir, a training stage
its stage dir, ``decode`` each decode dir) and a shared lock on the data dir it reads, so two
trainings of one stage dir, or a ``prep --force`` under a running training, are refused
instead of overwriting each other. The kernel releases a ``flock`` when its process dies,
however it dies, so a lock can never be stale; the file's text (pid, command) only says who
holds it. A process that already holds a dir's lock may take it again (a no-op).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path
from typing import Dict, Iterator, Tuple, Union

from pipeline.errors import StnasError

LOCK_NAME = ".lock"
_HELD: Dict[str, Tuple[int, bool]] = {}  # resolved dir → (fd, exclusive), for this process


class LockedError(StnasError):
    """Another process holds the lock."""


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "another process"


def lock_dir(directory: Union[str, Path], shared: bool = False, what: str = "") -> Path:
    """Lock ``directory`` (created if missing) for this process's lifetime.

    Args:
        directory: the stage or data dir.
        shared: a reader's lock (many may hold it at once, but not beside a writer's).
        what: the command, written into the lock file for others' error messages.

    Returns:
        The lock file.

    Raises:
        LockedError: another process holds an incompatible lock (the message names it).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / LOCK_NAME
    key = str(d.resolve())
    held = _HELD.get(key)
    if held is not None and (held[1] or shared):
        return path  # this process holds it already (exclusively, or a shared one suffices)
    fd = held[0] if held is not None else os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        if held is None:
            os.close(fd)
        if shared or not _readers_only(path):  # a writer holds it: the file names it
            who = f"in use by {_holder(path)}"
        else:  # readers do not write the file
            who = "being read by another process (a stage that reads it is running)"
        raise LockedError(
            f"{d} is {who}; wait for it to finish or stop it (the lock goes with the process)"
        ) from None
    _HELD[key] = (fd, not shared)
    if not shared:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {what or ' '.join(sys.argv)}\n".encode(), 0)
    return path


def _readers_only(path: Path) -> bool:
    """Whether only readers hold ``path``'s lock: a shared lock can then be had."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # releases the probe's lock, if it got one


def unlock_dir(directory: Union[str, Path]) -> None:
    """Release this process's lock on ``directory`` (no-op if it holds none)."""
    held = _HELD.pop(str(Path(directory).resolve()), None)
    if held is not None:
        fcntl.flock(held[0], fcntl.LOCK_UN)
        os.close(held[0])


@contextlib.contextmanager
def dir_locks(*specs: Tuple[Union[str, Path], bool], what: str = "") -> Iterator[None]:
    """Hold the locks ``(directory, shared)`` for the ``with`` block, taken in order; a lock
    this process held before the block stays held after it."""
    taken = []
    try:
        for directory, shared in specs:
            key = str(Path(directory).resolve()) if Path(directory).exists() else None
            before = _HELD.get(key) if key else None
            lock_dir(directory, shared=shared, what=what)
            if before is None:
                taken.append(directory)
        yield
    finally:
        for directory in reversed(taken):
            unlock_dir(directory)
