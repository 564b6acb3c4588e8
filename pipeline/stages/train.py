"""The training stages (warmup, search, retrain): their declaration and body.

=========  ====================================================================================
warmup     ``best.pt`` (supernet weights at the best held-out epoch)
search     ``arch.json``, ``arch.png``, ``alphas.jsonl``, ``alphas.png``, ``best.pt``
retrain    ``best.pt``, ``avg.pt`` (when ``average_last`` > 0), ``curves.png``
=========  ====================================================================================

Every stage also writes ``config.yaml`` (the resolved config), ``inputs.json`` (fingerprints of
its inputs and the options that change results, :mod:`pipeline.stages.record`), ``metrics.jsonl``,
``curves.png``, ``stage.json`` and a done marker. A rerun of a finished stage with the same
inputs and options does nothing ("already done"); with other ones it is refused, naming what
changed, until ``--force``, which starts the stage over and removes the stages built from it
(a search built from this warm-up, a retrain built from this search, the decodes of a
retrained model). An interrupted stage resumes only with the same inputs and options.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict

from pipeline.errors import StnasError
from pipeline.search.build import build_trainer
from pipeline.search.run import run_search
from pipeline.stages.runner import Stage, StageRun, run_stage
from pipeline.threads import pin_threads
from pipeline.train.average import finish_retrain
from pipeline.train.config import SCRATCH, TrainConfig, config_dict
from pipeline.train.distributed import DistInfo, init_distributed
from pipeline.train.plots import plot_curves

log = logging.getLogger(__name__)
# Settings that may change between a run and its resumption without changing the result.
_RESUME_FREE = {
    "device",
    "progress",
    "log_every",
    "ckpt_every",
    "keep_checkpoints",
    "max_bad_batches",
    "num_threads",
    "diagnostics",
}
# Paths whose *content* is an input (fingerprinted in stage_inputs), not an option.
_LOCATIONS = {"data_dir", "exp_dir", "arch", "init"}


def stage_inputs(cfg: TrainConfig) -> Dict[str, Path]:
    """The files a training stage is built from, by name (their content is fingerprinted)."""
    data = Path(cfg.data_dir) / cfg.train_set
    inputs = {"features": data / "feats.scp", "labels": data / "text_number"}
    if cfg.loss == "ctc_crf":
        inputs["den_graph"] = Path(cfg.data_dir) / "den" / "den.fst"
    if (data / "weight").is_file():
        inputs["path_weights"] = data / "weight"
    if cfg.stage == "retrain":
        inputs["arch"] = Path(cfg.arch or "")
    else:
        space = Path(cfg.space)
        if space.suffix == ".json" and space.is_file():
            inputs["space"] = space
    if cfg.stage == "search" and cfg.init != SCRATCH:
        inputs["init"] = Path(cfg.init or "")
    if cfg.strategy_conf.get("fixed_arch") and cfg.stage != "retrain":
        inputs["fixed_arch"] = Path(cfg.strategy_conf["fixed_arch"])
    return inputs


def stage_options(cfg: TrainConfig) -> Dict[str, Any]:
    """The settings that change what a stage computes (not where, and not how it logs)."""
    return {k: v for k, v in config_dict(cfg).items() if k not in _RESUME_FREE | _LOCATIONS}


def _checked_inputs(cfg: TrainConfig) -> Dict[str, Path]:
    paths = stage_inputs(cfg)
    missing = [f"{name} {p}" for name, p in paths.items() if not p.is_file()]
    if missing:
        raise StnasError(
            f"{cfg.stage}: missing input(s): {'; '.join(missing)}"
            + (
                " (run 'stnas warmup' first)"
                if "init" in paths and not paths["init"].is_file()
                else ""
            )
        )
    return paths


def run_training(cfg: TrainConfig, force: bool = False) -> Dict[str, Any]:
    """Run (or resume) ``cfg.stage``; return a summary for the command to print.

    Raises:
        StaleResultError: the stage (finished or interrupted) was built from other inputs or
            options; ``force`` starts it over.
    """
    dist_info = init_distributed(cfg.device)
    threads = pin_threads(cfg.num_threads)  # before inputs.json records the thread count
    stage_dir = Path(cfg.exp_dir) / cfg.stage
    reads = [Path(cfg.data_dir)]
    if cfg.stage == "search" and cfg.init not in (None, SCRATCH):
        reads.append(Path(cfg.init).parent)
    stage = Stage(
        name=cfg.stage,
        dir=stage_dir,
        inputs=lambda: _checked_inputs(cfg),
        options=stage_options(cfg),
        config=config_dict(cfg),
        seed=cfg.seed,
        body=lambda run: _train(run, cfg, dist_info, threads),
        main=dist_info.main,
    )
    return run_stage(stage, force, reads=reads)


def _train(run: StageRun, cfg: TrainConfig, dist_info: DistInfo, threads: int) -> Dict[str, Any]:
    """The body of a training stage: the loop, resumed where it stopped, and what each stage
    leaves (the architecture of a search, the averaged model of a retrain)."""
    started_with = run.previous.get("torch_threads")
    if started_with not in (None, threads) and not run.force:
        log.warning(
            "%s was started with %s torch threads and goes on with %d: the result "
            "will not be bit-identical to an uninterrupted run (set num_threads=%s to "
            "match)",
            run.dir,
            started_with,
            threads,
            started_with,
        )
    trainer = build_trainer(cfg, dist_info, run.dir)
    resumed = trainer.resume()
    if cfg.stage == "search" and not resumed and cfg.init != SCRATCH:
        trainer.load_init(Path(str(cfg.init)))
    summary: Dict[str, Any] = {
        "stage": cfg.stage,
        "dir": str(run.dir),
        "resumed": resumed,
        "train_utts": len(trainer.train),
        "held_out_utts": len(trainer.held_out),
        "world": dist_info.world,
    }
    if cfg.stage == "search":
        summary.update(run_search(trainer))
    else:
        trainer.train_epochs()
    if cfg.stage == "retrain":
        summary.update(finish_retrain(trainer))
    summary.update(
        {
            "epochs": trainer.epoch,
            "steps": trainer.step,
            "stopped_by": trainer.schedule.stopped_by,
            "best_held_out_loss": trainer.schedule.best,
            "bad_batches": trainer.bad_batches,
            "ranks_identical": trainer.ranks_identical(),
        }
    )
    if not summary["ranks_identical"]:
        raise StnasError(
            "ranks ended with different weights or architecture weights: "
            "the data-parallel run is inconsistent"
        )
    if dist_info.main and (run.dir / "metrics.jsonl").is_file():
        plot_curves(
            run.dir / "metrics.jsonl",
            run.dir / "curves.png",
            f"{cfg.stage}: {Path(cfg.exp_dir).name}",
        )
    run.done_info = {"best_held_out_loss": trainer.schedule.best}
    return summary
