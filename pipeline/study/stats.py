"""Numbers of a study: per-utterance errors, mean ± standard deviation over seeds, and a
paired bootstrap test of one method against another.

The test (:func:`paired_bootstrap`) resamples at two levels, so that both sources of
variation a reader cares about are in the interval: the test utterances (drawn with
replacement, the *same* draw for both methods: paired) and the seeds (each method's seeds
drawn with replacement, independently: a search seed is not paired with the other method's).
Each replicate gives ``WER(other) - WER(reference)`` in % absolute (the mean over the drawn
seeds of each method's corpus-level WER on the drawn utterances); the interval is the 2.5 and
97.5 percentiles, and the two-sided p-value is ``2 * min(P(Δ <= 0), P(Δ >= 0))`` over the
replicates (floored at ``1 / resamples``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Sequence, Tuple

import numpy as np

from pipeline.decode.interval import utterance_errors

__all__ = ["utterance_errors", "mean_std", "mean_interval", "paired_bootstrap", "Comparison"]


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for one value)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0


@dataclass
class Comparison:
    """``other`` minus ``reference``, %WER absolute (positive: the reference is better)."""

    delta: float  # on all utterances, mean over seeds
    low: float  # 95 % bootstrap interval
    high: float
    p_value: float  # two-sided
    resamples: int

    def as_dict(self) -> Dict[str, Any]:
        return {
            "delta": self.delta,
            "ci95": [self.low, self.high],
            "p": self.p_value,
            "resamples": self.resamples,
        }


def paired_bootstrap(
    reference: np.ndarray,
    other: np.ndarray,
    words: np.ndarray,
    resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Compare two methods on the same utterances (see the module docstring).

    Args:
        reference, other: errors per utterance, shape (seeds, utterances) each (the number of
            seeds may differ).
        words: reference words per utterance, (utterances,).
        resamples: bootstrap replicates.
        seed: of the resampling.
    """
    reference, other = np.atleast_2d(reference), np.atleast_2d(other)
    words = np.asarray(words, dtype=np.float64)
    if reference.shape[1] != words.size or other.shape[1] != words.size:
        raise ValueError("both methods must be scored on the same utterances")
    if words.sum() <= 0:
        raise ValueError("no reference words")
    rng = np.random.default_rng(seed)
    n_utt = words.size
    delta = 100.0 * (other.sum(1).mean() - reference.sum(1).mean()) / words.sum()
    deltas = np.empty(resamples)
    for b in range(resamples):
        idx = rng.integers(0, n_utt, n_utt)
        w = words[idx].sum()
        ref_seeds = rng.integers(0, reference.shape[0], reference.shape[0])
        oth_seeds = rng.integers(0, other.shape[0], other.shape[0])
        ref_wer = reference[np.ix_(ref_seeds, idx)].sum(1).mean() / w
        oth_wer = other[np.ix_(oth_seeds, idx)].sum(1).mean() / w
        deltas[b] = 100.0 * (oth_wer - ref_wer)
    p = 2.0 * min(float((deltas <= 0).mean()), float((deltas >= 0).mean()))
    low, high = np.percentile(deltas, [2.5, 97.5])
    return Comparison(
        float(delta), float(low), float(high), float(min(1.0, max(p, 1.0 / resamples))), resamples
    )


def mean_interval(
    errors: np.ndarray, words: np.ndarray, resamples: int = 2000, seed: int = 0
) -> Tuple[float, float]:
    """95 % interval of a method's mean %WER over its seeds: utterances and seeds resampled
    as in :func:`paired_bootstrap` (errors: (seeds, utterances))."""
    errors = np.atleast_2d(errors)
    words = np.asarray(words, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n_utt, n_seed = words.size, errors.shape[0]
    out = np.empty(resamples)
    for b in range(resamples):
        idx = rng.integers(0, n_utt, n_utt)
        seeds = rng.integers(0, n_seed, n_seed)
        out[b] = 100.0 * errors[np.ix_(seeds, idx)].sum(1).mean() / max(words[idx].sum(), 1.0)
    low, high = np.percentile(out, [2.5, 97.5])
    return float(low), float(high)
