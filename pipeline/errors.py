"""Exceptions the library raises for problems a user can fix (bad input, finished stages).

Command-line wrappers turn these into a one-line message and a non-zero exit; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Optional, Union


class StnasError(Exception):
    """Base class of errors caused by input or state the user controls."""


class DataError(StnasError):
    """Something wrong in a data file; the message names the file, line and/or utterance.

    Args:
        message: what is wrong.
        path: the file it is in.
        line: 1-based line number in ``path``.
        utt: the utterance id concerned.
    """

    def __init__(
        self,
        message: str,
        path: Optional[Union[str, Path]] = None,
        line: Optional[int] = None,
        utt: Optional[str] = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.utt = utt
        where = ""
        if self.path is not None:
            where = self.path + (f":{line}" if line is not None else "")
        if utt is not None:
            where = f"{where} (utterance {utt})" if where else f"utterance {utt}"
        super().__init__(f"{where}: {message}" if where else message)


class StaleResultError(StnasError):
    """A finished result was built from other inputs or options than the present ones."""


# errno values that mean "this file cannot be written here", a problem of the machine the
# user can fix (free space, permissions, a read-only mount), not a bug
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class WriteError(StnasError):
    """A file could not be written (no space, read-only, permission); the previous version of
    the file, if any, is intact."""


def write_error(path: Union[str, Path], exc: BaseException) -> Optional[WriteError]:
    """The :class:`WriteError` for ``exc`` raised while writing ``path``, or None when ``exc``
    is not a write failure. torch reports a full disk as a RuntimeError without an errno
    (``PytorchStreamWriter failed writing file``); the free space tells what happened."""
    import shutil

    where = Path(path).parent
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return WriteError(f"no space left on {_mount_of(where)} while writing {path}")
        return WriteError(f"cannot write {path}: {exc.strerror}")
    if (
        isinstance(exc, RuntimeError)
        and "write" in str(exc).lower()
        and ("PytorchStreamWriter" in str(exc) or "inline_container" in str(exc))
    ):
        try:
            free = shutil.disk_usage(where).free
        except OSError:
            free = -1
        why = (
            f"no space left on {_mount_of(where)}"
            if 0 <= free < 64 * 2**20
            else f"the write failed ({str(exc).strip().splitlines()[-1][:200]})"
        )
        return WriteError(f"{why} while writing {path}")
    return None


def _mount_of(path: Path) -> str:
    import os

    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return str(p)
