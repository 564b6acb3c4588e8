"""The corrected CTC topology T (token FST) over units ``0..K-1``, unit 0 = blank.

T reads one unit per frame and writes the label sequence the frames stand for: repeats of
a unit collapse, blanks vanish, and a unit said twice in a row must be separated by a blank
(the *corrected* topology of CTC-CRF; EESEN's original one lets ``a a`` mean ``a`` or
``a a``). States (``K`` of them):

* state 0: blank/start -- nothing emitted yet, or the last frame was blank;
* state i (``1 <= i < K``): the last frame was unit i.

Arcs, for every unit ``1 <= i, j < K``::

    0 -> 0  on blank          (blank loop)
    i -> 0  on blank          (back to blank)
    i -> i  on unit i         (unit self-loop: the same label continues)
    0 -> j  on unit j         (a new label)
    i -> j  on unit j, j != i (a new label, directly)

All states are final with weight 0 (cost 0). T is deterministic on its input, so each frame
sequence has exactly one path.

Label conventions (OpenFst reserves label 0 for epsilon):

* input label = ``unit_id + 1`` (blank = token 1), as ``kaldi_decoder.DecodableCtc`` scores
  input label ``k+1`` with network output column ``k``;
* output, ``den`` form: ``unit_id + 1`` on the arc that *enters* a unit (0 -> j, i -> j),
  epsilon on blank arcs and unit self-loops -- so the output is the label sequence, in the
  phone-LM labels of :mod:`pipeline.lang.phone_lm` (phone ``p`` = label ``p+1``), and
  ``T(den) o LM`` scores each frame sequence with the LM probability of its label sequence;
* output, ``decode`` form: the phone id itself (= unit id, the ids of ``units.txt`` that L.fst
  reads) on entering arcs, epsilon elsewhere, plus for every disambiguation symbol ``#k``
  (given as output ids) a self-loop ``input 0 : output #k`` on every state, as Kaldi/EESEN/CAT
  token FSTs do so that ``T o det(L o G)`` passes the disambiguation symbols through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import kaldifst

from pipeline.io import atomic_path

BLANK_ID = 0
FORMS = ("den", "decode")


class Arc(NamedTuple):
    """One arc of T: ``src --ilabel:olabel--> dst`` with cost 0 (labels are FST labels)."""

    src: int
    dst: int
    ilabel: int
    olabel: int


def token_arcs(num_units: int, form: str = "den", disambig_ids: Sequence[int] = ()) -> List[Arc]:
    """All arcs of T, in the label conventions of the module docstring.

    Args:
        num_units: K, the number of units including blank (``units.txt`` lines).
        form: ``"den"`` (outputs ``unit_id + 1``) or ``"decode"`` (outputs phone ids,
            with disambiguation self-loops).
        disambig_ids: output ids of ``#0, #1, ...`` (decode form only); they must not
            collide with phone ids ``1..K-1``.

    Returns:
        the arcs, grouped by source state (states ``0..K-1``, start 0, all final).
    """
    if num_units < 2:
        raise ValueError(f"T needs blank plus at least one unit, got num_units={num_units}")
    if form not in FORMS:
        raise ValueError(f"unknown token FST form {form!r}; expected one of {FORMS}")
    if disambig_ids and form != "decode":
        raise ValueError("disambiguation symbols belong to the decode form of T only")
    bad = [d for d in disambig_ids if 1 <= d < num_units or d <= 0]
    if bad:
        raise ValueError(f"disambiguation ids {bad} collide with epsilon or phone ids")

    def out(unit: int) -> int:
        return unit + 1 if form == "den" else unit

    blank = BLANK_ID + 1
    arcs: List[Arc] = []
    for i in range(num_units):
        arcs.append(Arc(i, BLANK_ID, blank, 0))  # blank loop (i = 0) / return to blank
        for j in range(1, num_units):
            if j == i:
                arcs.append(Arc(i, i, j + 1, 0))  # unit self-loop: label continues
            else:
                arcs.append(Arc(i, j, j + 1, out(j)))  # a new label starts
        for d in disambig_ids:
            arcs.append(Arc(i, i, 0, d))
    return arcs


def build_token_fst(
    num_units: int, form: str = "den", disambig_ids: Sequence[int] = ()
) -> kaldifst.StdVectorFst:
    """T as a ``kaldifst.StdVectorFst`` (tropical weights, all costs 0).

    Args:
        num_units: K, units including blank.
        form: ``"den"`` or ``"decode"`` (see :func:`token_arcs`).
        disambig_ids: output ids of the disambiguation symbols (decode form).

    Returns:
        T, start state 0, every state final; arcs sorted by output label so that it
        composes directly with an input-sorted FST on its right.
    """
    fst = kaldifst.StdVectorFst()
    for _ in range(num_units):
        fst.add_state()
    fst.start = 0
    for s in range(num_units):
        fst.set_final(s, 0.0)
    for a in token_arcs(num_units, form, disambig_ids):
        fst.add_arc(a.src, kaldifst.StdArc(a.ilabel, a.olabel, 0.0, a.dst))
    kaldifst.arcsort(fst, sort_type="olabel")
    return fst


def write_token_fst(
    path: Union[str, Path], num_units: int, form: str = "decode", disambig_ids: Sequence[int] = ()
) -> None:
    """Write T (OpenFst binary) atomically, e.g. ``data/<c>/lang/T.fst``."""
    fst = build_token_fst(num_units, form, disambig_ids)
    with atomic_path(path) as tmp:
        if not fst.write(str(tmp)):
            raise OSError(f"could not write {path}")


def transduce(arcs: Sequence[Arc], frames: Sequence[int]) -> Optional[List[int]]:
    """Run a deterministic token FST on a frame sequence, in plain Python.

    Input-epsilon arcs (disambiguation loops) are skipped: they do not consume frames.

    Args:
        arcs: the arcs of T (:func:`token_arcs`), start state 0, all states final.
        frames: unit ids ``0..K-1``, one per frame (0 = blank).

    Returns:
        the output labels with epsilons removed, or None when T rejects the frames.
    """
    table: Dict[Tuple[int, int], Tuple[int, int]] = {}
    for a in arcs:
        if a.ilabel == 0:
            continue
        if (a.src, a.ilabel) in table:
            raise ValueError(f"token FST is not deterministic at state {a.src}")
        table[(a.src, a.ilabel)] = (a.dst, a.olabel)
    state, outputs = 0, []
    for unit in frames:
        step = table.get((state, unit + 1))
        if step is None:
            return None
        state, olabel = step
        if olabel != 0:
            outputs.append(olabel)
    return outputs


def ctc_collapse(frames: Sequence[int]) -> List[int]:
    """The CTC many-to-one map B: merge repeated units, then drop blanks (unit ids)."""
    labels, prev = [], None
    for unit in frames:
        if unit != prev and unit != BLANK_ID:
            labels.append(unit)
        prev = unit
    return labels
