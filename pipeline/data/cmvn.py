"""Cepstral mean and variance normalisation with Kaldi's stats layout.

Stats are a (2, D+1) float64 matrix per speaker, as ``compute-cmvn-stats`` writes:
row 0 = ``[Σx_1 .. Σx_D, count]``, row 1 = ``[Σx_1² .. Σx_D², 0]``. ``apply-cmvn
--norm-vars=true`` maps ``x → (x − μ) / σ`` with ``μ = Σx/n``, ``σ² = Σx²/n − μ²``
(variance floored, as Kaldi does).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

VAR_FLOOR = 1.0e-20


def cmvn_stats(feats: Iterable[np.ndarray]) -> np.ndarray:
    """Accumulate stats over utterances.

    Args:
        feats: iterable of (T_i, D) matrices (one speaker's utterances).

    Returns:
        (2, D+1) float64 stats.
    """
    stats = None
    for f in feats:
        f = np.asarray(f, dtype=np.float64)
        if stats is None:
            stats = np.zeros((2, f.shape[1] + 1))
        stats[0, :-1] += f.sum(axis=0)
        stats[1, :-1] += (f * f).sum(axis=0)
        stats[0, -1] += f.shape[0]
    if stats is None:
        raise ValueError("cmvn_stats needs at least one utterance")
    return stats


def apply_cmvn(feats: np.ndarray, stats: np.ndarray, norm_vars: bool = True) -> np.ndarray:
    """Normalise (T, D) features with (2, D+1) stats; returns float32 (T, D)."""
    count = stats[0, -1]
    if count <= 0:
        raise ValueError("cmvn stats have zero count")
    mean = stats[0, :-1] / count
    out = np.asarray(feats, dtype=np.float64) - mean
    if norm_vars:
        var = np.maximum(stats[1, :-1] / count - mean * mean, VAR_FLOOR)
        out = out / np.sqrt(var)
    return out.astype(np.float32)
