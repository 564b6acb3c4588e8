"""Exceptions the library raises for problems a user can fix (bad input, finished stages).

Command-line wrappers turn these into a one-line message and a non-zero exit; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

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
