"""``stnas prep`` end to end on fake LDC trees (WSJ, Switchboard) written in the real layouts."""

import numpy as np
from click.testing import CliRunner

from pipeline.data.datadir import read_map
from pipeline.data.validate import validate_data_dir
from steps_py.cli import cli
from tests.fixtures_ldc import build_swbd, build_wsj, write_sphere


def test_wsj_prep_end_to_end(tmp_path):
    build_wsj(tmp_path / "ldc")
    # the fixture's audio is a few frames long; give every utterance 4 s so labels fit
    rng = np.random.default_rng(0)
    for wv1 in (tmp_path / "ldc").rglob("*.wv1"):
        write_sphere(wv1, (rng.normal(0, 2000, 64000)).astype(np.int16), 16000)
    out = tmp_path / "data"
    r = CliRunner().invoke(
        cli,
        ["prep", "--corpus", "wsj", "--corpus-root", str(tmp_path / "ldc"), "--data-dir", str(out)],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    for s in ("train_sp", "dev", "test"):
        validate_data_dir(out / s, need_feats=True)
    units = (out / "lang" / "units.txt").read_text().split()
    assert "SPN" in units and "AH1" in units  # <UNK> → SPN, stress kept for WSJ
    assert read_map(out / "train_sp" / "wav.scp")["011c0201"].startswith("sph2pipe -f wav -p ")
    assert "sp0.9-011c0201" in read_map(out / "train_sp" / "text_number")


def test_swbd_corpus_opt_and_clear_errors(tmp_path):
    build_swbd(tmp_path / "ldc")
    out = tmp_path / "data"
    base = [
        "prep",
        "--corpus",
        "swbd",
        "--corpus-root",
        str(tmp_path / "ldc"),
        "--data-dir",
        str(out),
        "--no-speed-perturb",
    ]
    r = CliRunner().invoke(cli, base)
    assert r.exit_code == 1 and "dev_utts=4000 leaves no training utterances" in r.output
    r = CliRunner().invoke(
        cli,
        [
            "prep",
            "--corpus",
            "tts",
            "--data-dir",
            str(tmp_path / "t"),
            "--corpus-opt",
            "no_such_option=1",
        ],
    )
    assert r.exit_code == 1 and "--corpus-opt not understood by --corpus tts" in r.output
    r = CliRunner().invoke(cli, base + ["--corpus-opt", "dev_utt=2", "--force"])
    assert r.exit_code == 1 and "not understood by --corpus swbd: dev_utt (it takes:" in r.output
    assert "dev_utts" in r.output
    r = CliRunner().invoke(cli, base + ["--corpus-opt", "dev_utts=2", "--force"])
    assert r.exit_code == 0, r.output
    for s in ("train", "dev", "test"):
        validate_data_dir(out / s, need_feats=True)  # 8 kHz audio through conf/fbank_8k.conf
    assert (out / "train" / "segments").is_file() and (out / "test" / "stm").is_file()
    assert all("-c " in v for v in read_map(out / "train" / "wav.scp").values())
