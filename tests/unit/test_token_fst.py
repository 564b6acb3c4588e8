"""The corrected CTC token FST T: it maps frames to labels exactly as CTC's collapse does."""

from __future__ import annotations

import itertools
from typing import List, Set, Tuple

import kaldifst
import pytest

from pipeline.lang.token_fst import (
    build_token_fst,
    ctc_collapse,
    token_arcs,
    transduce,
    write_token_fst,
)


def ctc_alignments(labels: List[int], frames: int) -> Set[Tuple[int, ...]]:
    """Reference: every CTC path of ``frames`` frames for ``labels`` (Graves 2006, Fig. 3).

    Walks the blank-interleaved sequence ``l' = (0, l1, 0, l2, ..., 0)``: from position s the
    next frame stays at s, moves to s+1, or skips to s+2 when l'[s+2] is a unit different
    from l'[s]; a path must end on the last label or the final blank.
    """
    ext = [0]
    for u in labels:
        ext += [u, 0]
    paths: Set[Tuple[int, ...]] = set()

    def walk(s: int, path: Tuple[int, ...]) -> None:
        if len(path) == frames:
            if s >= len(ext) - 2:
                paths.add(path)
            return
        for nxt in (s, s + 1, s + 2):
            if nxt >= len(ext):
                continue
            if nxt == s + 2 and (ext[nxt] == 0 or ext[nxt] == ext[s]):
                continue
            walk(nxt, path + (ext[nxt],))

    for first in (0, 1):
        if first < len(ext):
            walk(first, (ext[first],))
    return paths if frames else ({()} if not labels else set())


def test_collapse_examples():
    assert ctc_collapse([1, 1, 0, 1, 2, 2, 0]) == [1, 1, 2]
    assert ctc_collapse([0, 0]) == []
    arcs = token_arcs(3, "decode")
    assert transduce(arcs, [1, 1]) == [1]  # a self-loop continues the label
    assert transduce(arcs, [1, 0, 1]) == [1, 1]  # a repeat must pass through blank
    assert transduce(arcs, [1, 2, 1]) == [1, 2, 1]  # different units follow directly


@pytest.mark.parametrize("num_units", [2, 3, 4])
@pytest.mark.parametrize("form", ["den", "decode"])
def test_every_frame_sequence_maps_to_its_ctc_label_sequence(num_units, form):
    arcs = token_arcs(num_units, form)
    offset = 1 if form == "den" else 0
    for frames in range(0, 6 if num_units < 4 else 5):
        for seq in itertools.product(range(num_units), repeat=frames):
            out = transduce(arcs, seq)
            assert out == [u + offset for u in ctc_collapse(seq)], seq


@pytest.mark.parametrize("num_units,frames", [(3, 5), (4, 4)])
def test_accepted_alignments_are_exactly_the_ctc_alignments(num_units, frames):
    arcs = token_arcs(num_units, "decode")
    by_labels = {}
    for seq in itertools.product(range(num_units), repeat=frames):
        by_labels.setdefault(tuple(transduce(arcs, seq)), set()).add(seq)
    for length in range(0, 4):
        for labels in itertools.product(range(1, num_units), repeat=length):
            assert by_labels.get(labels, set()) == ctc_alignments(list(labels), frames), labels
    # [1, 1] needs 3 frames (1 0 1); in 3 frames it has exactly one alignment.
    assert by_labels.get((1, 1), set()) == ctc_alignments([1, 1], frames)
    assert ctc_alignments([1, 1], 3) == {(1, 0, 1)}


def test_topology_shape():
    k = 4
    arcs = token_arcs(k, "den")
    assert len(arcs) == k * k  # per state: blank arc + (K-1) unit arcs
    assert (0, 0, 1, 0) in arcs and (2, 0, 1, 0) in arcs  # blank loop / return
    assert (2, 2, 3, 0) in arcs  # unit self-loop, eps out
    assert (2, 3, 4, 4) in arcs and (0, 3, 4, 4) in arcs  # enter unit 3: label 4
    assert all(a.ilabel >= 1 for a in arcs)  # input = unit + 1, no eps
    decode = token_arcs(k, "decode", disambig_ids=[10, 11])
    loops = [a for a in decode if a.ilabel == 0]
    assert sorted((a.src, a.dst, a.olabel) for a in loops) == sorted(
        (s, s, d) for s in range(k) for d in (10, 11)
    )
    assert (2, 3, 4, 3) in decode  # decode output = phone id


def test_kaldifst_fst_agrees_with_python_arcs(tmp_path):
    k = 4
    for form, disambig in (("den", []), ("decode", [7, 8])):
        fst = build_token_fst(k, form, disambig)
        assert fst.num_states == k and fst.start == 0
        assert all(fst.final(s).value == 0.0 for s in range(k))
        got = sorted(
            (s, a.nextstate, a.ilabel, a.olabel, a.weight.value)
            for s in range(k)
            for a in kaldifst.ArcIterator(fst, s)
        )
        assert got == sorted(
            (a.src, a.dst, a.ilabel, a.olabel, 0.0) for a in token_arcs(k, form, disambig)
        )
    den = build_token_fst(k, "den")
    for seq in [(1, 1, 0, 1, 2), (3, 2, 2, 0, 0, 3), (0,), (2, 0, 2, 2, 1)]:
        acceptor = kaldifst.make_linear_acceptor([u + 1 for u in seq])
        path = kaldifst.compose(acceptor, den)
        ok, ilabels, olabels, _ = kaldifst.get_linear_symbol_sequence(path)
        assert ok and list(ilabels) == [u + 1 for u in seq]
        assert list(olabels) == [u + 1 for u in ctc_collapse(seq)]
    out = tmp_path / "T.fst"
    write_token_fst(out, k, "decode", [7])
    back = kaldifst.StdVectorFst.read(str(out))
    assert back.num_states == k and sum(back.num_arcs(s) for s in range(k)) == k * k + k


def test_bad_arguments():
    with pytest.raises(ValueError):
        token_arcs(1)
    with pytest.raises(ValueError):
        token_arcs(3, "bogus")
    with pytest.raises(ValueError):
        token_arcs(3, "decode", disambig_ids=[2])  # collides with phone 2
    with pytest.raises(ValueError):
        token_arcs(3, "den", disambig_ids=[5])
