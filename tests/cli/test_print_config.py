"""``stnas <stage> --print-config``: the resolved config as YAML, equal to what the stage would
run with, each key with its help; nothing is written."""

import dataclasses
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipeline.decode import defaults
from pipeline.decode.run import DecodeConfig
from pipeline.train.config import load_config
from steps_py.cli import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stage", ["warmup", "search", "retrain"])
def test_training_stage_prints_the_config_it_would_run(tmp_path, stage):
    conf = REPO / "conf" / "debug" / f"{stage}.yaml"
    exp = tmp_path / "exp"
    args = [
        stage,
        "--config",
        str(conf),
        "--data-dir",
        str(tmp_path / "d"),
        "--exp-dir",
        str(exp),
        "--set",
        "lr=0.005",
        "--print-config",
    ]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    printed = yaml.safe_load(r.output)
    want = dataclasses.asdict(
        load_config(stage, conf, ["lr=0.005"], data_dir=str(tmp_path / "d"), exp_dir=str(exp))
    )
    assert printed == want
    assert printed["lr"] == 0.005
    assert "# learning rate (Adam) (allowed: > 0)" in r.output
    assert not exp.exists()  # printing runs nothing


def test_decode_prints_defaults_from_one_place(tmp_path):
    r = CliRunner().invoke(
        cli,
        [
            "decode",
            "--model",
            str(tmp_path / "m.pt"),
            "--data-dir",
            str(tmp_path),
            "--print-config",
        ],
    )
    assert r.exit_code == 0, r.output
    printed = yaml.safe_load(r.output)
    assert printed["beam"] == defaults.BEAM and printed["max_active"] == defaults.MAX_ACTIVE
    assert printed["lm_weights"] == list(defaults.LM_WEIGHTS)
    assert printed["word_penalties"] == list(defaults.WORD_PENALTIES)
    assert set(printed) == {f.name for f in dataclasses.fields(DecodeConfig)}


def test_bad_decode_option_is_refused_naming_the_key(tmp_path):
    model = tmp_path / "m.pt"
    model.write_bytes(b"")
    r = CliRunner().invoke(
        cli, ["decode", "--model", str(model), "--data-dir", str(tmp_path), "--max-active", "0"]
    )
    assert r.exit_code == 1
    assert "config key 'max_active': 0 is out of range; allowed: >= 1" in r.output
    assert not (tmp_path / "decode_dev_tg").exists()


def test_prep_prints_its_resolved_config(tmp_path):
    r = CliRunner().invoke(
        cli,
        [
            "prep",
            "--config",
            str(REPO / "conf" / "debug" / "prep.yaml"),
            "--data-dir",
            str(tmp_path / "data"),
            "--print-config",
        ],
    )
    assert r.exit_code == 0, r.output
    printed = yaml.safe_load(r.output)
    assert printed["hours"] == yaml.safe_load((REPO / "conf/debug/prep.yaml").read_text())["hours"]
    # chosen by the recordings' sample rate when prep runs (tests/cli/test_prep_own_data.py)
    assert printed["fbank_conf"] is None and printed["resample"] is None
    assert printed["g2p"] == "none" and printed["lm_text_filter"] == "auto"
    assert not (tmp_path / "data").exists()
