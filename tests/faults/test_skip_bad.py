"""``prep --skip-bad`` skips every kind of bad utterance, and a skipped dev/test utterance is
scored as a deletion, not forgotten."""

from pathlib import Path

from click.testing import CliRunner

from pipeline.data.datadir import SKIPPED_TEXT, read_map, read_reference
from pipeline.data.validate import validate_data_dir
from pipeline.decode.scoring import score
from steps_py.cli import cli
from tests.conftest import make_kaldi_corpus


def _prep(root, out, *extra):
    return CliRunner().invoke(
        cli,
        [
            "prep",
            "--corpus",
            "kaldi",
            "--corpus-root",
            str(root),
            "--data-dir",
            str(out),
            "--no-speed-perturb",
            *extra,
        ],
        catch_exceptions=False,
    )


def _blank(root: Path, set_name: str, utt: str) -> str:
    p = root / set_name / "text"
    lines = p.read_text().splitlines()
    old = next(line for line in lines if line.startswith(utt + " "))
    p.write_text("\n".join(utt if line == old else line for line in lines) + "\n")
    return old.split(" ", 1)[1]


def test_skip_bad_skips_empty_transcripts_missing_and_corrupt_audio(tmp_path):
    root = make_kaldi_corpus(tmp_path / "corpus")
    _blank(root, "train", "trainspk1-000")
    (root / "wav" / "trainspk0-002.wav").unlink()  # missing audio
    test_words = read_map(root / "test" / "text")["testspk1-000"]
    (root / "wav" / "testspk1-000.wav").unlink()  # missing, in test
    dev_words = read_map(root / "dev" / "text")["devspk0-001"]
    (root / "wav" / "devspk0-001.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE")  # corrupt, dev
    out = tmp_path / "data"
    assert _prep(root, out).exit_code == 1  # without --skip-bad: stops
    r = _prep(root, tmp_path / "data2", "--skip-bad")
    assert r.exit_code == 0, r.output
    out = tmp_path / "data2"
    train_bad = read_map(out / "train" / "bad_utts.txt")
    assert train_bad["trainspk1-000"] == "empty transcript"
    assert "does not exist" in train_bad["trainspk0-002"]
    for s in ("train", "dev", "test"):
        validate_data_dir(out / s, need_feats=True)
    assert "trainspk0-002" not in read_map(out / "train" / "utt2spk")
    assert not (out / "train" / SKIPPED_TEXT).exists()  # training data: simply left out
    # dev/test: out of the data dir, but still in what the set is scored against
    assert "testspk1-000" not in read_map(out / "test" / "utt2spk")
    assert read_map(out / "test" / SKIPPED_TEXT) == {"testspk1-000": test_words}
    assert "corrupt wav header" in read_map(out / "dev" / "bad_utts.txt")["devspk0-001"]
    assert read_reference(out / "dev")["devspk0-001"] == dev_words
    ref = read_reference(out / "test")
    hyp = {u: w for u, w in read_map(out / "test" / "text").items()}  # a perfect decode
    res = score(ref, hyp, tmp_path / "scoring", "hyp", use_sclite=False)
    n = len(test_words.split())
    assert res.dels == n and res.sub == 0 and res.ins == 0
    assert res.words == sum(len(v.split()) for v in ref.values())
