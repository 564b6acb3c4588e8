"""What a stage adds to the shared training loop: the one small interface between
:class:`~pipeline.train.loop.Trainer` (batches, optimiser, schedule, checkpoints, held-out
evaluation, logs) and whatever runs the model (a fixed network, or a supernet and its search
strategy, :mod:`pipeline.search.steps`).

The loop calls, in this order: :meth:`~TrainingHooks.to` once after moving the model; per
training batch :meth:`~TrainingHooks.before_weight_step` then :meth:`~TrainingHooks.weight_choice`;
per held-out batch :meth:`~TrainingHooks.eval_choice`; after each epoch's evaluation and
``best.pt`` :meth:`~TrainingHooks.end_epoch`. Checkpoints store :meth:`~TrainingHooks.position`
inside ``position`` and :meth:`~TrainingHooks.state_dict` beside the loop's own entries;
``best.pt`` stores :meth:`~TrainingHooks.best_extra`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from pipeline.nas.arch import Arch
from pipeline.nas.supernet import Choice


class TrainingHooks:
    """The defaults add nothing: the model runs without a choice, and there is nothing to
    step, save or log besides the weights. ``trainer`` arguments are the calling
    :class:`~pipeline.train.loop.Trainer`."""

    #: DDP: whether a step may leave some parameters without a gradient (one supernet path)
    find_unused_parameters = False
    #: logs in the stage directory besides ``metrics.jsonl`` (rows with a ``step``), cut back
    #: to the checkpoint's step on resume
    jsonl_logs: Tuple[str, ...] = ()

    def to(self, device: torch.device) -> None:
        """Move own tensors to ``device`` (called once, after the model moved)."""

    def parameters(self) -> List[Tensor]:
        """Trained tensors besides the model's (compared across ranks)."""
        return []

    def weight_choice(self) -> Optional[Choice]:
        """How the model runs in the next weight step (None: a plain network)."""
        return None

    def eval_choice(self, generator: torch.Generator) -> Optional[Choice]:
        """How the model runs on one held-out batch; draws only from ``generator``."""
        return None

    def before_weight_step(self, trainer: Any) -> Optional[float]:
        """Runs before each weight step (the batch is on the device); a returned number is
        logged as that step's ``arch_loss``."""
        return None

    def end_epoch(self, trainer: Any, held_out_loss: float, row: Dict[str, Any]) -> None:
        """After an epoch's held-out evaluation (and ``best.pt``), before ``row`` (the epoch's
        ``metrics.jsonl`` row, which may be extended) is logged."""

    def position(self) -> Dict[str, Any]:
        """Entries of the checkpoint's ``position`` besides the loop's own."""
        return {}

    def state_dict(self) -> Dict[str, Any]:
        """Entries of the checkpoint besides the loop's own."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore from a whole checkpoint (``position`` included)."""

    def best_extra(self) -> Dict[str, Any]:
        """Entries of ``best.pt`` besides the weights and where they were taken."""
        return {}


class FixedNetwork(TrainingHooks):
    """Retrain: the network of an ``arch.json``, weights only. Its checkpoints and ``best.pt``
    keep the layout every stage has, the supernet's entries empty."""

    def __init__(self, arch: Arch) -> None:
        self.arch = arch

    def position(self) -> Dict[str, Any]:
        return {"held_pos": 0}

    def state_dict(self) -> Dict[str, Any]:
        return {"arch_weights": None, "strategy": None, "arch_history": [], "grad_stats": None}

    def best_extra(self) -> Dict[str, Any]:
        return {"arch_weights": None, "arch": self.arch.to_dict(), "space": None}
