"""Decoding graph TLG: disambiguation symbols, exact acceptance by brute force, build skipping."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import kaldifst
import pytest

from pipeline.errors import DataError
from pipeline.lang.graphs import add_disambig, build_lexicon_fst
from pipeline.lang.lexicon import write_lexicon, write_units, write_words
from pipeline.lang.token_fst import ctc_collapse
from pipeline.lang.word_lm import estimate_word_lm, write_arpa
from pipeline.stages.graphs import build_lang_test

# A prefix (ONE = A is a prefix of A B), homophones (TWO, TOO) and a word that can follow
# itself (ONE ONE = A A needs a blank between the two A's under CTC collapse).
LEXICON = {"ONE": [["A"]], "TWO": [["A", "B"]], "TOO": [["A", "B"]], "THREE": [["C"]]}
PHONES = ["A", "B", "C"]
UNITS = {"<blk>": 0, "A": 1, "B": 2, "C": 3}
MAX_FRAMES = 6


@pytest.fixture(scope="module")
def lang_test(tmp_path_factory):
    root = tmp_path_factory.mktemp("graphs")
    lang = root / "lang"
    write_lexicon(lang / "lexicon.txt", LEXICON)
    write_units(lang / "units.txt", PHONES)
    write_words(lang / "words.txt", LEXICON)
    lm = estimate_word_lm([["ONE", "TWO"], ["THREE", "ONE", "ONE"], ["TOO"]], order=3)
    write_arpa(lm, root / "lm.arpa")
    info = build_lang_test(lang, root / "lm.arpa", root / "lang_test_tiny")
    return root, info


def read_arcs(fst):
    arcs = {
        s: [(a.ilabel, a.olabel, a.nextstate) for a in kaldifst.ArcIterator(fst, s)]
        for s in kaldifst.StateIterator(fst)
    }
    final = {s for s in arcs if fst.final(s).value != float("inf")}
    return arcs, final


def tlg_outputs(arcs, final, start, frames):
    """Word-id sequences of every TLG path reading ``frames`` (input label = unit + 1)."""

    def closure(configs):
        todo, seen = list(configs), set(configs)
        while todo:
            state, out = todo.pop()
            for ilabel, olabel, dst in arcs[state]:
                if ilabel == 0:
                    nxt = (dst, out + ((olabel,) if olabel else ()))
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
        return seen

    configs = closure({(start, ())})
    for unit in frames:
        step = {
            (dst, out + ((olabel,) if olabel else ()))
            for state, out in configs
            for ilabel, olabel, dst in arcs[state]
            if ilabel == unit + 1
        }
        configs = closure(step)
    return {out for state, out in configs if state in final}


def parses(labels, prons):
    """Every word sequence whose concatenated pronunciations equal ``labels`` (unit ids)."""
    if not labels:
        return {()}
    found = set()
    for word, pron in prons:
        if tuple(labels[: len(pron)]) == pron:
            found |= {(word,) + rest for rest in parses(labels[len(pron) :], prons)}
    return found


def test_add_disambig_marks_homophones_and_prefixes():
    marked, top = add_disambig([("ONE", [1]), ("TOO", [1, 2]), ("TWO", [1, 2]), ("X", [3])])
    assert marked == [("ONE", [1, -1]), ("TOO", [1, 2, -1]), ("TWO", [1, 2, -2]), ("X", [3])]
    assert top == 2


def test_tlg_accepts_exactly_the_ctc_spellings_of_word_sequences(lang_test):
    root, info = lang_test
    words = {}
    for line in (root / "lang_test_tiny" / "words.txt").read_text().splitlines():
        sym, idx = line.split()
        words[sym] = int(idx)
    prons = [(words[w], tuple(UNITS[p] for p in pron)) for w, ps in LEXICON.items() for pron in ps]
    tlg = kaldifst.StdVectorFst.read(str(root / "lang_test_tiny" / "TLG.fst"))
    arcs, final = read_arcs(tlg)
    # disambiguation symbols (ids >= K) never reach TLG's input side
    assert {a[0] for v in arcs.values() for a in v} <= set(range(len(UNITS) + 1))
    accepted = checked = 0
    for n in range(MAX_FRAMES + 1):
        for frames in itertools.product(range(len(UNITS)), repeat=n):
            expected = parses(ctc_collapse(frames), prons)
            got = tlg_outputs(arcs, final, tlg.start, frames)
            assert got == expected, (frames, got, expected)
            accepted += bool(got)
            checked += 1
    assert checked == sum(4**n for n in range(MAX_FRAMES + 1))
    assert 0 < accepted < checked  # e.g. "B" alone spells no word: rejected
    assert info["TLG"]["states"] > 0 and info["LG"]["arcs"] > 0


def test_word_that_repeats_needs_a_blank(lang_test):
    root, _ = lang_test
    tlg = kaldifst.StdVectorFst.read(str(root / "lang_test_tiny" / "TLG.fst"))
    arcs, final = read_arcs(tlg)
    one = 1  # words.txt: <eps> 0, ONE 1
    assert tlg_outputs(arcs, final, tlg.start, [1, 0, 1]) == {(one, one)}
    assert tlg_outputs(arcs, final, tlg.start, [1, 1]) == {(one,)}


def test_build_is_skipped_until_an_input_changes(lang_test):
    root, info = lang_test
    out = root / "lang_test_tiny"
    again = build_lang_test(root / "lang", root / "lm.arpa", out)
    assert again["skipped"] and again["TLG"] == info["TLG"]
    assert json.loads((out / "graph_info.json").read_text())["disambig_ids"] == [4, 5, 6]
    assert "#2 6" in (out / "units_disambig.txt").read_text()
    # a different LM -> rebuilt
    lm = estimate_word_lm([["THREE"]] * 3 + [["ONE", "TWO"]], order=2)
    write_arpa(lm, root / "lm.arpa")
    assert not build_lang_test(root / "lang", root / "lm.arpa", out)["skipped"]


def test_lexicon_with_unknown_phone_names_the_file(tmp_path: Path):
    words = {"<eps>": 0, "ONE": 1, "#0": 2}
    with pytest.raises(DataError, match="lexicon.txt.*'Z'"):
        build_lexicon_fst({"ONE": [["Z"]]}, UNITS, words, tmp_path / "lexicon.txt")
    with pytest.raises(DataError, match="not in words.txt"):
        build_lexicon_fst({"FOUR": [["A"]]}, UNITS, words, tmp_path / "lexicon.txt")


def test_library_warnings_fold_into_one_line(caplog):
    import logging
    import os

    from pipeline.lang.graphs import _logged_stderr

    with caplog.at_level(logging.INFO, logger="pipeline.lang.graphs"):
        with _logged_stderr("arpa2fst"):
            for i in range(31):
                os.write(2, f"[W] skipped n-gram {i}: word not in symbol table\n".encode())
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1 and "31 warning(s)" in infos[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
