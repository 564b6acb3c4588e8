"""decode + score on the tts corpus: best_wer, RESULTS.md, and a WER an untrained model misses."""

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pipeline.nas.arch import Arch
from pipeline.train.config import load_config
from pipeline.train.stages import run_stage
from steps_py.cli import cli

REPO = Path(__file__).resolve().parents[2]
ARCH = REPO / "conf" / "arch" / "tdnn_d_tiny.json"

pytestmark = pytest.mark.slow


def _invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def _wer(decode_dir):
    return float((decode_dir / "best_wer").read_text().split()[1])


def test_decode_and_score_end_to_end(tts_data, tmp_path):
    exp = tmp_path / "exp"
    run_stage(load_config("retrain", REPO / "conf" / "debug" / "retrain.yaml",
                          ["progress=false", "max_epochs=12"], data_dir=str(tts_data),
                          exp_dir=str(exp),
                          arch=str(ARCH)))
    untrained = tmp_path / "untrained" / "retrain"
    untrained.mkdir(parents=True)
    arch = Arch.from_json(ARCH)
    k = sum(1 for _ in open(tts_data / "lang" / "units.txt"))
    torch.manual_seed(0)
    torch.save({"model": arch.build(k).state_dict(), "arch": arch.to_dict(), "num_units": k,
                "stage": "retrain"}, untrained / "best.pt")
    results = tmp_path / "RESULTS.md"
    for model in (exp / "retrain" / "avg.pt", untrained / "best.pt"):
        r = _invoke("decode", "--model", model, "--data-dir", tts_data, "--nj", 2)
        assert r.exit_code == 0, r.output
        r = _invoke("score", "--model-dir", model.parent, "--data-dir", tts_data,
                    "--results", results, "--arch-name", model.parent.parent.name)
        assert r.exit_code == 0, r.output
        assert "%WER" in r.output
    trained_dir = exp / "retrain" / "decode_test_tg"
    for name in ("best_wer", "scoring/ref.trn", "decode_info.json"):
        assert (trained_dir / name).exists(), name
    assert list((trained_dir / "scoring").glob("*.dtl")) and list(
        (trained_dir / "scoring").glob("*.pra"))
    trained, random_init = _wer(trained_dir), _wer(untrained / "decode_test_tg")
    assert trained < random_init - 10, (trained, random_init)
    table = results.read_text()
    assert "| tts | test | exp |" in table and "| tts | test | untrained |" in table
    # the test set is scored at the weight chosen on dev only
    assert len(list(trained_dir.glob("wer_*"))) == 1
    assert len(list((exp / "retrain" / "decode_dev_tg").glob("wer_*"))) == 6
    # a finished decode is not redone; a missing model is a clear error
    r = _invoke("decode", "--model", exp / "retrain" / "avg.pt", "--data-dir", tts_data)
    assert r.exit_code == 0
    r = CliRunner().invoke(cli, ["decode", "--model", str(tmp_path / "none.pt"),
                                 "--data-dir", str(tts_data)])
    assert r.exit_code == 1 and "none.pt: model not found" in r.output
