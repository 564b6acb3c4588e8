"""The unsmoothed phone LM of Kaldi's ``chain-est-phone-lm`` (what CAT's den graph uses).

No probability mass is held back for unseen events: every LM state ``h`` predicts exactly the
tokens counted in it, ``P(w | h) = c'(h, w) / c'(h)``, where ``c'`` are the counts that ended
up in ``h`` after pruning (below). A phone sequence with an n-gram never seen in training has
probability 0, which is what makes the den graph small: a state has an arc only for the phones
seen after it (on the demo data about 6 times fewer den arcs than the smoothed LM of
:func:`pipeline.lang.phone_lm.estimate_phone_lm`).

Estimation (Kaldi's rules, ``ngram_order`` n, ``no_prune_ngram_order`` m, extra states E):

1. Counting. Each sentence is read with the history starting at ``(<s>,)`` and growing to at
   most n-1 tokens; each token (and ``</s>``) is counted in the state of its full history.
   Every counted history also creates its ancestors (the history minus its oldest token) down
   to length m-1, with zero counts. States shorter than m are never pruned; with the defaults
   (n 4, m 3) all trigram histories stay and the LM never backs off below them.
2. Pruning. Target: (number of states of history length m-1) + E states with counts. Greedily,
   the prunable state whose merge into its parent loses the least training log-likelihood,
   ``LL(parent + state) - LL(parent) - LL(state)`` with ``LL(s) = sum_w c(s,w) ln(c(s,w)/c(s))``,
   is merged: its counts move to the parent (a parent without counts is filled first, smallest
   count first). A state is prunable when it is at least m long, has counts, no longer state
   below it still has counts, and (below the top length) none of its successors ``h + w`` is a
   state with counts. Gains are refreshed lazily, and the queue is rebuilt at three
   intermediate targets, as Kaldi does.
3. Result. The states with counts; the successor of ``h`` after ``w`` is the longest suffix of
   ``h + w`` that is such a state.

The result is a :class:`pipeline.lang.phone_lm.PhoneLm` with ``smoothed=False``: each state lists
its seen tokens and has backoff weight ``-inf``, so the backoff recursion gives 0 for the rest.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from typing import Dict, Iterable, Optional, Sequence, Set, Tuple

from pipeline.lang.phone_lm import BOS, EOS, History, PhoneLm, _check_seq


def _loglike(counts: Counter) -> float:
    total = sum(counts.values())
    return sum(c * math.log(c / total) for c in counts.values()) if total else 0.0


def _trunc_div(a: int, b: int) -> int:
    """Integer division rounding towards zero (C semantics), for Kaldi's stage targets."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


class _Estimator:
    """The state bookkeeping of steps 1-2 of the module docstring."""

    def __init__(self, order: int, no_prune_order: int) -> None:
        self.order, self.no_prune = order, no_prune_order
        self.counts: Dict[History, Counter] = {}
        self.below: Dict[History, int] = {}  # count of h plus of all longer states under it

    def state(self, h: History) -> Counter:
        if h not in self.counts:
            self.counts[h] = Counter()
            if len(h) >= self.no_prune:
                self.state(h[1:])
        return self.counts[h]

    def add(self, seq: Sequence[int]) -> None:
        hist: History = (BOS,)
        for w in list(seq) + [EOS]:
            self.state(hist)[w] += 1
            hist = (hist + (w,))[-(self.order - 1) :]

    def parent(self, h: History) -> Optional[History]:
        return h[1:] if len(h) >= self.no_prune else None

    def set_below(self) -> None:
        self.below = {h: 0 for h in self.counts}
        for h, c in self.counts.items():
            n = sum(c.values())
            g: Optional[History] = h
            while g is not None:
                self.below[g] += n
                g = self.parent(g)

    def active(self) -> int:
        return sum(1 for c in self.counts.values() if c)

    def prunable(self, h: History) -> bool:
        c = self.counts[h]
        total = sum(c.values())
        if len(h) < self.no_prune or total == 0 or total != self.below[h]:
            return False
        if len(h) == self.order - 1:
            return True
        return not any(w != EOS and self.below.get(h + (w,), 0) for w in c)

    def change(self, h: History) -> float:
        """Training log-likelihood change of merging ``h`` into its parent (<= 0)."""
        c, p = self.counts[h], self.counts[h[1:]]
        if not p:
            return -1e-15 * sum(c.values())
        return min(0.0, _loglike(c + p) - _loglike(c) - _loglike(p))

    def merge(self, h: History) -> None:
        """Move the counts of ``h`` to its parent (whose 'below' total is unchanged)."""
        self.counts[h[1:]].update(self.counts[h])
        self.counts[h] = Counter()
        self.below[h] = 0

    def prune(self, num_extra: Optional[int]) -> None:
        if num_extra is None:
            return
        self.set_below()
        basic = sum(1 for h in self.counts if len(h) == self.no_prune - 1)
        initial, target = self.active(), basic + num_extra
        stages = 4
        for t in range(stages):
            goal = initial + _trunc_div((target - initial) * (t + 1), stages)
            queue = [(-self.change(h), h) for h in sorted(self.counts) if self.prunable(h)]
            heapq.heapify(queue)
            active = self.active()
            while active > goal and queue:
                neg, h = heapq.heappop(queue)
                if not self.prunable(h):
                    continue
                now = self.change(h)
                if not math.isclose(-neg, now, rel_tol=1e-6, abs_tol=1e-9):
                    heapq.heappush(queue, (-now, h))  # stale: requeue with the fresh value
                    continue
                parent = h[1:]
                was_prunable = self.prunable(parent)
                if self.counts[parent]:
                    active -= 1
                self.merge(h)
                if not was_prunable and self.prunable(parent):
                    heapq.heappush(queue, (-self.change(parent), parent))


def estimate_unsmoothed_phone_lm(
    seqs: Iterable[Sequence[int]],
    num_units: int,
    order: int = 4,
    max_extra_states: Optional[int] = 1000,
    no_prune_order: int = 3,
    dedup: bool = True,
) -> PhoneLm:
    """Estimate Kaldi's unsmoothed phone LM (see the module docstring).

    Args:
        seqs: training transcripts, each a list of phone ids in ``1..K-1``.
        num_units: K, units including blank.
        order: n-gram order n (>= 2).
        max_extra_states: E, states kept beyond those of history length m-1; None: no pruning.
        no_prune_order: m (1 <= m <= n); histories shorter than m are never pruned.
        dedup: count each distinct transcript once (as CAT does).

    Returns:
        the LM, ``smoothed=False``.
    """
    if order < 2:
        raise ValueError(f"the unsmoothed LM needs order >= 2, got {order}")
    if not 1 <= no_prune_order <= order:
        raise ValueError(f"no_prune_order must be in 1..{order}, got {no_prune_order}")
    if num_units < 2:
        raise ValueError(f"need at least one phone besides blank, got num_units={num_units}")
    est = _Estimator(order, no_prune_order)
    seen: Set[Tuple[int, ...]] = set()
    for seq in seqs:
        _check_seq(seq, num_units)
        key = tuple(seq)
        if dedup and key in seen:
            continue
        seen.add(key)
        est.add(seq)
    if not seen:
        raise ValueError("no transcripts to estimate the phone LM from")
    est.prune(max_extra_states)
    lm = PhoneLm(order, num_units, {}, {}, smoothed=False)
    for h, c in est.counts.items():
        if c:
            total = sum(c.values())
            lm.prob[h] = {w: math.log(n / total) for w, n in sorted(c.items())}
            lm.backoff[h] = -math.inf
    return lm
