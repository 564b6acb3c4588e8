"""The CTC-CRF denominator graph ``den = T(den) o phone-LM`` and its tensor-friendly form.

``build_den_graph`` estimates the phone LM on the training transcripts (``text_number``; by
default Kaldi's unsmoothed LM, as CAT uses),
composes the den-form token FST with it, and writes ``phone_lm.arpa`` and ``den.fst`` (OpenFst
binary, tropical costs ``-ln P``). :func:`load_den_graph` turns ``den.fst`` into
:class:`DenGraph`: flat arc arrays (CSR order) that the loss (:mod:`pipeline.loss.ctc_crf`)
puts on whatever device its inputs are on.

Conventions of :class:`DenGraph` (unlike the FST): ``label`` is the network output column
``0..K-1`` (FST input label minus 1, blank = 0) and weights are natural-log *probabilities*
(``-cost``); a non-final state has final weight ``-inf``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import kaldifst
import numpy as np

from pipeline.errors import DataError
from pipeline.io import atomic_path, atomic_write_text
from pipeline.lang.arpa import write_arpa
from pipeline.lang.lexicon import BLANK, read_symbol_table
from pipeline.lang.phone_lm import (
    PhoneLm,
    estimate_phone_lm,
    lm_to_fst,
    perplexity,
    sequence_logprob,
)
from pipeline.lang.phone_lm_unsmoothed import estimate_unsmoothed_phone_lm
from pipeline.lang.token_fst import build_token_fst
from pipeline.textfile import text_lines

PathLike = Union[str, Path]
log = logging.getLogger(__name__)


@dataclass
class DenGraph:
    """A weighted acceptor over output columns, as flat arrays (E arcs, S states).

    Attributes:
        num_states: S.
        num_units: K, the number of network output columns (units incl. blank).
        start: the start state.
        src, dst: (E,) int64 source / destination state of each arc, sorted by ``src``.
        label: (E,) int64 output column ``0..K-1`` read by the arc.
        weight: (E,) float64 natural-log weight (log-probability) of the arc.
        final: (S,) float64 natural-log final weight, ``-inf`` for non-final states.
    """

    num_states: int
    num_units: int
    start: int
    src: np.ndarray
    dst: np.ndarray
    label: np.ndarray
    weight: np.ndarray
    final: np.ndarray

    @property
    def num_arcs(self) -> int:
        """E, the number of arcs."""
        return int(self.src.shape[0])

    def row_ptr(self) -> np.ndarray:
        """CSR offsets, shape (S+1,): arcs of state s are ``row_ptr[s]:row_ptr[s+1]``."""
        return np.concatenate([[0], np.cumsum(np.bincount(self.src, minlength=self.num_states))])

    def validate(self) -> None:
        """Raise ValueError for an empty graph, bad indices or labels outside ``0..K-1``."""
        if self.num_states == 0:
            raise ValueError("den graph is empty (no states; was the LM or T empty?)")
        if not 0 <= self.start < self.num_states:
            raise ValueError(f"den graph start state {self.start} out of range")
        if not np.isfinite(self.final).any():
            raise ValueError("den graph has no final state")
        if self.num_arcs:
            if (
                min(self.src.min(), self.dst.min()) < 0
                or max(self.src.max(), self.dst.max()) >= self.num_states
            ):
                raise ValueError("den graph arc with a state id out of range")
            if self.label.min() < 0 or self.label.max() >= self.num_units:
                raise ValueError(
                    f"den graph label {int(self.label.max())} outside the "
                    f"0..{self.num_units - 1} output columns (or epsilon arc)"
                )


def den_graph_from_fst(fst: kaldifst.StdVectorFst, num_units: Optional[int] = None) -> DenGraph:
    """Convert an epsilon-free acceptor (input label = column + 1) into a :class:`DenGraph`.

    Args:
        fst: e.g. ``T(den) o LM``; output labels are ignored, costs become ``-cost``.
        num_units: K; default: largest input label (so the largest column + 1).
    """
    src: List[int] = []
    dst: List[int] = []
    lab: List[int] = []
    cost: List[float] = []
    num_states = fst.num_states
    final = np.full(num_states, -np.inf)
    for s in range(num_states):
        f = fst.final(s).value
        if math.isfinite(f):
            final[s] = -f
        for a in kaldifst.ArcIterator(fst, s):
            src.append(s)
            dst.append(a.nextstate)
            lab.append(a.ilabel - 1)
            cost.append(a.weight.value)
    label = np.asarray(lab, dtype=np.int64)
    if label.size and label.min() < 0:
        raise ValueError("den FST has input-epsilon arcs; it must be epsilon-free")
    graph = DenGraph(
        num_states=num_states,
        num_units=int(num_units if num_units is not None else (label.max() + 1 if lab else 1)),
        start=int(fst.start) if num_states else -1,
        src=np.asarray(src, dtype=np.int64),
        dst=np.asarray(dst, dtype=np.int64),
        label=label,
        weight=-np.asarray(cost, dtype=np.float64),
        final=final,
    )
    graph.validate()
    return graph


def load_den_graph(path: PathLike, num_units: Optional[int] = None) -> DenGraph:
    """Read ``den.fst`` (OpenFst binary) into a :class:`DenGraph` (see den_graph_from_fst)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("den graph not found", path)
    fst = kaldifst.StdVectorFst.read(str(path))
    if fst is None:
        raise DataError("not a readable OpenFst vector FST", path)
    try:
        return den_graph_from_fst(fst, num_units)
    except ValueError as e:
        raise DataError(str(e), path) from None


