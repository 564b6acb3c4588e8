"""Model averaging at the end of a retrain (the mean of the last epochs' weights, ``avg.pt``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, cast

import torch
from torch import Tensor

from pipeline.io import atomic_path
from pipeline.train.checkpoint import load_file
from pipeline.train.data import BatchStream, make_batches
from pipeline.train.greedy import greedy_per
from pipeline.train.hooks import FixedNetwork
from pipeline.train.loop import Trainer


def average_checkpoints(paths: List[Path]) -> Dict[str, Tensor]:
    """Element-wise mean of model state dicts (float64 accumulation)."""
    avg: Dict[str, Tensor] = {}
    for p in paths:
        for k, v in load_file(p).items():
            avg[k] = avg.get(k, torch.zeros_like(v, dtype=torch.float64)) + v.double()
    return {k: (v / len(paths)).to(torch.float32) for k, v in avg.items()}


def finish_retrain(trainer: Trainer) -> Dict[str, Any]:
    """What a retrain leaves besides ``best.pt``: ``avg.pt``, the mean of the last
    ``average_last`` epochs' weights, with its held-out loss."""
    cfg, d = trainer.cfg, trainer.dir
    out: Dict[str, Any] = {
        "arch": cast(FixedNetwork, trainer.hooks).arch.describe(trainer.num_units)
    }
    if cfg.average_last and trainer.dist.main:
        epochs = sorted((d / "epochs").glob("epoch-*.pt"))[-cfg.average_last :]
        if epochs:
            avg = average_checkpoints(epochs)
            trainer.model.load_state_dict(avg)
            loss = trainer.held_out_loss()
            best = load_file(d / "best.pt")
            best.update({"model": avg, "held_out_loss": loss, "averaged": [p.name for p in epochs]})
            with atomic_path(d / "avg.pt") as tmp:
                torch.save(best, tmp)
            out["avg_held_out_loss"] = loss
    if trainer.dist.main:
        if not out.get("avg_held_out_loss"):  # no average: the best epoch's weights
            best = load_file(d / "best.pt")
            trainer.model.load_state_dict(best["model"])
        out["held_out"] = held_out_metrics(trainer)
    return out


def held_out_metrics(trainer: Trainer) -> Dict[str, Any]:
    """The two low-variance measures of the final model on the held-out set: CTC-CRF loss
    (``-log p(l|x)``) per output frame and greedy PER with its 95 % interval."""
    cfg = trainer.cfg
    batches = make_batches(trainer.held_out, cfg.max_frames, cfg.max_utts, cfg.seed, 0)
    stream = BatchStream(trainer.held_out, batches, 0, 0, 1)
    try:
        per = greedy_per(trainer.model, (b.to(trainer.device) for _, b in stream))
    finally:
        stream.close()
    return {"ctc_crf_loss_per_frame": trainer.held_out_loss(), **per}
