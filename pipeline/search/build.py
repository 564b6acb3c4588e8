"""What a training stage trains: its model, initialised from the seed, and the
:class:`~pipeline.train.hooks.TrainingHooks` that run it, put into one
:class:`~pipeline.train.loop.Trainer`.

=========  =========================================================================
warmup     the supernet of ``space``, one uniformly sampled path per step (``random``)
search     the supernet and ``strategy`` (arch steps, :class:`SearchSteps`)
retrain    the network of the ``arch`` file (:class:`FixedNetwork`)
=========  =========================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import torch
from torch import nn

from pipeline.errors import StnasError
from pipeline.nas.arch import Arch
from pipeline.nas.cost import CostModel
from pipeline.nas.latency import cached_table, load_table
from pipeline.nas.space import SearchSpace, load_space
from pipeline.nas.supernet import ArchWeights, Supernet
from pipeline.search.budget import Budget
from pipeline.search.steps import SearchSteps, SupernetSteps
from pipeline.search.strategies import StrategyConfig, make_strategy
from pipeline.train.config import TrainConfig
from pipeline.train.distributed import DistInfo
from pipeline.train.hooks import FixedNetwork, TrainingHooks
from pipeline.train.loop import Trainer
from pipeline.train.loss_parts import num_units_of


def build_trainer(cfg: TrainConfig, dist_info: DistInfo, stage_dir: Path) -> Trainer:
    """The trainer of ``cfg.stage`` in ``stage_dir``; the weights are drawn from ``cfg.seed``."""
    num_units = num_units_of(Path(cfg.data_dir))
    torch.manual_seed(cfg.seed)
    model, hooks = stage_model(cfg, num_units)
    return Trainer(cfg, dist_info, stage_dir, model, hooks)


def stage_model(cfg: TrainConfig, num_units: int) -> Tuple[nn.Module, TrainingHooks]:
    """The model ``cfg.stage`` trains (freshly initialised: seed first) and its hooks."""
    if cfg.stage == "retrain":
        if not cfg.arch:
            raise StnasError("retrain needs --arch arch.json")
        arch = Arch.from_json(cfg.arch)
        return arch.build(num_units), FixedNetwork(arch)
    space = load_space(cfg.space)
    supernet = Supernet(space, num_units)
    arch_weights = ArchWeights(space)
    name = "random" if cfg.stage == "warmup" else cfg.strategy  # warm-up: uniform paths
    strategy = make_strategy(
        name, supernet, arch_weights, StrategyConfig(seed=cfg.seed, **cfg.strategy_conf)
    )
    if cfg.stage == "search":
        strategy.budget = search_budget(cfg, space, num_units)
    steps = SupernetSteps if cfg.stage == "warmup" else SearchSteps
    return supernet, steps(supernet, arch_weights, strategy)


def search_budget(cfg: TrainConfig, space: SearchSpace, num_units: int) -> Optional[Budget]:
    """The budget of ``cfg`` (None without one), checked against ``space`` before any
    training; a latency target measures (or reads) the latency table first."""
    if not cfg.budget:
        return None
    latency, table = None, None
    if "latency" in cfg.budget:
        table = cached_table(space, num_units, cfg.latency_table)
        latency = load_table(table, space, num_units)
    budget = Budget.from_config(
        cfg.budget, cfg.budget_form, cfg.budget_weight, CostModel(space, num_units, latency)
    )
    budget.latency_table = str(table) if table else None
    return budget
