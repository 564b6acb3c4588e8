"""Den graph T(den) o LM: files written, arrays loaded, path weights, input errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pipeline.errors import DataError
from pipeline.lang.arpa import read_arpa
from pipeline.lang.den_graph import (
    DenGraph,
    build_den_graph,
    load_den_graph,
    state_labelled,
    write_path_weights,
)
from pipeline.lang.phone_lm import estimate_phone_lm, sequence_logprob
from pipeline.lang.token_fst import ctc_collapse

PHONES = ["AA", "B", "K", "S", "T"]
K = len(PHONES) + 1
TRAIN = {
    "spk1-u1": [1, 2, 3],
    "spk1-u2": [2, 2, 4, 5, 1],
    "spk2-u3": [5, 1, 2, 3, 3],
    "spk2-u4": [4],
    "spk2-u5": [],
}


@pytest.fixture()
def lang(tmp_path):
    units = tmp_path / "units.txt"
    units.write_text("<blk> 0\n" + "".join(f"{p} {i}\n" for i, p in enumerate(PHONES, 1)))
    text = tmp_path / "text_number"
    text.write_text("".join(f"{u} {' '.join(map(str, ids))}\n" for u, ids in TRAIN.items()))
    return units, text


def test_build_writes_files_and_loads(lang, tmp_path):
    units, text = lang
    info = build_den_graph(
        units, text, tmp_path / "den", order=3, max_extra_states=4, lm_type="witten_bell"
    )
    for name in ("den.fst", "phone_lm.arpa", "den_info.json"):
        assert (tmp_path / "den" / name).is_file()
    assert (
        json.loads((tmp_path / "den" / "den_info.json").read_text())["den_arcs"] == info["den_arcs"]
    )
    assert info["lm_states_by_history_length"]["2"] == 4
    graph = load_den_graph(tmp_path / "den" / "den.fst", K)
    assert (graph.num_states, graph.num_arcs) == (info["den_states"], info["den_arcs"])
    assert graph.label.min() == 0 and graph.label.max() == K - 1
    assert np.all(np.diff(graph.src) >= 0)  # CSR order
    ptr = graph.row_ptr()
    assert ptr[-1] == graph.num_arcs and len(ptr) == graph.num_states + 1
    # Every arc entering a state reads the same unit: no split needed.
    split, state_label = state_labelled(graph)
    assert split is graph
    assert np.all(state_label[graph.dst] == graph.label)
    # From every state, the arcs and final weight form one distribution per next label:
    # the LM part (non-blank, non-self-loop arcs + final) sums to 1 in probability.
    for s in range(graph.num_states):
        arcs = slice(ptr[s], ptr[s + 1])
        lm_mass = [
            w
            for w, lab, d in zip(graph.weight[arcs], graph.label[arcs], graph.dst[arcs])
            if lab != 0 and d != s
        ]
        assert math.isfinite(graph.final[s])  # all states final
        total = np.exp(lm_mass).sum() + np.exp(graph.final[s])
        self_loop = any(d == s and lab != 0 for d, lab in zip(graph.dst[arcs], graph.label[arcs]))
        if not self_loop:  # T states "last unit i" have no arc re-entering unit i directly
            assert total == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("lm_type", ["witten_bell", "kaldi"])
def test_den_path_weight_is_lm_of_collapsed_labels(lang, tmp_path, lm_type):
    units, text = lang
    build_den_graph(units, text, tmp_path / "den", order=3, max_extra_states=4, lm_type=lm_type)
    graph = load_den_graph(tmp_path / "den" / "den.fst", K)
    lm = read_arpa(tmp_path / "den" / "phone_lm.arpa", K, {p: i for i, p in enumerate(PHONES, 1)})
    assert lm.smoothed == (lm_type == "witten_bell")
    ptr = graph.row_ptr()
    possible = 0
    for frames in (
        [1, 1, 0, 1, 2, 2, 0],
        [0, 3, 3, 3],
        [5, 4, 0, 4],
        [0, 0],
        [1, 2, 0, 3],
        [2, 0, 2, 4, 4, 5, 1, 1],
        [0, 4, 0],
        [5, 1, 2, 3, 0, 3, 3],
    ):
        state, total = graph.start, 0.0
        for unit in frames:  # T o LM is deterministic: follow the single matching arc
            arcs = [a for a in range(ptr[state], ptr[state + 1]) if graph.label[a] == unit]
            assert len(arcs) <= 1
            if not arcs:  # only an unsmoothed LM lacks arcs
                total = -math.inf
                break
            total += graph.weight[arcs[0]]
            state = graph.dst[arcs[0]]
        else:
            total += graph.final[state]
        expected = sequence_logprob(lm, ctc_collapse(frames))
        if expected == -math.inf:
            assert total == -math.inf and lm_type == "kaldi"
        else:
            possible += 1
            assert total == pytest.approx(expected, abs=1e-4)
    assert possible >= 5  # the training transcripts' paths exist in both


def test_write_path_weights(lang, tmp_path):
    units, text = lang
    lm = estimate_phone_lm(TRAIN.values(), K, order=3)
    n = write_path_weights(lm, text, tmp_path / "weight")
    lines = (tmp_path / "weight").read_text().splitlines()
    assert n == len(lines) == len(TRAIN)
    for line, (utt, ids) in zip(lines, TRAIN.items()):
        name, value = line.split()
        assert name == utt and float(value) == pytest.approx(sequence_logprob(lm, ids), abs=1e-6)
        assert float(value) < 0


def test_bad_input_names_file_and_line(lang, tmp_path):
    units, text = lang
    bad = tmp_path / "bad_text"
    bad.write_text("u1 1 2\nu2 1 9\n")
    with pytest.raises(DataError, match=r"bad_text:2.*u2"):
        build_den_graph(units, bad, tmp_path / "den")
    bad.write_text("u1 1 x\n")
    with pytest.raises(DataError, match=r"bad_text:1"):
        build_den_graph(units, bad, tmp_path / "den")
    bad_units = tmp_path / "bad_units"
    bad_units.write_text("AA 0\nB 1\n")
    with pytest.raises(DataError, match="<blk>"):
        build_den_graph(bad_units, text, tmp_path / "den")
    assert not (tmp_path / "den" / "den.fst").exists()
    with pytest.raises(DataError):
        load_den_graph(tmp_path / "missing.fst")


def test_state_labelled_splits_mixed_states():
    # state 1 is entered on labels 0 and 2; the start (0) is re-entered.
    g = DenGraph(
        2,
        3,
        0,
        src=np.array([0, 0, 1]),
        dst=np.array([1, 1, 0]),
        label=np.array([0, 2, 1]),
        weight=np.array([-1.0, -2.0, -0.5]),
        final=np.array([-np.inf, 0.0]),
    )
    split, state_label = state_labelled(g)
    assert split.num_states == 4 and split.start == 0 and state_label[0] == -1
    into = {int(d): int(lab) for d, lab in zip(split.dst, split.label)}
    assert all(state_label[d] == lab for d, lab in into.items())
    assert np.all(np.diff(split.src) >= 0)
    with pytest.raises(ValueError):
        DenGraph(0, 3, 0, *(np.zeros(0, dtype=np.int64),) * 3, np.zeros(0), np.zeros(0)).validate()
