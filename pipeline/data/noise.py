"""The noise sources of the ``noise`` augmentation (:mod:`pipeline.data.augment`), made once
per data dir instead of downloaded: white, pink and brown noise, mains hum, synthetic music
(random notes with harmonics) and babble (training speakers talking at once), each
``SOURCE_SECONDS`` long at ``SOURCE_RMS``, with the SNR range of its category (as MUSAN's
noise, music and speech are used in Kaldi recipes).
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from pipeline.data.audio import read_audio, write_wav
from pipeline.data.datadir import read_map

PathLike = Union[str, Path]
SNR_DB = {"noise": (0.0, 15.0), "music": (5.0, 15.0), "babble": (13.0, 20.0)}
SOURCE_SECONDS = 30.0
SOURCE_RMS = 3000.0  # int16 units


def _coloured(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = f[1] if spec.size > 1 else 1.0
    spec *= f ** (-exponent / 2.0)
    spec[0] = 0.0
    return np.fft.irfft(spec, n)


def _hum(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum: 50 or 60 Hz and its harmonics, with a faint hiss."""
    base = 50.0 if rng.random() < 0.5 else 60.0
    t = np.arange(n) / rate
    x = sum(
        (0.7**k) * np.sin(2 * np.pi * base * (k + 1) * t + rng.uniform(0, 2 * np.pi))
        for k in range(8)
        if base * (k + 1) < rate / 2
    )
    return x + 0.05 * rng.standard_normal(n)


def _music(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Two voices of random notes (harmonic tones with attack and decay)."""
    out = np.zeros(n)
    for _ in range(2):
        pos = 0
        while pos < n:
            length = int(rate * rng.uniform(0.15, 0.6))
            f0 = 440.0 * 2 ** ((rng.integers(45, 81) - 69) / 12.0)
            t = np.arange(min(length, n - pos)) / rate
            tone = sum(
                (0.5**k) * np.sin(2 * np.pi * f0 * (k + 1) * t)
                for k in range(5)
                if f0 * (k + 1) < rate / 2
            )
            env = np.minimum(1.0, t / 0.02) * np.exp(-t * rng.uniform(2.0, 6.0))
            out[pos : pos + t.size] += tone * env
            pos += length
    return out


def _babble(
    train_dir: Path, n: int, rate: int, seed: int, talkers: int = 5
) -> Optional[np.ndarray]:
    """``talkers`` training speakers at equal level, each concatenating their utterances."""
    wav = read_map(train_dir / "wav.scp")
    if (train_dir / "segments").is_file():  # whole recordings are fine for babble
        segments = read_map(train_dir / "segments")
        spk_of: Dict[str, str] = {}
        for utt, spk in read_map(train_dir / "utt2spk").items():
            seg_rec = segments.get(utt, "").split()[:1]
            if seg_rec:
                spk_of.setdefault(seg_rec[0], spk)
    else:
        spk_of = read_map(train_dir / "utt2spk")
    by_spk: Dict[str, List[str]] = {}
    for rec, spk in sorted(spk_of.items()):
        if rec in wav:
            by_spk.setdefault(spk, []).append(rec)
    if len(by_spk) < 2:
        return None
    rng = random.Random(seed)
    speakers = sorted(by_spk)
    rng.shuffle(speakers)
    out = np.zeros(n)
    for spk in speakers[:talkers]:
        recs = list(by_spk[spk])
        rng.shuffle(recs)
        pieces, total = [], 0
        for rec in recs:
            r, x = read_audio(wav[rec], rec)
            if r != rate:
                continue
            pieces.append(x.astype(np.float64))
            total += x.size
            if total >= n:
                break
        if not pieces:
            continue
        voice = np.concatenate(pieces)
        voice = np.tile(voice, math.ceil(n / voice.size))[:n]
        out += voice / (np.sqrt(np.mean(voice**2)) + 1e-9)
    return out if out.any() else None


def make_noise_sources(
    train_dir: PathLike, out_dir: PathLike, rate: int, seed: int
) -> Dict[str, Tuple[str, str]]:
    """Write the noise sources (``SOURCE_SECONDS`` of 16-bit audio each) to ``out_dir``.

    Returns:
        name → (category, path); the category selects the SNR range (:data:`SNR_DB`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = int(SOURCE_SECONDS * rate)
    gen = np.random.default_rng(seed)
    signals = {
        "white": ("noise", gen.standard_normal(n)),
        "pink": ("noise", _coloured(n, 1.0, gen)),
        "brown": ("noise", _coloured(n, 2.0, gen)),
        "hum": ("noise", _hum(n, rate, gen)),
        "music1": ("music", _music(n, rate, gen)),
        "music2": ("music", _music(n, rate, gen)),
    }
    for k in range(2):
        b = _babble(Path(train_dir), n, rate, seed + 17 * (k + 1))
        if b is not None:
            signals[f"babble{k + 1}"] = ("babble", b)
    sources = {}
    for name, (category, x) in signals.items():
        x = x * (SOURCE_RMS / (np.sqrt(np.mean(x**2)) + 1e-12))
        path = out_dir / f"{name}.wav"
        write_wav(str(path), rate, np.clip(x, -32768, 32767).astype(np.float32))
        sources[name] = (category, str(path))
    return sources
