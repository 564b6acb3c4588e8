"""WFST decoding against a tiny TLG: spelled word sequences decode, the LM weight sweep matters.

The decoder itself (search, lattice, the sweep read from it) is checked against brute force in
tests/unit/test_lattice_decoder.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.decode.decoder import Decoder, DecoderConfig
from pipeline.decode.sweep import RtfMeter, decode_set
from pipeline.errors import DataError
from pipeline.lang.graphs import write_lang_test
from pipeline.lang.lexicon import write_lexicon, write_units, write_words
from pipeline.lang.word_lm import estimate_word_lm, write_arpa

LEXICON = {"ZED": [["C", "D"]], "EX": [["A"]], "WHY": [["B"]]}
PHONES = ["A", "B", "C", "D"]
UNIT = {"<blk>": 0, "A": 1, "B": 2, "C": 3, "D": 4}
K = len(UNIT)
# The LM strongly prefers EX after ZED.
SENTENCES = [["ZED", "EX"]] * 50 + [["WHY"]] * 3 + [["ZED"]] * 3 + [["EX", "WHY"]] * 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoder")
    write_lexicon(root / "lang" / "lexicon.txt", LEXICON)
    write_units(root / "lang" / "units.txt", PHONES)
    write_words(root / "lang" / "words.txt", LEXICON)
    lm = estimate_word_lm(SENTENCES, order=3)
    write_arpa(lm, root / "lm.arpa")
    write_lang_test(root / "lang", root / "lm.arpa", root / "lang_test")
    return Decoder.from_lang_test(root / "lang_test"), lm


def frame(probs):
    """One log-prob row: the given unit probabilities, the rest shared evenly."""
    row = np.full(K, (1.0 - sum(probs.values())) / (K - len(probs)))
    for unit, p in probs.items():
        row[UNIT[unit]] = p
    return np.log(row)


def spell(words):
    """Peaky frames for a word sequence: each phone twice, a blank after each word."""
    rows = []
    for w in words:
        for p in LEXICON[w][0]:
            rows += [frame({p: 0.99}), frame({p: 0.99})]
        rows.append(frame({"<blk>": 0.99}))
    return np.stack(rows).astype(np.float32)


@pytest.mark.parametrize(
    "words",
    [["ZED", "EX"], ["WHY", "WHY", "ZED"], ["EX", "EX", "EX"], ["WHY", "ZED", "EX", "WHY"], []],
)
def test_spelled_word_sequences_decode_to_themselves(setup, words):
    decoder, _ = setup
    logprobs = spell(words) if words else np.stack([frame({"<blk>": 0.9})] * 3)
    logprobs = logprobs.astype(np.float32)
    best = decoder.best_path(logprobs)
    assert best.words == words and best.reached_final
    swept = decoder.sweep(logprobs, [0.25, 0.5, 1.0])  # larger: the LM may drop words
    assert all(h.words == words for h in swept.values())
    # the acoustic cost is that of the peaky path: -sum of each frame's best log-prob
    assert best.acoustic_cost == pytest.approx(-logprobs.max(axis=1).sum(), abs=1e-3)
    assert swept[1.0].acoustic_cost == pytest.approx(best.acoustic_cost, abs=1e-3)
    assert swept[1.0].graph_cost == pytest.approx(best.graph_cost, abs=1e-3)


def ambiguous():
    """ZED then one frame that sounds more like WHY (B 0.8) than EX (A 0.1)."""
    rows = [
        frame({"C": 0.9}),
        frame({"D": 0.9}),
        frame({"<blk>": 0.9}),
        frame({"B": 0.8, "A": 0.1}),
        frame({"<blk>": 0.9}),
    ]
    return np.stack(rows).astype(np.float32)


def test_lm_weight_sweep_lets_the_lm_win(setup):
    decoder, lm = setup
    logprobs = ambiguous()
    acoustic_gap = math.log(0.8 / 0.1)
    lm_gap = (
        lm.logprob(["<s>", "ZED"], "EX")
        + lm.logprob(["ZED", "EX"], "</s>")
        - lm.logprob(["<s>", "ZED"], "WHY")
        - lm.logprob(["ZED", "WHY"], "</s>")
    )
    assert lm_gap > acoustic_gap  # so the sweep below crosses over
    weights = [0.1, 0.5, 1.0, 2.0, 5.0]
    swept = decoder.sweep(logprobs, weights)
    crossover = acoustic_gap / lm_gap  # EX wins when w * lm_gap > acoustic_gap
    for w in weights:
        expected = ["ZED", "EX"] if w > crossover else ["ZED", "WHY"]
        assert swept[w].words == expected, (w, crossover)
    assert swept[0.1].words != swept[5.0].words
    # one search per weight agrees with the lattice decoded once
    assert {w: decoder.best_path(logprobs, w).words for w in weights} == {
        w: h.words for w, h in swept.items()
    }
    # the costs are unscaled: acoustics win at 0.1, the LM at 5
    assert swept[0.1].acoustic_cost < swept[5.0].acoustic_cost
    assert swept[0.1].graph_cost > swept[5.0].graph_cost
    with pytest.raises(ValueError):
        decoder.sweep(logprobs, [0.0])


def test_decode_set_and_rtf(setup):
    decoder, _ = setup
    utts = [("u1", spell(["ZED", "EX"])), ("u2", ambiguous())]
    result = decode_set(decoder, utts, [0.1, 1.0], frame_shift_s=0.03)
    assert result.hyps[1.0] == {"u1": ["ZED", "EX"], "u2": ["ZED", "EX"]}
    assert result.hyps[0.1]["u2"] == ["ZED", "WHY"]
    frames = sum(len(x) for _, x in utts)
    assert result.rtf.utterances == 2 and result.rtf.audio_seconds == pytest.approx(frames * 0.03)
    assert result.rtf.rtf > 0 and not result.not_final
    meter = RtfMeter(frame_shift_s=0.01)
    meter.add(100, 0.5)
    assert meter.rtf == pytest.approx(0.5)


def test_bad_log_probs_are_rejected(setup):
    decoder, _ = setup
    with pytest.raises(DataError, match="columns"):
        decoder.best_path(np.zeros((4, K + 1), np.float32))
    with pytest.raises(DataError, match="utterance u9"):
        decode_set(decoder, [("u9", np.full((3, K), np.nan, np.float32))], [1.0])


def test_default_pruning_keeps_the_best_path(setup):
    """The default beam and max_active lose nothing here: the 1-best is that of a search
    without pruning, at every LM weight, on noisy utterances; a tight max_active or beam
    (the knobs the defaults set) does lose it on some, so they reach the search."""
    decoder, _ = setup  # DecoderConfig()

    def with_config(**kw):
        return Decoder(decoder.graph_path, decoder.words, DecoderConfig(**kw), decoder.num_units)

    def total(h):
        return h.graph_cost + h.acoustic_cost

    unpruned = with_config(beam=1e4, max_active=10**6, min_active=1)
    tight = {
        "max_active": with_config(max_active=2, min_active=1),
        "beam": with_config(beam=0.3, min_active=1),
    }
    lost = dict.fromkeys(tight, 0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        logprobs = np.log(rng.dirichlet(np.full(K, 0.3), size=int(rng.integers(4, 12))))
        logprobs = logprobs.astype(np.float32)
        for w in (0.5, 1.0, 2.0):
            best = unpruned.best_path(logprobs, w)
            got = decoder.best_path(logprobs, w)
            assert got.words == best.words and total(got) == pytest.approx(total(best), abs=1e-3)
            for name, d in tight.items():
                lost[name] += total(d.best_path(logprobs, w)) > total(best) + 1e-3
    assert all(n > 0 for n in lost.values()), lost


def test_no_final_state_keeps_the_partial_path(setup):
    decoder, _ = setup
    # only C is possible: ZED (C D) never ends, and the lattice beam prunes every other path
    logprobs = np.full((3, K), -1000.0, np.float32)
    logprobs[:, UNIT["C"]] = 0.0
    swept = decoder.sweep(logprobs, [1.0])
    assert swept[1.0].words == ["ZED"] and not swept[1.0].reached_final
    result = decode_set(decoder, [("u1", spell(["EX"])), ("u2", logprobs)], [1.0])
    assert result.not_final == ["u2"]


def test_word_insertion_penalty_costs_each_word_and_drops_weak_words(setup):
    decoder, _ = setup
    clear = spell(["WHY", "ZED", "EX"])
    base = decoder.best_path(clear)
    penalised = decoder.best_path(clear, 1.0, 2.5)
    assert penalised.words == base.words
    assert penalised.graph_cost == pytest.approx(base.graph_cost + 3 * 2.5, abs=1e-3)
    # a weak EX after ZED: kept without a penalty (the LM likes it), dropped at penalty 5
    weak = np.stack(
        [
            frame({"C": 0.9}),
            frame({"D": 0.9}),
            frame({"<blk>": 0.9}),
            frame({"A": 0.5, "<blk>": 0.45}),
            frame({"<blk>": 0.9}),
        ]
    ).astype(np.float32)
    settings = [(1.0, 0.0), (1.0, 5.0)]
    swept = decoder.sweep(weak, settings)
    assert swept[(1.0, 0.0)].words == ["ZED", "EX"]
    assert swept[(1.0, 5.0)].words == ["ZED"]
    assert decoder.best_path(weak, 1.0, 5.0).words == ["ZED"]
    result = decode_set(decoder, [("u1", weak)], settings)
    assert result.hyps[(1.0, 5.0)] == {"u1": ["ZED"]}


def test_best_path_word_times_follow_the_spelled_frames(setup):
    """Each word of a spelled sequence starts within its own frames (2 per phone + a blank)
    and the words tile the utterance in order."""
    decoder, _ = setup
    words = ["WHY", "ZED", "EX"]
    logprobs = spell(words)
    hyp, timed = decoder.best_path_timed(logprobs)
    assert [w for w, _, _ in timed] == hyp.words == words
    begin = 0
    for (w, first, end), nxt in zip(timed, timed[1:] + [(None, len(logprobs), None)]):
        span = 2 * len(LEXICON[w][0]) + 1
        assert begin <= first < begin + span and end == nxt[1]
        begin += span
    assert timed[-1][2] == len(logprobs)


def test_beams_are_in_unscaled_units(setup):
    """At LM weight w the search runs on graph + acoustic / w with beam / w: scaling the
    log-probs, the weight and the beam together is the same search, token for token."""
    decoder, _ = setup
    scaled = Decoder(
        decoder.graph_path,
        decoder.words,
        DecoderConfig(beam=3 * decoder.config.beam),
        decoder.num_units,
    )
    amb = ambiguous()
    for w in (0.3, 1.0, 3.0):
        got, stats = scaled.decode(3 * amb, [3 * w], 3 * w)
        want, want_stats = decoder.decode(amb, [w], w)
        assert got[3 * w].words == want[w].words
        assert stats["tokens"] == want_stats["tokens"]
