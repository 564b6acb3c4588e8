"""Loading a model or checkpoint never runs code: a ``.pt`` file whose pickle would create a
marker file when unpickled is refused by every command that takes one, naming the file, and
the marker never appears."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pipeline.nas.arch import Arch
from pipeline.train.checkpoint import UnsafeCheckpointError, load_file, load_latest
from steps_py.cli import cli

REPO = Path(__file__).resolve().parents[2]
ARCH = REPO / "conf" / "arch" / "tdnn_d_tiny.json"


class _System:
    """Unpickles as ``os.system("touch MARKER")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Touch:
    """Unpickles as ``pathlib.Path.touch(MARKER)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def evil_model(path: Path, marker: Path, payload=_System, **extra) -> Path:
    """A retrained model file, complete and loadable, plus an object that runs code."""
    arch = Arch.from_json(ARCH)
    state = {
        "model": arch.build(41).state_dict(),
        "arch": arch.to_dict(),
        "num_units": 41,
        "stage": "retrain",
        "note": payload(marker),
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _loads_unsafely(path: Path) -> None:
    """What loading it without weights_only does (in a child process)."""
    code = f"import torch; torch.load({str(path)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True)


@pytest.mark.parametrize("payload", [_System, _Touch])
def test_the_evil_file_runs_code_when_loaded_unsafely(tmp_path, payload):
    """The control: the files of the tests below would create the marker if loaded."""
    marker = tmp_path / "marker"
    _loads_unsafely(evil_model(tmp_path / "avg.pt", marker, payload))
    assert marker.exists()


@pytest.mark.parametrize("payload", [_System, _Touch])
def test_every_command_refuses_it(tmp_path, payload):
    marker = tmp_path / "marker"
    model = evil_model(tmp_path / "exp" / "retrain" / "avg.pt", marker, payload)
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"")
    commands = {
        "transcribe": ["transcribe", "--model", model, wav],
        "export": ["export", "--model", model],
        "package": ["package", "--model", model, "--out", tmp_path / "pkg"],
        "decode": ["decode", "--model", model, "--data-dir", tmp_path / "data"],
    }
    for name, args in commands.items():
        r = CliRunner().invoke(cli, [str(a) for a in args])
        assert r.exit_code == 1, (name, r.output, r.exception)
        assert f"{model}: refused: loading it would run code" in r.output, (name, r.output)
        assert "posix.system" in r.output or "getattr" in r.output, (name, r.output)
        assert not marker.exists(), name
    assert not (tmp_path / "pkg").exists()
    with pytest.raises(UnsafeCheckpointError):
        load_file(model)
    assert not marker.exists()


def test_an_unsafe_checkpoint_is_not_skipped_for_an_older_one(tmp_path):
    """A damaged newest checkpoint falls back to the one before; a tampered one stops."""
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    torch.save({"model": {"w": torch.ones(1)}}, ckpt / "step-00000001.pt")
    evil_model(ckpt / "step-00000002.pt", tmp_path / "marker")
    with pytest.raises(UnsafeCheckpointError, match="step-00000002.pt: refused"):
        load_latest(ckpt, required=("model",))
    assert not (tmp_path / "marker").exists()


@pytest.mark.slow
def test_resume_refuses_it(tts_data, tmp_path):
    marker = tmp_path / "marker"
    exp = tmp_path / "exp"
    evil = evil_model(
        exp / "retrain" / "ckpt" / "step-00000005.pt",
        marker,
        optimizer={},
        position={"epoch": 0, "next_batch": 1, "step": 5},
    )
    args = [
        "retrain",
        "--config",
        REPO / "conf" / "debug" / "retrain.yaml",
        "--data-dir",
        tts_data,
        "--exp-dir",
        exp,
        "--arch",
        ARCH,
        "--set",
        "progress=false",
        "--set",
        "max_epochs=1",
    ]
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 1, (r.output, r.exception)
    assert f"{evil}: refused: loading it would run code" in r.output
    assert not marker.exists()
