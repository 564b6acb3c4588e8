"""pipeline.data.from_files: Kaldi data dirs from LibriSpeech-style trees and CSV/TSV tables."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

from pipeline.data.audio import read_audio, write_wav
from pipeline.data.datadir import read_map
from pipeline.data.from_files import (
    SETS,
    from_files,
    normalize_transcript,
    parse_split,
    split_speakers,
)
from pipeline.data.validate import validate_data_dir
from pipeline.errors import DataError
from tests.conftest import tone

RATE = 16000
FILES = ("wav.scp", "text", "utt2spk", "spk2utt")


def wav(path: Path, seed: int = 0, seconds: float = 0.2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(str(path), RATE, tone(seconds, RATE, 300 + 10 * seed, seed=seed))
    return path


def flac(path: Path, seed: int = 0) -> Path:
    src = wav(path.with_suffix(".tmp.wav"), seed)
    subprocess.run(["sox", str(src), str(path)], check=True)
    src.unlink()
    return path


def librispeech(root: Path, n_spk: int = 10, n_utt: int = 3, fmt: str = "flac") -> Path:
    """``root/SPK/CHAPTER/SPK-CHAPTER.trans.txt`` with ``SPK-CHAPTER-NNNN.<fmt>`` beside it."""
    k = 0
    for s in range(n_spk):
        spk, chapter = str(100 + s), str(2000 + s)
        d = root / spk / chapter
        lines = []
        for j in range(n_utt):
            utt = f"{spk}-{chapter}-{j:04d}"
            (flac if fmt == "flac" else wav)(d / f"{utt}.{fmt}", seed=k)
            lines.append(f"{utt} HELLO, world! don't {j}\n")
            k += 1
        (d / f"{spk}-{chapter}.trans.txt").write_text("".join(lines))
    return root


def table(root: Path, sep: str = ",", speaker: bool = True, n_spk: int = 10, n_utt: int = 3):
    """Wavs under ``root/audio/<spk>/`` and a table of them (relative paths) in ``root``."""
    rows = ["path,text,speaker" if speaker else "path,text"]
    for s in range(n_spk):
        for j in range(n_utt):
            rel = f"audio/spk{s}/take {j}.wav"  # a space in the stem
            wav(root / rel, seed=10 * s + j)
            text = f'"Good morning, {s}!"' if sep == "," else f"Good morning {s}"
            rows.append(",".join([rel, text] + ([f"spk{s}"] if speaker else [])))
    path = root / ("list.csv" if sep == "," else "list.tsv")
    path.write_text("".join(r.replace(",", sep) + "\n" for r in rows))
    return path


def check_output(out: Path) -> Dict[str, Dict[str, str]]:
    """Asserts what every output must satisfy; returns set → utt2spk."""
    u2s = {}
    for s in SETS:
        d = out / s
        for name in FILES:
            lines = (d / name).read_bytes().splitlines()
            assert lines == sorted(lines), f"{d / name} is not byte-sorted"
        validate_data_dir(d, check_audio=True)  # what stnas prep --corpus kaldi checks
        u2s[s] = read_map(d / "utt2spk")
    utts = [u for m in u2s.values() for u in m]
    assert len(utts) == len(set(utts)), "an utterance in two sets"
    spks = [set(m.values()) for m in u2s.values()]
    assert not (spks[0] & spks[1] or spks[0] & spks[2] or spks[1] & spks[2]), "shared speaker"
    return u2s


def test_normalize_transcript():
    assert normalize_transcript("Hello, world!") == "HELLO WORLD"
    assert normalize_transcript("don't  'quote' rock’n’roll\tend.") == "DON'T QUOTE ROCK'N'ROLL END"
    assert normalize_transcript("well-known: 3 $5") == "WELL KNOWN 3 5"
    assert normalize_transcript(" ...!? ") == ""


def test_parse_split():
    assert parse_split("train=0.8,dev=0.1,test=0.1") == {"train": 0.8, "dev": 0.1, "test": 0.1}
    assert parse_split({"train": 0.9, "dev": 0.1}) == {"train": 0.9, "dev": 0.1, "test": 0.0}
    for bad, msg in [
        ("train=0.8,dev=0.1,test=0.2", "sum to 1"),
        ("train=0.8,valid=0.2", "bad item 'valid=0.2'"),
        ("train=0.5,train=0.5", "bad item"),
        ("train=x,dev=1", "share of train"),
        ("train=1.5,dev=-0.5", "from 0 to 1"),
        ("train", "SET=SHARE"),
    ]:
        with pytest.raises(DataError, match=msg):
            parse_split(bad)


def test_librispeech_layout(tmp_path):
    src = librispeech(tmp_path / "libri")
    summary = from_files(src, tmp_path / "out", seed=1)
    u2s = check_output(tmp_path / "out")
    assert sum(len(m) for m in u2s.values()) == 30
    assert {s: v["speakers"] for s, v in summary["sets"].items()} == {
        "train": 8,
        "dev": 1,
        "test": 1,
    }
    assert summary["sets"]["train"]["hours"] == pytest.approx(24 * 0.2 / 3600, rel=1e-3)
    train = tmp_path / "out" / "train"
    text = read_map(train / "text")
    utt = next(iter(text))
    assert utt.startswith(u2s["train"][utt] + "-") and utt.count("-") == 2  # LibriSpeech id
    assert text[utt].startswith("HELLO WORLD DON'T ")
    entry = read_map(train / "wav.scp")[utt]
    assert entry.startswith("sox -R /") and entry.endswith(".flac -t wav -b 16 - |")
    rate, samples = read_audio(entry, utt)
    assert rate == RATE and samples.shape == (int(0.2 * RATE),)
    record = json.loads((tmp_path / "out" / "from_files.json").read_text())
    assert record["layout"] == "librispeech" and record["seed"] == 1
    assert sorted(sum(record["speakers"].values(), [])) == [str(100 + s) for s in range(10)]


def test_csv_layout(tmp_path):
    csv_path = table(tmp_path / "corpus")
    summary = from_files(tmp_path / "corpus", tmp_path / "out", transcripts=csv_path)
    u2s = check_output(tmp_path / "out")
    assert summary["layout"] == "table"
    merged = {u: s for m in u2s.values() for u, s in m.items()}
    assert "spk3-take_0" in merged and merged["spk3-take_0"] == "spk3"
    d = next(tmp_path / "out" / s for s in SETS if "spk3-take_0" in u2s[s])
    assert read_map(d / "text")["spk3-take_0"] == "GOOD MORNING 3"
    entry = read_map(d / "wav.scp")["spk3-take_0"]  # whitespace in the path: a quoted pipe
    assert entry == f"sox -R '{tmp_path / 'corpus/audio/spk3/take 0.wav'}' -t wav -b 16 - |"
    rate, samples = read_audio(entry)
    assert rate == RATE and len(samples) == int(0.2 * RATE)


def test_tsv_without_speaker_column(tmp_path):
    tsv = table(tmp_path / "corpus", sep="\t", speaker=False)
    from_files(tmp_path / "corpus", tmp_path / "out", transcripts=tsv, split="train=0.5,dev=0.5")
    assert not (tmp_path / "out" / "test").exists()
    u2s = {}
    for s in ("train", "dev"):
        validate_data_dir(tmp_path / "out" / s)
        u2s.update(read_map(tmp_path / "out" / s / "utt2spk"))
    assert len(u2s) == 30 and u2s["spk7-take_2"] == "spk7"  # the parent folder


def test_plain_wav_by_path_other_wav_through_sox(tmp_path):
    wav(tmp_path / "a" / "s1" / "x.wav")
    wav(tmp_path / "a" / "s2" / "y.wav")
    (tmp_path / "a" / "s3").mkdir()
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-b", "24", str(tmp_path / "a" / "s3" / "z.wav")]
        + ["synth", "0.1", "sine", "300"],
        check=True,
    )
    rows = "path,text\ns1/x.wav,a\ns2/y.wav,b\ns3/z.wav,c\n"
    (tmp_path / "a" / "t.csv").write_text(rows)
    from_files(tmp_path / "a", tmp_path / "o", tmp_path / "a" / "t.csv")
    scp = {}
    for s in SETS:
        scp.update(read_map(tmp_path / "o" / s / "wav.scp"))
    assert scp["s1-x"] == str(tmp_path / "a" / "s1" / "x.wav")
    assert scp["s3-z"].startswith("sox ") and read_audio(scp["s3-z"])[0] == 8000


def test_split_follows_shares_and_seed(tmp_path):
    rng = np.random.default_rng(0)
    counts = {f"s{i:03d}": int(rng.integers(5, 40)) for i in range(200)}
    shares = {"train": 0.7, "dev": 0.2, "test": 0.1}
    total = sum(counts.values())
    split = split_speakers(counts, shares, seed=1)
    assert sorted(sum(split.values(), [])) == sorted(counts)
    for s, share in shares.items():
        assert abs(sum(counts[x] for x in split[s]) / total - share) < 0.01
    assert split_speakers(counts, shares, seed=1) == split
    assert split_speakers(counts, shares, seed=2) != split
    # a tiny share still gets a speaker
    small = split_speakers({"a": 50, "b": 50, "c": 1}, {"train": 0.98, "dev": 0.01, "test": 0.01})
    assert all(len(v) == 1 for v in small.values())


def test_same_seed_same_output_other_seed_other_split(tmp_path):
    src = librispeech(tmp_path / "libri", fmt="wav")
    outs: List[Dict[str, bytes]] = []
    for n, seed in enumerate((5, 5, 6)):
        out = tmp_path / f"out{n}"
        from_files(src, out, seed=seed)
        check_output(out)
        outs.append(
            {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        )
    assert outs[0] == outs[1]
    assert outs[0]["dev/spk2utt"] != outs[2]["dev/spk2utt"] or (
        outs[0]["test/spk2utt"] != outs[2]["test/spk2utt"]
    )


def test_ids_keep_a_speaker_prefix_and_lose_whitespace(tmp_path):
    wav(tmp_path / "spk1-already.wav")
    wav(tmp_path / "b.wav", 1)
    wav(tmp_path / "c.wav", 2)
    rows = "path,speaker,text\nspk1-already.wav,spk1,a\nb.wav,Mary Ann,b\nc.wav,spk3,c\n"
    (tmp_path / "t.csv").write_text(rows)
    from_files(tmp_path, tmp_path / "o", tmp_path / "t.csv")
    u2s = check_output(tmp_path / "o")
    merged = {u: s for m in u2s.values() for u, s in m.items()}
    assert merged == {"spk1-already": "spk1", "Mary_Ann-b": "Mary_Ann", "spk3-c": "spk3"}


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            "d1/a.wav,x,s\nd2/a.wav,y,s\n",
            r"t\.csv:3.*duplicate utterance id 's-a' \(also at .*t\.csv:2\)",
        ),
        ("d1/a.wav,x,s\nd1/../d1/a.wav,y,u\n", r"t\.csv:3.*listed twice \(also at .*t\.csv:2\)"),
        ("d1/a.wav,x,s\nd1/nope.wav,y,u\n", r"t\.csv:3.*audio file .*nope\.wav does not exist"),
        ("d1/a.wav,x,s\nd2/a.wav,y\n", r"t\.csv:3.*2 fields where the header has 3"),
        ("d1/a.wav,x,s\nd2/a.wav,?!,u\n", r"t\.csv:3.*empty transcript"),
        ("d1/a.wav,x,s\nd2/a.wav,y,\n", r"t\.csv:3.*empty speaker field"),
        ("d1/a.wav,x,A\nd2/a.wav,y,A-0\n", r"sort otherwise than their utterance ids"),
    ],
)
def test_table_errors_name_file_and_line(tmp_path, rows, message):
    wav(tmp_path / "d1" / "a.wav")
    wav(tmp_path / "d2" / "a.wav", 1)
    (tmp_path / "t.csv").write_text("path,text,speaker\n" + rows)
    with pytest.raises(DataError, match=message):
        from_files(tmp_path, tmp_path / "o", tmp_path / "t.csv", split="train=1")
    assert not (tmp_path / "o").exists()  # nothing written


def test_layout_errors(tmp_path):
    wav(tmp_path / "a" / "x.wav")
    with pytest.raises(DataError, match=r"no \*\.trans\.txt.*understood: .*trans\.txt.*csv"):
        from_files(tmp_path / "a", tmp_path / "o")
    (tmp_path / "a" / "t.txt").write_text("x.wav hello\n")
    with pytest.raises(DataError, match=r"must be a \.csv or \.tsv"):
        from_files(tmp_path / "a", tmp_path / "o", tmp_path / "a" / "t.txt")
    (tmp_path / "a" / "t.csv").write_text("file,words\nx.wav,hello\n")
    with pytest.raises(DataError, match=r"t\.csv:1: .*missing: path, text"):
        from_files(tmp_path / "a", tmp_path / "o", tmp_path / "a" / "t.csv")


def test_librispeech_errors(tmp_path):
    src = librispeech(tmp_path / "l", n_spk=3, n_utt=2, fmt="wav")
    trans = src / "101" / "2001" / "101-2001.trans.txt"
    trans.write_text(trans.read_text() + "101-2001-0009 MISSING\n")
    with pytest.raises(
        DataError,
        match=r"101-2001\.trans\.txt:3.*no audio 101-2001-0009\.flac or 101-2001-0009\.wav",
    ):
        from_files(src, tmp_path / "o")
    other = src / "101" / "copy" / "x.trans.txt"
    other.parent.mkdir()
    wav(other.parent / "101-2001-0000.wav")
    other.write_text("101-2001-0000 B\n")
    trans.write_text("101-2001-0000 A\n")
    with pytest.raises(DataError, match=r"x\.trans\.txt:1.*duplicate utterance id '101-2001-0000'"):
        from_files(src, tmp_path / "o")


def test_too_few_speakers(tmp_path):
    src = librispeech(tmp_path / "l", n_spk=2, n_utt=2, fmt="wav")
    with pytest.raises(DataError, match=r"2 speaker\(s\) for 3 sets.*speaker column"):
        from_files(src, tmp_path / "o")
    from_files(src, tmp_path / "o", split="train=0.5,test=0.5")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "from_files.json",
        "test",
        "train",
    ]


def test_refuses_to_overwrite_without_force(tmp_path):
    src = librispeech(tmp_path / "l", n_spk=4, n_utt=2, fmt="wav")
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty; use --force"):
        from_files(src, out)
    (out / "train").mkdir()
    (out / "train" / "feats.scp").write_text("stale\n")
    from_files(src, out, force=True)
    check_output(out)
    assert not (out / "train" / "feats.scp").exists() and (out / "keep.txt").is_file()
    # --force never removes a set dir that holds the inputs
    inside = librispeech(tmp_path / "mixed" / "train", n_spk=3, n_utt=1, fmt="wav")
    with pytest.raises(DataError, match="holds input files"):
        from_files(inside.parent, inside.parent, force=True)
    assert len(list(inside.rglob("*.wav"))) == 3


def test_a_stem_that_is_its_speaker_is_the_utterance_id(tmp_path):
    """One recording per speaker, named as the speaker (as when each file is its own speaker):
    the id is the stem itself, not ``cards-001-cards-001``."""
    audio = tmp_path / "audio"
    audio.mkdir()
    rows = ["path,text,speaker"]
    for n in range(1, 4):
        write_wav(str(audio / f"cards-00{n}.wav"), 16000, tone(0.5, 16000, seed=n))
        rows.append(f"cards-00{n}.wav,ten of clubs,cards-00{n}")
    (audio / "t.csv").write_text("\n".join(rows) + "\n")
    from_files(audio, tmp_path / "out", audio / "t.csv", split="train=0.34,dev=0.33,test=0.33")
    ids = [u for s in ("train", "dev", "test") for u in read_map(tmp_path / "out" / s / "utt2spk")]
    assert sorted(ids) == ["cards-001", "cards-002", "cards-003"]
