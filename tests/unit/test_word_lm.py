"""Word n-gram LM: modified Kneser-Ney values, normalisation, perplexity, ARPA via kaldilm."""

from __future__ import annotations

import math
import random

import kaldifst
import kaldilm
import numpy as np
import pytest

from pipeline.errors import DataError
from pipeline.lang.phone_lm import BOS
from pipeline.lang.word_lm import (
    estimate_word_lm,
    perplexity,
    read_sentences,
    sentence_logprob,
    write_arpa,
)


def corpus(n: int, seed: int):
    rng = random.Random(seed)
    vocab = [f"W{i}" for i in range(25)]
    frequent = ["THE", "CAT", "SAT"]
    sents = [[rng.choice(vocab) for _ in range(rng.randint(0, 8))] for _ in range(n)]
    return sents + [frequent] * 20


@pytest.fixture(scope="module")
def train():
    return corpus(400, seed=1)


def test_kneser_ney_by_hand():
    lm = estimate_word_lm([["a", "b"], ["b"]], order=2)
    # unigram continuation counts a:1 b:2 </s>:1 (total 4); D1 = 0.5, D2 -> fallback Y = 0.5;
    # gamma(()) = (0.5*2 + 0.5*1) / 4; V = 4 (a, b, <unk>, </s>)
    assert math.exp(lm.logprob([], "a")) == pytest.approx(0.5 / 4 + 0.375 / 4)
    assert math.exp(lm.logprob([], "b")) == pytest.approx(1.5 / 4 + 0.375 / 4)
    assert math.exp(lm.logprob([], "<unk>")) == pytest.approx(0.375 / 4)
    # bigrams: raw counts, n1 = 3, n2 = 1 -> D1 = 0.6, D2 -> fallback 0.6
    assert math.exp(lm.logprob(["a"], "b")) == pytest.approx(0.4 + 0.6 * 0.46875)
    assert math.exp(lm.logprob(["b"], "</s>")) == pytest.approx(0.7 + 0.3 * 0.21875)
    assert math.exp(lm.logprob(["<s>"], "a")) == pytest.approx(0.2 + 0.6 * 0.21875)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_history_sums_to_one(train, order):
    lm = estimate_word_lm(train, order=order)
    unk = lm.word_id("<unk>")
    unseen = [(unk, unk, unk), (lm.word_id("SAT"), lm.word_id("THE")), (BOS, unk)]
    for h in lm.histories() + unseen:
        total = np.exp(lm.log_distribution(h)).sum()
        assert abs(total - 1.0) < 1e-6, (h, total)
    assert lm.vocab_size == 25 + 3 + 2  # words, <unk>, </s>


def test_extra_vocabulary_gets_the_unknown_words_share(train):
    lm = estimate_word_lm(train, order=3, extra_vocab=["LEXICON_ONLY"])
    assert not lm.is_oov("LEXICON_ONLY")
    share = lm.logprob(["THE"], "LEXICON_ONLY")
    assert share == pytest.approx(lm.logprob(["THE"], "<unk>")) and math.isfinite(share)
    assert abs(np.exp(lm.log_distribution((lm.word_id("THE"),))).sum() - 1) < 1e-6


def test_frequent_sentence_beats_unseen_and_perplexity(train):
    lm = estimate_word_lm(train, order=3)
    assert sentence_logprob(lm, ["THE", "CAT", "SAT"]) > sentence_logprob(lm, ["SAT", "CAT", "THE"])
    held = corpus(50, seed=2)[:50] + [["W1", "NEVERSEEN", "W2"]]
    rep = perplexity(lm, held)
    assert math.isfinite(rep.perplexity) and rep.perplexity > 1
    assert rep.oovs == 1 and rep.sentences == 51
    assert rep.words == sum(len(s) for s in held)
    # held-out text is harder than training text
    assert perplexity(lm, train).perplexity < rep.perplexity


def test_arpa_is_read_by_kaldilm_with_the_same_probabilities(train, tmp_path):
    lm = estimate_word_lm(train, order=3)
    write_arpa(lm, tmp_path / "lm.arpa")
    words = ["<eps>"] + lm.words + ["#0", "<s>", "</s>"]
    (tmp_path / "words.txt").write_text("".join(f"{w} {i}\n" for i, w in enumerate(words)))
    kaldilm.arpa2fst(
        str(tmp_path / "lm.arpa"),
        str(tmp_path / "G.fst"),
        read_symbol_table=str(tmp_path / "words.txt"),
    )
    g = kaldifst.StdVectorFst.read(str(tmp_path / "G.fst"))
    assert g.num_states > len(lm.words)
    ids = {w: i for i, w in enumerate(words)}
    kaldifst.arcsort(g, sort_type="ilabel")
    for sent in (["THE", "CAT", "SAT"], ["W3"]):
        # without a disambiguation symbol, <s> and </s> are arc labels, backoff arcs epsilons
        acceptor = kaldifst.make_linear_acceptor([ids[w] for w in ["<s>"] + sent + ["</s>"]])
        path = kaldifst.compose(acceptor, g)
        ok, _, _, cost = kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(path))
        assert ok
        assert cost.value == pytest.approx(-sentence_logprob(lm, sent), abs=1e-3)


