"""stm/glm scoring (Switchboard eval2000 style) against hand counts and against trn scoring."""

import json
import random

import pytest

from pipeline.decode.scoring import score
from pipeline.decode.stm_scoring import hyp_to_ctm, score_stm, sctk_bin
from pipeline.errors import DataError, StnasError
from pipeline.stages.score import run_score

try:
    sctk_bin()
    HAVE_SCTK = True
except StnasError:
    HAVE_SCTK = False
needs_sctk = pytest.mark.skipif(not HAVE_SCTK, reason="sctk (csrfilt.sh, sclite) not installed")

GLM = """;; a small GLM in the NIST1 format
* name "test"
* desc "rules for the tests"
* format = 'NIST1'
* max_nrules = '100'
* copy_no_hit = 'T'
* case_sensitive = 'F'
[UH-HUH] => [UHHUH] / [ ] __ [ ]
[I'M] => {I'M / I AM} / [ ] __ [ ]
"""


def make_set(d, segs):
    """segs: [(file, side, start, end, ref words)] -> a data dir with stm/glm/segments."""
    d.mkdir(parents=True, exist_ok=True)
    stm, segments, reco, text = [";; test stm"], [], set(), []
    for f, side, t0, t1, words in segs:
        stm.append(f"{f} {side} {f}_{side} {t0:.2f} {t1:.2f} <O,en,M,en-M> {words}")
        rec, utt = f"{f}-{side}", f"{f}-{side}_{int(t0 * 100):06d}-{int(t1 * 100):06d}"
        segments.append(f"{utt} {rec} {t0:.2f} {t1:.2f}")
        reco.add(f"{rec} {f} {side}")
        text.append(f"{utt} {words}")
    (d / "stm").write_text("\n".join(stm) + "\n")
    (d / "glm").write_text(GLM)
    (d / "segments").write_text("\n".join(sorted(segments)) + "\n")
    (d / "reco2file_and_channel").write_text("\n".join(sorted(reco)) + "\n")
    (d / "text").write_text("\n".join(sorted(text)) + "\n")
    return sorted(u.split()[0] for u in segments)


def test_ctm_spreads_words_over_the_segment_and_drops_non_speech(tmp_path):
    (utt,) = make_set(tmp_path, [("sw_1", "A", 1.0, 2.0, "A B")])
    rows = hyp_to_ctm({utt: "[NOISE] A <UNK> B [LAUGHTER]"}, tmp_path)
    assert rows == [("sw_1", "A", 1.0, 0.5, "A"), ("sw_1", "A", 1.5, 0.5, "B")]
    with pytest.raises(DataError, match="no segment"):
        hyp_to_ctm({"sw_1-A_999999-999999": "A"}, tmp_path)


@needs_sctk
def test_glm_and_optional_words_by_hand(tmp_path):
    utts = make_set(
        tmp_path / "set",
        [
            ("en_1", "A", 1.0, 3.0, "I'M GOING (%HESITATION) HOME"),
            ("en_1", "A", 4.0, 6.0, "UH-HUH YES"),
            ("sw_2", "B", 0.5, 2.0, "THE DOG BARKS"),
        ],
    )
    hyp = dict(zip(utts, ["I AM GOING [NOISE] HOME", "UHHUH YES", "A DOG"]))
    r = score_stm(hyp, tmp_path / "set", tmp_path / "scoring", "hyp_1")
    # en_1: the GLM makes I'M = I AM and UH-HUH = UHHUH; the hesitation may be deleted.
    assert (r["callhm"].sub, r["callhm"].dels, r["callhm"].ins) == (0, 0, 0)
    # sw_2: THE -> A, BARKS deleted.
    assert (r["swbd"].sub, r["swbd"].dels, r["swbd"].ins, r["swbd"].words) == (1, 1, 0, 3)
    assert r[""].errors == 2 and r[""].words == r["swbd"].words + r["callhm"].words
    for tag in ("hyp_1", "hyp_1.swbd", "hyp_1.callhm"):
        assert (tmp_path / "scoring" / f"{tag}.pra").is_file()
        assert (tmp_path / "scoring" / f"{tag}.ctm.filt").is_file()


