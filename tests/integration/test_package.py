"""stnas package → a directory that transcribes and exports with nothing else: on the test set
it gives the very hypotheses stnas decode gave; a changed file is refused, naming it."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.data.datadir import read_map
from pipeline.manifest import sha256_file
from pipeline.stages.train import run_training
from pipeline.train.config import load_config
from steps_py.cli import cli

REPO = Path(__file__).resolve().parents[2]
ARCH = REPO / "conf" / "arch" / "tdnn_d_tiny.json"

pytestmark = pytest.mark.slow


def _invoke(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r


def test_a_package_is_all_decoding_needs(tts_data, tmp_path):
    exp = tmp_path / "exp"
    run_training(
        load_config(
            "retrain",
            REPO / "conf" / "debug" / "retrain.yaml",
            ["progress=false", "max_epochs=3"],
            data_dir=str(tts_data),
            exp_dir=str(exp),
            arch=str(ARCH),
        )
    )
    model = exp / "retrain" / "avg.pt"
    # not decoded yet: no graph (unless another test built it) and no dev decode to take the
    # LM weight and word penalty from
    r = _invoke("package", "--model", model, "--out", tmp_path / "early")
    assert r.exit_code == 1 and "stnas decode" in r.output, r.output
    assert not (tmp_path / "early").exists()
    for args in (
        ["decode", "--model", model, "--data-dir", tts_data, "--nj", 2],
        ["score", "--model-dir", model.parent, "--data-dir", tts_data, "--results", ""],
        ["package", "--model", model, "--out", tmp_path / "made" / "pkg"],
    ):
        r = _invoke(*args)
        assert r.exit_code == 0, r.output
    tuned = json.loads((model.parent / "decode_dev_tg" / "tuned.json").read_text())
    setting = f"{tuned['lm_weight']:g}_{tuned['word_penalty']:g}"
    decoded = read_map(model.parent / "decode_test_tg" / "hyp" / f"{setting}.txt", True)
    assert any(decoded.values())  # words to compare, not only empty hypotheses
    best = (model.parent / "decode_test_tg" / "best_wer").read_text()

    # handed on: another place, the experiment gone
    pkg = tmp_path / "elsewhere" / "tts-model"
    shutil.move(tmp_path / "made" / "pkg", pkg)
    shutil.rmtree(exp)
    manifest = json.loads((pkg / "manifest.json").read_text())["files"]
    assert sorted(manifest) == sorted(p.name for p in pkg.iterdir() if p.name != "manifest.json")
    assert {"model.safetensors", "TLG.fst", "lm.arpa", "units.txt", "README.md"} <= set(manifest)
    for name, entry in manifest.items():
        assert sha256_file(pkg / name) == entry["sha256"], name
    local = [str(tmp_path), str(tts_data), str(Path(tts_data).resolve()), str(REPO)]
    for f in pkg.iterdir():  # no path of the making machine, in any file
        data = f.read_bytes()
        assert not any(root.encode() in data for root in local), f.name
    card = (pkg / "README.md").read_text()
    wer = best.split()[1]
    assert f"| test | {wer} | [" in card and "| dev | " in card, card
    assert "multiply-adds per second of audio" in card and "look-ahead" in card
    assert "stnas package --model" in card and "train_sp" in card

    out = tmp_path / "out"
    r = _invoke(
        "transcribe",
        "--model",
        pkg,
        "--utt2spk",
        Path(tts_data) / "test" / "utt2spk",
        "--out-dir",
        out,
        Path(tts_data) / "test" / "wav.scp",
    )
    assert r.exit_code == 0, r.output
    assert read_map(out / "text", allow_empty_value=True) == decoded
    r = _invoke("export", "--model", pkg, "--out", tmp_path / "am.pt")
    assert r.exit_code == 0 and "max |Δ log-prob| 0.0e+00" in r.output, r.output
    assert not (pkg / "am.pt").exists() and sorted(p.name for p in pkg.iterdir()) == sorted(
        [*manifest, "manifest.json"]
    )

    # a changed file is refused, naming it; so is a missing one
    bad = tmp_path / "bad"
    shutil.copytree(pkg, bad)
    words = (bad / "words.txt").read_bytes()
    (bad / "words.txt").write_bytes(words[:10] + bytes([words[10] ^ 1]) + words[11:])
    r = _invoke("transcribe", "--model", bad, Path(tts_data) / "test" / "wav.scp")
    assert r.exit_code == 1 and f"{bad / 'words.txt'}: refused: sha256" in r.output, r.output
    (bad / "words.txt").write_bytes(words)
    (bad / "lm.arpa").unlink()
    r = _invoke("export", "--model", bad)
    assert r.exit_code == 1 and f"{bad / 'lm.arpa'}: missing" in r.output, r.output
