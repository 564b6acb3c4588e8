"""The search stage's own part: its epochs (arch steps: :mod:`pipeline.search.steps`), random
search, and the architecture, report and plots a search leaves.

``run_search`` is called by the training stage (:mod:`pipeline.stages.train`) with a
:class:`~pipeline.train.loop.Trainer` built on the supernet, its hooks the search's
(:class:`~pipeline.search.steps.SearchSteps`: the strategy and ``arch_history``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, cast

import torch

from pipeline.io import atomic_write_text, git_sha
from pipeline.nas.cost import arch_costs
from pipeline.nas.draw import draw_arch
from pipeline.nas.supernet import Path as NetPath
from pipeline.search.derive import arch_from_strategy
from pipeline.search.diagnostics import op_losses
from pipeline.search.report import summarise, write_report
from pipeline.search.steps import SearchSteps
from pipeline.search.strategies import RandomSearch, random_search
from pipeline.train.config import SCRATCH
from pipeline.train.data import BatchStream, make_batches
from pipeline.train.loop import Trainer
from pipeline.train.plots import plot_alphas, read_jsonl

log = logging.getLogger(__name__)


def _steps(trainer: Trainer) -> SearchSteps:
    """The search's side of ``trainer`` (its strategy and per-epoch record)."""
    if not isinstance(trainer.hooks, SearchSteps):
        raise TypeError(f"{trainer.dir}: not a trainer built for the search stage")
    return trainer.hooks


def run_search(trainer: Trainer) -> Dict[str, Any]:
    """Search: epochs of arch and weight steps, or the strategy's own procedure (random,
    fixed); then the architecture and what goes with it. Returns the summary's search part."""
    out: Dict[str, Any] = {}
    if trainer.cfg.strategy in ("random", "fixed"):
        out.update(_search_without_arch_steps(trainer))
    else:
        trainer.train_epochs()
    out.update(_finish_search(trainer))
    return out


def _search_without_arch_steps(trainer: Trainer) -> Dict[str, Any]:
    """``random``: short-train k sampled paths from the warmed supernet, keep the best;
    ``fixed``: nothing to train."""
    if trainer.cfg.strategy == "fixed":
        return {}
    strategy = cast(RandomSearch, _steps(trainer).strategy)

    def short_train(path: NetPath) -> None:
        opt = torch.optim.Adam(trainer.model.parameters(), lr=trainer.cfg.lr)
        batches = make_batches(
            trainer.train,
            trainer.cfg.max_frames,
            trainer.cfg.max_utts,
            trainer.cfg.seed,
            1000 + len(strategy.results),
            min_utts=trainer.dist.world,
        )[: trainer.cfg.random_short_steps]
        stream = BatchStream(trainer.train, batches, 0, trainer.dist.rank, trainer.dist.world)
        trainer.model.train()
        try:
            for index, batch in stream:
                batch = batch.to(trainer.device)
                opt.zero_grad(set_to_none=True)
                loss, _ = trainer.batch_loss(trainer.wrapped, batch, path, len(batches[index]))
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

    random_search(strategy, short_train, held_out, progress)
    trainer.schedule.best = min(v for _, v in strategy.results)
    return {"candidates": [[list(a), v] for a, v in strategy.results]}


def _finish_search(trainer: Trainer) -> Dict[str, Any]:
    cfg, d = trainer.cfg, trainer.dir
    steps = _steps(trainer)
    strategy = steps.strategy
    indices = strategy.derive()
    history = steps.arch_history if strategy.has_arch_step else None
    arch = arch_from_strategy(
        strategy,
        indices,
        history,
        exp_dir=str(Path(cfg.exp_dir)),
        epoch=trainer.epoch,
        seed=cfg.seed,
        git_sha=git_sha(),
    )
    if strategy.budget is not None:  # refuses before anything is written
        strategy.budget.check(strategy.supernet.space.index_of(arch.ops))
    else:
        arch.costs = {"costs": arch_costs(arch, trainer.num_units)}
    losses = warm_losses = None
    probs = arch.probabilities
    assert probs is not None  # a searched architecture carries its p
    if history and cfg.diagnostics:  # the supernet's own ranking of every op

        def held_out(fn):
            return trainer.held_out_loss(choice_fn=fn)

        if cfg.init != SCRATCH:  # before the search trained some ops more than others
            searched = {k: v.clone() for k, v in trainer.model.state_dict().items()}
            trainer.load_init(Path(str(cfg.init)))
            warm_losses = op_losses(held_out, [[1.0 / len(c)] * len(c) for c in arch.candidates])
            trainer.model.load_state_dict(searched)
        losses = op_losses(held_out, probs)
    out: Dict[str, Any] = {
        "arch": arch.describe(trainer.num_units),
        "arch_json": str(d / "arch.json"),
        "costs": arch.costs,
    }
    if trainer.dist.main:
        table = strategy.budget.latency_table if strategy.budget is not None else None
        if table:  # the table the latency costs came from, with the search
            atomic_write_text(d / "latency.json", Path(table).read_text())
        arch.to_json(d / "arch.json")
        draw_arch(arch, d / "arch.png", trainer.num_units)
        if (d / "alphas.jsonl").is_file():
            plot_alphas(
                d / "alphas.jsonl",
                arch.candidates,
                d / "alphas.png",
                f"{cfg.strategy} search: p(op) per block",
            )
        if not (d / "best.pt").is_file():
            trainer.save_best()
        if history:
            warm_dir = Path(str(cfg.init)).parent if cfg.init != SCRATCH else None
            warm_json = warm_dir / "stage.json" if warm_dir else None
            warm = json.loads(warm_json.read_text()) if warm_json and warm_json.is_file() else {}
            summary = summarise(
                arch,
                warm_losses,
                losses,
                read_jsonl(d / "alphas.jsonl"),
                read_jsonl(warm_dir / "metrics.jsonl") if warm_dir else [],
                read_jsonl(d / "metrics.jsonl"),
            )
            out["report"] = str(
                write_report(
                    d,
                    arch,
                    summary,
                    (warm.get("summary") or {}).get("stopped_by", ""),
                    trainer.schedule.stopped_by,
                )
            )
            out["diagnostics"] = {
                k: summary[k] for k in ("decided", "stable", "argmax_changes_last_epoch")
            }
            if "agreement" in summary:
                out["diagnostics"]["top1_agrees"] = [a["top1_agrees"] for a in summary["agreement"]]
    return out
