"""Stage bookkeeping: atomic writes, file permissions, input fingerprints, done markers."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from pipeline.stage import atomic_path, atomic_write_text
from pipeline.train.checkpoint import save_checkpoint


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x\n")
        with atomic_path(tmp_path / "b.pt") as tmp:
            torch.save({"x": 1}, tmp)
        ckpt = save_checkpoint(tmp_path / "ckpt", 3, {"x": 1})
    finally:
        os.umask(old)
    for p in (tmp_path / "a.txt", tmp_path / "b.pt", ckpt):
        assert stat.S_IMODE(p.stat().st_mode) == mode, p
