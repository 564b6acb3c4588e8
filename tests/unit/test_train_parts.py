"""Training building blocks: data split and batches, checkpoints, schedule, config."""

import pytest
import torch

from pipeline.errors import StnasError
from pipeline.train.checkpoint import (
    CheckpointError,
    list_checkpoints,
    load_latest,
    save_checkpoint,
)
from pipeline.train.config import load_config
from pipeline.train.data import Utterance, make_batches, split_held_out
from pipeline.train.schedule import PlateauSchedule


def _utts(n_rec=40):
    out = []
    for r in range(n_rec):
        for prefix in ("", "sp0.9-", "sp1.1-"):
            out.append(
                Utterance(f"{prefix}rec{r:03d}", "x", 50 + (r * 37) % 400, (1, 2), f"rec{r:03d}")
            )
    return out


def test_held_out_split_keeps_perturbed_copies_together_and_is_deterministic():
    utts = _utts()
    train, held = split_held_out(utts, 0.1, seed=3)
    assert {u.recording for u in train}.isdisjoint({u.recording for u in held})
    assert len({u.recording for u in held}) == 4 and len(held) == 12
    assert split_held_out(utts, 0.1, seed=3) == (train, held)
    assert split_held_out(utts, 0.1, seed=4)[1] != held


def test_batches_bound_padded_frames_and_cover_everything():
    utts = _utts()
    batches = make_batches(utts, max_frames=1500, max_utts=8, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(len(utts)))
    for b in batches:
        longest = max(utts[i].num_frames for i in b)
        assert len(b) <= 8 and (len(b) * longest <= 1500 or len(b) == 1)
    assert make_batches(utts, 1500, 8, 1, 0) == batches
    assert make_batches(utts, 1500, 8, 1, 1) != batches  # a new order each epoch
    two = make_batches(utts, 1500, 8, 1, 0, min_utts=2)
    assert all(len(b) >= 2 for b in two)


def test_checkpoints_fall_back_to_the_previous_good_one(tmp_path, caplog):
    for step in (5, 10, 15, 20):
        save_checkpoint(tmp_path, step, {"model": {"w": torch.tensor([float(step)])}}, keep=3)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step-00000010.pt",
        "step-00000015.pt",
        "step-00000020.pt",
    ]
    (tmp_path / "step-00000020.pt").write_bytes(b"not a checkpoint")
    path, state = load_latest(tmp_path, required=("model",))
    assert path.name == "step-00000015.pt" and state["model"]["w"].item() == 15.0
    assert "step-00000020.pt" in caplog.text
    for p in list_checkpoints(tmp_path):
        p.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        load_latest(tmp_path)


def test_retrain_schedule_decays_after_min_epochs_and_stops():
    s = PlateauSchedule(lr=1e-3, decay=0.1, patience=1, min_epochs=3, stop_lr=1e-5)
    losses = [5, 4, 4.5, 4.6, 3.9, 4.0, 4.0]
    go = [s.end_epoch(x) for x in losses]
    # epoch 3 (no improvement) is before min_epochs: no decay; epochs 4, 6, 7 stall: ×0.1 each
    assert go == [True, True, True, True, True, True, False]
    assert s.lr == pytest.approx(1e-6) and s.best == 3.9


def test_warmup_schedule_stops_after_three_stalled_epochs():
    s = PlateauSchedule(lr=1e-3, decay=1.0, stop_patience=3)
    assert [s.end_epoch(x) for x in (3, 2, 2.5, 2.4, 2.1)] == [True, True, True, True, False]
    assert s.lr == 1e-3


def test_config_layers_and_errors(tmp_path):
    f = tmp_path / "retrain.yaml"
    f.write_text("lamb: 0.1\nmax_epochs: 4\n")
    cfg = load_config("retrain", f, ["lr=2e-3", "max_utts=8"], exp_dir="exp/x")
    assert (cfg.lamb, cfg.max_epochs, cfg.lr, cfg.max_utts, cfg.loss) == (
        0.1,
        4,
        2e-3,
        8,
        "ctc_crf",
    )
    assert cfg.arch == "exp/x/search/arch.json" and cfg.min_epochs == 10
    with pytest.raises(StnasError, match="unknown config key 'colour'"):
        load_config("warmup", None, ["colour=red"])
    f.write_text("lamda: 0.1\n")
    with pytest.raises(StnasError, match=r"retrain.yaml: unknown key\(s\) \['lamda'\]"):
        load_config("retrain", f)


@pytest.mark.parametrize("corpus", ["tts", "debug", "wsj", "swbd"])
def test_shipped_stage_configs_load(corpus):
    from pathlib import Path

    from pipeline.nas.space import load_space

    conf = Path(__file__).resolve().parents[2] / "conf" / corpus
    for stage in ("warmup", "search", "retrain"):
        cfg = load_config(stage, conf / f"{stage}.yaml")
        if stage != "retrain":
            load_space(cfg.space)
    retrain = load_config("retrain", conf / "retrain.yaml")
    assert retrain.loss == "ctc_crf"
    assert retrain.lamb == {"swbd": 0.1}.get(corpus, 0.01)
