"""kaldi_scripts/utils: Kaldi's data-dir tools with Kaldi's interfaces."""

import os
import subprocess
import sys
from pathlib import Path

from pipeline.data.datadir import read_map, utterance_ids
from pipeline.data.validate import validate_data_dir
from tests.conftest import make_kaldi_corpus

UTILS = Path(__file__).resolve().parents[2] / "kaldi_scripts" / "utils"
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def sh(*args, stdin=None):
    return subprocess.run(
        [str(UTILS / args[0]), *map(str, args[1:])],
        env=ENV,
        text=True,
        capture_output=True,
        input=stdin,
    )


def test_utt2spk_to_spk2utt(tmp_path):
    root = make_kaldi_corpus(tmp_path / "c")
    r = sh("utt2spk_to_spk2utt.pl", root / "train" / "utt2spk")
    assert r.returncode == 0 and r.stdout == (root / "train" / "spk2utt").read_text()
    r = sh("utt2spk_to_spk2utt.pl", stdin="a-1 a\na-2 a\nb-1 b\n")
    assert r.stdout == "a a-1 a-2\nb b-1\n"


def test_fix_data_dir_sorts_and_keeps_the_common_utterances(tmp_path):
    d = make_kaldi_corpus(tmp_path / "c") / "train"
    text = (d / "text").read_text().splitlines()
    dropped = text[1].split()[0]
    (d / "text").write_text("\n".join(reversed(text[:1] + text[2:])) + "\n")  # unsorted, short
    r = sh("fix_data_dir.sh", d)
    assert r.returncode == 0 and "removed 1" in r.stdout, r.stderr
    validate_data_dir(d, check_audio=True)
    assert dropped not in utterance_ids(d) and dropped not in read_map(d / "wav.scp")
    assert (d / ".backup" / "text").read_text().startswith(text[-1].split()[0])


def test_subset_combine_copy(tmp_path):
    root = make_kaldi_corpus(tmp_path / "c", n_spk=2, n_utt=4)
    src = root / "train"
    utts = utterance_ids(src)
    assert sh("subset_data_dir.sh", "--first", src, 3, tmp_path / "first").returncode == 0
    assert utterance_ids(tmp_path / "first") == utts[:3]
    assert sh("subset_data_dir.sh", src, 2, tmp_path / "even").returncode == 0
    assert utterance_ids(tmp_path / "even") == [utts[0], utts[len(utts) // 2]]
    spk = read_map(src / "utt2spk")[utts[0]]
    (tmp_path / "spk.list").write_text(spk + "\n")
    assert (
        sh(
            "subset_data_dir.sh", "--spk-list", tmp_path / "spk.list", src, tmp_path / "spk"
        ).returncode
        == 0
    )
    assert set(read_map(tmp_path / "spk" / "utt2spk").values()) == {spk}
    r = sh(
        "copy_data_dir.sh",
        "--utt-prefix",
        "sp1.1-",
        "--spk-prefix",
        "sp1.1-",
        src,
        tmp_path / "copy",
    )
    assert r.returncode == 0, r.stderr
    copied = read_map(tmp_path / "copy" / "text")
    assert copied == {f"sp1.1-{u}": w for u, w in read_map(src / "text").items()}
    validate_data_dir(tmp_path / "copy")
    r = sh("combine_data.sh", tmp_path / "all", src, tmp_path / "copy")
    assert r.returncode == 0, r.stderr
    assert len(utterance_ids(tmp_path / "all")) == 2 * len(utts)
    validate_data_dir(tmp_path / "all")
    bad = sh("combine_data.sh", tmp_path / "twice", src, src)
    assert bad.returncode != 0 and "more than one combined dir" in bad.stderr
