"""espeak-ng pronunciations mapped to CMU phones, the editable ``lexicon_g2p.txt`` and the list of
words outside the lexicon (pipeline/lang/g2p.py). Needs espeak-ng and festlex-cmu (``make
install`` installs both)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import kaldialign
import pytest

from pipeline.errors import DataError
from pipeline.lang import g2p
from pipeline.lang.g2p import (
    CMU_PHONES,
    CMU_VOWELS,
    ESPEAK_TABLE,
    count_oovs,
    espeak_phones,
    espeak_to_cmu,
    g2p_lexicon,
    read_g2p_table,
    write_oov_list,
)
from pipeline.lang.lexicon import FESTIVAL_CMUDICT, read_festival_cmudict

COMMON = """WATER NATION SPEECH COMPUTER RECOGNITION LANGUAGE PEOPLE YESTERDAY MORNING GOVERNMENT
PRESIDENT COMPANY MARKET MONEY BUSINESS FAMILY HOUSE SCHOOL CHILDREN WOMAN TEACHER NUMBER
QUESTION ANSWER EVENING SUMMER WINTER GARDEN KITCHEN WINDOW PICTURE MOTHER FATHER BROTHER
SISTER MINUTE HOSPITAL DOCTOR LETTER PAPER TABLE THOUSAND HUNDRED ELEVEN TWELVE ORANGE YELLOW
PURPLE""".split()
# cmudict-0.4.out has no word with an apostrophe; Festival's lexicon adds these in cmulex.scm
CONTRACTIONS = "DON'T CAN'T WON'T IT'S THAT'S I'M WE'VE YOU'LL HE'S THEY'VE ISN'T".split()
_ADDENDUM = re.compile(r"""lex\.add\.entry\s+'(\(".*\)\))\s*\)\s*$""")


def festival_reference(tmp_path: Path) -> dict:
    """Festival's CMU pronunciations of COMMON and CONTRACTIONS, read by
    read_festival_cmudict; its unstressed schwa AX is the 39-phone set's AH (CMUdict's AH0)."""
    addenda = Path(FESTIVAL_CMUDICT).with_name("cmulex.scm").read_text(encoding="latin-1")
    entries = [m.group(1) for line in addenda.splitlines() if (m := _ADDENDUM.search(line))]
    (tmp_path / "addenda.out").write_text("\n".join(entries) + "\n", encoding="latin-1")
    lex = read_festival_cmudict()
    lex.update(read_festival_cmudict(tmp_path / "addenda.out"))
    assert all(w in lex for w in COMMON + CONTRACTIONS), "reference words missing"
    return {
        w: [["AH" if p == "AX" else p for p in pron] for pron in lex[w]]
        for w in COMMON + CONTRACTIONS
    }


def test_espeak_agrees_with_the_cmu_dictionary(tmp_path):
    ref = festival_reference(tmp_path)
    got = espeak_phones(list(ref))
    assert set(got) == set(ref)
    exact = errors = phones = 0
    misses = []
    for word, prons in ref.items():
        assert all(p in CMU_PHONES for p in got[word]), got[word]
        best = min(prons, key=lambda r: kaldialign.edit_distance(r, got[word])["total"])
        dist = kaldialign.edit_distance(best, got[word])["total"]
        exact += dist == 0
        errors += dist
        phones += len(best)
        if dist:
            misses.append(f"{word}: {' '.join(got[word])} / {' '.join(best)}")
    rate, per = exact / len(ref), errors / phones
    print(f"\n{len(ref)} words: exact {rate:.1%}, phone error rate {per:.1%}; misses:")
    print("\n".join(misses))
    # measured with espeak-ng 1.51: exact 84.7 % (50/59), phone error rate 3.3 %
    assert rate >= 0.75
    assert per <= 0.07
    for word in CONTRACTIONS[:-1]:  # ISN'T: Festival says IH Z N T, espeak IH Z AH N T
        assert got[word] in ref[word], word


