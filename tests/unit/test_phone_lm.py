"""Phone n-gram LM: Witten-Bell values, normalisation, state pruning, ARPA and FST forms."""

from __future__ import annotations

import math
import random

import kaldifst
import kaldilm
import numpy as np
import pytest

from pipeline.lang.arpa import read_arpa, write_arpa
from pipeline.lang.phone_lm import (
    BOS,
    EOS,
    estimate_phone_lm,
    lm_to_fst,
    perplexity,
    sequence_logprob,
)
from tests.conftest import phone_corpus  # noqa: E402

K = 12


def corpus(n: int, seed: int):
    return phone_corpus(n, seed, K)


@pytest.fixture(scope="module")
def train():
    return corpus(300, seed=1)


def test_witten_bell_by_hand():
    lm = estimate_phone_lm([[1, 2], [1]], num_units=3, order=2)
    # unigram: c(1)=2 c(2)=1 c(</s>)=2, n=3 types, V=3: P(w) = (c(w) + 3/3) / (5 + 3)
    assert math.exp(lm.logprob((), 1)) == pytest.approx(3 / 8)
    assert math.exp(lm.logprob((), EOS)) == pytest.approx(3 / 8)
    # after <s>: c=2 (1, 1), n=1: P(1|<s>) = (2 + 3/8) / 3, P(2|<s>) = (1 * 2/8) / 3
    assert math.exp(lm.logprob((BOS,), 1)) == pytest.approx(19 / 24)
    assert math.exp(lm.logprob((BOS,), 2)) == pytest.approx(1 / 12)
    # after 1: c=2 (2, </s>), n=2: P(2|1) = (1 + 2*2/8)/4, P(</s>|1) = (1 + 2*3/8)/4
    assert math.exp(lm.logprob((1,), 2)) == pytest.approx(3 / 8)
    assert math.exp(lm.logprob((1,), EOS)) == pytest.approx(7 / 16)
    assert math.exp(lm.logprob((2,), EOS)) == pytest.approx(11 / 16)
    expected = math.log(19 / 24) + math.log(3 / 8) + math.log(11 / 16)
    assert sequence_logprob(lm, [1, 2]) == pytest.approx(expected, abs=1e-12)
    assert perplexity(lm, [[1, 2]]) == pytest.approx(math.exp(-expected / 3))


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_history_sums_to_one(train, order):
    lm = estimate_phone_lm(train, K, order=order, max_extra_states=20)
    for h in lm.states():
        assert abs(np.exp(lm.log_distribution(h)).sum() - 1.0) < 1e-6, h
    # unseen histories (pure backoff) are distributions too
    assert abs(np.exp(lm.log_distribution((K - 1, K - 1, K - 1))).sum() - 1.0) < 1e-6


def test_pruning_keeps_all_short_histories_and_the_best_long_ones(train):
    full = estimate_phone_lm(train, K, order=4, max_extra_states=None)
    long_hists = [h for h in full.states() if len(h) == 3]
    budget = len(long_hists) // 3
    assert budget > 10
    lm = estimate_phone_lm(train, K, order=4, max_extra_states=budget)
    states = set(lm.states())
    assert {h for h in full.states() if len(h) <= 2} <= states  # all trigram states kept
    kept = [h for h in states if len(h) == 3]
    assert len(kept) == budget

    # Gain of a long history = training log-likelihood it adds over backing off.
    counts = {}
    for seq in train:
        padded = [BOS] + seq + [EOS]
        for i in range(3, len(padded)):
            counts.setdefault(tuple(padded[i - 3 : i]), []).append(padded[i])

    def gain(h):
        return sum(full.logprob(h, w) - full.logprob(h[1:], w) for w in counts[h])

    dropped = set(long_hists) - set(kept)
    assert min(gain(h) for h in kept) >= max(gain(h) for h in dropped) - 1e-9
    # Kept states are unchanged by pruning; dropped ones back off.
    h = kept[0]
    np.testing.assert_allclose(lm.log_distribution(h), full.log_distribution(h), atol=1e-12)
    h = sorted(dropped)[0]
    np.testing.assert_allclose(lm.log_distribution(h), full.log_distribution(h[1:]), atol=1e-12)
    assert lm.next_state(h[:2], h[2]) == h[1:]


def test_higher_order_fits_structured_data_better(train):
    dev = corpus(100, seed=2)
    ppl = [perplexity(estimate_phone_lm(train, K, order=o), dev) for o in (1, 2, 4)]
    assert ppl[0] > ppl[1] > ppl[2] > 1.0
    assert ppl[0] < K  # smoothed unigram beats uniform


def test_arpa_round_trip_and_kaldilm_reads_it(train, tmp_path):
    lm = estimate_phone_lm(train, K, order=4, max_extra_states=50)
    names = {i: f"p{i}" for i in range(K)}
    arpa = tmp_path / "phone_lm.arpa"
    write_arpa(lm, arpa, names)
    back = read_arpa(arpa, K, {v: k for k, v in names.items()})
    rng = random.Random(3)
    seqs = corpus(30, seed=4) + [[rng.randint(1, K - 1) for _ in range(8)] for _ in range(10)]
    for seq in seqs:  # incl. unseen n-grams: the backoff form is exact
        assert sequence_logprob(back, seq) == pytest.approx(sequence_logprob(lm, seq), abs=1e-6)
    text = kaldilm.arpa2fst(str(arpa), str(tmp_path / "G.fst"))
    assert text.strip() and (tmp_path / "G.fst").is_file()


def test_fst_path_weight_is_the_sentence_logprob(train):
    lm = estimate_phone_lm(train, K, order=4, max_extra_states=50)
    fst = lm_to_fst(lm)
    assert fst.num_states == len(lm.states())
    assert all(fst.num_arcs(s) == K - 1 for s in range(fst.num_states))  # explicit, no eps
    for seq in corpus(10, seed=5) + [[K - 1, 1, 1, K - 1]]:
        path = kaldifst.compose(kaldifst.make_linear_acceptor([p + 1 for p in seq]), fst)
        ok, ilabels, _, weight = kaldifst.get_linear_symbol_sequence(path)
        assert ok and list(ilabels) == [p + 1 for p in seq]
        assert -weight.value == pytest.approx(sequence_logprob(lm, seq), abs=1e-4)


def test_bad_input():
    with pytest.raises(ValueError):
        estimate_phone_lm([[1, 0, 2]], 3)  # blank is not a phone
    with pytest.raises(ValueError):
        estimate_phone_lm([[1, 3]], 3)  # id >= K
    lm = estimate_phone_lm([[1, 2]], 3)
    with pytest.raises(ValueError):
        sequence_logprob(lm, [5])
