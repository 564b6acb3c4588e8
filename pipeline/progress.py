"""Whether progress bars make sense: only on a terminal.

A bar written to a file (a log, ``run.sh > log``) becomes thousands of carriage-return lines;
there the stages write a plain line now and then instead.
"""

from __future__ import annotations

import os
import sys


def on_terminal() -> bool:
    """True when stderr is a terminal (``STNAS_PROGRESS=1`` forces bars, ``=0`` hides them)."""
    forced = os.environ.get("STNAS_PROGRESS")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