@needs_sctk
def test_equals_trn_scoring_when_no_rule_applies(tmp_path):
    rng = random.Random(3)
    vocab = ["A", "B", "C", "DOG", "CAT", "HOME"]
    segs, hyps = [], []
    for k in range(40):
        f = ("sw_" if k % 2 else "en_") + str(k % 5)
        t0 = 10.0 * k
        ref = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 8)))
        segs.append((f, "A", t0, t0 + 5.0, ref))
        hyps.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 9))))
    utts = make_set(tmp_path / "set", segs)
    by_utt = {
        u: h
        for u, h in zip(
            [f"{f}-A_{int(t0 * 100):06d}-{int(t1 * 100):06d}" for f, _, t0, t1, _ in segs], hyps
        )
    }
    r = score_stm(by_utt, tmp_path / "set", tmp_path / "stm_scoring", "h")
    ref = {
        u.split()[0]: u.split(maxsplit=1)[1]
        for u in (tmp_path / "set" / "text").read_text().splitlines()
    }
    trn = score(ref, {u: by_utt[u] for u in utts}, tmp_path / "trn_scoring", "h")
    assert r[""].words == trn.words and r[""].errors == trn.errors
    assert r["swbd"].errors + r["callhm"].errors == trn.errors


@needs_sctk
def test_run_score_uses_stm_for_test_and_dev_chooses_the_weight(tmp_path):
    data = tmp_path / "data"
    test_utts = make_set(
        data / "test", [("en_1", "A", 1.0, 2.0, "I'M HOME"), ("sw_2", "A", 1.0, 2.0, "THE DOG")]
    )
    (data / "dev").mkdir()
    (data / "dev" / "text").write_text("d1 A B C\nd2 C D\n")
    model_dir = tmp_path / "exp" / "retrain"
    hyps = {
        0.5: {
            "dev": "d1 A B C\nd2 C X\n",
            "test": f"{test_utts[0]} I AM HOME\n{test_utts[1]} THE CAT\n",
        },
        1.0: {
            "dev": "d1 A B C\nd2 C D\n",
            "test": f"{test_utts[0]} I AM HOME\n{test_utts[1]} THE DOG\n",
        },
    }
    lang_test = tmp_path / "lang_test"
    lang_test.mkdir()
    (lang_test / "lexicon.txt").write_text(
        "".join(f"{w} {w[0]}\n" for w in ("A", "AM", "B", "C", "D", "DOG", "HOME", "I", "THE"))
    )
    for w, sets in hyps.items():
        for name, text in sets.items():
            d = model_dir / f"decode_{name}_tg"
            (d / "hyp").mkdir(parents=True, exist_ok=True)
            (d / "hyp" / f"{w}.txt").write_text(text)  # the name of a decode without penalty
            (d / ".done").mkdir(exist_ok=True)
            (d / ".done" / "stage").write_text("{}\n")
            (d / "decode_info.json").write_text(
                json.dumps({"model": str(tmp_path / "none.pt"), "lang_test": str(lang_test)})
            )
    out = run_score(
        model_dir, data, "tg", "dev", ["test"], results=tmp_path / "RESULTS.md", arch_name="st"
    )
    assert {k: v["lm_weight"] for k, v in out.items()} == {
        "dev": 1.0,
        "test": 1.0,
        "test.swbd": 1.0,
        "test.callhm": 1.0,
    }
    assert out["test"]["wer"] == 0.0
    best = (model_dir / "decode_test_tg" / "best_wer").read_text().splitlines()
    assert len(best) == 4 and all(line.startswith("%WER 0.00") for line in best[:3])
    # I'M is not in the decoding vocabulary: 1 of the 4 reference words (I'M HOME THE DOG)
    assert best[3].startswith("%OOV 25.00 [ 1 / 4") and out["test"]["oov_rate"] == 25.0
    results = (tmp_path / "RESULTS.md").read_text()
    assert "| test.swbd |" in results and "| test.callhm |" in results
    assert not list((model_dir / "decode_test_tg").glob("wer_0.5*"))
