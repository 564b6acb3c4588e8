"""The word LM's text and the decoding vocabulary: no dev/test sentence, near-copy or word."""

from __future__ import annotations

import json
from pathlib import Path

import kaldifst
import pytest

from pipeline.errors import DataError
from pipeline.lang.graphs import decoding_vocabulary, read_arpa_vocabulary
from pipeline.lang.lexicon import read_lexicon, write_lexicon, write_units, write_words
from pipeline.lang.lm_data import LM_BUILD_VERSION, exclude_eval_text, word_lm_arpa
from pipeline.stages.graphs import build_lang_test


def _w(text):
    return [s.split() for s in text]


def test_near_copies_of_dev_and_test_sentences_are_removed():
    held = _w(
        [
            "AND THE SYSTEM IS GOING TO CRASH",
            "YEAH",
            "I KNOW",
            "ALL WORK AND NO PLAY",
            "YOUR OWN MILEAGE MAY VARY",
            "THE DOG RAN IN THE PARK TODAY",
        ]
    )
    text = _w(
        [
            "THE SYSTEM IS GOING TO CRASH",  # contained in a test sentence
            "ALL WORK AND NO PLAY",  # identical
            "SO ALL WORK AND NO PLAY MAKES JACK",  # contains a test sentence
            "YOUR MILEAGE MAY VARY",  # one word from a test sentence
            "THE DOG SAT IN THE PARK TODAY",  # one of seven words changed
            "YEAH",  # identical, short
            "YEAH I KNOW WHAT YOU MEAN",  # holds short test phrases: kept
            "SYSTEM IS GOING",  # contained but short: kept
            "THE CAT SAT ON THE MAT TODAY",  # four of seven words changed: kept
            "THE CAT SAT ON THE MAT",
        ]
    )
    kept, counts = exclude_eval_text(text, held)
    assert kept == _w(
        [
            "YEAH I KNOW WHAT YOU MEAN",
            "SYSTEM IS GOING",
            "THE CAT SAT ON THE MAT TODAY",
            "THE CAT SAT ON THE MAT",
        ]
    )
    assert counts == {"identical": 2, "contains": 1, "contained": 1, "similar": 2, "kept": 4}


def _corpus(root: Path, train, dev, test, lexicon=None, lm_text_filter="near"):
    d = root / "data"
    for name, lines in {"train": train, "dev": dev, "test": test}.items():
        (d / name).mkdir(parents=True, exist_ok=True)
        (d / name / "text").write_text("".join(f"{name}{i:03d} {t}\n" for i, t in enumerate(lines)))
    lexicon = lexicon or {w: [[p for p in w[:3]]] for t in train + dev + test for w in t.split()}
    write_lexicon(d / "lang" / "lexicon.txt", lexicon)
    write_words(d / "lang" / "words.txt", list(lexicon) + ["<UNK>"])
    phones = sorted({p for prons in lexicon.values() for pr in prons for p in pr})
    write_units(d / "lang" / "units.txt", phones)
    (d / "config.yaml").write_text(f"corpus: kaldi\nlm_text_filter: {lm_text_filter}\n")
    return d


DIGITS = ["ONE TWO THREE", "FOUR FIVE", "ONE TWO THREE", "SIX SEVEN EIGHT NINE", "FOUR FIVE"]


