"""Shared fixtures: a tiny prepared ``tts`` corpus (built once per session) and helpers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.threads import disable_dynamic_threads

disable_dynamic_threads()  # before torch is loaded, as the stnas command does

import torch  # noqa: E402

from pipeline.data.audio import write_wav  # noqa: E402

HAS_TTS = all(shutil.which(b) for b in ("espeak-ng", "flite", "text2wave", "sox"))


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tts_data(tmp_path_factory) -> Path:
    """``stnas prep --corpus tts --hours 0.05`` run once; tests must not modify it."""
    from pipeline.stages.prep import PrepConfig, run_prep

    if not HAS_TTS:
        pytest.fail("TTS programs missing: run 'make install'")
    d = tmp_path_factory.mktemp("tts") / "data"
    run_prep(PrepConfig(corpus="tts", data_dir=str(d), hours=0.05, nj=2), progress=False)
    return d


def tone(seconds: float, rate: int = 16000, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    """A sine tone with a little noise, in int16 range, (N,) float."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    return 8000 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 50, t.shape)


def make_kaldi_corpus(root: Path, n_spk: int = 2, n_utt: int = 3, rate: int = 16000) -> Path:
    """A small ``--corpus kaldi`` tree: train/dev/test data dirs of tone wavs with real words."""
    words = ["HELLO WORLD", "GOOD MORNING TO YOU", "THE CAT SAT ON THE MAT", "A TEST OF TIME"]
    k = 0
    for s in ("train", "dev", "test"):
        d = root / s
        d.mkdir(parents=True)
        wav, text, u2s = [], [], []
        for i in range(n_spk):
            spk = f"{s}spk{i}"
            for j in range(n_utt):
                utt = f"{spk}-{j:03d}"
                p = root / "wav" / f"{utt}.wav"
                p.parent.mkdir(exist_ok=True)
                write_wav(str(p), rate, tone(1.5 + 0.1 * j, rate, 200 + 50 * k, seed=k))
                k += 1
                wav.append(f"{utt} {p}\n")
                text.append(f"{utt} {words[(i + j) % len(words)]}\n")
                u2s.append(f"{utt} {spk}\n")
        (d / "wav.scp").write_text("".join(sorted(wav)))
        (d / "text").write_text("".join(sorted(text)))
        (d / "utt2spk").write_text("".join(sorted(u2s)))
        spk2utt = {}
        for line in sorted(u2s):
            u, sp = line.split()
            spk2utt.setdefault(sp, []).append(u)
        (d / "spk2utt").write_text(
            "".join(f"{sp} {' '.join(us)}\n" for sp, us in sorted(spk2utt.items()))
        )
    return root


def phone_corpus(n: int, seed: int, num_units: int = 12):
    """Sentences of 'words' (fixed random phone strings over units 1..num_units-1), so the
    data has n-gram structure; for the phone-LM tests."""
    import random

    rng = random.Random(0)
    words = [[rng.randint(1, num_units - 1) for _ in range(rng.randint(2, 5))] for _ in range(30)]
    rng = random.Random(seed)
    return [[p for _ in range(rng.randint(1, 6)) for p in rng.choice(words)] for _ in range(n)]


@pytest.fixture(scope="module")
def phone_train():
    """300 sentences of :func:`phone_corpus` (12 units)."""
    return phone_corpus(300, seed=1)


def children_of(pid: int) -> list:
    """Process ids whose parent is ``pid`` (from /proc; no ``ps`` needed)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d.name))
    return sorted(out)


def train_fit_wer(data_dir: Path, model: Path) -> float:
    """%WER of ``model`` on the training set it learnt (``train_sp``, ~1,200 words at the CI
    size), at LM weight 1 and no penalty: a wiring check with a margin that the CI's 54-word
    test set cannot give (a mis-wired or untrained model stays near 100 % here too)."""
    from click.testing import CliRunner

    from steps_py.cli import cli

    for args in (
        [
            "decode",
            "--model",
            model,
            "--data-dir",
            data_dir,
            "--sets",
            "train_sp",
            "--tune-set",
            "train_sp",
            "--lm-weights",
            "1.0",
            "--word-penalties",
            "0",
            "--nj",
            "2",
        ],
        [
            "score",
            "--model-dir",
            Path(model).parent,
            "--data-dir",
            data_dir,
            "--dev",
            "train_sp",
            "--test",
            "",
            "--results",
            "",
        ],
    ):
        r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert r.exit_code == 0, r.output
    best = Path(model).parent / "decode_train_sp_tg" / "best_wer"
    return float(best.read_text().split()[1])


def random_weights_model(arch_json: Path, data_dir: Path, out_dir: Path) -> Path:
    """The network of ``arch_json`` with its initial weights (seed 0), saved as a retrained
    model ``out_dir/best.pt``: what a broken recipe's model scores like."""
    import torch

    from pipeline.nas.arch import Arch

    arch = Arch.from_json(arch_json)
    k = sum(1 for _ in open(Path(data_dir) / "lang" / "units.txt"))
    torch.manual_seed(0)
    path = Path(out_dir) / "best.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": arch.build(k).state_dict(),
            "arch": arch.to_dict(),
            "num_units": k,
            "stage": "retrain",
        },
        path,
    )
    return path
