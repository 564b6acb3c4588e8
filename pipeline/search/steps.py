"""The supernet stages' side of the training loop (:class:`~pipeline.train.hooks.TrainingHooks`).

* :class:`SupernetSteps` (warm-up): the supernet along one path per weight step, drawn by the
  strategy (``random``: uniform), evaluated on paths drawn by it; α is saved, not trained.
* :class:`SearchSteps` (search): as the strategy says (paper Algorithm 1); before each weight
  step one arch step on the next held-out batch (cycled, :func:`held_out_cycle`) when the
  strategy has one, with ``alphas.jsonl``, the α gradient statistics (:class:`GradStats`),
  p and held-out loss per epoch (``arch_history``, from which the architecture is derived),
  block statistics in TensorBoard and SNAS's temperature τ in the epoch rows.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor

from pipeline.nas.supernet import ArchWeights, Choice, Supernet
from pipeline.search.diagnostics import GradStats, block_stats
from pipeline.search.strategies import Strategy
from pipeline.train.data import Batch, held_out_cycle
from pipeline.train.distributed import all_sum
from pipeline.train.hooks import TrainingHooks
from pipeline.train.loop import Trainer
from pipeline.train.loss_parts import per_frame

log = logging.getLogger(__name__)


class SupernetSteps(TrainingHooks):
    """A supernet run by ``strategy``, without arch steps (the warm-up)."""

    find_unused_parameters = True  # one path per step leaves the other ops without gradient

    def __init__(self, supernet: Supernet, arch_weights: ArchWeights, strategy: Strategy) -> None:
        self.supernet, self.arch_weights, self.strategy = supernet, arch_weights, strategy
        self.arch_history: List[Dict[str, Any]] = []  # search: p and held-out loss per epoch
        self.grad_stats = GradStats([len(a) for a in arch_weights.alphas])
        self.held_pos = 0  # the next held-out draw of the arch steps

    def to(self, device: torch.device) -> None:
        self.arch_weights.to(device)
        if self.strategy.optimizer is not None:  # built before the move: rebuild on device
            self.strategy.optimizer = torch.optim.Adam(
                self.arch_weights.parameters(), lr=self.strategy.config.arch_lr
            )

    def parameters(self) -> List[Tensor]:
        return list(self.arch_weights.parameters())

    def weight_choice(self) -> Choice:
        return self.strategy.weight_choice()

    def eval_choice(self, generator: torch.Generator) -> Choice:
        return self.strategy.eval_choice(generator)

    def position(self) -> Dict[str, Any]:
        return {"held_pos": self.held_pos}

    def state_dict(self) -> Dict[str, Any]:
        return {
            "arch_weights": self.arch_weights.state_dict(),
            "strategy": self.strategy.state_dict(),
            "arch_history": self.arch_history,
            "grad_stats": self.grad_stats.state_dict(),
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.held_pos = state["position"]["held_pos"]
        if state.get("arch_weights") is not None:
            self.arch_weights.load_state_dict(state["arch_weights"])
        if state.get("strategy") is not None:
            self.strategy.load_state_dict(state["strategy"])
        self.arch_history = list(state.get("arch_history") or [])
        if state.get("grad_stats"):
            self.grad_stats.load_state_dict(state["grad_stats"])

    def best_extra(self) -> Dict[str, Any]:
        return {
            "arch_weights": self.arch_weights.state_dict(),
            "arch": None,
            "space": self.supernet.space.to_dict(),
        }


class SearchSteps(SupernetSteps):
    """The search: arch steps (when the strategy has them) and the per-epoch record."""

    jsonl_logs = ("alphas.jsonl",)

    def __init__(self, supernet: Supernet, arch_weights: ArchWeights, strategy: Strategy) -> None:
        super().__init__(supernet, arch_weights, strategy)
        self._held_iter: Optional[Iterator[Tuple[int, Batch]]] = None

    def before_weight_step(self, trainer: Trainer) -> Optional[float]:
        if not self.strategy.has_arch_step:
            return None
        arch_loss = self.arch_step(trainer)
        trainer.log_row(
            "alphas.jsonl",
            {
                "step": trainer.step + 1,
                "epoch": trainer.epoch,
                "probs": self.strategy.probabilities(),
            },
        )
        return arch_loss

    def arch_step(self, trainer: Trainer) -> Optional[float]:
        """One α update on the next held-out batch; that batch's ``-log p(l|x)`` per frame."""
        if self._held_iter is None:
            cfg = trainer.cfg
            self._held_iter = held_out_cycle(
                trainer.held_out,
                cfg.arch_max_frames or cfg.max_frames,
                cfg.arch_max_utts or cfg.max_utts,
                cfg.seed + 1,
                self.held_pos,
                trainer.dist.rank,
                trainer.dist.world,
            )
        pos, batch = next(self._held_iter)
        self.held_pos = pos + 1
        batch = batch.to(trainer.device)
        global_utts = int(all_sum(torch.tensor([len(batch.utts)], device=trainer.device)))
        trainer.model.train()
        seen: List[Tensor] = []

        def loss_of(choice: Choice) -> Tensor:
            loss, stats = trainer.batch_loss(trainer.model, batch, choice, global_utts)
            seen.append(stats)
            return loss

        loss = self.strategy.arch_step(loss_of)
        if math.isfinite(loss):
            self.grad_stats.add([a.grad for a in self.arch_weights.alphas])
            return per_frame(all_sum(seen[-1]))["loss"] if seen else None
        trainer.bad_batches += 1
        log.warning(
            "non-finite arch-step loss or gradient on held-out batch %d: α not updated "
            "(%d bad batches so far)",
            pos,
            trainer.bad_batches,
        )
        return None

    def end_epoch(self, trainer: Trainer, held_out_loss: float, row: Dict[str, Any]) -> None:
        if self.strategy.has_arch_step:
            probs = self.strategy.probabilities()
            self.arch_history.append(
                {
                    "epoch": trainer.epoch,
                    "held_out_loss": held_out_loss,
                    "probabilities": probs,
                    "grad_snr": self.grad_stats.snr(),
                    "arch_steps": self.grad_stats.n,
                }
            )
            self.grad_stats.reset()
            self._log_block_stats(trainer, probs)
        if hasattr(self.strategy, "tau"):
            row["tau"] = self.strategy.tau
        self.strategy.end_epoch(trainer.epoch)  # SNAS anneals its temperature here

    @staticmethod
    def _log_block_stats(trainer: Trainer, probs: List[List[float]]) -> None:
        """Entropy, max p and margin of every block, to TensorBoard (search diagnostics)."""
        writer = trainer.tensorboard() if trainer.dist.main else None
        if writer is None:
            return
        for b, p in enumerate(probs):
            for key, value in block_stats(p).items():
                if key != "argmax":
                    writer.add_scalar(f"arch/block{b + 1}/{key}", value, trainer.step)
        writer.flush()
