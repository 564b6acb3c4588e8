"""Word alignment with sclite's costs and tie-breaking, in pure Python.

sclite's costs are insertion and deletion 3, substitution 4; among alignments of equal cost
it prefers match or substitution, then insertion, then deletion, in a left-to-right dynamic
programme (found by comparing with sclite 2.10 on thousands of random utterances).
``kaldialign.edit_distance(sclite_mode=True)`` has the costs but breaks ties differently, so
it is not used.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

_SUB_COST, _DEL_COST, _INS_COST = 4, 3, 3


def align_like_sclite(
    ref: Sequence[str], hyp: Sequence[str]
) -> Tuple[List[Tuple[str, str]], int, int, int]:
    """Word alignment with sclite's costs and tie-breaking (see the module docstring).

    Args:
        ref: reference words (N).
        hyp: hypothesis words (M).

    Returns:
        ``(pairs, sub, dels, ins)``: aligned ``(ref word, hyp word)`` pairs, ``"*"`` marking
        a deletion (hyp side) or an insertion (ref side), and the error counts.
    """
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    move = [[""] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0 and j == 0:
                continue
            options = []  # in order of preference when costs tie
            if i and j:
                options.append(
                    (cost[i - 1][j - 1] + (_SUB_COST if ref[i - 1] != hyp[j - 1] else 0), "diag")
                )
            if j:
                options.append((cost[i][j - 1] + _INS_COST, "ins"))
            if i:
                options.append((cost[i - 1][j] + _DEL_COST, "del"))
            best = min(c for c, _ in options)
            cost[i][j], move[i][j] = next(o for o in options if o[0] == best)
    pairs: List[Tuple[str, str]] = []
    sub = dels = ins = 0
    i, j = n, m
    while i or j:
        step = move[i][j]
        if step == "diag":
            i, j = i - 1, j - 1
            pairs.append((ref[i], hyp[j]))
            sub += ref[i] != hyp[j]
        elif step == "ins":
            j -= 1
            pairs.append(("*", hyp[j]))
            ins += 1
        else:
            i -= 1
            pairs.append((ref[i], "*"))
            dels += 1
    return pairs[::-1], sub, dels, ins
