"""The phone (unit) error rate of greedy CTC output on the held-out set.

Greedy decoding takes the most probable unit per output frame, merges repeats and drops
blank (unit 0); no graph, no LM. Together with the held-out CTC-CRF loss per frame it
measures an acoustic model with far less variance than a WER on a few thousand words:
every held-out phone counts, and nothing depends on the decoding graph or its tuning.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Sequence, Tuple

import torch
from torch import Tensor, nn


def greedy_units(log_probs: Tensor, lengths: Tensor) -> List[List[int]]:
    """(B, T, K) log-probs, (B,) frames → per utterance: argmax, repeats merged, no blank."""
    best = log_probs.argmax(dim=-1).cpu()
    out = []
    for row, n in zip(best, lengths.cpu().tolist()):
        seq = torch.unique_consecutive(row[:n]).tolist()
        out.append([u for u in seq if u != 0])
    return out


def edit_distance(hyp: Sequence[int], ref: Sequence[int]) -> int:
    """Levenshtein distance (substitutions, insertions and deletions all cost 1)."""
    prev = list(range(len(ref) + 1))
    for i, h in enumerate(hyp, 1):
        cur = [i] + [0] * len(ref)
        for j, r in enumerate(ref, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (h != r))
        prev = cur
    return prev[-1]


def error_counts(
    log_probs: Tensor, lengths: Tensor, labels: Tensor, label_lengths: Tensor
) -> Tuple[int, int]:
    """(errors, reference units) of greedy output over one batch."""
    errors = ref_units = 0
    hyps = greedy_units(log_probs, lengths)
    for hyp, row, n in zip(hyps, labels.cpu(), label_lengths.cpu().tolist()):
        ref = row[:n].tolist()
        errors += edit_distance(hyp, ref)
        ref_units += n
    return errors, ref_units


def greedy_per(model: nn.Module, batches: Iterable[Any]) -> Dict[str, Any]:
    """Greedy PER of a standalone model over ``batches`` (an iterable of
    :class:`pipeline.train.data.Batch` on the model's device): percent, counts and a 95 %
    interval from the utterance-level bootstrap (1000 resamples, seed 0)."""
    model.eval()
    per_utt: List[Tuple[int, int]] = []
    with torch.no_grad():
        for batch in batches:
            log_probs, lengths = model(batch.feats, batch.lengths)
            for i in range(len(batch.utts)):
                per_utt.append(
                    error_counts(
                        log_probs[i : i + 1],
                        lengths[i : i + 1],
                        batch.labels[i : i + 1],
                        batch.label_lengths[i : i + 1],
                    )
                )
    if not per_utt:
        raise ValueError("greedy PER of an empty set")
    errors = sum(e for e, _ in per_utt)
    units = sum(n for _, n in per_utt)
    counts = torch.tensor(per_utt, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(len(per_utt), (1000, len(per_utt)), generator=gen)
    sums = counts[idx].sum(dim=1)
    rates = 100.0 * sums[:, 0] / sums[:, 1].clamp(min=1)
    lo, hi = torch.quantile(rates, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return {
        "per": 100.0 * errors / max(units, 1),
        "errors": float(errors),
        "units": float(units),
        "utts": float(len(per_utt)),
        "per_ci95": [lo, hi],
    }
