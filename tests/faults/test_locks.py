"""One process per stage dir and data dir: a second one is refused, naming the holder; the
lock goes with the process, however it dies."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pipeline.locks import LockedError, dir_locks, lock_dir, unlock_dir
from pipeline.nas.arch import Arch
from steps_py.cli import cli

REPO = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
sys.path.insert(0, {repo!r})
from pipeline.locks import lock_dir
lock_dir({d!r}, shared={shared}, what="holder-command --seed 7")
print("locked", flush=True)
time.sleep(60)
"""


def _holder(d: Path, shared: bool = False) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(repo=str(REPO), d=str(d), shared=shared)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline().strip() == "locked"
    return p


def test_second_process_is_refused_and_a_killed_holder_frees_the_lock(tmp_path):
    d = tmp_path / "exp" / "warmup"
    holder = _holder(d)
    try:
        with pytest.raises(LockedError, match=rf"in use by .*pid {holder.pid}: holder-command"):
            lock_dir(d)
        with pytest.raises(LockedError, match=f"pid {holder.pid}"):
            lock_dir(d, shared=True)  # a reader waits for no writer either
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock_dir(d)  # the kernel released it with the process: never stale
    assert f"pid {os.getpid()}" in (d / ".lock").read_text()
    unlock_dir(d)


def test_readers_share_and_keep_writers_out(tmp_path):
    d = tmp_path / "data"
    reader = _holder(d, shared=True)
    try:
        lock_dir(d, shared=True)  # another reader: fine
        unlock_dir(d)
        with pytest.raises(LockedError, match="being read by another process"):
            lock_dir(d)
    finally:
        reader.kill()
        reader.wait()
    with dir_locks((d, False)):
        assert (d / ".lock").read_text().startswith(f"pid {os.getpid()}")
    lock_dir(d)  # released at the end of the block
    unlock_dir(d)


def _wait_for_lock_text(path: Path, text: str, timeout: float = 60.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if path.is_file() and text in path.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} never named {text}")


def test_stage_commands_refuse_a_dir_in_use(tmp_path):
    """Two ``stnas warmup`` on one exp dir, a ``prep`` under a running training, a ``decode``
    into a decode dir in use: each second command exits 1 naming the holder, before it writes
    anything."""
    exp, data = tmp_path / "exp", tmp_path / "data"
    holder = _holder(exp / "warmup")
    try:
        r = CliRunner().invoke(
            cli,
            [
                "warmup",
                "--config",
                str(REPO / "conf/debug/warmup.yaml"),
                "--data-dir",
                str(data),
                "--exp-dir",
                str(exp),
            ],
        )
        assert r.exit_code == 1 and f"pid {holder.pid}: holder-command" in r.output
        assert sorted(p.name for p in (exp / "warmup").iterdir()) == [".lock"]
    finally:
        holder.kill()
        holder.wait()
    reader = _holder(data, shared=True)  # as a training stage holds its data dir
    try:
        r = CliRunner().invoke(cli, ["prep", "--corpus", "tts", "--data-dir", str(data)])
        assert r.exit_code == 1 and "is being read by another process" in r.output
        assert not (data / "config.yaml").exists()
    finally:
        reader.kill()
        reader.wait()
    model = tmp_path / "retrain" / "best.pt"
    model.parent.mkdir()
    arch = Arch.from_json(REPO / "conf/arch/tdnn_d_tiny.json")  # a readable model: decode
    net = arch.build(5)  # reads it before it takes its locks
    torch.save({"model": net.state_dict(), "arch": arch.to_dict(), "num_units": 5}, model)
    holder = _holder(tmp_path / "retrain" / "decode_test_tg")
    try:
        r = CliRunner().invoke(
            cli, ["decode", "--model", str(model), "--data-dir", str(data), "--sets", "test"]
        )
        assert r.exit_code == 1 and f"pid {holder.pid}" in r.output
    finally:
        holder.kill()
        holder.wait()
