"""The lattice decoder (pipeline/decode/csrc/lattice_decoder.cpp) against brute force in float64
and against Kaldi's FasterDecoder, on small random graphs and random log-probs."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import kaldi_decoder
import kaldifst
import numpy as np
import pytest

from pipeline.decode.decoder import Decoder, DecoderConfig
from pipeline.errors import DataError

K = 4  # log-prob columns; graph input labels 1..K
WORDS = {i: f"w{i}" for i in range(1, 6)}
WIDE = DecoderConfig(beam=1e4, lattice_beam=1e4, max_active=10**6, min_active=1)


def random_graph(rng: np.random.Generator, path: Path, states: int = 12, arcs: int = 4) -> dict:
    """A random WFST written as an OpenFst binary file: emitting arcs anywhere, epsilon arcs
    only to higher states (no epsilon cycle), a few final states. Returns it as lists."""
    fst = kaldifst.StdVectorFst()
    for _ in range(states):
        fst.add_state()
    fst.start = 0
    graph = {"arcs": [], "final": {}}
    for s in range(states):
        for _ in range(arcs):
            eps = s < states - 1 and rng.random() < 0.25
            il = 0 if eps else int(rng.integers(1, K + 1))
            nxt = int(rng.integers(s + 1, states)) if eps else int(rng.integers(0, states))
            ol = int(rng.integers(1, 6)) if rng.random() < 0.4 else 0
            w = float(rng.uniform(0.0, 3.0))
            fst.add_arc(s, kaldifst.StdArc(il, ol, w, nxt))
            graph["arcs"].append((s, il, ol, np.float32(w), nxt))
        if rng.random() < 0.3 or s == states - 1:
            f = float(rng.uniform(0.0, 2.0))
            fst.set_final(s, f)
            graph["final"][s] = np.float32(f)
    fst.write(str(path))
    graph["states"] = states
    return graph


def brute_force(graph: dict, x: np.ndarray, w: float, p: float) -> Tuple[float, List[int]]:
    """Best ``graph + p * words + acoustic / w`` over every path (dynamic programme, float64;
    epsilon arcs go to higher states, so one pass in state order closes them)."""
    n = graph["states"]
    eps = [[a for a in graph["arcs"] if a[0] == s and a[1] == 0] for s in range(n)]
    emit = [[a for a in graph["arcs"] if a[0] == s and a[1] != 0] for s in range(n)]

    def arc_cost(a, t):
        c = float(a[3]) + (p if a[2] else 0.0)
        return c - float(x[t, a[1] - 1]) / w if a[1] else c

    def close(cost, words):
        for s in range(n):
            for a in eps[s]:
                c = cost[s] + arc_cost(a, None)
                if c < cost[a[4]]:
                    cost[a[4]], words[a[4]] = c, words[s] + ([a[2]] if a[2] else [])

    cost, words = [np.inf] * n, [[] for _ in range(n)]
    cost[0] = 0.0
    close(cost, words)
    for t in range(len(x)):
        new, new_words = [np.inf] * n, [[] for _ in range(n)]
        for s in range(n):
            if cost[s] == np.inf:
                continue
            for a in emit[s]:
                c = cost[s] + arc_cost(a, t)
                if c < new[a[4]]:
                    new[a[4]], new_words[a[4]] = c, words[s] + ([a[2]] if a[2] else [])
        close(new, new_words)
        cost, words = new, new_words
    ends = [(cost[s] + float(f), words[s]) for s, f in graph["final"].items()]
    return min(ends, key=lambda e: e[0])


def objective(h, w: float) -> float:
    return h.graph_cost + h.acoustic_cost / w  # the graph cost includes the penalties


def logprobs(rng: np.random.Generator, frames: int) -> np.ndarray:
    return np.log(rng.dirichlet(np.full(K, 0.5), size=frames)).astype(np.float32)


@pytest.fixture(params=range(6))
def case(request, tmp_path):
    rng = np.random.default_rng(request.param)
    graph = random_graph(rng, tmp_path / "G.fst", states=int(rng.integers(6, 16)))
    return graph, tmp_path / "G.fst", rng


def test_best_path_equals_brute_force_and_faster_decoder(case):
    graph, path, rng = case
    decoder = Decoder(path, WORDS, WIDE, K)
    fst = kaldifst.StdVectorFst.read(str(path))
    for _ in range(3):
        x = logprobs(rng, int(rng.integers(1, 9)))
        for w, p in ((1.0, 0.0), (0.4, 0.0), (2.5, 1.5), (0.7, 0.5)):
            want, words = brute_force(graph, x, w, p)
            got = decoder.best_path(x, w, p)
            assert got.reached_final
            assert objective(got, w) == pytest.approx(want, abs=1e-4)
            assert got.word_ids == words
            if p == 0.0:  # Kaldi's FasterDecoder on log-probs / w: the same objective
                opts = kaldi_decoder.FasterDecoderOptions(beam=1e4, max_active=10**6)
                ref = kaldi_decoder.FasterDecoder(fst, opts)
                ref.decode(kaldi_decoder.DecodableCtc(x / w))
                ok, lat = ref.get_best_path()
                assert ok
                _, _, _, weight = kaldifst.get_linear_symbol_sequence(lat)
                assert objective(got, w) == pytest.approx(weight.value1 + weight.value2, abs=1e-4)


def test_every_setting_read_from_one_lattice_equals_its_own_search(case):
    """With wide beams the lattice, decoded once at weight 1, holds the best path of every
    (LM weight, word penalty) of a grid."""
    graph, path, rng = case
    decoder = Decoder(path, WORDS, WIDE, K)
    grid = [(w, p) for w in (0.3, 0.5, 1.0, 2.0) for p in (0.0, 0.5, 1.0)]
    x = logprobs(rng, 8)
    swept, _ = decoder.decode(x, grid, 1.0)
    for w, p in grid:
        want, words = brute_force(graph, x, w, p)
        assert objective(swept[(w, p)], w) == pytest.approx(want, abs=1e-4), (w, p)
        assert swept[(w, p)].word_ids == words


def test_lattice_pruning_keeps_the_best_path(case):
    """The lattice beam and its periodic pruning drop only what is worse than the best path:
    the 1-best at the reference weight is the same however often the lattice is pruned."""
    graph, path, rng = case
    x = logprobs(rng, 30)
    want, words = brute_force(graph, x, 1.0, 0.0)
    for interval in (1, 5, 1000):
        cfg = DecoderConfig(
            beam=1e4, lattice_beam=2.0, max_active=10**6, min_active=1, prune_interval=interval
        )
        got, stats = Decoder(path, WORDS, cfg, K).decode(x, [1.0], 1.0)
        assert objective(got[1.0], 1.0) == pytest.approx(want, abs=1e-4)
        assert got[1.0].word_ids == words


def test_max_active_bounds_the_work(tmp_path):
    """However flat the log-probs (an untrained model), no frame expands more than max_active
    tokens, and the search still ends in a path."""
    rng = np.random.default_rng(7)
    random_graph(rng, tmp_path / "G.fst", states=300, arcs=6)
    x = np.log(np.full((40, K), 1.0 / K, np.float32))
    x += rng.normal(0, 1e-3, x.shape).astype(np.float32)  # no exact ties
    wide = Decoder(tmp_path / "G.fst", WORDS, WIDE, K)
    _, free = wide.decode(x, [1.0], 1.0)
    bounded = Decoder(tmp_path / "G.fst", WORDS, DecoderConfig(max_active=20, min_active=5), K)
    hyps, stats = bounded.decode(x, [1.0], 1.0)
    assert free["max_expanded"] > 100  # without the bound the flat frames keep many tokens
    assert stats["max_expanded"] <= 20
    assert stats["tokens"] < free["tokens"] / 3
    assert np.isfinite(objective(hyps[1.0], 1.0))


def test_bad_graphs_and_log_probs_are_refused_clearly(tmp_path):
    fst = kaldifst.StdVectorFst()
    a, b = fst.add_state(), fst.add_state()
    fst.start = a
    fst.add_arc(a, kaldifst.StdArc(1, 1, 0.5, b))
    fst.write(str(tmp_path / "nofinal.fst"))
    with pytest.raises(DataError, match=r"nofinal\.fst.*no final state"):
        Decoder(tmp_path / "nofinal.fst", WORDS)
    (tmp_path / "junk.fst").write_bytes(b"not an fst at all")
    with pytest.raises(DataError, match=r"junk\.fst.*not an OpenFst"):
        Decoder(tmp_path / "junk.fst", WORDS)
    fst.set_final(b, 0.0)
    fst.add_arc(b, kaldifst.StdArc(3, 0, 0.5, b))
    fst.write(str(tmp_path / "ok.fst"))
    decoder = Decoder(tmp_path / "ok.fst", WORDS)  # no K given: the graph itself checks
    with pytest.raises(DataError, match="reads token 3 but the log-probs have 2 columns"):
        decoder.best_path(np.zeros((4, 2), np.float32))
    with pytest.raises(DataError, match="NaN"):
        decoder.best_path(np.full((4, K), np.nan, np.float32))
