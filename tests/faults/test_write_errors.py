"""A full disk, a read-only place: a user error naming it, the last good files intact."""

import errno
import shutil

import pytest
import torch
from click.testing import CliRunner

from pipeline.errors import WriteError
from pipeline.io import atomic_write_text
from pipeline.train import checkpoint
from pipeline.train.checkpoint import load_latest, save_checkpoint
from steps_py.cli import cli
from tests.conftest import make_kaldi_corpus

TORCH_FULL = (
    "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing "
    "file data/3: file write failed"
)


def test_checkpoint_on_a_full_disk_names_the_last_good_one(tmp_path, monkeypatch):
    ck = tmp_path / "ckpt"
    save_checkpoint(ck, 10, {"w": torch.ones(3)})
    real_save = torch.save

    def full(obj, f, *a, **k):  # torch's own message on a full disk, after a partial write
        real_save(obj, f, *a, **k)
        raise RuntimeError(TORCH_FULL)

    monkeypatch.setattr(checkpoint.torch, "save", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 0))
    with pytest.raises(
        WriteError,
        match=r"no space left on /.* while writing .*step-00000020"
        r"\.pt \(last good checkpoint: .*step-00000010\.pt",
    ):
        save_checkpoint(ck, 20, {"w": torch.zeros(3)})
    assert sorted(p.name for p in ck.iterdir()) == ["step-00000010.pt"]  # no half file
    path, state = load_latest(ck)
    assert path.name == "step-00000010.pt" and torch.equal(state["w"], torch.ones(3))


def test_atomic_write_keeps_the_old_file_on_enospc_and_erofs(tmp_path, monkeypatch):
    target = tmp_path / "stage.json"
    atomic_write_text(target, "old\n")
    import pipeline.io as stage

    for code, words in ((errno.ENOSPC, "no space left on"), (errno.EROFS, "Read-only")):

        def fail(src, dst, code=code):
            raise OSError(
                code,
                errno.errorcode[code] if code != errno.EROFS else "Read-only file system",
                str(dst),
            )

        monkeypatch.setattr(stage.os, "replace", fail)
        with pytest.raises(WriteError, match=words):
            atomic_write_text(target, "new\n")
        assert target.read_text() == "old\n"
        assert [p.name for p in tmp_path.iterdir()] == ["stage.json"]


def test_cli_reports_a_full_disk_as_an_error_not_a_traceback(tmp_path, monkeypatch):
    root = make_kaldi_corpus(tmp_path / "corpus")
    import pipeline.io as stage

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(stage.tempfile, "mkstemp", full)
    r = CliRunner().invoke(
        cli,
        [
            "prep",
            "--corpus",
            "kaldi",
            "--corpus-root",
            str(root),
            "--data-dir",
            str(tmp_path / "data"),
            "--no-speed-perturb",
        ],
    )
    assert r.exit_code == 1, r.output
    assert "Error: no space left on /" in r.output and "Traceback" not in r.output