def test_stress_marks_the_right_vowel():
    got = espeak_phones(["COMPUTER", "RECOGNITION"], keep_stress=True)
    assert got["COMPUTER"] == ["K", "AH0", "M", "P", "Y", "UW1", "T", "ER0"]
    rec = got["RECOGNITION"]
    assert [p for p in rec if p.endswith("1")] == ["IH1"]
    assert rec[rec.index("IH1") - 1 :] == ["N", "IH1", "SH", "AH0", "N"]
    assert rec[:2] == ["R", "EH2"]
    for phone in rec:
        assert (phone[-1] in "012") == (phone[:-1] in CMU_VOWELS), phone
    plain = espeak_phones(["COMPUTER"])["COMPUTER"]
    assert plain == ["K", "AH", "M", "P", "Y", "UW", "T", "ER"]


def test_mapping_rules():
    table = read_g2p_table()
    # longest match: aI3 is one vowel + r colour, not aI then 3; r after r-coloured vowel dropped
    assert espeak_to_cmu("FIRE", "f 'aI3", table, keep_stress=True) == ["F", "AY1", "ER0"]
    assert espeak_to_cmu("VERY", "v 'e@ r i", table) == ["V", "EH", "R", "IY"]
    assert espeak_to_cmu("BUTTON", "b 'V ? n-", table) == ["B", "AH", "T", "AH", "N"]
    with pytest.raises(DataError) as err:
        espeak_to_cmu("ZORK", "z 'Q! k", table)
    msg = str(err.value)
    assert "'Q!'" in msg and "ZORK" in msg and str(ESPEAK_TABLE) in msg


def test_table_maps_to_cmu_phones_only():
    table = read_g2p_table()
    assert {p for phones in table.values() for p in phones} <= CMU_PHONES
    assert len(CMU_PHONES) == 39 and CMU_VOWELS <= CMU_PHONES


def test_batch_equals_one_call_per_word(monkeypatch):
    words = ["WATER", "O'BRIEN", "DON'T", "-", "SPEECH"]
    batch = espeak_phones(words)
    assert set(batch) == {"WATER", "O'BRIEN", "DON'T", "SPEECH"}  # "-" has no phones
    real = g2p._run_espeak
    calls = []

    def short(lines, voice):  # a batch answer one line short: one call per word instead
        calls.append(len(lines))
        out = real(lines, voice)
        return out[:-1] if len(lines) > 1 else out

    monkeypatch.setattr(g2p, "_run_espeak", short)
    assert espeak_phones(words) == batch
    assert calls == [5, 1, 1, 1, 1, 1]


def test_espeak_missing_is_a_data_error(monkeypatch):
    monkeypatch.setattr(g2p, "ESPEAK", "espeak-ng-not-here")
    with pytest.raises(DataError, match="install espeak-ng"):
        espeak_phones(["WATER"])


def test_edited_g2p_lexicon_is_honoured(tmp_path):
    path = tmp_path / "local" / "dict" / "lexicon_g2p.txt"
    first = g2p_lexicon(path, ["WATER", "NATION"], keep_stress=False)
    assert first == {"WATER": [["W", "AO", "T", "ER"]], "NATION": [["N", "EY", "SH", "AH", "N"]]}
    text = path.read_text()
    assert "espeak-ng" in text.splitlines()[0] and "edit" in text
    assert text.endswith("NATION N EY SH AH N\nWATER W AO T ER\n")
    # the user changes WATER, adds a second pronunciation, a word and a comment
    edited = text.replace(
        "WATER W AO T ER\n", "# my own\nWATER W AA T ER\nWATER W AO D ER\nZED Z EH D\n"
    )
    path.write_text(edited)
    again = g2p_lexicon(path, ["WATER", "SPEECH"], keep_stress=False)
    assert again["WATER"] == [["W", "AA", "T", "ER"], ["W", "AO", "D", "ER"]]
    assert again["ZED"] == [["Z", "EH", "D"]] and "NATION" in again
    assert again["SPEECH"] == [["S", "P", "IY", "CH"]]
    entries = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    assert entries == [  # sorted, the user's lines as they were, SPEECH added
        "NATION N EY SH AH N",
        "SPEECH S P IY CH",
        "WATER W AA T ER",
        "WATER W AO D ER",
        "ZED Z EH D",
    ]
    assert "# my own\n" in path.read_text()
    # nothing missing: the file is not rewritten
    before = path.read_text()
    path.touch()
    mtime = path.stat().st_mtime_ns
    assert g2p_lexicon(path, ["SPEECH", "ZED"], keep_stress=False) == again
    assert path.stat().st_mtime_ns == mtime and path.read_text() == before


