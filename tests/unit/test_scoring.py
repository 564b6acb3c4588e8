"""Scoring: sclite and the kaldialign fallback agree, best_wer format, dev-only LM weight choice,
RESULTS.md upkeep."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from pipeline.decode.results import ResultRow, read_results, update_results
from pipeline.decode.scoring import (
    WerResult,
    choose_lm_weight,
    find_sclite,
    score,
    score_at_weight,
    score_sweep,
    write_trn,
)
from pipeline.errors import DataError

needs_sclite = pytest.mark.skipif(find_sclite() is None, reason="sclite (Debian sctk) missing")

REF = {"spk1-u1": "A B C D", "spk1-u2": "E F G", "spk2-u3": "H I J K L", "spk2-u4": "M N"}
# u1: B->X sub, D deleted; u2: G inserted; u3: correct; u4: empty hyp (2 deletions)
HYP = {"spk1-u1": "A X C", "spk1-u2": "E F G G", "spk2-u3": "H I J K L", "spk2-u4": ""}


def counts(r: WerResult):
    return (r.sub, r.dels, r.ins, r.words, r.sentences, r.sentence_errors)


@needs_sclite
def test_sclite_and_fallback_agree_by_hand(tmp_path):
    by_sclite = score(REF, HYP, tmp_path / "scoring", "hyp")
    by_python = score(REF, HYP, tmp_path / "py", "hyp", use_sclite=False)
    assert by_sclite.source == "sclite" and by_python.source == "python"
    assert counts(by_sclite) == counts(by_python) == (1, 3, 1, 14, 4, 3)
    assert by_sclite.wer == pytest.approx(100 * 5 / 14)
    for ext in ("sys", "dtl", "pra"):
        assert (tmp_path / "scoring" / f"hyp.{ext}").is_file()
    assert (tmp_path / "scoring" / "ref.trn").read_text().splitlines()[3] == "M N (spk2-u4)"


@needs_sclite
def test_sclite_and_fallback_agree_on_random_text(tmp_path):
    # small vocabularies and high error rates make many equal-cost alignments, where the
    # fallback must break ties as sclite does (kaldialign's sclite_mode does not, always)
    rng = random.Random(6)
    ref, hyp = {}, {}
    for n in range(600):
        vocab = [f"W{i}" for i in range((3, 6, 12)[n % 3])]
        error = rng.random() * 0.6
        r = [rng.choice(vocab) for _ in range(rng.randint(0, 20))]
        h = []
        for w in r:
            op = rng.random()
            if op < error / 3:
                continue  # deletion
            h.append(rng.choice(vocab) if op < error else w)
            if rng.random() < error / 3:
                h.append(rng.choice(vocab))  # insertion
        ref[f"s{n % 7}-u{n:03d}"], hyp[f"s{n % 7}-u{n:03d}"] = r, h
    by_sclite = score(ref, hyp, tmp_path / "s", "hyp")
    by_python = score(ref, hyp, tmp_path / "p", "hyp", use_sclite=False)
    assert counts(by_sclite) == counts(by_python)
    assert min(by_sclite.sub, by_sclite.dels, by_sclite.ins) > 0
    per_utt = re.findall(
        r"id: \((\S+)\)\nScores: \(#C #S #D #I\) (\d+ \d+ \d+ \d+)",
        (tmp_path / "s" / "hyp.pra").read_text(),
    )
    assert len(per_utt) == 600
    assert dict(per_utt) == dict(
        re.findall(
            r"id: \((\S+)\)\nScores: \(#C #S #D #I\) "
            r"(\d+ \d+ \d+ \d+)",
            (tmp_path / "p" / "hyp.pra").read_text(),
        )
    )


def test_fallback_reports_and_wer_line(tmp_path):
    res = score(REF, HYP, tmp_path / "scoring", "hyp_1", use_sclite=False)
    line = res.wer_line("exp/x/decode_test/wer_1")
    assert line == "%WER 35.71 [ 5 / 14, 1 ins, 3 del, 1 sub ] exp/x/decode_test/wer_1"
    pra = (tmp_path / "scoring" / "hyp_1.pra").read_text()
    assert "REF:  A B C D" in pra and "HYP:  A X C *" in pra


def test_trn_and_unknown_hypotheses(tmp_path):
    write_trn(tmp_path / "a.trn", {"u2": ["B"], "u1": "A  C"})
    assert (tmp_path / "a.trn").read_text() == "A C (u1)\nB (u2)\n"
    with pytest.raises(DataError, match="cannot be written"):
        write_trn(tmp_path / "b.trn", {"bad id": "A"})
    with pytest.raises(DataError, match="u7.*trn syntax"):
        write_trn(tmp_path / "b.trn", {"u7": "A (B)"})
    with pytest.raises(DataError, match="no reference"):
        score(REF, {**HYP, "spk9-u9": "A"}, tmp_path / "s", "hyp", use_sclite=False)
    # a missing hypothesis is an empty one: all its words are deletions
    partial = {k: v for k, v in HYP.items() if k != "spk2-u3"}
    assert score(REF, partial, tmp_path / "s", "hyp", use_sclite=False).dels == 3 + 5


class Guarded(dict):
    """A mapping that records which keys were read."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def test_lm_weight_chosen_on_dev_and_applied_to_test(tmp_path):
    ref = {"u1": "A B C", "u2": "D E"}
    dev_hyps = {
        0.5: {"u1": "A B C", "u2": "D E"},
        1.0: {"u1": "A C", "u2": "D E"},
        2.0: {"u1": "A", "u2": "D"},
    }
    dev = score_sweep(ref, dev_hyps, tmp_path / "decode_dev", use_sclite=False)
    assert [round(dev[w].wer, 2) for w in (0.5, 1.0, 2.0)] == [0.0, 20.0, 60.0]
    weight = choose_lm_weight(dev)
    assert weight == 0.5
    # on test, weight 2.0 would be best: the choice must not move there
    test_hyps = Guarded(
        {
            0.5: {"u1": "A X C", "u2": "D E"},
            1.0: {"u1": "A", "u2": ""},
            2.0: {"u1": "A B C", "u2": "D E"},
        }
    )
    res = score_at_weight(ref, test_hyps, weight, tmp_path / "decode_test", use_sclite=False)
    assert test_hyps.read == {0.5}
    assert res.sub == 1 and res.errors == 1
    best = (tmp_path / "decode_test" / "best_wer").read_text().strip()
    assert re.fullmatch(
        r"%WER 20\.00 \[ 1 / 5, 0 ins, 0 del, 1 sub \] .*decode_test/wer_0\.5", best
    )
    assert (tmp_path / "decode_test" / "wer_0.5").is_file()
    assert not (tmp_path / "decode_test" / "wer_2").exists()
    # ties go to the smaller weight
    tie = {w: WerResult(1, 0, 0, 10, 1, 1, "python") for w in (1.5, 0.8)}
    assert choose_lm_weight(tie) == 0.8


