"""Word n-gram LM (interpolated modified Kneser-Ney) for the decoding graph G.

The model is estimated on word sentences (lists of str) with sentence boundaries ``<s>`` /
``</s>``; its vocabulary is the training words plus ``</s>`` and the unknown word (``<unk>``
by default), which only gets the uniform share of the unigram. Smoothing follows Chen &
Goodman (1998, §3.5 and Eq. 17)::

    P(w | h) = (c'(h, w) - D_m(c'(h, w))) / c'(h) + gamma(h) * P(w | h')
    P(w | ())  = (c'(w) - D_1(c'(w))) / c'(()) + gamma(()) / V
    gamma(h)   = (D_m1 * N1(h) + D_m2 * N2(h) + D_m3+ * N3+(h)) / c'(h)

with ``h'`` = ``h`` without its oldest word, ``m = |h| + 1``, ``c'(h) = sum_w c'(h, w)``,
``N_k(h)`` the number of words with ``c'(h, w) = k`` (``N3+``: >= 3) and ``V`` the number of
predicted tokens (words, ``</s>``, ``<unk>``). The adjusted counts ``c'`` are the raw counts
for the highest order and for n-grams starting with ``<s>``, and otherwise the continuation
counts ``N1+(. h w)`` (how many distinct words precede ``h w``). The three discounts of each
order come from its count-of-counts ``n1..n4``::

    Y = n1 / (n1 + 2 n2);  D_m1 = 1 - 2Y n2/n1;  D_m2 = 2 - 3Y n3/n2;  D_m3+ = 3 - 4Y n4/n3

and a discount that is undefined or outside ``(0, k)`` (tiny training sets) falls back to
``Y`` (or 0.5 when ``Y`` is undefined). Because the unseen part of ``P(. | h)`` is exactly
``gamma(h) * P(. | h')``, the ARPA backoff form (:func:`write_arpa`, readable by
``kaldilm.arpa2fst``) is the same model: listed n-grams are the seen ones and
``bow(h) = gamma(h)``. Counting is shared with :mod:`pipeline.lang.phone_lm`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from pipeline.data.datadir import c_sort_key, read_map
from pipeline.errors import DataError
from pipeline.lang.arpa import write_arpa_entries
from pipeline.lang.phone_lm import BOS, EOS, backoff_distribution, count_ngrams

PathLike = Union[str, Path]
History = Tuple[int, ...]
UNK_WORD = "<unk>"
_LN10 = math.log(10.0)
_RESERVED = ("<s>", "</s>", "<eps>")


@dataclass
class WordLm:
    """A backoff word n-gram model (natural-log probabilities) over integer word ids.

    Attributes:
        order: n of the n-gram.
        words: word id -> word (ids ``0..V-2``); ``EOS`` (``</s>``) and ``BOS`` (``<s>``)
            are the negative ids of :mod:`pipeline.lang.phone_lm`.
        unk: the unknown-word symbol (one of :attr:`words`).
        prob: history -> {token: ln P(token | history)} for every seen n-gram; the empty
            history lists every word and ``EOS``.
        backoff: history -> ln gamma(history), for every seen history.
    """

    order: int
    words: List[str]
    unk: str
    prob: Dict[History, Dict[int, float]]
    backoff: Dict[History, float]
    _ids: Dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _dist_cache: Dict[History, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._ids = {w: i for i, w in enumerate(self.words)}

    @property
    def vocab_size(self) -> int:
        """V, the number of predicted tokens: words (incl. ``<unk>``) and ``</s>``."""
        return len(self.words) + 1

    def word_id(self, word: str) -> int:
        """The id of ``word``; ``</s>`` is ``EOS``, an out-of-vocabulary word maps to ``<unk>``."""
        if word == "</s>":
            return EOS
        if word == "<s>":
            return BOS
        return self._ids.get(word, self._ids[self.unk])

    def is_oov(self, word: str) -> bool:
        """True for a word the LM does not know (it is scored as ``<unk>``)."""
        return word not in self._ids

    def logprob(self, history: Sequence[str], word: str) -> float:
        """ln P(word | history) for words (the history is truncated to ``order - 1``)."""
        h = tuple(self.word_id(w) for w in history)
        return float(self.log_distribution(h)[self._index(self.word_id(word))])

    def log_distribution(self, history: History) -> np.ndarray:
        """ln P(w | history) over word ids ``0..V-2`` then ``EOS``, shape (V,)."""
        h = tuple(history)[-(self.order - 1) :] if self.order > 1 else ()
        return backoff_distribution(self, h, self.vocab_size)

    def histories(self) -> List[History]:
        """Every history with a backoff weight (the LM states), sorted by length then ids."""
        return sorted(self.backoff, key=lambda h: (len(h), h))

    def _index(self, token: int) -> int:
        return self.vocab_size - 1 if token == EOS else token


def _discounts(adjusted: Iterable[int]) -> Tuple[float, float, float]:
    """Modified-KN discounts (D1, D2, D3+) of one order from its adjusted counts.

    ``n_k`` is the number of n-grams whose adjusted count is exactly k (k = 1..4).
    """
    n = Counter(c for c in adjusted if c <= 4)
    n1, n2, n3, n4 = (n[k] for k in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2) if n1 + 2 * n2 > 0 else 0.5
    fallback = y if 0 < y < 1 else 0.5
    out = []
    for k, (num, den) in enumerate(((n2, n1), (n3, n2), (n4, n3)), start=1):
        d = k - (k + 1) * y * num / den if den > 0 else float("nan")
        out.append(d if 0 < d < k else fallback)
    return out[0], out[1], out[2]


def _adjusted_counts(counts: Dict[History, Counter], order: int) -> Dict[History, Counter]:
    """c'(h, w): raw counts at the top order and after ``<s>``, continuation counts elsewhere."""
    adjusted: Dict[History, Counter] = defaultdict(Counter)
    for h, following in counts.items():
        if len(h) == order - 1 or (h and h[0] == BOS):
            adjusted[h].update(following)
        if h:  # (u, h', w) seen -> one more distinct left extension of (h', w)
            lower = h[1:]
            if len(lower) < order - 1 and not (lower and lower[0] == BOS):
                for w in following:
                    adjusted[lower][w] += 1
    return adjusted