def test_g2p_lexicon_stress(tmp_path):
    path = tmp_path / "lexicon_g2p.txt"
    got = g2p_lexicon(path, ["WATER"], keep_stress=True)
    assert got == {"WATER": [["W", "AO1", "T", "ER0"]]}
    assert g2p_lexicon(path, ["WATER"], keep_stress=False) == {"WATER": [["W", "AO", "T", "ER"]]}
    path.write_text("WATER W AO T ER\n")
    with pytest.raises(DataError, match=r"lexicon_g2p.txt:1.*'AO'.*stress"):
        g2p_lexicon(path, ["WATER"], keep_stress=True)


@pytest.mark.parametrize(
    "line, phone",
    [("HELLO HH EH L OX", "OX"), ("HELLO HH EH L OW4", "OW4"), ("HELLO HH1 EH L OW", "HH1")],
)
def test_bad_phone_in_user_file_names_the_line(tmp_path, line, phone):
    path = tmp_path / "lexicon_g2p.txt"
    path.write_text(f"# comment\nWATER W AO T ER\n{line}\n")
    with pytest.raises(DataError) as err:
        g2p_lexicon(path, ["WATER", "SPEECH"], keep_stress=False)
    assert "lexicon_g2p.txt:3:" in str(err.value) and f"'{phone}'" in str(err.value)
    assert err.value.line == 3
    assert "SPEECH" not in path.read_text()  # nothing written


def test_count_and_write_oovs(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "dev").mkdir()
    (tmp_path / "train" / "text").write_text(
        "u1 THE CAT SAT ON ZORK\nu2 ZORK ZORK BLIX\nu3\nu4 THE CAT\n"
    )
    (tmp_path / "dev" / "text").write_text("d1 BLIX ZORK QUUX\nd2 THE\n")
    lexicon = {"THE": [["DH", "AH"]], "CAT": [["K", "AE", "T"]], "SAT": [], "ON": []}
    texts = {"train": tmp_path / "train" / "text", "dev": tmp_path / "dev" / "text"}
    counts = count_oovs(texts, lexicon)
    assert counts == {
        "train": Counter({"ZORK": 3, "BLIX": 1}),
        "dev": Counter({"BLIX": 1, "ZORK": 1, "QUUX": 1}),
    }
    out = tmp_path / "local" / "oov.txt"
    write_oov_list(out, counts)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == ["ZORK\t4\ttrain=3 dev=1", "BLIX\t2\ttrain=1 dev=1", "QUUX\t1\tdev=1"]
    write_oov_list(out, {"train": Counter()})
    assert out.read_text().splitlines()[1:] == []


def test_schwa_follows_the_dictionary():
    """Festival's CMU dictionary writes unstressed schwa AX (COMPUTER K AX M P Y UW T ER):
    with schwa='AX' the generated entries do too; stressed AH stays AH."""
    festival = read_festival_cmudict(keep_stress=False)
    got = espeak_phones(["COMPUTER", "SUN"], schwa="AX")
    assert got["COMPUTER"] in festival["COMPUTER"], (got, festival["COMPUTER"])
    assert got["SUN"] == ["S", "AH", "N"]
    assert espeak_phones(["COMPUTER"])["COMPUTER"] == ["K", "AH", "M", "P", "Y", "UW", "T", "ER"]
