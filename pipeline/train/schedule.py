"""Learning-rate decay and stopping from held-out loss, per epoch (paper §4.1).

=========  ======================================================================
warm-up    constant lr; stop after ``stop_patience`` (3) epochs without improvement
search     lr × ``decay`` (0.1) after ``patience`` (3) epochs without improvement;
           stop when lr < ``stop_lr`` (1e-4)
retrain    after ``min_epochs`` (10), lr × 0.1 after each epoch without improvement;
           stop when lr < 1e-5
=========  ======================================================================

``max_epochs`` caps every stage (debug configs). "Improvement" means a held-out loss lower
than the best so far.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional


@dataclass
class PlateauSchedule:
    """Per-epoch decay/stop rule; :meth:`end_epoch` returns False when training should stop."""

    lr: float
    decay: float = 0.1
    patience: int = 1
    min_epochs: int = 0
    stop_lr: float = 0.0
    stop_patience: Optional[int] = None
    max_epochs: Optional[int] = None
    best: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    epochs: int = 0
    stopped_by: str = ""  # why training stopped: max_epochs, stalled or min_lr

    def end_epoch(self, held_out_loss: float) -> bool:
        """Record an epoch's held-out loss; update lr; say whether to go on."""
        self.epochs += 1
        if held_out_loss < self.best:
            self.best, self.best_epoch, self.bad_epochs = held_out_loss, self.epochs - 1, 0
        else:
            self.bad_epochs += 1
        if self.stop_patience is not None and self.bad_epochs >= self.stop_patience:
            self.stopped_by = f"stalled ({self.bad_epochs} epochs without improvement)"
            return False
        if self.max_epochs is not None and self.epochs >= self.max_epochs:
            self.stopped_by = f"max_epochs ({self.max_epochs})"
            return False
        if (
            self.decay < 1.0
            and self.epochs > self.min_epochs
            and self.bad_epochs >= self.patience
            and self.bad_epochs > 0
        ):
            self.lr *= self.decay
            self.bad_epochs = 0
        if self.lr < self.stop_lr:
            self.stopped_by = f"lr {self.lr:.1e} < stop_lr {self.stop_lr:.1e}"
            return False
        return True

    @property
    def improved(self) -> bool:
        """Whether the last recorded epoch was the best so far."""
        return self.best_epoch == self.epochs - 1

    def state_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
