"""Kill points 'prep' and 'warmup' (search, retrain: tests/integration/test_train_stages.py;
decode: tests/integration/test_decode_score.py): kill -9, rerun the same command, and the
result equals an uninterrupted run's."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from pipeline.data.datadir import read_map
from pipeline.train.checkpoint import list_checkpoints

REPO = Path(__file__).resolve().parents[2]
STNAS = [sys.executable, "-m", "steps_py"]

pytestmark = pytest.mark.slow


def _kill_when(proc, ready, timeout=300.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail("the command finished before it could be killed")
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.01)
    pytest.fail("the kill point was never reached")


def test_prep_killed_during_features_resumes_to_the_same_data(tts_data, tmp_path):
    out = tmp_path / "data"
    cmd = STNAS + [
        "prep",
        "--corpus",
        "tts",
        "--hours",
        "0.05",
        "--nj",
        "2",
        "--data-dir",
        str(out),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(proc, lambda: (out / ".done" / "lang").exists())  # synthesis done, features next
    assert not (out / ".done" / "stage").exists()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    for s in ("train_sp", "dev", "test"):  # the session's uninterrupted prep, same options
        want, got = read_map(tts_data / s / "feats.scp"), read_map(out / s / "feats.scp")
        assert list(got) == list(want)
        for utt in list(want)[::7]:
            np.testing.assert_array_equal(
                kaldiio.load_mat(got[utt]), kaldiio.load_mat(want[utt]), err_msg=utt
            )
        assert read_map(out / s / "text_number", allow_empty_value=True) == read_map(
            tts_data / s / "text_number", allow_empty_value=True
        )


def test_warmup_killed_and_resumed_equals_uninterrupted(tts_data, tmp_path):
    def cmd(exp):
        return STNAS + [
            "warmup",
            "--config",
            str(REPO / "conf/debug/warmup.yaml"),
            "--data-dir",
            str(tts_data),
            "--exp-dir",
            str(exp),
            "--set",
            "progress=false",
            "--set",
            "ckpt_every=2",
            "--set",
            "max_epochs=2",
        ]

    subprocess.run(cmd(tmp_path / "full"), check=True, capture_output=True, cwd=REPO)
    ckpt = tmp_path / "killed" / "warmup" / "ckpt"
    proc = subprocess.Popen(cmd(tmp_path / "killed"), cwd=REPO, stderr=subprocess.DEVNULL)
    _kill_when(proc, lambda: any(int(p.stem.split("-")[1]) >= 4 for p in list_checkpoints(ckpt)))
    r = subprocess.run(cmd(tmp_path / "killed"), capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and "resumed" in r.stdout, r.stderr[-2000:]
    a, b = (
        torch.load(list_checkpoints(tmp_path / run / "warmup" / "ckpt")[-1], weights_only=True)
        for run in ("full", "killed")
    )
    assert a["position"]["step"] == b["position"]["step"]
    for name, value in a["model"].items():
        assert torch.equal(b["model"][name], value), name