def compose_den_fst(num_units: int, lm_fst: kaldifst.StdVectorFst) -> kaldifst.StdVectorFst:
    """``T(den) o LM``, trimmed (connect) and sorted by input label.

    In the result every arc entering a state reads the same unit (the T state is the last
    unit), which :mod:`pipeline.loss.ctc_crf` exploits.
    """
    token = build_token_fst(num_units, "den")  # olabel-sorted
    lm = kaldifst.StdVectorFst(lm_fst)
    kaldifst.arcsort(lm, sort_type="ilabel")
    den = kaldifst.compose(token, lm, connect=True)
    kaldifst.connect(den)
    kaldifst.arcsort(den, sort_type="ilabel")
    return den


def read_units(units_txt: PathLike) -> Tuple[int, Dict[int, str]]:
    """Read ``units.txt``; return K and id -> symbol. Checks ``<blk> 0`` and ids ``0..K-1``."""
    table = read_symbol_table(units_txt)
    names = {i: s for s, i in table.items()}
    if names.get(0) != BLANK:
        raise DataError(f"unit 0 must be {BLANK}", units_txt)
    if sorted(names) != list(range(len(names))):
        raise DataError("unit ids must be 0..K-1 without gaps", units_txt)
    if len(names) < 2:
        raise DataError("no units besides blank", units_txt)
    return len(names), names


