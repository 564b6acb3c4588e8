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
from typing import Tuple

import torch
from torch import nn

from pipeline.errors import StnasError
from pipeline.nas.arch import Arch
from pipeline.nas.space import load_space
from pipeline.nas.supernet import ArchWeights, Supernet
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
    steps = SupernetSteps if cfg.stage == "warmup" else SearchSteps
    return supernet, steps(supernet, arch_weights, strategy)
