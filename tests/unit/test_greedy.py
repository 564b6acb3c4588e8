"""Greedy CTC output and its phone error rate (pipeline/train/greedy.py)."""

from __future__ import annotations

import functools
import random

import torch

from pipeline.train.data import Batch
from pipeline.train.greedy import edit_distance, greedy_per, greedy_units


def _brute_distance(a, b):
    @functools.lru_cache(maxsize=None)
    def d(i, j):
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


def test_edit_distance_against_recursion():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.randrange(4) for _ in range(rng.randrange(9))]
        b = [rng.randrange(4) for _ in range(rng.randrange(9))]
        assert edit_distance(a, b) == _brute_distance(tuple(a), tuple(b))


def test_greedy_merges_repeats_drops_blank_and_respects_lengths():
    frames = [1, 1, 0, 1, 2, 2, 0, 0, 3, 3]  # → 1 1 2 3 ; frames past the length ignored
    lp = torch.full((1, 10, 5), -10.0)
    lp[0, torch.arange(10), torch.tensor(frames)] = 0.0
    assert greedy_units(lp, torch.tensor([10])) == [[1, 1, 2, 3]]
    assert greedy_units(lp, torch.tensor([6])) == [[1, 1, 2]]


class _Echo(torch.nn.Module):
    """A 'model' whose log-probs are the features themselves."""

    def forward(self, feats, lengths):
        return feats, lengths


def test_greedy_per_counts_and_interval():
    lp = torch.full((2, 6, 4), -9.0)
    lp[0, torch.arange(6), torch.tensor([1, 0, 2, 2, 0, 3])] = 0.0  # hyp 1 2 3
    lp[1, torch.arange(6), torch.tensor([2, 2, 0, 0, 0, 0])] = 0.0  # hyp 2
    labels = torch.tensor([[1, 2, 3], [1, 2, 0]])  # refs 1 2 3 / 1 2: 0 and 1 errors
    batch = Batch(lp, torch.tensor([6, 6]), labels, torch.tensor([3, 2]), ["a", "b"])
    out = greedy_per(_Echo(), [batch])
    assert out["errors"] == 1 and out["units"] == 5 and out["per"] == 20.0
    lo, hi = out["per_ci95"]
    assert 0.0 <= lo <= 20.0 <= hi <= 50.0
