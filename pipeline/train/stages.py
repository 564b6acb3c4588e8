"""Run a training stage end to end: stage dir, resume, the loop, and what each stage leaves.

=========  ====================================================================================
warmup     ``best.pt`` (supernet weights at the best held-out epoch)
search     ``arch.json``, ``arch.png``, ``alphas.jsonl``, ``alphas.png``, ``best.pt``
retrain    ``best.pt``, ``avg.pt`` (when ``average_last`` > 0), ``curves.png``
=========  ====================================================================================

Every stage also writes ``config.yaml`` (the resolved config), ``inputs.json`` (fingerprints of
its inputs and the options that change results, :mod:`pipeline.stage`), ``metrics.jsonl``,
``curves.png``, ``stage.json`` and a done marker. A rerun of a finished stage with the same
inputs and options does nothing ("already done"); with other ones it is refused, naming what
changed, until ``--force``, which starts the stage over and removes the stages built from it
(a search built from this warm-up, a retrain built from this search, the decodes of a
retrained model). An interrupted stage resumes only with the same inputs and options.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Any, Dict

import torch
import yaml

from pipeline.errors import StaleResultError, StnasError
from pipeline.locks import dir_locks
from pipeline.logfile import stage_log
from pipeline.nas.arch import Arch
from pipeline.nas.diagnostics import op_losses
from pipeline.nas.draw import draw_arch
from pipeline.nas.strategies import arch_from_strategy, random_search
from pipeline.nas.supernet import Path as NetPath
from pipeline.stage import (StageDir, atomic_path, atomic_write_text, git_sha,
                            input_fingerprints, remove_dependents)
from pipeline.threads import pin_threads
from pipeline.train.config import SCRATCH, TrainConfig, config_dict
from pipeline.train.distributed import barrier, init_distributed
from pipeline.train.loop import Trainer, average_checkpoints
from pipeline.train.plots import plot_alphas, plot_curves, read_jsonl
from pipeline.train.search_report import summarise, write_report

log = logging.getLogger(__name__)
# Settings that may change between a run and its resumption without changing the result.
_RESUME_FREE = {"device", "progress", "log_every", "ckpt_every", "keep_checkpoints",
                "max_bad_batches", "num_threads", "diagnostics"}
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
        inputs["arch"] = Path(cfg.arch)
    else:
        space = Path(cfg.space)
        if space.suffix == ".json" and space.is_file():
            inputs["space"] = space
    if cfg.stage == "search" and cfg.init != SCRATCH:
        inputs["init"] = Path(cfg.init)
    if cfg.strategy_conf.get("fixed_arch") and cfg.stage != "retrain":
        inputs["fixed_arch"] = Path(cfg.strategy_conf["fixed_arch"])
    return inputs


def stage_options(cfg: TrainConfig) -> Dict[str, Any]:
    """The settings that change what a stage computes (not where, and not how it logs)."""
    return {k: v for k, v in config_dict(cfg).items() if k not in _RESUME_FREE | _LOCATIONS}


def _fingerprints(cfg: TrainConfig) -> Dict[str, Dict[str, str]]:
    paths = stage_inputs(cfg)
    missing = [f"{name} {p}" for name, p in paths.items() if not p.is_file()]
    if missing:
        raise StnasError(f"{cfg.stage}: missing input(s): {'; '.join(missing)}"
                         + (" (run 'stnas warmup' first)" if "init" in paths and
                            not paths["init"].is_file() else ""))
    return input_fingerprints(paths)


def _up_to_date(sd: StageDir) -> Dict[str, Any]:
    return {**(sd.recorded().get("summary") or {}), "stage": sd.root.name, "dir": str(sd.root),
            "up_to_date": True}


def run_stage(cfg: TrainConfig, force: bool = False) -> Dict[str, Any]:
    """Run (or resume) ``cfg.stage``; return a summary for the command to print.

    Raises:
        StaleResultError: the stage (finished or interrupted) was built from other inputs or
            options; ``force`` starts it over.
    """
    dist_info = init_distributed(cfg.device)
    stage_dir = Path(cfg.exp_dir) / cfg.stage
    locks = []
    if dist_info.main:  # one process per stage dir; what it reads is not redone meanwhile
        locks = [(stage_dir, False), (Path(cfg.data_dir), True)]
        if cfg.stage == "search" and cfg.init not in (None, SCRATCH):
            locks.append((Path(cfg.init).parent, True))
    with dir_locks(*locks, what=" ".join(sys.argv)), contextlib.ExitStack() as stack:
        if dist_info.main:
            stack.enter_context(stage_log(stage_dir / "log" / f"{cfg.stage}.log"))
        return _run_stage(cfg, dist_info, stage_dir, force)


def _run_stage(cfg: TrainConfig, dist_info, stage_dir: Path, force: bool) -> Dict[str, Any]:
    threads = pin_threads(cfg.num_threads)
    sd = StageDir(stage_dir, force=force)
    inputs, options = _fingerprints(cfg), stage_options(cfg)
    started_with = sd.recorded().get("torch_threads")
    if not force:
        changed = sd.changes(inputs, options)
        if changed:
            done = sd.is_done("stage")
            raise StaleResultError(
                f"{stage_dir} {'was built' if done else 'was started'} from other inputs or "
                f"with other options ({'; '.join(changed)}); rerun with --force to "
                + ("redo it (this also removes the stages built from it)" if done
                   else "start it over"))
        if sd.is_done("stage"):
            return _up_to_date(sd)
    if force and dist_info.main:
        for dep in remove_dependents(stage_dir):
            log.warning("removed %s: it was built from %s, which is redone", dep, stage_dir)
        sd.reset()
    barrier()
    if started_with not in (None, threads) and not force:
        log.warning("%s was started with %s torch threads and goes on with %d: the result "
                    "will not be bit-identical to an uninterrupted run (set num_threads=%s to "
                    "match)", stage_dir, started_with, threads, started_with)
    if dist_info.main:
        atomic_write_text(stage_dir / "config.yaml",
                          yaml.safe_dump(config_dict(cfg), sort_keys=True))
        sd.record_inputs(inputs, options)
    trainer = Trainer(cfg, dist_info, stage_dir)
    resumed = trainer.resume()
    if cfg.stage == "search" and not resumed and cfg.init != SCRATCH:
        trainer.load_init(Path(cfg.init))
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
                    "stopped_by": trainer.schedule.stopped_by,
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
        sd.write_stage_json(" ".join(sys.argv), cfg.seed, extra={"summary": summary},
                            fingerprints=inputs, options=options)
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
                loss, _ = trainer._batch_loss(trainer.wrapped, batch, path,
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
    history = trainer.arch_history if trainer.strategy.has_arch_step else None
    arch = arch_from_strategy(trainer.strategy, indices, history, exp_dir=str(Path(cfg.exp_dir)),
                              epoch=trainer.epoch, seed=cfg.seed, git_sha=git_sha())
    losses = warm_losses = None
    if history and cfg.diagnostics:  # the supernet's own ranking of every op
        def held_out(fn):
            return trainer.held_out_loss(choice_fn=fn)
        if cfg.init != SCRATCH:  # before the search trained some ops more than others
            searched = {k: v.clone() for k, v in trainer.model.state_dict().items()}
            trainer.load_init(Path(cfg.init))
            warm_losses = op_losses(held_out, [[1.0 / len(c)] * len(c) for c in arch.candidates])
            trainer.model.load_state_dict(searched)
        losses = op_losses(held_out, arch.probabilities)
    out = {"arch": arch.describe(trainer.num_units), "arch_json": str(d / "arch.json")}
    if trainer.dist.main:
        arch.to_json(d / "arch.json")
        draw_arch(arch, d / "arch.png", trainer.num_units)
        if (d / "alphas.jsonl").is_file():
            plot_alphas(d / "alphas.jsonl", arch.candidates, d / "alphas.png",
                        f"{cfg.strategy} search: p(op) per block")
        if not (d / "best.pt").is_file():
            trainer.save_best()
        if history:
            warm_dir = Path(cfg.init).parent if cfg.init != SCRATCH else None
            warm = StageDir(warm_dir).recorded() if warm_dir else {}
            summary = summarise(arch, warm_losses, losses, read_jsonl(d / "alphas.jsonl"),
                                read_jsonl(warm_dir / "metrics.jsonl") if warm_dir else [],
                                read_jsonl(d / "metrics.jsonl"))
            out["report"] = str(write_report(d, arch, summary,
                                             (warm.get("summary") or {}).get("stopped_by", ""),
                                             trainer.schedule.stopped_by))
            out["diagnostics"] = {k: summary[k] for k in ("decided", "stable",
                                                          "argmax_changes_last_epoch")}
            if "agreement" in summary:
                out["diagnostics"]["top1_agrees"] = [a["top1_agrees"]
                                                     for a in summary["agreement"]]
    return out


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