def row(set_, arch, wer, lm="tg"):
    return ResultRow(
        "tts",
        set_,
        arch,
        "1.2M",
        lm,
        0.8,
        wer,
        1,
        2,
        3,
        100,
        f"exp/{arch}",
        word_penalty=0.5,
        oov="1.25",
        ci="[9.10, 11.40]",
    )


def test_results_rows_are_kept_and_replaced(tmp_path):
    path = tmp_path / "RESULTS.md"
    update_results(path, [row("test", "st_nas", 12.5), row("dev", "st_nas", 11.0)])
    text = path.read_text()
    path.write_text(
        "# Results\n\nHand-written notes.\n" + text.split("# Results", 1)[1] + "\nTrailing notes.\n"
    )
    rows = update_results(path, [row("test", "darts", 14.0), row("test", "st_nas", 10.25)])
    assert len(rows) == 3
    again = {r.key: r.wer for r in read_results(path)}
    assert again == {
        ("tts", "test", "st_nas", "tg"): 10.25,
        ("tts", "dev", "st_nas", "tg"): 11.0,
        ("tts", "test", "darts", "tg"): 14.0,
    }
    final = path.read_text()
    assert "Hand-written notes." in final and "Trailing notes." in final
    assert (
        "| tts | test | st_nas | 1.2M | tg | 0.8 | 0.5 | 10.25 | [9.10, 11.40] | 1 | 2 | 3 | 100 | "
        "1.25 | exp/st_nas |" in final
    )
    assert {r.ci for r in read_results(path)} == {"[9.10, 11.40]"}
    assert final.count("| corpus |") == 1
    # a table written before the word penalty and OOV columns is still read
    path.write_text(
        "<!-- stnas:results:begin -->\n| corpus | set | arch |\n|---|\n| tts | test | st | 0.08M | "
        "tg | 1 | 27.97 | 246 | 7 | 77 | 1180 | exp/x |\n<!-- stnas:results:end -->\n"
    )
    (old,) = read_results(path)
    assert (old.word_penalty, old.oov, old.wer, old.words) == (0.0, "?", 27.97, 1180)
    assert old.ci == "?"
    # and one written before the interval column
    path.write_text(
        "<!-- stnas:results:begin -->\n| corpus | set |\n|---|\n| tts | test | st | 0.08M | tg | 1 | 0.5 "
        "| 27.97 | 246 | 7 | 77 | 1180 | 5.1 | exp/x |\n<!-- stnas:results:end -->\n"
    )
    (old,) = read_results(path)
    assert (old.word_penalty, old.oov, old.wer, old.ci, old.words) == (0.5, "5.1", 27.97, "?", 1180)


def test_wer_interval_is_a_bootstrap_over_utterances():
    from pipeline.decode.interval import bootstrap_interval, wer_interval

    ref = {f"u{i}": "a b c d" for i in range(200)}
    hyp = {u: ("a b c d" if i % 4 else "a x c") for i, u in enumerate(sorted(ref))}
    lo, hi = wer_interval(ref, hyp)  # 50 of 200 utterances have 2 errors in 4 words: 12.5 %
    assert lo < 12.5 < hi and hi - lo < 10
    # the normal approximation of the same resampling: sd of the mean of 200 Bernoulli(1/4)
    sd = 100 * 0.5 * (0.25 * 0.75 / 200) ** 0.5
    assert abs((hi - lo) / 2 - 1.96 * sd) < 0.6
    assert wer_interval(ref, ref) == (0.0, 0.0)
    assert bootstrap_interval(np.array([], dtype=int), np.array([], dtype=int)) != (0.0, 0.0)
