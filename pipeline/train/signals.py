"""SIGINT/SIGTERM during training: a flag the loop checks after each step, so that it writes a
checkpoint and stops instead of dying mid-step."""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator, Optional


class StopSignals:
    """SIGINT/SIGTERM set :attr:`received`; the loop checkpoints and stops at the next step."""

    def __init__(self) -> None:
        self.received: Optional[int] = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, frame):  # noqa: ARG001
            self.received = signum

        try:
            for s in old:
                signal.signal(s, handler)
        except ValueError:  # not the main thread: leave signals alone
            old = {}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)
