"""Kaldi's unsmoothed phone LM: counts by hand, brute force against the definition, pruning
targets, normalisation, ARPA and FST forms, transcript dedup."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import kaldifst
import numpy as np
import pytest

from pipeline.lang.arpa import read_arpa, write_arpa
from pipeline.lang.phone_lm import BOS, EOS, lm_to_fst, sequence_logprob
from pipeline.lang.phone_lm_unsmoothed import estimate_unsmoothed_phone_lm
from tests.conftest import phone_corpus  # noqa: E402

K = 12


def fst_arcs(fst):
    return sum(fst.num_arcs(s) for s in range(fst.num_states))


def test_states_arcs_and_values_by_hand():
    # order 3, nothing prunable (histories of length < 3 never are):
    #   (<s>)   -> 1 x2, 2 x1          (<s> 1) -> 2 x2       (1 2) -> 3, 4
    #   (2 3)   -> </s> x2             (2 4)   -> </s>       (<s> 2) -> 3
    lm = estimate_unsmoothed_phone_lm([[1, 2, 3], [1, 2, 4], [2, 3]], num_units=5, order=3)
    assert not lm.smoothed
    assert sorted(lm.states()) == sorted([(BOS,), (BOS, 1), (1, 2), (2, 3), (2, 4), (BOS, 2)])
    assert lm.start_state() == (BOS,)
    fst = lm_to_fst(lm)
    assert fst.num_states == 6 and fst_arcs(fst) == 6  # one arc per seen (history, phone)
    finals = [s for s in range(fst.num_states) if math.isfinite(fst.final(s).value)]
    assert len(finals) == 2
    assert sequence_logprob(lm, [1, 2, 3]) == pytest.approx(math.log(2 / 3) + math.log(1 / 2))
    assert sequence_logprob(lm, [2, 3]) == pytest.approx(math.log(1 / 3))
    assert sequence_logprob(lm, [1, 3]) == -math.inf  # never seen: probability 0
    assert sequence_logprob(lm, [2, 3, 4]) == -math.inf
    assert lm.next_state((BOS, 2), 3) == (2, 3)


def test_dedup_counts_each_transcript_once():
    seqs = [[1, 2], [1, 2], [1, 2], [2]]
    once = estimate_unsmoothed_phone_lm(seqs, num_units=3, order=2, no_prune_order=2)
    assert math.exp(once.logprob((BOS,), 1)) == pytest.approx(1 / 2)
    every = estimate_unsmoothed_phone_lm(seqs, num_units=3, order=2, no_prune_order=2, dedup=False)
    assert math.exp(every.logprob((BOS,), 1)) == pytest.approx(3 / 4)


def positions(seqs, order):
    """(history as Kaldi keeps it: at most order-1 tokens from <s>, next token) per position."""
    for seq in seqs:
        hist = (BOS,)
        for w in list(seq) + [EOS]:
            yield hist, w
            hist = (hist + (w,))[-(order - 1) :]


def ml_logprob(seqs, key):
    """Brute force: sum over seqs of ln c(key(h), w) / c(key(h)) at every position."""
    counts = defaultdict(Counter)
    for h, w in positions(seqs, 4):
        counts[key(h)][w] += 1
    total = 0.0
    for h, w in positions(seqs, 4):
        c = counts[key(h)]
        total += math.log(c[w] / sum(c.values()))
    return total


def test_no_pruning_is_the_maximum_likelihood_4gram(phone_train):
    lm = estimate_unsmoothed_phone_lm(phone_train, K, order=4, max_extra_states=None, dedup=False)
    got = sum(sequence_logprob(lm, s) for s in phone_train)
    assert got == pytest.approx(ml_logprob(phone_train, key=lambda h: h), abs=1e-8)


def test_pruning_everything_gives_the_maximum_likelihood_trigram(phone_train):
    lm = estimate_unsmoothed_phone_lm(phone_train, K, order=4, max_extra_states=0, dedup=False)
    assert max(len(h) for h in lm.states()) == 2
    got = sum(sequence_logprob(lm, s) for s in phone_train)
    assert got == pytest.approx(ml_logprob(phone_train, key=lambda h: h[-2:]), abs=1e-8)


@pytest.mark.parametrize("extra", [5, 40, 150])
def test_pruning_target_and_likelihood_order(phone_train, extra):
    lm = estimate_unsmoothed_phone_lm(phone_train, K, order=4, max_extra_states=extra, dedup=False)
    basic = {h[-2:] for h, _ in positions(phone_train, 4) if len(h) >= 2}  # trigram histories
    assert len(lm.states()) == len(basic) + extra  # Kaldi's target: basic + extra states
    assert all(len(h) >= 2 or h == (BOS,) for h in lm.states())  # never below the bigram
    ll = {
        n: sum(
            sequence_logprob(
                estimate_unsmoothed_phone_lm(
                    phone_train, K, order=4, max_extra_states=n, dedup=False
                ),
                s,
            )
            for s in phone_train
        )
        for n in (0, extra, None)
    }
    assert ll[0] < ll[extra] < ll[None]  # more states, higher training likelihood


@pytest.mark.parametrize("order,no_prune,extra", [(4, 3, 50), (5, 3, 80), (3, 2, 10), (2, 1, 3)])
def test_every_state_is_a_distribution_and_the_fst_is_stochastic(
    phone_train, order, no_prune, extra
):
    lm = estimate_unsmoothed_phone_lm(
        phone_train, K, order=order, max_extra_states=extra, no_prune_order=no_prune
    )
    for h in lm.states():
        assert abs(np.exp(lm.log_distribution(h)).sum() - 1.0) < 1e-9, h
    fst = lm_to_fst(lm)
    assert fst.num_states == len(lm.states())
    for s in range(fst.num_states):
        mass = sum(math.exp(-a.weight.value) for a in kaldifst.ArcIterator(fst, s))
        final = fst.final(s).value
        mass += math.exp(-final) if math.isfinite(final) else 0.0
        assert mass == pytest.approx(1.0, abs=1e-6)
    for s in phone_train[:50]:  # every training transcript stays possible
        assert sequence_logprob(lm, s) > -math.inf


def test_far_fewer_arcs_than_the_smoothed_lm(phone_train):
    from pipeline.lang.phone_lm import estimate_phone_lm

    hard = lm_to_fst(estimate_unsmoothed_phone_lm(phone_train, K, order=4, max_extra_states=100))
    soft = lm_to_fst(estimate_phone_lm(phone_train, K, order=4, max_extra_states=100))
    assert fst_arcs(soft) == soft.num_states * (K - 1)  # smoothed: every phone everywhere
    assert fst_arcs(hard) < fst_arcs(soft) / 2


def test_arpa_round_trip(phone_train, tmp_path):
    lm = estimate_unsmoothed_phone_lm(phone_train, K, order=4, max_extra_states=60)
    write_arpa(lm, tmp_path / "lm.arpa")
    text = (tmp_path / "lm.arpa").read_text()
    assert "-99.00000000" in text  # probability 0 written the ARPA way
    back = read_arpa(tmp_path / "lm.arpa", K)
    assert not back.smoothed
    assert sorted(back.states()) == sorted(lm.states())
    for s in phone_train[:40] + phone_corpus(20, seed=9):
        a, b = sequence_logprob(lm, s), sequence_logprob(back, s)
        assert a == b == -math.inf or a == pytest.approx(b, abs=1e-6)
    assert fst_arcs(lm_to_fst(back)) == fst_arcs(lm_to_fst(lm))


def test_bad_options():
    with pytest.raises(ValueError, match="order >= 2"):
        estimate_unsmoothed_phone_lm([[1]], 3, order=1)
    with pytest.raises(ValueError, match="no_prune_order"):
        estimate_unsmoothed_phone_lm([[1]], 3, order=3, no_prune_order=4)
    with pytest.raises(ValueError, match="phone id"):
        estimate_unsmoothed_phone_lm([[0, 1]], 3)
    with pytest.raises(ValueError, match="no transcripts"):
        estimate_unsmoothed_phone_lm([], 3)