def test_train_transcripts_are_kept_as_they_are_by_default(tmp_path):
    """A digit-style task: every dev/test sentence is also a training sentence. The default
    (auto: none for train transcripts) keeps them; exact and near filters empty the text,
    which is an error naming the option."""
    d = _corpus(
        tmp_path,
        DIGITS,
        ["ONE TWO THREE", "FOUR FIVE"],
        ["SIX SEVEN EIGHT NINE"],
        lm_text_filter="auto",
    )
    arpa = word_lm_arpa(d, "tg")
    info = json.loads(arpa.with_suffix(".json").read_text())
    assert info["filter"] == "none" and info["sentences"] == 5
    assert info["removed"] == {
        "identical": 0,
        "contains": 0,
        "contained": 0,
        "similar": 0,
        "kept": 5,
    }
    assert read_arpa_vocabulary(arpa) >= {"ONE", "NINE", "FIVE"}
    for mode in ("exact", "near"):
        (d / "config.yaml").write_text(f"corpus: kaldi\nlm_text_filter: {mode}\n")
        with pytest.raises(
            DataError, match=f"lm_text_filter '{mode}' removed all 5.*--lm-text-filter none"
        ):
            word_lm_arpa(d, "tg")
    # exact removes identical sentences only; near also their near-copies
    kept, counts = exclude_eval_text(
        _w(["ONE TWO THREE FOUR", "FOUR FIVE"]),
        _w(["ONE TWO THREE FOUR FIVE", "FOUR FIVE"]),
        mode="exact",
    )
    assert kept == _w(["ONE TWO THREE FOUR"]) and counts["identical"] == 1
    kept, _ = exclude_eval_text(
        _w(["ONE TWO THREE FOUR", "FOUR FIVE"]),
        _w(["ONE TWO THREE FOUR FIVE", "FOUR FIVE"]),
        mode="near",
    )
    assert kept == []
    with pytest.raises(ValueError, match="unknown LM text filter"):
        exclude_eval_text([], [], mode="fuzzy")


def test_a_closed_vocabulary_lm_by_its_name(tmp_path):
    """ug is a unigram LM of the train transcripts: every word follows every other."""
    d = _corpus(tmp_path, DIGITS, ["ONE TWO"], ["NINE"], lm_text_filter="auto")
    ug = word_lm_arpa(d, "ug")
    text = ug.read_text()
    assert "\\1-grams:" in text and "\\2-grams:" not in text
    assert json.loads(ug.with_suffix(".json").read_text())["order"] == 1
    assert "\\3-grams:" in word_lm_arpa(d, "tg").read_text()


def test_lm_comes_from_train_transcripts_without_dev_test(tmp_path):
    d = _corpus(
        tmp_path, ["THE CAT SAT", "THE DOG SAT", "A SECRET"], ["A SECRET"], ["THE ZEBRA RAN"]
    )
    arpa = word_lm_arpa(d, "tg")
    assert arpa == d / "local" / "lm" / "tg.arpa"
    unigrams = read_arpa_vocabulary(arpa)
    assert {"THE", "CAT", "DOG", "SAT"} <= unigrams
    assert not {"SECRET", "ZEBRA", "RAN"} & unigrams  # only in held-out sentences
    info = json.loads(arpa.with_suffix(".json").read_text())
    assert info["sentences"] == 2 and info["source"].endswith("train/text")
    assert info["removed"]["identical"] == 1 and info["version"] == LM_BUILD_VERSION
    (d / "train" / "text").unlink()
    arpa.unlink()
    with pytest.raises(DataError, match="no text to estimate a word LM"):
        word_lm_arpa(d, "tg")


def test_lm_is_estimated_again_when_dev_or_test_change(tmp_path):
    d = _corpus(
        tmp_path,
        ["THE CAT SAT", "THE DOG SAT", "A BIG SECRET IS OUT"],
        ["THE CAT SAT"],
        ["THE ZEBRA RAN"],
    )
    arpa = word_lm_arpa(d, "tg")
    assert "DOG" in read_arpa_vocabulary(arpa)
    first = arpa.stat().st_mtime_ns
    assert word_lm_arpa(d, "tg") == arpa and arpa.stat().st_mtime_ns == first  # reused
    (d / "test" / "text").write_text("test000 THE DOG SAT\n")
    word_lm_arpa(d, "tg")
    assert "DOG" not in read_arpa_vocabulary(arpa) and "SECRET" in read_arpa_vocabulary(arpa)
    # an LM recorded by an older build (e.g. before the Kneser-Ney fix) is estimated again
    record = arpa.with_suffix(".json")
    old = json.loads(record.read_text())
    record.write_text(json.dumps({**old, "version": LM_BUILD_VERSION - 1}))
    word_lm_arpa(d, "tg")
    assert json.loads(record.read_text())["version"] == LM_BUILD_VERSION
    # an ARPA file without a record is the user's own: used as it is
    record.unlink()
    arpa.write_text(arpa.read_text())
    stamp = arpa.stat().st_mtime_ns
    assert word_lm_arpa(d, "tg") == arpa and arpa.stat().st_mtime_ns == stamp


