"""A config is checked (type and range of every key) before anything is written."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.config import render
from pipeline.errors import StnasError
from pipeline.train.config import TrainConfig, load_config
from steps_py.cli import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "override, words",
    [
        ("lr=-0.001", ["'lr'", "-0.001", "out of range", "> 0"]),
        ("max_epochs=two", ["'max_epochs'", "'two'", "not an integer", ">= 1 or null"]),
        ("held_out_fraction=1.5", ["'held_out_fraction'", "in (0, 1)"]),
        ("device=gpu", ["'device'", "cpu, cuda or cuda:N"]),
        ("amp=maybe", ["'amp'", "true or false"]),
        ("strategy_conf={arch_lr: -1}", ["'strategy_conf.arch_lr'", "out of range"]),
        ("strategy_conf={arch_rate: 1}", ["unknown key 'arch_rate'", "arch_lr"]),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(tmp_path, override, words):
    exp = tmp_path / "exp"
    r = CliRunner().invoke(
        cli,
        [
            "search",
            "--config",
            str(REPO / "conf/debug/search.yaml"),
            "--data-dir",
            str(tmp_path / "data"),
            "--exp-dir",
            str(exp),
            "--set",
            override,
        ],
    )
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    for w in words:
        assert w in r.output, r.output
    assert not exp.exists()  # nothing frozen: the corrected command runs without --force


def test_yaml_file_values_are_checked_naming_the_file(tmp_path):
    conf = tmp_path / "retrain.yaml"
    conf.write_text("max_utts: 0\n")
    with pytest.raises(StnasError, match=rf"{conf}: config key 'max_utts': 0 is out of range"):
        load_config("retrain", conf)


def test_every_key_is_declared_with_help_and_defaults_pass():
    import dataclasses

    undeclared = [
        f.name
        for f in dataclasses.fields(TrainConfig)
        if f.name != "stage" and not f.metadata.get("help")
    ]
    assert not undeclared
    text = render(load_config("retrain"))
    assert "# learning rate (Adam) (allowed: > 0)\nlr: 0.001" in text
    for stage in ("warmup", "search", "retrain"):
        for corpus in ("debug", "tts", "wsj", "swbd"):
            load_config(stage, REPO / "conf" / corpus / f"{stage}.yaml")
