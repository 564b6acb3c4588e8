"""``stnas data from-files`` through click's CliRunner: each layout gives data dirs that
``stnas prep --corpus kaldi`` accepts; bad input is a one-line error and a non-zero exit."""

from __future__ import annotations

import subprocess
from pathlib import Path

from click.testing import CliRunner

from pipeline.data.audio import read_audio, write_wav
from pipeline.data.datadir import read_map
from pipeline.data.validate import validate_data_dir
from steps_py.cli import cli
from tests.conftest import tone

SETS = ("train", "dev", "test")


def run(*args):
    return CliRunner().invoke(cli, ["data", "from-files", *map(str, args)])


def audio(path: Path, seed: int, fmt: str = "wav") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = path.with_suffix(".wav")
    write_wav(str(wav), 16000, tone(0.2, 16000, 300 + 7 * seed, seed=seed))
    if fmt != "wav":
        subprocess.run(["sox", str(wav), str(path.with_suffix(f".{fmt}"))], check=True)
        wav.unlink()


def libri(root: Path, n_spk: int = 10, n_utt: int = 2) -> Path:
    for s in range(n_spk):
        d = root / f"{19 + s}" / "198"
        ids = [f"{19 + s}-198-{j:04d}" for j in range(n_utt)]
        for j, utt in enumerate(ids):
            audio(d / f"{utt}.flac", 10 * s + j, fmt="flac" if s % 2 else "wav")
        (d / f"{19 + s}-198.trans.txt").write_text("".join(f"{u} Some words, here.\n" for u in ids))
    return root


def table(root: Path, sep: str, speaker: bool, n_spk: int = 10, n_utt: int = 2) -> Path:
    lines = ["path" + sep + "text" + (sep + "speaker" if speaker else "")]
    for s in range(n_spk):
        for j in range(n_utt):
            rel = f"clips/speaker{s}/u{j}.wav"
            audio(root / rel, 10 * s + j)
            lines.append(sep.join([rel, f"it's number {j}."] + ([f"sp{s}"] if speaker else [])))
    path = root / f"meta.{'csv' if sep == ',' else 'tsv'}"
    path.write_text("\n".join(lines) + "\n")
    return path


def check_ready(out: Path) -> dict:
    """Every set validates as prep --corpus kaldi needs; utterances and speakers are disjoint."""
    u2s = {}
    for s in SETS:
        validate_data_dir(out / s, check_audio=True)
        for name in ("wav.scp", "text", "utt2spk", "spk2utt"):
            lines = (out / s / name).read_bytes().splitlines()
            assert lines == sorted(lines)
        u2s[s] = read_map(out / s / "utt2spk")
    assert sum(len(m) for m in u2s.values()) == len({u for m in u2s.values() for u in m})
    spk = [set(m.values()) for m in u2s.values()]
    assert not (spk[0] & spk[1]) and not (spk[0] & spk[2]) and not (spk[1] & spk[2])
    return u2s


def test_help_has_an_example_for_each_layout():
    r = CliRunner().invoke(cli, ["data", "from-files", "--help"])
    assert r.exit_code == 0
    assert "trans.txt" in r.output and "--transcripts recordings/list.csv" in r.output
    assert "list.tsv" in r.output and "stnas prep --corpus kaldi --corpus-root" in r.output
    assert "from-files" in CliRunner().invoke(cli, ["data", "--help"]).output


