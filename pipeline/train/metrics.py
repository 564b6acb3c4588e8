"""A stage's JSON-lines logs (``metrics.jsonl``, ``alphas.jsonl``), optional TensorBoard, and the
batch progress bar.

Only the main rank writes. On resume, the lines logged after the checkpoint's step are cut,
so a resumed run's logs read as if it had never stopped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, Optional

log = logging.getLogger(__name__)


class MetricsLog:
    """JSON-lines logs in ``stage_dir``; ``main``: this rank writes them."""

    def __init__(self, stage_dir: Path, main: bool) -> None:
        self.dir, self.main = stage_dir, main
        self._tb: Any = None

    def truncate(self, name: str, step: int) -> None:
        """Drop the rows of ``<stage>/<name>`` logged after ``step``."""
        path = self.dir / name
        if self.main and path.is_file():
            keep = [
                line
                for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step
            ]
            path.write_text("".join(line + "\n" for line in keep))

    def write(self, name: str, row: Dict[str, Any]) -> None:
        """Append ``row`` to ``<stage>/<name>`` (main rank; metrics also to TensorBoard)."""
        if not self.main:
            return
        with open(self.dir / name, "a") as f:
            f.write(json.dumps(row) + "\n")
        writer = self.tensorboard()
        if writer is not None and name == "metrics.jsonl":
            for key in ("loss", "arch_loss", "held_out_loss", "lr", "frames_per_s"):
                if key in row:
                    writer.add_scalar(f"{row.get('kind', 'train')}/{key}", row[key], row["step"])
            writer.flush()

    def tensorboard(self):
        """A SummaryWriter on ``<stage>/tensorboard`` when tensorboard is installed, else None."""
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                self._tb = False
            else:
                self._tb = SummaryWriter(str(self.dir / "tensorboard"))
        return self._tb or None


def show_progress(
    bar,
    stage: str,
    epoch: int,
    done: int,
    loss: Optional[float],
    lr: float,
    fps: float,
    plain: bool,
) -> None:
    """Advance the batch progress bar; where the bar is hidden (a log file, not a terminal) and
    ``plain``, log a line five times per epoch instead."""
    bar.update(1)
    if loss is None:
        return
    bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}", fps=f"{fps:.0f}")
    if plain and bar.disable and done % max(1, (bar.total or 1) // 5) == 0:
        log.info(
            "%s epoch %d: batch %d/%d, loss %.3f, lr %.1e, %.0f frames/s",
            stage,
            epoch + 1,
            done,
            bar.total,
            loss,
            lr,
            fps,
        )
