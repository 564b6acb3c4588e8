"""The training loop shared by warmup, search and retrain (paper §3.2, Algorithm 1).

One :class:`Trainer` runs a stage in ``<exp_dir>/<stage>/``:

* ``warmup``: supernet, one uniformly sampled path per batch, weights only;
* ``search``: supernet from ``warmup/best.pt``; per training batch one arch step on the next
  held-out batch (cycled) and one weight step, as the strategy says; ``random`` and ``fixed``
  run their own procedures; writes ``arch.json``, ``alphas.jsonl``, ``alphas.png``;
* ``retrain``: the network of an ``arch.json`` from scratch, CTC-CRF + λ·CTC by default.

Every stage checkpoints atomically every ``ckpt_every`` steps and after each epoch, resumes
from the newest readable checkpoint when rerun, skips and counts batches whose loss is not
finite, and writes a checkpoint before exiting on SIGINT/SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn

from pipeline.errors import StnasError
from pipeline.loss.ctc_crf import CtcCrfLoss, ctc_nll, required_frames
from pipeline.nas.arch import Arch
from pipeline.nas.diagnostics import GradStats, block_stats
from pipeline.nas.space import load_space
from pipeline.nas.strategies import StrategyConfig, make_strategy
from pipeline.nas.supernet import ArchWeights, Choice, Supernet
from pipeline.stage import atomic_path
from pipeline.progress import on_terminal
from pipeline.train.checkpoint import load_file, load_latest, rng_state, save_checkpoint, \
    set_rng_state
from pipeline.train.config import TrainConfig
from pipeline.train.data import (Batch, BatchStream, held_out_cycle, load_utterances,
                                 make_batches, split_held_out)
from pipeline.train.distributed import DistInfo, all_gather, all_sum
from pipeline.train.schedule import PlateauSchedule

log = logging.getLogger(__name__)


class TrainingError(StnasError):
    """Training cannot go on (the message says why and what was saved)."""


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
            from pipeline.lang.den_graph import load_den_graph

            if den_fst is None or not den_fst.is_file():
                raise StnasError(f"{den_fst}: den graph missing (run 'stnas prep')")
            self.ctc_crf = CtcCrfLoss(load_den_graph(den_fst, num_units), lamb, reduction="none")

    def __call__(self, log_probs: Tensor, lengths: Tensor, batch: Batch) -> LossParts:
        log_probs = log_probs.float()
        lm = batch.lm_logp if batch.lm_logp is not None else \
            torch.zeros(len(batch.utts), dtype=torch.float64)
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


def num_units_of(data_dir: Path) -> int:
    units = data_dir / "lang" / "units.txt"
    if not units.is_file():
        raise StnasError(f"{units}: missing (run 'stnas prep')")
    return sum(1 for line in units.read_text().splitlines() if line.strip())


class _Signals:
    """SIGINT/SIGTERM set a flag; the loop checkpoints and stops at the next step."""

    def __init__(self) -> None:
        self.received: Optional[int] = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, frame):  # noqa: ARG001
            self.received = signum
        try:
            for s in old:
                signal.signal(s, handler)
        except ValueError:  # not the main thread: leave signals alone
            old = {}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)


class Trainer:
    """Runs one stage; see the module docstring. ``run()`` returns a summary dict."""

    def __init__(self, cfg: TrainConfig, dist_info: DistInfo, stage_dir: Path) -> None:
        self.cfg, self.dist, self.dir = cfg, dist_info, stage_dir
        self.device = dist_info.device
        data_dir = Path(cfg.data_dir)
        self.num_units = num_units_of(data_dir)
        utts = load_utterances(data_dir / cfg.train_set)
        split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
        self.train, self.held_out = split_held_out(utts, cfg.held_out_fraction, split_seed)
        self.loss_fn = LossFn(cfg.loss, cfg.lamb, data_dir / "den" / "den.fst", self.num_units)
        torch.manual_seed(cfg.seed)
        self.arch_weights: Optional[ArchWeights] = None
        self.strategy = None
        if cfg.stage == "retrain":
            if not cfg.arch:
                raise StnasError("retrain needs --arch arch.json")
            self.arch = Arch.from_json(cfg.arch)
            self.model: nn.Module = self.arch.build(self.num_units)
        else:
            self.space = load_space(cfg.space)
            self.model = Supernet(self.space, self.num_units)
            self.arch_weights = ArchWeights(self.space)
            name = "random" if cfg.stage == "warmup" else cfg.strategy  # warm-up: uniform paths
            self.strategy = make_strategy(name, self.model, self.arch_weights,
                                          StrategyConfig(seed=cfg.seed, **cfg.strategy_conf))
        self.model.to(self.device)
        if self.arch_weights is not None:
            self.arch_weights.to(self.device)
            if self.strategy.optimizer is not None:  # built before the move: rebuild on device
                self.strategy.optimizer = torch.optim.Adam(
                    self.arch_weights.parameters(), lr=self.strategy.config.arch_lr)
        self.wrapped: nn.Module = self.model
        if dist_info.world > 1:
            self.wrapped = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=isinstance(self.model, Supernet))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.schedule = PlateauSchedule(lr=cfg.lr, decay=cfg.decay, patience=cfg.patience,
                                        min_epochs=cfg.min_epochs, stop_lr=cfg.stop_lr,
                                        stop_patience=cfg.stop_patience,
                                        max_epochs=cfg.max_epochs)
        self.epoch, self.next_batch, self.step, self.held_pos = 0, 0, 0, 0
        self.bad_batches, self.finished = 0, False
        self.arch_history: List[Dict[str, Any]] = []  # search: p and held-out loss per epoch
        self.grad_stats = GradStats([len(a) for a in self.arch_weights.alphas]) \
            if self.arch_weights is not None else None
        self.signals = _Signals()
        self._held_iter = None
        self._tb: Any = None

    # -- checkpoints ----------------------------------------------------------------------
    def state(self) -> Dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "rng": rng_state(),
                "position": {"epoch": self.epoch, "next_batch": self.next_batch,
                             "step": self.step, "held_pos": self.held_pos,
                             "bad_batches": self.bad_batches, "finished": self.finished},
                "arch_weights": self.arch_weights.state_dict() if self.arch_weights else None,
                "strategy": self.strategy.state_dict() if self.strategy else None,
                "arch_history": self.arch_history,
                "grad_stats": self.grad_stats.state_dict() if self.grad_stats else None}

    def load_state(self, state: Dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        set_rng_state(state["rng"])
        pos = state["position"]
        self.epoch, self.next_batch, self.step = pos["epoch"], pos["next_batch"], pos["step"]
        self.held_pos, self.bad_batches = pos["held_pos"], pos["bad_batches"]
        self.finished = pos.get("finished", False)
        if self.arch_weights is not None and state.get("arch_weights") is not None:
            self.arch_weights.load_state_dict(state["arch_weights"])
        if self.strategy is not None and state.get("strategy") is not None:
            self.strategy.load_state_dict(state["strategy"])
        self.arch_history = list(state.get("arch_history") or [])
        if self.grad_stats is not None and state.get("grad_stats"):
            self.grad_stats.load_state_dict(state["grad_stats"])

    def checkpoint(self) -> None:
        if self.dist.main:
            save_checkpoint(self.dir / "ckpt", self.step, self.state(), self.cfg.keep_checkpoints)

    def resume(self) -> bool:
        found = load_latest(self.dir / "ckpt", required=("model", "optimizer", "position"))
        if found is None:
            return False
        path, state = found
        self.load_state(state)
        for name in ("metrics.jsonl", "alphas.jsonl"):  # drop lines logged after that point
            self._truncate_jsonl(self.dir / name, self.step)
        log.info("resumed from %s (epoch %d, batch %d, step %d)", path, self.epoch,
                 self.next_batch, self.step)
        return True

    def _truncate_jsonl(self, path: Path, step: int) -> None:
        if self.dist.main and path.is_file():
            keep = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= step]
            path.write_text("".join(line + "\n" for line in keep))

    def _log(self, name: str, row: Dict[str, Any]) -> None:
        if not self.dist.main:
            return
        with open(self.dir / name, "a") as f:
            f.write(json.dumps(row) + "\n")
        writer = self._tensorboard()
        if writer is not None and name == "metrics.jsonl":
            for key in ("loss", "arch_loss", "held_out_loss", "lr", "frames_per_s"):
                if key in row:
                    writer.add_scalar(f"{row.get('kind', 'train')}/{key}", row[key], row["step"])
            writer.flush()

    def _log_block_stats(self, probs: List[List[float]]) -> None:
        """Entropy, max p and margin of every block, to TensorBoard (search diagnostics)."""
        writer = self._tensorboard() if self.dist.main else None
        if writer is None:
            return
        for b, p in enumerate(probs):
            for key, value in block_stats(p).items():
                if key != "argmax":
                    writer.add_scalar(f"arch/block{b + 1}/{key}", value, self.step)
        writer.flush()

    def _tensorboard(self):
        """A SummaryWriter on ``<stage>/tensorboard`` when tensorboard is installed, else None."""
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                self._tb = False
            else:
                self._tb = SummaryWriter(str(self.dir / "tensorboard"))
        return self._tb or None

    # -- steps ----------------------------------------------------------------------------
    def _forward(self, module: nn.Module, batch: Batch, choice: Optional[Choice]
                 ) -> Tuple[Tensor, Tensor]:
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                    if self.cfg.amp and self.device.type == "cuda" else contextlib.nullcontext())
        with autocast:
            if choice is None:
                return module(batch.feats, batch.lengths)
            return module(batch.feats, batch.lengths, choice)

    def _batch_loss(self, module: nn.Module, batch: Batch, choice: Optional[Choice],
                    global_utts: int) -> Tuple[Tensor, Tensor]:
        """(loss to back-propagate, this rank's float64 sums :data:`STATS`).

        The loss is the objective summed over this rank's utterances / the global batch size
        × world: DDP's gradient average then gives the gradient of the mean over the global
        batch, as one process would compute it.
        """
        log_probs, lengths = self._forward(module, batch, choice)
        parts = self.loss_fn(log_probs, lengths, batch)
        loss = parts.objective.sum() * (self.dist.world / max(global_utts, 1))
        ok = parts.feasible
        frames = torch.where(ok, lengths.to(ok.device), torch.zeros_like(lengths, device=ok.device))
        stats = torch.stack([parts.nll.sum(), frames.sum().double(), ok.sum().double(),
                             parts.den.sum(), parts.ctc.sum(), parts.lm.sum()]).detach()
        return loss, stats

    @staticmethod
    def per_frame(stats: Tensor) -> Dict[str, float]:
        """Summed :data:`STATS` (over ranks) → ``-log p(l|x)`` per output frame (``loss``) and
        its parts per frame: ``den`` (log Z), ``ctc`` (-log p_CTC), ``lm`` (log p_LM)."""
        sums = dict(zip(STATS, stats.tolist()))
        frames = max(sums["frames"], 1.0)
        return {"loss": sums["nll"] / frames, **{k: sums[k] / frames for k in ("den", "ctc", "lm")}}

    def weight_step(self, batch: Batch, global_utts: int) -> Optional[Dict[str, float]]:
        """One optimiser step on ``batch``; per-frame losses, None when skipped (non-finite)."""
        self.model.train()
        choice = self.strategy.weight_choice() if self.strategy is not None else None
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule.lr
        self.optimizer.zero_grad(set_to_none=True)
        loss, stats = self._batch_loss(self.wrapped, batch, choice, global_utts)
        ok = all_sum(torch.tensor([float(torch.isfinite(loss))], device=self.device))
        if float(ok) < self.dist.world:  # every rank skips together
            self.bad_batches += 1
            self._report_bad_batch("loss", batch, choice)
            return None
        loss.backward()
        # A NaN/inf anywhere in the batch (e.g. in one utterance's features) reaches the
        # weight gradients even where its loss term was masked: check them, not just the loss.
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
            self.optimizer.zero_grad(set_to_none=True)
            self.bad_batches += 1
            self._report_bad_batch("gradient", batch, choice)
            return None
        self.optimizer.step()
        return self.per_frame(all_sum(stats))

    def culprits(self, batch: Batch, choice: Optional[Choice]) -> List[Tuple[str, str]]:
        """The utterances of a non-finite batch that are non-finite on their own (features,
        loss or gradient), found by running each alone once; the random state and the
        gradients are left as they were, so training goes on exactly as without the search."""
        found: List[Tuple[str, str]] = []
        rng = torch.get_rng_state()
        params = [p for p in self.model.parameters() if p.requires_grad]
        try:
            for i, utt in enumerate(batch.utts):
                t = int(batch.lengths[i])
                one = Batch(batch.feats[i:i + 1, :t], batch.lengths[i:i + 1],
                            batch.labels[i:i + 1], batch.label_lengths[i:i + 1], [utt],
                            None if batch.lm_logp is None else batch.lm_logp[i:i + 1])
                if not bool(torch.isfinite(one.feats).all()):
                    found.append((utt, "non-finite features"))
                    continue
                self.optimizer.zero_grad(set_to_none=True)
                loss, _ = self._batch_loss(self.model, one, choice, 1)
                if not bool(torch.isfinite(loss)):
                    found.append((utt, "non-finite loss"))
                    continue
                loss.backward()
                if not all(bool(torch.isfinite(p.grad).all()) for p in params
                           if p.grad is not None):
                    found.append((utt, "non-finite gradient"))
        finally:
            self.optimizer.zero_grad(set_to_none=True)
            torch.set_rng_state(rng)
        return found

    def _report_bad_batch(self, what: str, batch: Batch, choice: Optional[Choice]) -> None:
        """Name the utterances that made a batch non-finite (warning + ``bad_batches.txt``)."""
        found = self.culprits(batch, choice)
        named = ", ".join(f"{u} ({why})" for u, why in found) or \
            "none alone (only the batch as a whole)"
        log.warning("non-finite %s at step %d: batch skipped (%d so far); utterance(s): %s",
                    what, self.step, self.bad_batches, named)
        line = f"step {self.step} epoch {self.epoch} non-finite {what}: " + (
            " ".join(f"{u}:{why.replace(' ', '_')}" for u, why in found)
            or f"no single utterance; batch {' '.join(batch.utts)}") + "\n"
        with open(self.dir / f"bad_batches{'' if self.dist.rank == 0 else f'.{self.dist.rank}'}"
                  ".txt", "a") as f:
            f.write(line)

    def arch_step(self) -> Optional[float]:
        """One α update on the next held-out batch; that batch's ``-log p(l|x)`` per frame."""
        if self._held_iter is None:
            cfg = self.cfg
            self._held_iter = held_out_cycle(self.held_out, cfg.arch_max_frames or cfg.max_frames,
                                             cfg.arch_max_utts or cfg.max_utts, cfg.seed + 1,
                                             self.held_pos, self.dist.rank, self.dist.world)
        pos, batch = next(self._held_iter)
        self.held_pos = pos + 1
        batch = batch.to(self.device)
        global_utts = int(all_sum(torch.tensor([len(batch.utts)], device=self.device)))
        self.model.train()
        seen: List[Tensor] = []

        def loss_of(choice: Choice) -> Tensor:
            loss, stats = self._batch_loss(self.model, batch, choice, global_utts)
            seen.append(stats)
            return loss

        loss = self.strategy.arch_step(loss_of)
        if math.isfinite(loss):
            self.grad_stats.add([a.grad for a in self.arch_weights.alphas])
            return self.per_frame(all_sum(seen[-1]))["loss"] if seen else None
        self.bad_batches += 1
        log.warning("non-finite arch-step loss or gradient on held-out batch %d: α not updated "
                    "(%d bad batches so far)", pos, self.bad_batches)
        return None

    # -- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def held_out_stats(self, model: Optional[nn.Module] = None,
                       choice_fn: Optional[Callable[[torch.Generator], Choice]] = None
                       ) -> Dict[str, float]:
        """Per-frame ``-log p(l|x)`` (``loss``) and its parts over the whole held-out set
        (supernet: sampled paths, the same every epoch)."""
        model = model or self.model
        model.eval()
        gen = torch.Generator().manual_seed(self.cfg.seed + 12345)  # same paths every epoch
        if choice_fn is None and self.strategy is not None and model is self.model:
            choice_fn = self.strategy.eval_choice
        total = torch.zeros(len(STATS), dtype=torch.float64, device=self.device)
        batches = make_batches(self.held_out, self.cfg.max_frames, self.cfg.max_utts,
                               self.cfg.seed, 0, shuffle=False, min_utts=self.dist.world)
        stream = BatchStream(self.held_out, batches, 0, self.dist.rank, self.dist.world)
        try:
            for _, batch in stream:
                batch = batch.to(self.device)
                choice = choice_fn(gen) if choice_fn is not None else None
                total += self._batch_loss(model, batch, choice, 1)[1]
        finally:
            stream.close()
        return self.per_frame(all_sum(total))

    def held_out_loss(self, model: Optional[nn.Module] = None,
                      choice_fn: Optional[Callable[[torch.Generator], Choice]] = None) -> float:
        """``-log p(l|x)`` per output frame over the held-out set (what schedules decide on)."""
        return self.held_out_stats(model, choice_fn)["loss"]

    # -- the loop -------------------------------------------------------------------------
    def train_epochs(self, on_step: Optional[Callable[[], None]] = None) -> None:
        """Epochs until the schedule says stop (resumable at any batch)."""
        from tqdm import tqdm

        cfg = self.cfg
        if self.step == 0 and self.epoch == 0 and self.next_batch == 0:
            held = self.held_out_stats()
            self._log("metrics.jsonl", {"kind": "init", "step": 0, "held_out_loss": held["loss"],
                                        **{f"held_out_{k}": v for k, v in held.items()
                                           if k != "loss"}})
        with self.signals.installed():
            while not self.finished:
                batches = make_batches(self.train, cfg.max_frames, cfg.max_utts, cfg.seed,
                                       self.epoch, min_utts=self.dist.world)
                stream = BatchStream(self.train, batches, self.next_batch, self.dist.rank,
                                     self.dist.world)
                bar = tqdm(total=len(batches), initial=self.next_batch,
                           desc=f"{cfg.stage} epoch {self.epoch + 1}", unit="batch",
                           disable=not (cfg.progress and self.dist.main and on_terminal()),
                           dynamic_ncols=True)
                t0, frames = time.time(), 0
                try:
                    for index, batch in stream:
                        self._one_batch(batch, len(batches[index]), bar, t0, frames, on_step)
                        frames += int(batch.lengths.sum()) * self.dist.world
                        self.next_batch = index + 1
                        if self.step % cfg.ckpt_every == 0:
                            self.checkpoint()
                        if self.signals.received is not None:
                            self.checkpoint()
                            raise KeyboardInterrupt(f"signal {self.signals.received}")
                finally:
                    stream.close()
                    bar.close()
                self._end_epoch(time.time() - t0)

    def _one_batch(self, batch: Batch, global_utts: int, bar, t0: float, frames: int,
                   on_step: Optional[Callable[[], None]]) -> None:
        batch = batch.to(self.device)
        arch_loss = None
        if self.strategy is not None and self.strategy.has_arch_step:
            arch_loss = self.arch_step()
            self._log("alphas.jsonl", {"step": self.step + 1, "epoch": self.epoch,
                                       "probs": self.strategy.probabilities()})
        losses = self.weight_step(batch, global_utts)
        loss = losses["loss"] if losses is not None else None
        self.step += 1
        if self.bad_batches > self.cfg.max_bad_batches:
            self.checkpoint()
            raise TrainingError(
                f"{self.bad_batches} batches with a non-finite loss (limit max_bad_batches="
                f"{self.cfg.max_bad_batches}); checkpoint saved in {self.dir / 'ckpt'}. Check the "
                "features for NaN/inf or lower the learning rate, then rerun to resume.")
        fps = (frames + int(batch.lengths.sum()) * self.dist.world) / max(time.time() - t0, 1e-9)
        bar.update(1)
        if loss is not None:
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{self.schedule.lr:.1e}", fps=f"{fps:.0f}")
        done = self.next_batch + 1
        if loss is not None and self.cfg.progress and bar.disable and self.dist.main \
                and done % max(1, (bar.total or 1) // 5) == 0:  # plain lines in a log file
            log.info("%s epoch %d: batch %d/%d, loss %.3f, lr %.1e, %.0f frames/s",
                     self.cfg.stage, self.epoch + 1, done, bar.total, loss, self.schedule.lr, fps)
        if losses is not None and self.step % self.cfg.log_every == 0:
            row = {"kind": "train", "step": self.step, "epoch": self.epoch, **losses,
                   "lr": self.schedule.lr, "frames_per_s": fps}
            if arch_loss is not None:
                row["arch_loss"] = arch_loss
            self._log("metrics.jsonl", row)
        if on_step is not None:
            on_step()

    def _end_epoch(self, seconds: float) -> None:
        held_parts = self.held_out_stats()
        held = held_parts["loss"]
        lr_before = self.schedule.lr
        go_on = self.schedule.end_epoch(held)
        if self.schedule.improved:
            self.save_best()
        row = {"kind": "epoch", "step": self.step, "epoch": self.epoch, "held_out_loss": held,
               **{f"held_out_{k}": v for k, v in held_parts.items() if k != "loss"},
               "lr": lr_before, "bad_batches": self.bad_batches, "seconds": seconds}
        if self.strategy is not None and self.cfg.stage == "search":
            if self.strategy.has_arch_step:
                probs = self.strategy.probabilities()
                self.arch_history.append({"epoch": self.epoch, "held_out_loss": held,
                                          "probabilities": probs,
                                          "grad_snr": self.grad_stats.snr(),
                                          "arch_steps": self.grad_stats.n})
                self.grad_stats.reset()
                self._log_block_stats(probs)
            if hasattr(self.strategy, "tau"):
                row["tau"] = self.strategy.tau
            self.strategy.end_epoch(self.epoch)  # SNAS anneals its temperature here
        self._log("metrics.jsonl", row)
        log.info("%s epoch %d: held-out loss %.4f (best %.4f), lr %.1e", self.cfg.stage,
                 self.epoch + 1, held, self.schedule.best, self.schedule.lr)
        if self.dist.main and self.cfg.average_last:
            with atomic_path(self.dir / "epochs" / f"epoch-{self.epoch:04d}.pt") as tmp:
                torch.save(self.model.state_dict(), tmp)
        self.epoch, self.next_batch = self.epoch + 1, 0
        self.finished = not go_on
        self.checkpoint()

    def save_best(self) -> None:
        if not self.dist.main:
            return
        state = {"model": self.model.state_dict(), "epoch": self.epoch, "step": self.step,
                 "held_out_loss": self.schedule.best, "num_units": self.num_units,
                 "stage": self.cfg.stage,
                 "arch_weights": self.arch_weights.state_dict() if self.arch_weights else None,
                 "arch": self.arch.to_dict() if self.cfg.stage == "retrain" else None,
                 "space": self.space.to_dict() if self.cfg.stage != "retrain" else None}
        with atomic_path(self.dir / "best.pt") as tmp:
            torch.save(state, tmp)

    def load_init(self, path: Path) -> None:
        """Search: start from the warm-up weights (α and optimisers start fresh, paper §3.2)."""
        state = load_file(path, required=("model",))
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise StnasError(f"{path}: weights do not fit this supernet ({e})") from None


    def ranks_identical(self) -> bool:
        """Whether every rank holds bitwise the same weights and α (True in one process)."""
        if self.dist.world == 1:
            return True
        params = list(self.model.parameters()) + \
            (list(self.arch_weights.parameters()) if self.arch_weights else [])
        flat = torch.cat([p.detach().double().flatten() for p in params])
        mine = torch.stack([flat.sum(), (flat * torch.arange(1, len(flat) + 1, device=flat.device,
                                                             dtype=flat.dtype).sin()).sum()])
        gathered = all_gather(mine)
        return all(torch.equal(g, gathered[0]) for g in gathered)


def average_checkpoints(paths: List[Path]) -> Dict[str, Tensor]:
    """Element-wise mean of model state dicts (float64 accumulation)."""
    avg: Dict[str, Tensor] = {}
    for p in paths:
        state = torch.load(p, map_location="cpu", weights_only=True)
        for k, v in state.items():
            avg[k] = avg.get(k, torch.zeros_like(v, dtype=torch.float64)) + v.double()
    return {k: (v / len(paths)).to(torch.float32) for k, v in avg.items()}
