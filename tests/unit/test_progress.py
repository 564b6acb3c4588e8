"""Progress bars only on a terminal; the environment can force either way."""

import io
import sys

from pipeline.progress import on_terminal


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_bars_only_on_a_terminal(monkeypatch):
    monkeypatch.delenv("STNAS_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file
    assert not on_terminal()
    monkeypatch.setattr(sys, "stderr", _Tty())
    assert on_terminal()
    monkeypatch.setenv("STNAS_PROGRESS", "0")
    assert not on_terminal()
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setenv("STNAS_PROGRESS", "1")
    assert on_terminal()
