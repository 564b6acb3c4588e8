"""The 95 % interval of a WER: a bootstrap over the scored utterances.

A WER on a few thousand words moves by a point or more from one equally good test set to
the next; every WER the toolkit prints carries this interval so that a reader can tell a
difference from noise. Utterances are drawn with replacement (``resamples`` times, seeded, so
the interval is reproducible) and the corpus-level WER of each draw is recomputed; the interval
is the 2.5 and 97.5 percentiles.
"""

from __future__ import annotations

from typing import List, Mapping, Tuple

import numpy as np

from pipeline.decode.align import align_like_sclite

RESAMPLES = 1000


def utterance_errors(
    ref: Mapping[str, str], hyp: Mapping[str, str]
) -> Tuple[List[str], np.ndarray, np.ndarray]:
    """(utterance ids sorted, errors per utterance, reference words per utterance), aligned
    with sclite's costs; a missing hypothesis is all deletions."""
    utts = sorted(ref)
    errors, words = [], []
    for u in utts:
        r, h = ref[u].split(), hyp.get(u, "").split()
        _, sub, dels, ins = align_like_sclite(r, h)
        errors.append(sub + dels + ins)
        words.append(len(r))
    return utts, np.array(errors, dtype=np.int64), np.array(words, dtype=np.int64)


def bootstrap_interval(
    errors: np.ndarray, words: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> Tuple[float, float]:
    """95 % interval of ``100 · Σ errors / Σ words`` over utterance resamples."""
    n = len(errors)
    if n == 0 or int(words.sum()) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    rates = 100.0 * errors[idx].sum(axis=1) / np.maximum(words[idx].sum(axis=1), 1)
    lo, hi = np.percentile(rates, [2.5, 97.5])
    return float(lo), float(hi)


def wer_interval(ref: Mapping[str, str], hyp: Mapping[str, str]) -> Tuple[float, float]:
    """The 95 % bootstrap interval of the WER of ``hyp`` against ``ref``."""
    _, errors, words = utterance_errors(ref, hyp)
    return bootstrap_interval(errors, words)


def interval_text(ci: Tuple[float, float]) -> str:
    """``[27.10, 30.25]``."""
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"
