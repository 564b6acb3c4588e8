"""WSJ preparation (local/wsj) on a tiny fake corpus in the LDC93S6B / LDC94S13B layout."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from local.wsj.normalize import normalize_transcript, normalize_word
from local.wsj.prepare import prepare
from pipeline.data.audio import read_audio
from pipeline.data.datadir import read_map
from pipeline.data.validate import validate_data_dir
from pipeline.errors import DataError
from tests.fixtures_ldc import WSJ_DICT, build_wsj, write_cmudict

TEXTS = {
    "011c0201": "<NOISE> THE COMPANY'S SHARES IN ROSE SHARPLY",
    "011c0202": "I. B. M. ,COMMA -DASH RESTRUCTURING REVO- PLANS PERCENT",
    "46uc0301": "STOCKS FELL POINT FIVE",
    "4k0c0301": "SAATCHI OFFICIALS SAID",
    "4k0c0302": "THE MANAGEMENT -STRUCTURING",
    "440c0201": "THE DOLLAR ROSE <NOISE>",
    "441c0201": "PRICES ROSE",
}
SETS = {
    "train": ["011c0201", "011c0202", "46uc0301"],
    "dev": ["4k0c0301", "4k0c0302"],
    "test": ["440c0201"],
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("wsj_corpus")
    samples = build_wsj(root)
    return root, samples


@pytest.fixture(scope="module")
def dictionary(tmp_path_factory):
    return write_cmudict(tmp_path_factory.mktemp("dict") / "cmudict.txt", WSJ_DICT)


@pytest.fixture(scope="module")
def prepared(corpus, dictionary, tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "wsj"
    return out, prepare(corpus[0], out, lexicon=dictionary)


def _copy(corpus, tmp_path: Path) -> Path:
    root = tmp_path / "wsj"
    shutil.copytree(corpus[0], root)
    return root


@pytest.mark.parametrize(
    "token, word",
    [
        ("[loud_breath]", "<NOISE>"),
        ("[<door_slam]", ""),
        ("[door_slam>]", ""),
        ("[phone_ring/]", ""),
        ("[/phone_ring]", ""),
        ("~", ""),
        (".", ""),
        ("<and>", "AND"),
        ("<*IN*>", "IN"),
        ("*rose*", "ROSE"),
        ("!stocks", "STOCKS"),
        ("re:structuring", "RESTRUCTURING"),
        ("revo(lutionary)-", "REVO-"),
        ("(re)structuring", "-STRUCTURING"),
        (r"I\.", "I."),
        ("--DASH", "-DASH"),
        ("%PERCENT", "PERCENT"),
        (".POINT", "POINT"),
        (",COMMA", ",COMMA"),
        ("!EXCLAMATION-POINT", "!EXCLAMATION-POINT"),
        (":COLON", ":COLON"),
        ("(PAREN", "(PAREN"),
    ],
)
def test_normalize_word(token, word):
    assert normalize_word(token) == word


def test_normalize_transcript_drops_markup_only_tokens():
    assert normalize_transcript("[<door_slam] hello . ~ [sniff]") == ["HELLO", "<NOISE>"]


def test_sets_ids_speakers_and_texts(prepared):
    out, res = prepared
    assert res["sets"] == {"train": 3, "dev": 2, "test": 1}
    assert res["sample_rate"] == 16000 and res["bad_utts"] == 0
    assert not (out / "bad_utts.txt").exists()
    for name, utts in SETS.items():
        d = out / name
        assert validate_data_dir(d)["utts"] == len(utts)
        assert read_map(d / "text") == {u: TEXTS[u] for u in utts}
        assert read_map(d / "utt2spk") == {u: u[:3] for u in utts}
        assert list(read_map(d / "text")) == sorted(utts)  # C order
    assert read_map(out / "train" / "spk2utt") == {"011": "011c0201 011c0202", "46u": "46uc0301"}
    assert "401c0201" not in read_map(out / "train" / "text")  # excluded as in Kaldi


def test_wav_scp_reads_back_the_samples(prepared, corpus):
    out, _ = prepared
    root, samples = corpus
    for name, utts in SETS.items():
        wav = read_map(out / name / "wav.scp")
        for utt in utts:
            entry = wav[utt]
            assert entry.startswith("sph2pipe -f wav -p /") and entry.endswith(" |")
            rate, data = read_audio(entry, utt)
            assert rate == 16000
            np.testing.assert_array_equal(data, samples[utt].astype(np.float32))
    # the upper-case disc copy is found case-insensitively
    assert "/WSJ1/SI_DT_20/4K0/4K0C0301.WV1" in read_map(out / "dev" / "wav.scp")["4k0c0301"]


def test_lexicon_covers_transcript_words(prepared):
    out, res = prepared
    lines = (out / "local" / "dict" / "lexicon.txt").read_text().splitlines()
    assert "<UNK> SPN" in lines and "<NOISE> NSN" in lines
    assert ",COMMA K AA1 M AH0" in lines  # punctuation word → its plain word
    assert "-DASH D AE1 SH" in lines
    assert "I. AY1" in lines and "COMPANY'S K AH1 M P AH0 N IY0 Z" in lines
    words = {ln.split()[0] for ln in lines}
    assert {"SAATCHI", "REVO-", "-STRUCTURING"}.isdisjoint(words)  # OOVs and fragments left
    assert res["oov_words"] == 3
    assert lines == sorted(lines, key=lambda s: s.split()[0].encode())


def test_lms_located_and_left_compressed(prepared, corpus):
    out, res = prepared
    base = corpus[0] / "13-32.1/wsj1/doc/lng_modl/base_lm"
    expected = {
        "bg": base / "bcb20onp.z",
        "tg": base / "tcb20onp.z",
        "bg_5k": base / "bcb05onp.z",
        "tg_5k": base / "tcb05cnp.z",
    }
    assert res["lms"] == {k: str(v) for k, v in expected.items()}
    assert read_map(out / "local" / "lm" / "lm_paths.txt") == res["lms"]
    assert gzip.decompress(expected["tg"].read_bytes()).startswith(b"preamble")
    assert any("tgpr" in n for n in res["notes"])


def test_separate_roots_and_5k_test_set(corpus, dictionary, tmp_path):
    wsj0, wsj1 = tmp_path / "LDC93S6B", tmp_path / "LDC94S13B"
    for disc in corpus[0].iterdir():
        shutil.copytree(disc, (wsj0 if disc.name.startswith("11-") else wsj1) / disc.name)
    out = tmp_path / "out"
    res = prepare(
        None, out, wsj0=wsj0, wsj1=wsj1, lexicon=dictionary, test_set="eval92_5k", train_set="si84"
    )
    assert res["sets"] == {"train": 2, "dev": 2, "test": 1}
    assert read_map(out / "test" / "text") == {"441c0201": "PRICES ROSE"}


def test_layout_errors(corpus, dictionary, tmp_path):
    with pytest.raises(DataError, match="11-13.1"):
        prepare(tmp_path / "nowhere", tmp_path / "o1", lexicon=dictionary)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="CD directories"):
        prepare(tmp_path / "empty", tmp_path / "o2", lexicon=dictionary)
    root = _copy(corpus, tmp_path)
    shutil.rmtree(root / "13-34.1")
    with pytest.raises(DataError, match="13-34.1"):
        prepare(root, tmp_path / "o3", lexicon=dictionary)
    with pytest.raises(DataError, match="unknown WSJ subset"):
        prepare(corpus[0], tmp_path / "o4", lexicon=dictionary, test_set="eval99")


def test_missing_audio_raises_or_is_skipped(corpus, dictionary, tmp_path):
    root = _copy(corpus, tmp_path)
    (root / "11-2.1/wsj0/si_tr_s/011/011c0202.wv1").unlink()
    with pytest.raises(DataError, match="011c0202") as err:
        prepare(root, tmp_path / "o1", lexicon=dictionary)
    assert err.value.utt == "011c0202" and "skip_bad" in str(err.value)
    out = tmp_path / "o2"
    res = prepare(root, out, lexicon=dictionary, skip_bad=True)
    assert res["bad_utts"] == 1 and res["sets"]["train"] == 2
    assert (out / "bad_utts.txt").read_text() == "011c0202 missing-audio\n"
    assert validate_data_dir(out / "train")["utts"] == 2


def test_missing_transcript_is_skipped(corpus, dictionary, tmp_path):
    root = _copy(corpus, tmp_path)
    dot = root / "13-16.1/WSJ1/SI_DT_20/4K0/4K0C0300.DOT"
    dot.write_text("".join(ln for ln in dot.read_text().splitlines(True) if "4K0C0302" not in ln))
    with pytest.raises(DataError, match="4k0c0302"):
        prepare(root, tmp_path / "o1", lexicon=dictionary)
    out = tmp_path / "o2"
    res = prepare(root, out, lexicon=dictionary, skip_bad=True)
    assert res["sets"]["dev"] == 1
    assert (out / "bad_utts.txt").read_text() == "4k0c0302 no-transcript\n"


def test_shortened_audio_needs_sph2pipe(dictionary, tmp_path, monkeypatch):
    root = tmp_path / "wsj"
    build_wsj(root, shorten=("011c0201",))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    out = tmp_path / "out"
    res = prepare(root, out, lexicon=dictionary)
    assert any("sph2pipe" in n for n in res["notes"])
    with pytest.raises(DataError, match="sph2pipe"):
        read_audio(read_map(out / "train" / "wav.scp")["011c0201"], "011c0201")


def test_default_lexicon_is_festival_cmudict(corpus, tmp_path):
    out = tmp_path / "out"
    prepare(corpus[0], out)
    lex = (out / "local" / "dict" / "lexicon.txt").read_text().splitlines()
    assert "THE DH AX0" in lex and "<UNK> SPN" in lex
    assert "COMPANY'S K AH1 M P AX0 N IY0 Z" in lex  # Festival has only COMPANY


def test_lookup_fallback_spellings():
    from local.ldc_common import lookup

    d = {
        "DONT": [["D", "OW1", "N", "T"]],
        "HOUSE": [["HH", "AW1", "S"]],
        "JACK": [["JH", "AE1", "K"]],
        "FORTY": [["F", "AO1", "R", "T", "IY0"]],
        "FIVE": [["F", "AY1", "V"]],
        "COMMA": [["K", "AA1", "M", "AH0"]],
        "THE": [["DH", "AH0"]],
    }
    assert lookup("DON'T", d) == [["D", "OW1", "N", "T"]]
    assert lookup("HOUSE'S", d) == [["HH", "AW1", "S", "IH0", "Z"]]
    assert lookup("JACK'S", d) == [["JH", "AE1", "K", "S"]]
    assert lookup("FORTY-FIVE", d) == [["F", "AO1", "R", "T", "IY0", "F", "AY1", "V"]]
    assert lookup(",COMMA", d) == [["K", "AA1", "M", "AH0"]]
    assert lookup("TH-", d) is None and lookup("-THE", d) is None
