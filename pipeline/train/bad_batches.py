"""Batches whose loss or gradient is not finite: which utterances caused it, and the record
of them (a warning and ``bad_batches.txt`` in the stage directory)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor, nn

from pipeline.nas.supernet import Choice
from pipeline.train.data import Batch

log = logging.getLogger(__name__)
# (module, batch, choice, global utterances) → (loss, stats), as Trainer.batch_loss
BatchLoss = Callable[[nn.Module, Batch, Optional[Choice], int], Tuple[Tensor, Tensor]]


def culprits(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_loss: BatchLoss,
    batch: Batch,
    choice: Optional[Choice],
) -> List[Tuple[str, str]]:
    """The utterances of a non-finite batch that are non-finite on their own (features,
    loss or gradient), found by running each alone once; the random state and the
    gradients are left as they were, so training goes on exactly as without the search."""
    found: List[Tuple[str, str]] = []
    rng = torch.get_rng_state()
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        for i, utt in enumerate(batch.utts):
            t = int(batch.lengths[i])
            one = Batch(
                batch.feats[i : i + 1, :t],
                batch.lengths[i : i + 1],
                batch.labels[i : i + 1],
                batch.label_lengths[i : i + 1],
                [utt],
                None if batch.lm_logp is None else batch.lm_logp[i : i + 1],
            )
            if not bool(torch.isfinite(one.feats).all()):
                found.append((utt, "non-finite features"))
                continue
            optimizer.zero_grad(set_to_none=True)
            loss, _ = batch_loss(model, one, choice, 1)
            if not bool(torch.isfinite(loss)):
                found.append((utt, "non-finite loss"))
                continue
            loss.backward()
            if not all(bool(torch.isfinite(p.grad).all()) for p in params if p.grad is not None):
                found.append((utt, "non-finite gradient"))
    finally:
        optimizer.zero_grad(set_to_none=True)
        torch.set_rng_state(rng)
    return found


def report_bad_batch(
    stage_dir: Path,
    rank: int,
    what: str,
    batch: Batch,
    found: List[Tuple[str, str]],
    step: int,
    epoch: int,
    bad_batches: int,
) -> None:
    """Name the utterances that made a batch non-finite (warning + ``bad_batches.txt``, one
    file per rank)."""
    named = (
        ", ".join(f"{u} ({why})" for u, why in found) or "none alone (only the batch as a whole)"
    )
    log.warning(
        "non-finite %s at step %d: batch skipped (%d so far); utterance(s): %s",
        what,
        step,
        bad_batches,
        named,
    )
    line = (
        f"step {step} epoch {epoch} non-finite {what}: "
        + (
            " ".join(f"{u}:{why.replace(' ', '_')}" for u, why in found)
            or f"no single utterance; batch {' '.join(batch.utts)}"
        )
        + "\n"
    )
    with open(stage_dir / f"bad_batches{'' if rank == 0 else f'.{rank}'}.txt", "a") as f:
        f.write(line)
