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
from pipeline.lang.word_lm import (estimate_word_lm, perplexity, read_sentences,
                                   sentence_logprob, write_arpa)


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
    kaldilm.arpa2fst(str(tmp_path / "lm.arpa"), str(tmp_path / "G.fst"),
                     read_symbol_table=str(tmp_path / "words.txt"))
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


def test_non_tts_corpus_lm_comes_from_train_transcripts_without_dev_test(tmp_path):
    import json

    from pipeline.decode.run import word_lm_arpa

    d = tmp_path / "data"
    for name, lines in {"train": ["t1 THE CAT SAT", "t2 THE DOG SAT", "t3 A SECRET"],
                        "dev": ["d1 A SECRET"], "test": ["e1 THE ZEBRA RAN"]}.items():
        (d / name).mkdir(parents=True)
        (d / name / "text").write_text("\n".join(lines) + "\n")
    (d / "lang").mkdir()
    words = ["<eps>", "<UNK>", "A", "CAT", "DOG", "RAN", "SAT", "SECRET", "THE", "ZEBRA"]
    (d / "lang" / "words.txt").write_text("".join(f"{w} {i}\n" for i, w in enumerate(words)))
    (d / "config.yaml").write_text("corpus: kaldi\n")
    arpa = word_lm_arpa(d, "tg")
    assert arpa == d / "local" / "lm" / "tg.arpa"
    unigrams = {ln.split("\t")[1] for ln in arpa.read_text().split("\\2-grams:")[0].splitlines()
                if ln.count("\t") >= 1 and not ln.startswith("ngram")}
    assert {"THE", "CAT", "DOG", "SAT"} <= unigrams
    assert not {"SECRET", "ZEBRA", "RAN"} & unigrams  # only in held-out sentences
    info = json.loads(arpa.with_suffix(".json").read_text())
    assert info["sentences"] == 2 and info["source"].endswith("train/text")
    (d / "train" / "text").unlink()
    arpa.unlink()
    with pytest.raises(DataError, match="no training text"):
        word_lm_arpa(d, "tg")
