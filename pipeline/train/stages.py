"""Run a training stage end to end: stage dir, resume, the loop, and what each stage leaves.

=========  ====================================================================================
warmup     ``best.pt`` (supernet weights at the best held-out epoch)
search     ``arch.json``, ``arch.png``, ``alphas.jsonl``, ``alphas.png``, ``best.pt``
retrain    ``best.pt``, ``avg.pt`` (when ``average_last`` > 0), ``curves.png``
=========  ====================================================================================

Every stage also writes ``config.yaml`` (the resolved config, frozen: a rerun with different
settings is refused unless ``--force``), ``metrics.jsonl``, ``curves.png``, ``stage.json`` and
a done marker; a rerun of a finished stage is refused without ``--force``.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import Any, Dict

import torch
import yaml

from pipeline.errors import StnasError
from pipeline.nas.arch import Arch
from pipeline.nas.draw import draw_arch
from pipeline.nas.strategies import arch_from_strategy, random_search
from pipeline.nas.supernet import Path as NetPath
from pipeline.stage import StageDir, atomic_path, atomic_write_text, git_sha
from pipeline.train.config import TrainConfig, config_dict
from pipeline.train.distributed import barrier, init_distributed
from pipeline.train.loop import Trainer, average_checkpoints
from pipeline.train.plots import plot_alphas, plot_curves

log = logging.getLogger(__name__)
# Settings that may change between a run and its resumption without changing the result.
_RESUME_FREE = {"device", "progress", "log_every", "ckpt_every", "keep_checkpoints",
                "max_bad_batches"}


def _check_frozen_config(stage_dir: Path, cfg: TrainConfig) -> None:
    frozen = stage_dir / "config.yaml"
    if not frozen.is_file():
        return
    old = yaml.safe_load(frozen.read_text()) or {}
    new = config_dict(cfg)
    changed = sorted(k for k in new if k not in _RESUME_FREE and old.get(k) != new[k])
    if changed:
        raise StnasError(f"{stage_dir} was started with other settings ({', '.join(changed)}); "
                         "rerun with the same ones to resume, or with --force to start over")


def run_stage(cfg: TrainConfig, force: bool = False) -> Dict[str, Any]:
    """Run (or resume) ``cfg.stage``; return a summary for the command to print."""
    dist_info = init_distributed(cfg.device)
    stage_dir = Path(cfg.exp_dir) / cfg.stage
    sd = StageDir(stage_dir, force=force)
    sd.refuse_if_done()
    if force and dist_info.main:
        for name in ("ckpt", "epochs", "metrics.jsonl", "alphas.jsonl", "config.yaml",
                     "best.pt", "avg.pt", "arch.json"):
            p = stage_dir / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        sd.clear("stage")
    barrier()
    _check_frozen_config(stage_dir, cfg)
    if dist_info.main:
        atomic_write_text(stage_dir / "config.yaml",
                          yaml.safe_dump(config_dict(cfg), sort_keys=True))
    trainer = Trainer(cfg, dist_info, stage_dir)
    resumed = trainer.resume()
    inputs = [Path(cfg.data_dir) / cfg.train_set / "feats.scp",
              Path(cfg.data_dir) / cfg.train_set / "text_number"]
    if cfg.stage == "search" and not resumed:
        init = Path(cfg.init)
        trainer.load_init(init)
        inputs.append(init)
    summary: Dict[str, Any] = {"stage": cfg.stage, "dir": str(stage_dir), "resumed": resumed,
                               "train_utts": len(trainer.train),
                               "held_out_utts": len(trainer.held_out),
                               "world": dist_info.world}
    if cfg.stage == "search" and cfg.strategy in ("random", "fixed"):
        summary.update(_search_without_arch_steps(trainer))
    else:
        trainer.train_epochs()
    if cfg.stage == "search":
        summary.update(_finish_search(trainer))
    if cfg.stage == "retrain":
        summary.update(_finish_retrain(trainer))
    summary.update({"epochs": trainer.epoch, "steps": trainer.step,
                    "best_held_out_loss": trainer.schedule.best,
                    "bad_batches": trainer.bad_batches,
                    "ranks_identical": trainer.ranks_identical()})
    if not summary["ranks_identical"]:
        raise StnasError("ranks ended with different weights or architecture weights: "
                         "the data-parallel run is inconsistent")
    if dist_info.main:
        if (stage_dir / "metrics.jsonl").is_file():
            plot_curves(stage_dir / "metrics.jsonl", stage_dir / "curves.png",
                        f"{cfg.stage}: {Path(cfg.exp_dir).name}")
        sd.write_stage_json(" ".join(sys.argv), cfg.seed, inputs, extra={"summary": summary})
        sd.mark_done("stage", {"best_held_out_loss": trainer.schedule.best})
    barrier()
    return summary


def _search_without_arch_steps(trainer: Trainer) -> Dict[str, Any]:
    """``random``: short-train k sampled paths from the warmed supernet, keep the best;
    ``fixed``: nothing to train."""
    if trainer.cfg.strategy == "fixed":
        return {}
    from pipeline.train.data import make_batches, BatchStream

    def short_train(path: NetPath) -> None:
        opt = torch.optim.Adam(trainer.model.parameters(), lr=trainer.cfg.lr)
        batches = make_batches(trainer.train, trainer.cfg.max_frames, trainer.cfg.max_utts,
                               trainer.cfg.seed, 1000 + len(trainer.strategy.results),
                               min_utts=trainer.dist.world)[:trainer.cfg.random_short_steps]
        stream = BatchStream(trainer.train, batches, 0, trainer.dist.rank, trainer.dist.world)
        trainer.model.train()
        try:
            for index, batch in stream:
                batch = batch.to(trainer.device)
                opt.zero_grad(set_to_none=True)
                loss, _, _ = trainer._batch_loss(trainer.wrapped, batch, path,
                                                 len(batches[index]))
                if torch.isfinite(loss):
                    loss.backward()
                    opt.step()
        finally:
            stream.close()

    def held_out(path: NetPath) -> float:
        return trainer.held_out_loss(choice_fn=lambda gen: path)

    def progress(i: int, arch, loss: float) -> None:
        log.info("random search: candidate %d %s held-out loss %.4f", i + 1, arch, loss)
        trainer.checkpoint()  # results so far survive an interruption

    random_search(trainer.strategy, short_train, held_out, progress)
    trainer.schedule.best = min(v for _, v in trainer.strategy.results)
    return {"candidates": [[list(a), v] for a, v in trainer.strategy.results]}


def _finish_search(trainer: Trainer) -> Dict[str, Any]:
    cfg, d = trainer.cfg, trainer.dir
    indices = trainer.strategy.derive()
    arch = arch_from_strategy(trainer.strategy, indices, exp_dir=str(Path(cfg.exp_dir)),
                              epoch=trainer.epoch, seed=cfg.seed, git_sha=git_sha())
    if trainer.dist.main:
        arch.to_json(d / "arch.json")
        draw_arch(arch, d / "arch.png", trainer.num_units)
        if (d / "alphas.jsonl").is_file():
            plot_alphas(d / "alphas.jsonl", arch.candidates, d / "alphas.png",
                        f"{cfg.strategy} search: p(op) per block")
        if not (d / "best.pt").is_file():
            trainer.save_best()
    return {"arch": arch.describe(trainer.num_units), "arch_json": str(d / "arch.json")}


def _finish_retrain(trainer: Trainer) -> Dict[str, Any]:
    cfg, d = trainer.cfg, trainer.dir
    out: Dict[str, Any] = {"arch": trainer.arch.describe(trainer.num_units)}
    if cfg.average_last and trainer.dist.main:
        epochs = sorted((d / "epochs").glob("epoch-*.pt"))[-cfg.average_last:]
        if epochs:
            avg = average_checkpoints(epochs)
            trainer.model.load_state_dict(avg)
            loss = trainer.held_out_loss()
            best = torch.load(d / "best.pt", map_location="cpu", weights_only=False)
            best.update({"model": avg, "held_out_loss": loss, "averaged": [p.name for p in epochs]})
            with atomic_path(d / "avg.pt") as tmp:
                torch.save(best, tmp)
            out["avg_held_out_loss"] = loss
    return out


def load_model(path: Path, device: torch.device = torch.device("cpu")):
    """A retrained model from ``best.pt``/``avg.pt``: (network in eval mode, Arch, K)."""
    from pipeline.train.checkpoint import load_file

    state = load_file(path, required=("model", "arch", "num_units"))
    if state["arch"] is None:
        raise StnasError(f"{path}: not a retrained model (stage {state.get('stage')})")
    arch = Arch.from_dict(state["arch"], str(path))
    net = arch.build(state["num_units"])
    net.load_state_dict(state["model"])
    return net.to(device).eval(), arch, state["num_units"]