def read_text_number(path: PathLike, num_units: int) -> List[Tuple[str, List[int]]]:
    """Read a Kaldi-style ``text_number`` (``uttid id1 id2 ...``, phone ids ``1..K-1``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("text_number not found", path)
    out: List[Tuple[str, List[int]]] = []
    for n, line in enumerate(text_lines(path), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            ids = [int(x) for x in parts[1:]]
        except ValueError:
            raise DataError("unit ids must be integers", path, n, parts[0]) from None
        bad = [i for i in ids if not 1 <= i < num_units]
        if bad:
            raise DataError(f"unit id {bad[0]} outside 1..{num_units - 1}", path, n, parts[0])
        out.append((parts[0], ids))
    return out


def write_path_weights(lm: PhoneLm, text_number: PathLike, out_path: PathLike) -> int:
    """Write ``uttid <ln p_LM(labels </s>)>`` per utterance (the ``weight`` file), atomically.

    Returns:
        the number of utterances written.
    """
    utts = read_text_number(text_number, lm.num_units)
    lines = [f"{utt} {sequence_logprob(lm, ids):.6f}\n" for utt, ids in utts]
    atomic_write_text(out_path, "".join(lines))
    return len(lines)


LM_TYPES = ("kaldi", "witten_bell")


def build_den_graph(
    units_txt: PathLike,
    train_text_number: PathLike,
    out_dir: PathLike,
    order: int = 4,
    max_extra_states: int = 1000,
    dev_text_number: Optional[PathLike] = None,
    weights: Optional[Dict[PathLike, PathLike]] = None,
    exclude_prefixes: Tuple[str, ...] = (),
    lm_type: str = "kaldi",
    no_prune_order: int = 3,
    dedup: bool = True,
) -> Dict[str, object]:
    """Estimate the phone LM and build the den graph; write ``phone_lm.arpa`` and ``den.fst``.

    Args:
        units_txt: ``units.txt`` (``<blk> 0``, phones 1..K-1).
        train_text_number: training transcripts as unit ids.
        out_dir: e.g. ``data/<c>/den``; also receives ``den_info.json``.
        order: phone LM order.
        max_extra_states: LM states kept beyond the never-pruned ones (see the estimators).
        lm_type: ``kaldi``: unsmoothed, as Kaldi's ``chain-est-phone-lm`` and CAT
            (:mod:`pipeline.lang.phone_lm_unsmoothed`); ``witten_bell``: smoothed
            (:func:`pipeline.lang.phone_lm.estimate_phone_lm`), every phone sequence possible.
        no_prune_order: ``kaldi`` only: histories shorter than this are never pruned.
        dedup: ``kaldi`` only: count each distinct training transcript once.
        dev_text_number: held-out transcripts whose perplexity is reported (for an unsmoothed
            LM over the utterances it gives a non-zero probability, with their share).
        weights: ``text_number`` → ``weight`` file to write path weights for (any set).
        exclude_prefixes: training utterances whose id starts with one of these are not used
            for the LM (speed-perturbed copies ``sp0.9-``, ``sp1.1-`` repeat their original).

    Returns:
        info: unit count, LM states per history length, training perplexity, den states/arcs.
    """
    out_dir = Path(out_dir)
    num_units, names = read_units(units_txt)
    utts = read_text_number(train_text_number, num_units)
    if not utts:
        raise DataError("no training transcripts", train_text_number)
    seqs = [ids for utt, ids in utts if not utt.startswith(exclude_prefixes)]
    if lm_type == "kaldi":
        lm = estimate_unsmoothed_phone_lm(
            seqs, num_units, order, max_extra_states, no_prune_order=no_prune_order, dedup=dedup
        )
    elif lm_type == "witten_bell":
        lm = estimate_phone_lm(seqs, num_units, order, max_extra_states)
    else:
        raise ValueError(f"unknown phone LM type {lm_type!r} (choose from {', '.join(LM_TYPES)})")
    states = lm.states()
    by_len = {str(n): sum(len(h) == n for h in states) for n in range(order)}
    write_arpa(lm, out_dir / "phone_lm.arpa", names)
    den = compose_den_fst(num_units, lm_to_fst(lm))
    with atomic_path(out_dir / "den.fst") as tmp:
        if not den.write(str(tmp)):
            raise OSError(f"could not write {out_dir / 'den.fst'}")
    num_arcs = sum(den.num_arcs(s) for s in range(den.num_states))
    info: Dict[str, object] = {
        "num_units": num_units,
        "lm_type": lm_type,
        "lm_order": order,
        "lm_states": len(states),
        "lm_states_by_history_length": by_len,
        "train_perplexity": perplexity(lm, seqs),
        "den_states": den.num_states,
        "den_arcs": num_arcs,
        "train_utterances": len(seqs),
    }
    if dev_text_number is not None:
        dev = [ids for _, ids in read_text_number(dev_text_number, num_units) if ids]
        possible = [ids for ids in dev if sequence_logprob(lm, ids) > -math.inf]
        info["dev_perplexity"] = perplexity(lm, possible) if possible else None
        info["dev_share_possible"] = len(possible) / len(dev) if dev else None
    for text_number, weight in (weights or {}).items():
        write_path_weights(lm, text_number, weight)
    log.info(
        "phone LM (%s): order %d, %d states %s, train perplexity %.2f, dev perplexity %s "
        "(share of dev utterances it allows: %s)",
        lm_type,
        order,
        len(states),
        by_len,
        info["train_perplexity"],
        info.get("dev_perplexity"),
        info.get("dev_share_possible"),
    )
    log.info("den graph: %d states, %d arcs", den.num_states, num_arcs)
    atomic_write_text(out_dir / "den_info.json", json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def state_labelled(graph: DenGraph) -> Tuple[DenGraph, np.ndarray]:
    """An equivalent graph in which all arcs entering a state read the same label.

    States whose incoming arcs read several labels are split, one copy per label, each copy
    keeping the state's outgoing arcs and final weight; the start then gets a copy of its own
    without incoming arcs (the forward pass starts there before reading any frame, so the
    start's own label never matters). ``T o LM`` needs no split and is returned as is.

    Returns:
        ``(graph', state_label)``: ``state_label`` (S',) int64 is the label of the arcs
        entering each state, -1 for a state without incoming arcs.
    """
    s_num = graph.num_states
    pairs = (
        np.unique(np.stack([graph.dst, graph.label], 1), axis=0)
        if graph.num_arcs
        else np.zeros((0, 2), dtype=np.int64)
    )
    if len(np.unique(pairs[:, 0])) == len(pairs):
        state_label = np.full(s_num, -1, dtype=np.int64)
        state_label[pairs[:, 0]] = pairs[:, 1]
        return graph, state_label
    # New states: 0 = start copy, then one per (state, incoming label) pair.
    copy_id = {(int(s), int(k)): i + 1 for i, (s, k) in enumerate(pairs)}
    copies_of: Dict[int, List[int]] = {s: [] for s in range(s_num)}
    for (s, _), i in copy_id.items():
        copies_of[s].append(i)
    copies_of[graph.start] = [0] + copies_of[graph.start]
    ptr = graph.row_ptr()
    src, dst, lab, wt = [], [], [], []
    final = np.full(len(copy_id) + 1, -np.inf)
    for s in range(s_num):
        for c in copies_of[s]:
            final[c] = graph.final[s]
            for a in range(ptr[s], ptr[s + 1]):
                src.append(c)
                dst.append(copy_id[(int(graph.dst[a]), int(graph.label[a]))])
                lab.append(int(graph.label[a]))
                wt.append(graph.weight[a])
    state_label = np.concatenate([[-1], pairs[:, 1]]).astype(np.int64)
    order = np.argsort(np.asarray(src, dtype=np.int64), kind="stable")  # CSR order
    split = DenGraph(
        len(copy_id) + 1,
        graph.num_units,
        0,
        np.asarray(src, dtype=np.int64)[order],
        np.asarray(dst, dtype=np.int64)[order],
        np.asarray(lab, dtype=np.int64)[order],
        np.asarray(wt, dtype=np.float64)[order],
        final,
    )
    return split, state_label
