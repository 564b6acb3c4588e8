"""Stage bookkeeping: atomic writes, file permissions, input fingerprints, done markers."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from pipeline.io import atomic_path, atomic_write_text
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


def test_stnas_turns_dynamic_threading_off_before_torch_loads():
    import subprocess
    import sys

    code = (
        "import os, steps_py.cli, torch; from pipeline.threads import pin_threads; "
        "print(os.environ['MKL_DYNAMIC'], os.environ['OMP_DYNAMIC'], pin_threads(1), "
        "torch.get_num_threads())"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_DYNAMIC", "OMP_DYNAMIC")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["FALSE", "FALSE", "1", "1"]


def test_fingerprints_follow_content_not_names(tmp_path):
    from pipeline.io import fingerprint, input_fingerprints, scp_fingerprint
    from pipeline.stages.record import StageDir

    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x" * 1000)
    b.write_bytes(b"x" * 1000)
    assert fingerprint(a) == fingerprint(b)
    b.write_bytes(b"x" * 999 + b"y")
    assert fingerprint(a) != fingerprint(b)
    big = tmp_path / "big.ark"  # larger than the whole-file limit: sampled blocks
    big.write_bytes(bytes(70 << 20))
    before = fingerprint(big)
    big.write_bytes(bytes(1 << 20) + b"\x01" * (69 << 20))  # regenerated: same size, new values
    assert fingerprint(big) != before
    scp = tmp_path / "feats.scp"
    scp.write_text(f"u1 {a}:0\nu2 {a}:10\n")
    first = scp_fingerprint(scp)
    a.write_bytes(b"z" * 1000)  # the same scp pointing at regenerated features
    assert scp_fingerprint(scp) != first
    sd = StageDir(tmp_path / "stage")
    ins = input_fingerprints({"features": scp, "model": b})
    assert sd.changes(ins, {"beam": 17.0}) == []  # nothing recorded yet
    sd.record_inputs(ins, {"beam": 17.0})
    assert sd.changes(ins, {"beam": 17.0}) == []
    assert sd.changes(ins, {"beam": 17.0, "added_later": 3}) == []
    b.write_bytes(b"new")
    assert sd.changes(input_fingerprints({"features": scp, "model": b}), {"beam": 12.0}) == [
        "input model changed",
        "beam: 17.0 → 12.0",
    ]