def test_bad_input(tmp_path):
    with pytest.raises(DataError, match="zero sentences"):
        estimate_word_lm([])
    with pytest.raises(DataError, match="reserved"):
        estimate_word_lm([["A", "</s>"]])
    with pytest.raises(DataError, match="reserved"):
        estimate_word_lm([["A"]], extra_vocab=["<s>"])
    (tmp_path / "text").write_text("u1 A B\nu2\nu3 C\n")
    assert read_sentences(tmp_path / "text") == [["A", "B"], [], ["C"]]


def _reference_modified_kn(sentences, order, vocab):
    """An independent, literal modified Kneser-Ney (Chen & Goodman 1998, Eq. 17 and §3.5).

    Returns (prob(history, word), discounts per order). Written from the definitions, sharing
    no code with :mod:`pipeline.lang.word_lm`: raw counts of every m-gram, adjusted counts
    (raw at the top order and after <s>, else the number of distinct left neighbours), and
    the discounts from counts of counts n1..n4.
    """
    from collections import Counter, defaultdict

    raw = Counter()
    for s in sentences:
        t = ["<s>"] + list(s) + ["</s>"]
        for i in range(1, len(t)):
            for m in range(1, order + 1):
                if i - m + 1 >= 0:
                    raw[tuple(t[i - m + 1 : i + 1])] += 1
    left = defaultdict(set)
    for g in raw:
        if len(g) >= 2:
            left[g[1:]].add(g[0])
    adjusted = {g: c if len(g) == order or g[0] == "<s>" else len(left[g]) for g, c in raw.items()}
    discounts = {}
    for m in range(1, order + 1):
        n = [sum(1 for g, c in adjusted.items() if len(g) == m and c == k) for k in range(5)]
        y = n[1] / (n[1] + 2 * n[2])
        discounts[m] = tuple(k - (k + 1) * y * n[k + 1] / n[k] for k in (1, 2, 3))

    def prob(history, word):
        h = tuple(history)[-(order - 1) :] if order > 1 else ()
        lower = 1.0 / len(vocab) if not h else prob(h[1:], word)
        follow = {g[-1]: c for g, c in adjusted.items() if len(g) == len(h) + 1 and g[:-1] == h}
        if not follow:
            return lower
        total = sum(follow.values())
        d = discounts[len(h) + 1]
        gamma = sum(d[min(c, 3) - 1] for c in follow.values()) / total
        c = follow.get(word, 0)
        return (max(c - d[min(c, 3) - 1], 0.0) if c else 0.0) / total + gamma * lower

    return prob, discounts


def _zipf_text():
    rng = random.Random(2)  # chosen so every order has n1..n4 > 0 and discounts inside (0, k)
    words = [f"W{i}" for i in range(20)]
    weights = [1 / (i + 1) ** 1.2 for i in range(20)]
    return [rng.choices(words, weights, k=rng.randint(1, 6)) for _ in range(80)]


@pytest.mark.parametrize("order", [2, 3])
def test_modified_kneser_ney_equals_an_independent_reference(order):
    text = _zipf_text()
    lm = estimate_word_lm(text, order=order)
    vocab = list(lm.words) + ["</s>"]
    prob, discounts = _reference_modified_kn(text, order, vocab)
    for d in discounts.values():  # the reference's discounts are the real ones, no fallback
        assert all(0 < d[k] < k + 1 for k in range(3))
    # discounts of the top order, counted by hand from the n-gram counts of counts
    assert discounts[order][2] > 0
    histories = [()] + [(a,) for a in ["<s>"] + vocab[:-1]]
    if order == 3:
        histories += [(a, b) for a in ["<s>"] + vocab[:6] for b in vocab[:6]]
    for h in histories:
        total = 0.0
        for w in vocab:
            expected = prob(h, w)
            total += expected
            assert math.exp(lm.logprob(list(h), w)) == pytest.approx(expected, abs=1e-12), (h, w)
        assert total == pytest.approx(1.0, abs=1e-12)
    held = [["W0", "W3", "W1"], ["W7"], ["W2", "W2", "W19", "NEW"]]
    log_sum = sum(
        math.log(
            prob(
                (["<s>"] + s + ["</s>"])[max(0, i - order + 1) : i],
                (s + ["</s>"])[i - 1] if (s + ["</s>"])[i - 1] in vocab else "<unk>",
            )
        )
        for s in held
        for i in range(1, len(s) + 2)
    )
    n_tokens = sum(len(s) + 1 for s in held)
    assert perplexity(lm, held).perplexity == pytest.approx(
        math.exp(-log_sum / n_tokens), rel=1e-10
    )


def test_kneser_ney_discount_counts_n4_exactly():
    from pipeline.lang.word_lm import _discounts

    # adjusted counts 1,1,1,2,2,3,4,9,9: n1=3 n2=2 n3=1 n4=1 (9 is not a "4")
    y = 3 / (3 + 2 * 2)
    d1, d2, d3 = _discounts([1, 1, 1, 2, 2, 3, 4, 9, 9])
    assert (d1, d2, d3) == pytest.approx((1 - 2 * y * 2 / 3, 2 - 3 * y * 1 / 2, 3 - 4 * y * 1 / 1))