def estimate_word_lm(
    sentences: Iterable[Sequence[str]],
    order: int = 3,
    unk: str = UNK_WORD,
    extra_vocab: Iterable[str] = (),
) -> WordLm:
    """Estimate an interpolated modified Kneser-Ney word n-gram (see the module docstring).

    Args:
        sentences: training sentences, each a list of words (no ``<s>`` / ``</s>``).
        order: n-gram order (>= 1).
        unk: the unknown-word symbol added to the vocabulary (e.g. ``<UNK>`` to match a
            lexicon that has it).
        extra_vocab: more words to predict (e.g. the lexicon's, so the decoder can output
            words unseen in the LM text); like ``unk`` they get the uniform unigram share.

    Returns:
        the LM; its vocabulary is the training words, ``extra_vocab`` and ``unk`` (and
        ``</s>``).

    Raises:
        DataError: no sentences, or a sentence holding ``<s>``, ``</s>`` or ``<eps>``.
    """
    if order < 1:
        raise ValueError(f"LM order must be >= 1, got {order}")
    sents = [list(s) for s in sentences]
    if not sents:
        raise DataError("cannot estimate a word LM from zero sentences")
    vocab = {w for s in sents for w in s} | set(extra_vocab)
    bad = vocab & set(_RESERVED)
    if bad:
        raise DataError(f"training words contain reserved symbols {sorted(bad)}")
    words = sorted(vocab | {unk}, key=c_sort_key)
    lm = WordLm(order, words, unk, {}, {})
    counts = count_ngrams(([lm.word_id(w) for w in s] for s in sents), order)
    adjusted = _adjusted_counts(counts, order)

    by_order: Dict[int, List[int]] = defaultdict(list)
    for h, following in adjusted.items():
        by_order[len(h) + 1].extend(following.values())
    discounts = {m: _discounts(c) for m, c in by_order.items()}

    for h in sorted(adjusted, key=lambda h: (len(h), h)):
        following = adjusted[h]
        d1, d2, d3 = discounts[len(h) + 1]
        total = sum(following.values())
        kinds = Counter(min(c, 3) for c in following.values())
        gamma = (d1 * kinds[1] + d2 * kinds[2] + d3 * kinds[3]) / total
        lower = (
            np.full(lm.vocab_size, -math.log(lm.vocab_size))
            if not h
            else lm.log_distribution(h[1:])
        )
        discount = {1: d1, 2: d2, 3: d3}
        lm.prob[h] = {
            w: math.log((c - discount[min(c, 3)]) / total + gamma * math.exp(lower[lm._index(w)]))
            for w, c in following.items()
        }
        if not h:  # unseen words (at least <unk>) get the uniform share
            for w in list(range(len(words))) + [EOS]:
                lm.prob[h].setdefault(w, math.log(gamma) + lower[lm._index(w)])
        lm.backoff[h] = math.log(gamma)
    return lm