def _tlg_output_words(lang_test: Path):
    tlg = kaldifst.StdVectorFst.read(str(lang_test / "TLG.fst"))
    ids = {
        int(i): w
        for w, i in (ln.split() for ln in (lang_test / "words.txt").read_text().splitlines())
    }
    out = set()
    for s in range(tlg.num_states):
        for arc in kaldifst.ArcIterator(tlg, s):
            if arc.olabel:
                out.add(ids[arc.olabel])
    return out


def test_no_dev_or_test_only_word_can_be_decoded(tmp_path):
    lexicon = {
        "THE": [["DH", "AH"], ["DH", "IY"]],
        "CAT": [["K", "AE", "T"]],
        "SAT": [["S", "AE", "T"]],
        "DOG": [["D", "AO", "G"]],
        "ZEBRA": [["Z", "IY", "B", "R", "AH"]],
        "RAN": [["R", "AE", "N"]],
        "DOES": [["D", "OW", "Z"], ["D", "AH", "Z"]],
    }
    d = _corpus(
        tmp_path,
        ["THE CAT SAT", "THE DOG SAT", "DOES THE CAT"],
        ["THE DOG RAN"],
        ["THE ZEBRA SAT"],
        lexicon,
    )
    out = d / "lang_test_tg"
    info = build_lang_test(d / "lang", word_lm_arpa(d, "tg"), out)
    lm_text_words = {"THE", "CAT", "SAT", "DOG", "DOES"}
    assert decoding_vocabulary(out) == lm_text_words
    assert _tlg_output_words(out) == lm_text_words  # ZEBRA and RAN: dev/test only
    assert info["vocabulary"] == 5 and info["lexicon_words_not_in_lm"] == 2
    assert read_lexicon(out / "lexicon.txt")["DOES"] == [["D", "OW", "Z"], ["D", "AH", "Z"]]


def test_tts_vocabulary_is_the_lm_text_and_keeps_every_pronunciation(tts_data, tmp_path):
    import shutil

    d = tmp_path / "data"
    for sub in ("lang", "local", "dev", "test", "train"):
        shutil.copytree(tts_data / sub, d / sub)
    shutil.copy(tts_data / "config.yaml", d / "config.yaml")
    lm_text = [ln.split() for ln in (d / "local" / "lm" / "text").read_text().splitlines()]
    lexicon = read_lexicon(d / "lang" / "lexicon.txt")
    assert set(lexicon) == {w for s in lm_text for w in s}  # the whole pool's words
    assert lexicon["DOES"] == [["D", "OW", "Z"], ["D", "AH", "Z"]]  # every variant
    held = [
        t.split()
        for name in ("dev", "test")
        for t in (ln.split(maxsplit=1)[1] for ln in (d / name / "text").read_text().splitlines())
    ]
    kept, _ = exclude_eval_text(lm_text, held)
    allowed = {w for s in kept for w in s}
    out = d / "lang_test_tg"
    build_lang_test(d / "lang", word_lm_arpa(d, "tg"), out)
    vocab = decoding_vocabulary(out)
    assert vocab == allowed & set(lexicon)
    eval_only = {w for s in held for w in s} - allowed
    assert not eval_only & vocab
    assert not eval_only & _tlg_output_words(out)
