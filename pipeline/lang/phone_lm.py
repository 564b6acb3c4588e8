"""Phone n-gram LM for the CTC-CRF denominator graph, estimated on training transcripts.

The LM is trained on unit-id sequences (phones ``1..K-1``, never the blank 0) with sentence
boundaries ``<s>`` / ``</s>``. Like Kaldi's ``chain-est-phone-lm`` (conceptually): every
history seen in training up to length ``order - 2`` is an LM state (for the default order 4:
all trigram states, i.e. histories of length <= 2), and at most ``max_extra_states`` of the
longest histories (length ``order - 1``) are kept, those that gain the most training-data
log-likelihood over backing off. Unlike Kaldi's, the LM is smoothed, so that every phone
sequence keeps a non-zero probability.

Smoothing is interpolated Witten-Bell (Chen & Goodman 1998, Eq. 15)::

    P(w | h) = (c(h, w) + n(h) * P(w | h')) / (c(h) + n(h))
    P(w | ()) = (c(w) + n(()) / V) / (c(()) + n(()))

with ``c(h, w)`` the count of ``w`` after ``h``, ``c(h) = sum_w c(h, w)``, ``n(h)`` the number of
distinct ``w`` seen after ``h``, ``h'`` = ``h`` without its oldest token, ``V = K`` tokens
(phones ``1..K-1`` and ``</s>``). Written as a backoff model this is exact:
``P(w|h) = bow(h) * P(w|h')`` for unseen ``(h, w)`` with ``bow(h) = n(h) / (c(h) + n(h))``, so the
ARPA file (:func:`pipeline.lang.arpa.write_arpa`) and the FST (:func:`lm_to_fst`) hold the same model.

The FST is built directly (not by ``arpa2fst``, whose epsilon backoff arcs make the sum over
paths differ from the LM probability): one state per LM state, an explicit arc for every phone,
and final weight ``-ln P(</s> | h)``. Labels: phone ``p`` is FST label ``p + 1``, the output
labels of the den-form token FST (:mod:`pipeline.lang.token_fst`); costs are ``-ln P``.
Internally ``<s>`` is the id ``BOS = -1`` and ``</s>`` is ``EOS = -2``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import kaldifst
import numpy as np

BOS = -1
EOS = -2
History = Tuple[int, ...]
PathLike = Union[str, Path]


def backoff_distribution(lm, h: Tuple[int, ...], size: int) -> np.ndarray:
    """ln P(w | h) for every token of a backoff n-gram, shape (size,), cached per history.

    ``lm`` has ``prob`` (history → token → ln p), ``backoff`` (history → ln backoff weight),
    ``_index`` (token → column) and ``_dist_cache``; shared by the phone and word LMs.
    """
    cached = lm._dist_cache.get(h)
    if cached is not None:
        return cached
    if h:
        dist = backoff_distribution(lm, h[1:], size) + lm.backoff.get(h, 0.0)
    else:
        dist = np.full(size, -np.inf)
    for w, lp in lm.prob.get(h, {}).items():
        dist[lm._index(w)] = lp
    lm._dist_cache[h] = dist
    return dist


@dataclass
class PhoneLm:
    """A backoff phone n-gram model (natural-log probabilities).

    Attributes:
        order: n of the n-gram (histories have at most ``order - 1`` tokens).
        num_units: K, units including blank; the LM predicts phones ``1..K-1`` and ``EOS``.
        prob: history -> {token: ln P(token | history)} for the n-grams listed explicitly;
            the empty history lists every phone and ``EOS``.
        backoff: history -> ln bow(history) (0 when absent). The LM states are the
            histories with a backoff weight or listed n-grams.
        smoothed: False for an LM that gives unseen events probability 0 (each state's
            backoff weight is ``-inf``; :mod:`pipeline.lang.phone_lm_unsmoothed`).
    """

    order: int
    num_units: int
    prob: Dict[History, Dict[int, float]]
    backoff: Dict[History, float]
    smoothed: bool = True
    _dist_cache: Dict[History, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def vocab(self) -> List[int]:
        """Predicted tokens in distribution order: phones ``1..K-1`` then ``EOS``."""
        return list(range(1, self.num_units)) + [EOS]

    def states(self) -> List[History]:
        """LM states, start state ``(BOS,)`` first (when present), then sorted by length, ids."""
        start = self.start_state()
        hists = set(self.backoff) | set(self.prob)
        rest = sorted((h for h in hists if h != start), key=lambda h: (len(h), h))
        return [start] + rest

    def start_state(self) -> History:
        """The state holding the sentence-start context."""
        return self.next_state((), BOS)

    def next_state(self, history: History, token: int) -> History:
        """The LM state after ``token``: the longest kept suffix of ``history + (token,)``."""
        h = (tuple(history) + (token,))[-(self.order - 1) :] if self.order > 1 else ()
        while h and h not in self.backoff and h not in self.prob:
            h = h[1:]
        return h

    def logprob(self, history: History, token: int) -> float:
        """ln P(token | history) by the backoff recursion (history truncated to order-1)."""
        h = tuple(history)[-(self.order - 1) :] if self.order > 1 else ()
        acc = 0.0
        while True:
            listed = self.prob.get(h)
            if listed is not None and token in listed:
                return acc + listed[token]
            if not h:
                if token not in self.vocab:
                    raise ValueError(f"token {token} is not in the LM vocabulary")
                return -math.inf  # only an unsmoothed LM gets here
            acc += self.backoff.get(h, 0.0)
            if acc == -math.inf:
                return acc
            h = h[1:]

    def log_distribution(self, history: History) -> np.ndarray:
        """ln P(w | history) for every w of :attr:`vocab`, shape (K,)."""
        return backoff_distribution(self, tuple(history), self.num_units)

    def _index(self, token: int) -> int:
        return self.num_units - 1 if token == EOS else token - 1


def _check_seq(seq: Sequence[int], num_units: int) -> None:
    for u in seq:
        if not isinstance(u, (int, np.integer)) or not 1 <= u < num_units:
            raise ValueError(f"phone id {u!r} outside 1..{num_units - 1}")


def count_ngrams(seqs: Iterable[Sequence[int]], order: int) -> Dict[History, Counter]:
    """c(h, w) for every history h of length 0..order-1 seen in ``<s> seq </s>``.

    Shared by the phone LM and the word LM (:mod:`pipeline.lang.word_lm`), which both use
    non-negative integer token ids with ``BOS`` / ``EOS`` as sentence boundaries.

    Args:
        seqs: token-id sequences (without boundaries).
        order: n of the n-gram.

    Returns:
        history -> Counter of the tokens that follow it (``EOS`` included, ``BOS`` never).
    """
    counts: Dict[History, Counter] = defaultdict(Counter)
    for seq in seqs:
        padded = [BOS] + list(seq) + [EOS]
        for i in range(1, len(padded)):
            w = padded[i]
            for k in range(0, min(order - 1, i) + 1):
                counts[tuple(padded[i - k : i])][w] += 1
    return counts


def _count(seqs: Iterable[Sequence[int]], num_units: int, order: int) -> Dict[History, Counter]:
    """:func:`count_ngrams` over phone sequences, each checked to hold phone ids only."""

    def checked() -> Iterable[Sequence[int]]:
        for seq in seqs:
            _check_seq(seq, num_units)
            yield seq

    return count_ngrams(checked(), order)


def estimate_phone_lm(
    seqs: Iterable[Sequence[int]],
    num_units: int,
    order: int = 4,
    max_extra_states: Optional[int] = 1000,
) -> PhoneLm:
    """Estimate an interpolated Witten-Bell phone n-gram (see the module docstring).

    Args:
        seqs: training transcripts, each a list of phone ids in ``1..K-1``.
        num_units: K, units including blank.
        order: n-gram order (>= 1).
        max_extra_states: how many histories of the top length ``order - 1`` to keep,
            chosen by training log-likelihood gain; None keeps all.

    Returns:
        the LM; its states are all seen histories shorter than ``order - 1`` plus the kept
        top-length ones.
    """
    if order < 1:
        raise ValueError(f"LM order must be >= 1, got {order}")
    if num_units < 2:
        raise ValueError(f"need at least one phone besides blank, got num_units={num_units}")
    counts = _count(seqs, num_units, order)
    vocab = list(range(1, num_units)) + [EOS]
    lm = PhoneLm(order, num_units, {}, {})

    # Unigram: interpolate with the uniform distribution over V = K tokens.
    uni = counts.get((), Counter())
    c0, n0 = sum(uni.values()), len(uni)
    lm.prob[()] = {
        w: math.log((uni[w] + n0 / num_units) / (c0 + n0)) if c0 else -math.log(num_units)
        for w in vocab
    }
    lm.backoff[()] = 0.0

    def witten_bell(h: History) -> Tuple[Dict[int, float], float]:
        c = counts[h]
        total, distinct = sum(c.values()), len(c)
        lower = lm.log_distribution(h[1:])
        probs = {
            w: math.log((n + distinct * math.exp(lower[lm._index(w)])) / (total + distinct))
            for w, n in c.items()
        }
        return probs, math.log(distinct / (total + distinct))

    top = order - 1
    for length in range(1, top + 1):
        hists = sorted(h for h in counts if len(h) == length)
        estimated = {h: witten_bell(h) for h in hists}
        if length == top and max_extra_states is not None and len(hists) > max_extra_states:
            # Likelihood gain of keeping h over backing off to h' (>= 0: P(.|h) interpolates
            # towards the ML estimate, which maximises the training likelihood).
            def gain(h: History) -> float:
                lower = lm.log_distribution(h[1:])
                # called at once, within this iteration of the loop
                return sum(
                    n * (estimated[h][0][w] - lower[lm._index(w)])  # noqa: B023
                    for w, n in counts[h].items()
                )

            hists = sorted(hists, key=lambda h: (-gain(h), h))[:max_extra_states]
        for h in hists:
            lm.prob[h], lm.backoff[h] = estimated[h]
    return lm


def sequence_logprob(lm: PhoneLm, seq: Sequence[int]) -> float:
    """ln P(seq </s> | <s>): the LM log-probability of a label sequence incl. end of sentence.

    This is the per-utterance path weight ``log p_LM(l)`` of CTC-CRF (the ``weight`` file).
    """
    _check_seq(seq, lm.num_units)
    total, state = 0.0, lm.start_state()
    for w in list(seq) + [EOS]:
        total += lm.logprob(state, w)
        if total == -math.inf:  # an n-gram an unsmoothed LM never saw
            break
        if w != EOS:
            state = lm.next_state(state, w)
    return total


def perplexity(lm: PhoneLm, seqs: Iterable[Sequence[int]]) -> float:
    """Per-token perplexity ``exp(-sum ln P / N)``, N counting phones and one ``</s>`` each
    (infinite when an unsmoothed LM gives a sequence probability 0)."""
    total, tokens = 0.0, 0
    for seq in seqs:
        total += sequence_logprob(lm, seq)
        tokens += len(seq) + 1
    if tokens == 0:
        raise ValueError("perplexity of an empty set of sequences")
    return math.exp(-total / tokens)


def lm_to_fst(lm: PhoneLm) -> kaldifst.StdVectorFst:
    """The LM as an epsilon-free deterministic acceptor (exact, see the module docstring).

    Returns:
        FST with one state per LM state (start = ``(BOS,)``), from each state an arc
        ``p+1 : p+1 / -ln P(p | h)`` to :meth:`PhoneLm.next_state` for every phone ``p`` with
        ``P(p | h) > 0``, final cost ``-ln P(</s> | h)``; arcs sorted by input label.
    """
    states = lm.states()
    index = {h: i for i, h in enumerate(states)}
    fst = kaldifst.StdVectorFst()
    for _ in states:
        fst.add_state()
    fst.start = 0
    for i, h in enumerate(states):
        dist = lm.log_distribution(h)
        for p in range(1, lm.num_units):
            if dist[p - 1] == -np.inf:  # unseen after h in an unsmoothed LM: no arc
                continue
            dst = index[lm.next_state(h, p)]
            fst.add_arc(i, kaldifst.StdArc(p + 1, p + 1, float(-dist[p - 1]), dst))
        if dist[-1] > -np.inf:
            fst.set_final(i, float(-dist[-1]))
    return fst