@dataclass
class PerplexityReport:
    """Perplexity of held-out sentences (OOVs scored as ``<unk>``, and counted)."""

    perplexity: float
    logprob: float
    sentences: int
    words: int
    oovs: int

    def summary(self) -> Dict[str, float]:
        """A JSON-friendly dict (perplexity rounded)."""
        return {
            "perplexity": round(self.perplexity, 3),
            "logprob": round(self.logprob, 3),
            "sentences": self.sentences,
            "words": self.words,
            "oovs": self.oovs,
        }


def sentence_logprob(lm: WordLm, sentence: Sequence[str]) -> float:
    """ln P(sentence </s> | <s>) (OOV words scored as ``<unk>``)."""
    h: History = (BOS,)
    total = 0.0
    for w in list(sentence) + ["</s>"]:
        wid = lm.word_id(w)
        total += float(lm.log_distribution(h)[lm._index(wid)])
        h = (h + (wid,))[-(lm.order - 1) :] if lm.order > 1 else ()
    return total


def perplexity(lm: WordLm, sentences: Iterable[Sequence[str]]) -> PerplexityReport:
    """Per-token perplexity ``exp(-sum ln P / N)``, N = words + one ``</s>`` per sentence."""
    total, n_sent, n_words, n_oov = 0.0, 0, 0, 0
    for s in sentences:
        total += sentence_logprob(lm, s)
        n_sent += 1
        n_words += len(s)
        n_oov += sum(lm.is_oov(w) for w in s)
    if n_sent == 0:
        raise DataError("perplexity of an empty set of sentences")
    return PerplexityReport(math.exp(-total / (n_words + n_sent)), total, n_sent, n_words, n_oov)


def _arpa_word(lm: WordLm, token: int) -> str:
    return "<s>" if token == BOS else "</s>" if token == EOS else lm.words[token]


def write_arpa(lm: WordLm, path: PathLike) -> None:
    """Write the LM as an ARPA file (log10 values), atomically; ``kaldilm.arpa2fst`` reads it.

    Args:
        lm: the model.
        path: output file, e.g. ``data/<c>/local/lm/lm_3gram.arpa``.
    """
    entries: Dict[int, List[Tuple[str, float, Optional[float]]]] = defaultdict(list)
    entries[1].append(("<s>", -99.0 * _LN10, lm.backoff.get((BOS,))))
    for h, listed in lm.prob.items():
        for w, lp in listed.items():
            ngram = h + (w,)
            text = " ".join(_arpa_word(lm, t) for t in ngram)
            entries[len(ngram)].append((text, lp, lm.backoff.get(ngram)))
    write_arpa_entries(
        path, {n: sorted(rows, key=lambda e: c_sort_key(e[0])) for n, rows in entries.items()}
    )


def read_sentences(text: PathLike) -> List[List[str]]:
    """The transcripts of a Kaldi ``text`` file (``utt-id w1 w2 ...``), in file order.

    Raises:
        DataError: the file is missing or malformed (naming the file and line).
    """
    return [v.split() for v in read_map(text, allow_empty_value=True).values()]
