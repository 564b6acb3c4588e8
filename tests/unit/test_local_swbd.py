"""Switchboard + eval2000 preparation (local/swbd) on tiny fake corpora in the LDC layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from local.swbd.normalize import normalize_ms98_word, normalize_stm
from local.swbd.prepare import prepare, split_dev
from pipeline.data.audio import read_audio
from pipeline.data.datadir import read_map
from pipeline.data.validate import validate_data_dir
from pipeline.errors import DataError
from tests.fixtures_ldc import GLM_TEXT, SWBD_DICT, build_swbd, ulaw_decode, write_cmudict

TRAIN_TEXT = {
    "sw02001-B_000000-000100": "[VOCALIZED-NOISE] IT'N UH-HUH",
    "sw02001-B_000100-000200": "[LAUGHTER] I DON'T KNOW",
    "sw02005-A_000050-000125": "RIGHT",
    "sw02005-B_000025-000200": "YEAH [NOISE] AB-",
}
DEV_TEXT = {
    "sw02001-A_000098-000150": "HI UM YEAH TH- -CAUSE",
    "sw02001-A_000150-000225": "[NOISE] OKAY THEM YUPPIEDOM",
}
TEST_TEXT = {
    "en_4156-A_000050-000125": "%HESITATION I THINK SO",
    "en_4156-B_000025-000100": "OKAY YEAH",
    "sw_4390-A_000010-000090": "WELL BU- RIGHT",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("swbd_corpus")
    return root, build_swbd(root)


@pytest.fixture(scope="module")
def dictionary(tmp_path_factory):
    return write_cmudict(tmp_path_factory.mktemp("dict") / "cmudict.txt", SWBD_DICT)


@pytest.fixture(scope="module")
def prepared(corpus, dictionary, tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "swbd"
    return out, prepare(corpus[0], out, lexicon=dictionary, dev_utts=1)


def _copy(corpus, tmp_path: Path) -> Path:
    root = tmp_path / "corpora"
    shutil.copytree(corpus[0], root)
    return root


@pytest.mark.parametrize(
    "token, word",
    [
        ("[silence]", ""),
        ("<b_aside>", ""),
        ("<e_aside>", ""),
        ("[noise]", "[NOISE]"),
        ("[laughter]", "[LAUGHTER]"),
        ("[vocalized-noise]", "[VOCALIZED-NOISE]"),
        ("[laughter-yeah]", "YEAH"),
        ("[laughter-th[e]-]", "TH-"),
        ("[it'n/isn't]", "IT'N"),
        ("[lem[guini]-/linguini]", "LEM-"),
        ("th[e]-", "TH-"),
        ("ab[solute]", "AB-"),
        ("-[be]cause", "-CAUSE"),
        ("[be]cause", "-CAUSE"),
        ("ammu[n]it-", "AMMU-IT-"),
        ("{yuppiedom}", "YUPPIEDOM"),
        ("them_1", "THEM"),
        ("them_1's", "THEM'S"),
        ("uh-huh", "UH-HUH"),
        ("[sigh]", "[NOISE]"),
    ],
)
def test_normalize_ms98_word(token, word):
    assert normalize_ms98_word(token) == word


def test_normalize_stm():
    words = "<B_ASIDE> (( )) ((WELL)) (%HESITATION) {LAUGH} bu- <E_ASIDE>".split()
    assert normalize_stm(words) == ["WELL", "%HESITATION", "LAUGH", "BU-"]


def test_split_dev_keeps_sides_whole():
    ids = ["b-A_1", "a-A_2", "a-A_1", "a-B_1"]
    assert split_dev(ids, 1) == (["a-A_1", "a-A_2"], ["a-B_1", "b-A_1"])
    with pytest.raises(DataError, match="no training"):
        split_dev(ids, 4)


def test_sets_texts_segments(prepared):
    out, res = prepared
    assert res["sets"] == {"train": 4, "dev": 2, "test": 3}
    assert res["sample_rate"] == 8000 and res["bad_utts"] == 0
    for name, text in (("train", TRAIN_TEXT), ("dev", DEV_TEXT), ("test", TEST_TEXT)):
        d = out / name
        assert validate_data_dir(d)["utts"] == len(text)
        assert read_map(d / "text") == text
        assert read_map(d / "utt2spk") == {u: u.rsplit("_", 1)[0] for u in text}
    assert read_map(out / "dev" / "segments") == {
        "sw02001-A_000098-000150": "sw02001-A 0.98 1.50",
        "sw02001-A_000150-000225": "sw02001-A 1.50 2.25",
    }
    assert read_map(out / "test" / "segments")["en_4156-B_000025-000100"] == "en_4156-B 0.25 1.00"
    assert read_map(out / "train" / "reco2file_and_channel") == {
        "sw02001-B": "sw02001 B",
        "sw02005-A": "sw02005 A",
        "sw02005-B": "sw02005 B",
    }


def test_wav_scp_channels_read_back(prepared, corpus):
    out, _ = prepared
    root, written = corpus
    wav = read_map(out / "train" / "wav.scp")
    assert set(wav) == {"sw02001-B", "sw02005-A", "sw02005-B"}
    assert wav["sw02001-B"] == f"sph2pipe -f wav -p -c 2 {root}/LDC97S62/swb1_d1/data/sw02001.sph |"
    rate, data = read_audio(wav["sw02001-B"], "sw02001-B")
    assert rate == 8000
    np.testing.assert_array_equal(data, ulaw_decode(written["sw02001"][:, 1]))
    for side, chan in (("A", 0), ("B", 1)):
        rate, data = read_audio(wav[f"sw02005-{side}"])
        np.testing.assert_array_equal(data, written["sw02005"][:, chan].astype(np.float32))
    test_wav = read_map(out / "test" / "wav.scp")
    assert set(test_wav) == {"en_4156-A", "en_4156-B", "sw_4390-A"}
    rate, data = read_audio(test_wav["en_4156-A"])
    np.testing.assert_array_equal(data, ulaw_decode(written["en_4156"][:, 0]))


def test_stm_and_glm_kept_for_scoring(prepared):
    out, res = prepared
    assert res["stm"] == str(out / "test" / "stm") and res["glm"] == str(out / "test" / "glm")
    stm = (out / "test" / "stm").read_text()
    assert "ASIDE" not in stm and "IGNORE_TIME_SEGMENT_IN_SCORING" in stm
    assert "( )) ((WELL))" in stm  # Kaldi's first-'((' fix
    assert (out / "test" / "glm").read_text() == GLM_TEXT


def test_lexicon_noise_units(prepared):
    out, res = prepared
    lines = (out / "local" / "dict" / "lexicon.txt").read_text().splitlines()
    for entry in (
        "[LAUGHTER] LAU",
        "[NOISE] NSN",
        "[VOCALIZED-NOISE] SPN",
        "<UNK> SPN",
        "<NOISE> NSN",
        "DON'T D OW1 N T",
        "UH-HUH AH0 HH AH1",
        "THINK TH IH1 NG K",
    ):
        assert entry in lines
    assert res["oov_words"] == 7  # TH- -CAUSE YUPPIEDOM IT'N AB- %HESITATION BU-


def test_explicit_part_paths(corpus, dictionary, tmp_path):
    root = corpus[0]
    res = prepare(
        None,
        tmp_path / "out",
        lexicon=dictionary,
        dev_utts=3,
        swbd=root / "LDC97S62",
        transcripts=root,
        eval2000_audio=root / "LDC2002S09",
        eval2000_text=root / "LDC2002T43",
    )
    assert res["sets"] == {"train": 2, "dev": 4, "test": 3}


@pytest.mark.parametrize(
    "remove, message",
    [
        ("LDC97S62", "swb1_d"),
        ("swb_ms98_transcriptions", "swb_ms98_transcriptions"),
        ("LDC2002S09", "english"),
        ("LDC2002T43", "reference"),
        ("LDC2002T43/2000_hub5_eng_eval_tr/reference/en20000405_hub5.glm", "glm"),
    ],
)
def test_layout_errors(corpus, dictionary, tmp_path, remove, message):
    root = _copy(corpus, tmp_path)
    target = root / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DataError, match=message):
        prepare(root, tmp_path / "out", lexicon=dictionary, dev_utts=1)


def test_missing_root(dictionary, tmp_path):
    with pytest.raises(DataError, match="LDC97S62"):
        prepare(tmp_path / "nowhere", tmp_path / "out", lexicon=dictionary)


def test_transcript_without_audio_raises_or_is_skipped(dictionary, tmp_path):
    root = tmp_path / "corpora"
    build_swbd(root, missing_audio=True)
    with pytest.raises(DataError, match="sw02007-A_000010-000080") as err:
        prepare(root, tmp_path / "o1", lexicon=dictionary, dev_utts=1)
    assert err.value.utt == "sw02007-A_000010-000080"
    out = tmp_path / "o2"
    res = prepare(root, out, lexicon=dictionary, dev_utts=1, skip_bad=True)
    assert res["bad_utts"] == 1 and res["sets"]["train"] == 4
    assert (out / "bad_utts.txt").read_text() == "sw02007-A_000010-000080 missing-audio\n"


def test_shortened_audio_needs_sph2pipe(dictionary, tmp_path, monkeypatch):
    root = tmp_path / "corpora"
    build_swbd(root, shorten=True)
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    out = tmp_path / "out"
    res = prepare(root, out, lexicon=dictionary, dev_utts=1)
    assert any("sph2pipe" in n for n in res["notes"])
    with pytest.raises(DataError, match="sph2pipe"):
        read_audio(read_map(out / "test" / "wav.scp")["en_4156-A"], "en_4156-A")
