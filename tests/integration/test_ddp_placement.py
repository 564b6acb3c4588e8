"""Data-parallel runs with every collective on the process group's device (as NCCL requires).

The machine has no GPU, so NCCL's rule is emulated (``tests/ddp_nccl_rule.py``): two ranks in
a gloo group, each ``torch.distributed`` collective failing unless its tensors were put on the
group's device. Warm-up (uniform path draws), SNAS (Gumbel noise, α gradients) and random search
(candidate draws) exercise every collective of the training stages.
"""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.train.distributed import backend_for, comm_device

REPO = Path(__file__).resolve().parents[2]
DEBUG = REPO / "conf" / "debug"

pytestmark = pytest.mark.slow


def _torchrun(stage, data, exp, *sets):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        str(REPO / "tests" / "ddp_nccl_rule.py"),
        stage,
        "--config",
        str(DEBUG / f"{stage}.yaml"),
        "--data-dir",
        str(data),
        "--exp-dir",
        str(exp),
        "--set",
        "progress=false",
        "--set",
        "max_epochs=1",
    ]
    for item in sets:
        cmd += ["--set", item]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)


def test_every_collective_runs_on_the_group_device(tts_data, tmp_path):
    exp = tmp_path / "exp"
    out = _torchrun("warmup", tts_data, exp)
    assert out.returncode == 0, out.stderr[-3000:]
    for strategy, extra in (
        ("snas", []),
        ("random", ["strategy_conf={random_candidates: 2}", "random_short_steps=2"]),
    ):
        out = _torchrun("search", tts_data, exp, f"strategy={strategy}", *extra)
        assert out.returncode == 0, (strategy, out.stderr[-3000:])
        assert "architecture:" in out.stdout
        shutil.rmtree(exp / "search")  # the next strategy searches again


def test_backend_and_device_of_collectives():
    import torch

    assert backend_for(torch.device("cuda", 1)) == "cpu:gloo,cuda:nccl"
    assert backend_for(torch.device("cpu")) == "gloo"
    assert comm_device() == torch.device("cpu")  # nothing initialised: the CPU
