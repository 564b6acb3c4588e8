"""The training objective per utterance and the per-frame numbers every stage logs.

:class:`LossFn` turns a batch's (B, T, K) log-probs into :class:`LossParts` (CTC or CTC-CRF,
paper §2); a step reduces them to the float64 sums :data:`STATS`, which :func:`per_frame`
turns into ``-log p(l|x)`` per output frame and its parts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, NamedTuple, Optional

import torch
from torch import Tensor

from pipeline.errors import StnasError
from pipeline.lang.den_graph import load_den_graph
from pipeline.loss.ctc_crf import CtcCrfLoss, ctc_nll, required_frames
from pipeline.train.data import Batch


class LossParts(NamedTuple):
    """One batch's losses per utterance (B,); infeasible utterances hold 0 everywhere.

    Attributes:
        objective: what is minimised: CTC-CRF ``log Z - (1 + λ) log p_CTC``, CTC
            ``-log p_CTC`` (float64, differentiable).
        feasible: bool, the utterance has an alignment (and finite values).
        nll: ``-log p(l|x)``: CTC-CRF ``log Z - log p_CTC - log p_LM(l)`` (the path weight added
            back, so it is a true negative log-likelihood), CTC ``-log p_CTC``. Detached.
        den: ``log Z`` (0 for CTC); ctc: ``-log p_CTC``; lm: ``log p_LM(l)``. Detached.
    """

    objective: Tensor
    feasible: Tensor
    nll: Tensor
    den: Tensor
    ctc: Tensor
    lm: Tensor


# the per-batch sums every step reduces over ranks (one float64 vector)
STATS = ("nll", "frames", "utts", "den", "ctc", "lm")


class LossFn:
    """CTC or CTC-CRF per utterance: (B, T, K) log-probs → :class:`LossParts`."""

    def __init__(self, kind: str, lamb: float, den_fst: Optional[Path], num_units: int) -> None:
        self.kind = kind
        self.ctc_crf = None
        if kind == "ctc_crf":
            if den_fst is None or not den_fst.is_file():
                raise StnasError(f"{den_fst}: den graph missing (run 'stnas prep')")
            self.ctc_crf = CtcCrfLoss(load_den_graph(den_fst, num_units), lamb, reduction="none")

    def __call__(self, log_probs: Tensor, lengths: Tensor, batch: Batch) -> LossParts:
        log_probs = log_probs.float()
        lm = (
            batch.lm_logp
            if batch.lm_logp is not None
            else torch.zeros(len(batch.utts), dtype=torch.float64)
        )
        lm = lm.to(log_probs.device, torch.float64)
        if self.ctc_crf is not None:
            out = self.ctc_crf(log_probs, lengths, batch.labels, batch.label_lengths)
            ok = out.feasible
            lm = torch.where(ok, lm, torch.zeros_like(lm))
            nll = out.den_logz - out.num_logp - lm
            return LossParts(out.per_utt, ok, nll, out.den_logz, -out.num_logp, lm)
        ctc = ctc_nll(log_probs, batch.labels, lengths, batch.label_lengths)
        ok = lengths.cpu() >= required_frames(batch.labels.cpu(), batch.label_lengths.cpu())
        ok = ok.to(ctc.device) & torch.isfinite(ctc)
        ctc = torch.where(ok, ctc, torch.zeros_like(ctc))
        zero = torch.zeros_like(ctc)
        return LossParts(ctc, ok, ctc.detach(), zero, ctc.detach(), zero)


def batch_stats(parts: LossParts, lengths: Tensor) -> Tensor:
    """This batch's float64 sums :data:`STATS` (detached)."""
    ok = parts.feasible
    frames = torch.where(ok, lengths.to(ok.device), torch.zeros_like(lengths, device=ok.device))
    return torch.stack(
        [
            parts.nll.sum(),
            frames.sum().double(),
            ok.sum().double(),
            parts.den.sum(),
            parts.ctc.sum(),
            parts.lm.sum(),
        ]
    ).detach()


def per_frame(stats: Tensor) -> Dict[str, float]:
    """Summed :data:`STATS` (over ranks) → ``-log p(l|x)`` per output frame (``loss``) and
    its parts per frame: ``den`` (log Z), ``ctc`` (-log p_CTC), ``lm`` (log p_LM)."""
    sums = dict(zip(STATS, stats.tolist()))
    frames = max(sums["frames"], 1.0)
    return {"loss": sums["nll"] / frames, **{k: sums[k] / frames for k in ("den", "ctc", "lm")}}


def num_units_of(data_dir: Path) -> int:
    """The number of output units (``<data_dir>/lang/units.txt``, one per line)."""
    units = data_dir / "lang" / "units.txt"
    if not units.is_file():
        raise StnasError(f"{units}: missing (run 'stnas prep')")
    return sum(1 for line in units.read_text().splitlines() if line.strip())