def test_librispeech(tmp_path):
    src = libri(tmp_path / "LibriSpeech" / "dev-clean")
    r = run(src, tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert "librispeech layout" in r.output
    assert "train       8 speakers       16 utts" in r.output, r.output
    u2s = check_ready(tmp_path / "out")
    assert {len(set(m.values())) for m in u2s.values()} == {8, 1}
    entries = {}
    for s in SETS:
        entries.update(read_map(tmp_path / "out" / s / "wav.scp"))
    assert entries["19-198-0000"] == str(tmp_path / "LibriSpeech/dev-clean/19/198/19-198-0000.wav")
    flac = entries["20-198-0001"]
    assert flac.endswith("20-198-0001.flac -t wav -b 16 - |")
    assert read_audio(flac)[1].shape == (3200,)
    assert read_map(tmp_path / "out" / "train" / "text").popitem()[1] == "SOME WORDS HERE"


def test_csv_and_tsv_without_speaker(tmp_path):
    csv = table(tmp_path / "c", ",", speaker=True)
    r = run(tmp_path / "c", tmp_path / "out_csv", "--transcripts", csv, "--seed", "3")
    assert r.exit_code == 0, r.output
    u2s = check_ready(tmp_path / "out_csv")
    assert {u: s for m in u2s.values() for u, s in m.items()}["sp4-u1"] == "sp4"

    tsv = table(tmp_path / "t", "\t", speaker=False)
    r = run(tmp_path / "t", tmp_path / "out_tsv", "--transcripts", tsv)
    assert r.exit_code == 0, r.output
    u2s = check_ready(tmp_path / "out_tsv")
    merged = {u: s for m in u2s.values() for u, s in m.items()}
    assert merged["speaker4-u1"] == "speaker4"  # the folder names the speaker
    assert "IT'S NUMBER 1" in (tmp_path / "out_tsv" / "train" / "text").read_text()


def test_seed(tmp_path):
    src = libri(tmp_path / "l")
    texts = []
    for n, seed in enumerate(("1", "1", "2")):
        assert run(src, tmp_path / f"o{n}", "--seed", seed).exit_code == 0
        texts.append([(tmp_path / f"o{n}" / s / "spk2utt").read_text() for s in SETS])
    assert texts[0] == texts[1] and texts[0] != texts[2]


def test_errors_exit_non_zero(tmp_path):
    src = libri(tmp_path / "l", n_spk=2)
    r = run(src, tmp_path / "o")
    assert r.exit_code == 1 and "Error: 2 speaker(s) for 3 sets" in r.output
    r = run(src, tmp_path / "o", "--split", "train=0.7,dev=0.2")
    assert r.exit_code == 1 and "shares must sum to 1" in r.output
    r = run(src, tmp_path / "o", "--split", "train=0.5,test=0.5")
    assert r.exit_code == 0 and "needs all of train, dev and test" in r.output
    r = run(src, tmp_path / "o", "--split", "train=0.5,test=0.5")
    assert r.exit_code == 1 and "not empty; use --force" in r.output
    assert run(src, tmp_path / "o", "--split", "train=0.5,test=0.5", "--force").exit_code == 0

    meta = tmp_path / "l" / "meta.csv"
    meta.write_text("path,text,speaker\n19/198/19-198-0000.wav,a,x\n19/198/19-198-0000.wav,b,y\n")
    r = run(tmp_path / "l", tmp_path / "o2", "--transcripts", meta, "--split", "train=1")
    assert r.exit_code == 1 and "meta.csv:3" in r.output and "listed twice" in r.output
    meta.write_text("path,text,speaker\n19/198/x.wav,a,s\n20/198/x.wav,b,s\n")
    audio(tmp_path / "l" / "19/198/x.wav", 0)
    audio(tmp_path / "l" / "20/198/x.wav", 1)
    r = run(tmp_path / "l", tmp_path / "o2", "--transcripts", meta, "--split", "train=1")
    assert (
        r.exit_code == 1 and "meta.csv:3" in r.output and "duplicate utterance id 's-x'" in r.output
    )
    meta.write_text("path,text\n19/198/gone.wav,a\n")
    r = run(tmp_path / "l", tmp_path / "o2", "--transcripts", meta, "--split", "train=1")
    assert r.exit_code == 1 and "meta.csv:2" in r.output and "gone.wav does not exist" in r.output
    r = run(tmp_path / "l" / "19", tmp_path / "o2", "--split", "train=1")
    assert r.exit_code == 0  # a subtree works too
    r = run(tmp_path / "c", tmp_path / "o3")
    assert r.exit_code == 2  # AUDIO_DIR must exist (click's usage error)
    (tmp_path / "c").mkdir()
    r = run(tmp_path / "c", tmp_path / "o3")
    assert r.exit_code == 1 and "no *.trans.txt file found" in r.output
