"""Kaldi-style per-stage log files: ``<stage dir>/log/<stage>.log``.

While a stage runs, every ``pipeline``/``local`` log record at INFO and above is also appended
to its log file (with the date), whatever the console's verbosity, so a finished stage keeps a
record of what it said (warnings, epochs, stop reason) next to its results.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import Iterator, Union

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def stage_log(path: Union[str, Path]) -> Iterator[Path]:
    """Append the stage's log records to ``path`` for the ``with`` block."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    loggers = [logging.getLogger(name) for name in ("pipeline", "local")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)  # records reach the file; the console keeps its level
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(sys.argv)}\n")
    try:
        yield path
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.close()
