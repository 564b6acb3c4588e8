"""The training loop shared by warmup, search and retrain (paper §3.2, Algorithm 1).

One :class:`Trainer` runs a stage in ``<exp_dir>/<stage>/``: epochs of weight steps on
training batches until the plateau schedule says stop, the held-out set evaluated after each
epoch (``best.pt`` on improvement), ``metrics.jsonl`` and TensorBoard scalars. The model and
what runs it (a fixed network; a supernet with its sampler or search strategy, arch steps
included) come from outside, behind :class:`~pipeline.train.hooks.TrainingHooks`; the loop
knows nothing of strategies (:mod:`pipeline.search.build` puts a stage together).

Every stage checkpoints atomically every ``ckpt_every`` steps and after each epoch, resumes
from the newest readable checkpoint when rerun, skips and counts batches whose loss is not
finite, and writes a checkpoint before exiting on SIGINT/SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from torch import Tensor, nn
from tqdm import tqdm

from pipeline.errors import StnasError
from pipeline.io import atomic_path
from pipeline.nas.supernet import Choice
from pipeline.progress import on_terminal
from pipeline.train.bad_batches import culprits, report_bad_batch
from pipeline.train.checkpoint import (
    load_file,
    load_latest,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from pipeline.train.config import TrainConfig
from pipeline.train.data import (
    Batch,
    BatchStream,
    load_utterances,
    make_batches,
    split_held_out,
    summed_over,
)
from pipeline.train.distributed import DistInfo, all_sum, identical_on_ranks
from pipeline.train.hooks import TrainingHooks
from pipeline.train.loss_parts import STATS, LossFn, batch_stats, num_units_of, per_frame
from pipeline.train.metrics import MetricsLog, show_progress
from pipeline.train.schedule import PlateauSchedule
from pipeline.train.signals import StopSignals

log = logging.getLogger(__name__)
ChoiceFn = Callable[[torch.Generator], Optional[Choice]]  # how to run one held-out batch


class TrainingError(StnasError):
    """Training cannot go on (the message says why and what was saved)."""


class Trainer:
    """Runs one stage on ``model`` (already initialised from the seed), with ``hooks`` for
    what the stage adds; ``train_epochs()`` trains until the schedule stops."""

    def __init__(
        self,
        cfg: TrainConfig,
        dist_info: DistInfo,
        stage_dir: Path,
        model: nn.Module,
        hooks: TrainingHooks,
    ) -> None:
        self.cfg, self.dist, self.dir = cfg, dist_info, stage_dir
        self.device = dist_info.device
        data_dir = Path(cfg.data_dir)
        self.num_units = num_units_of(data_dir)
        utts = load_utterances(data_dir / cfg.train_set)
        split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
        self.train, self.held_out = split_held_out(utts, cfg.held_out_fraction, split_seed)
        self.loss_fn = LossFn(cfg.loss, cfg.lamb, data_dir / "den" / "den.fst", self.num_units)
        self.model, self.hooks = model, hooks
        self.model.to(self.device)
        self.hooks.to(self.device)
        self.wrapped: nn.Module = self.model
        if dist_info.world > 1:
            self.wrapped = nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=hooks.find_unused_parameters,
            )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.schedule = PlateauSchedule(
            lr=cfg.lr,
            decay=cfg.decay,
            patience=cfg.patience,
            min_epochs=cfg.min_epochs,
            stop_lr=cfg.stop_lr,
            stop_patience=cfg.stop_patience,
            max_epochs=cfg.max_epochs,
        )
        self.epoch, self.next_batch, self.step = 0, 0, 0
        self.bad_batches, self.finished = 0, False
        self.signals = StopSignals()
        self.metrics = MetricsLog(stage_dir, dist_info.main)

    # -- checkpoints ----------------------------------------------------------------------
    def state(self) -> Dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "rng": rng_state(),
            "position": {
                "epoch": self.epoch,
                "next_batch": self.next_batch,
                "step": self.step,
                **self.hooks.position(),
                "bad_batches": self.bad_batches,
                "finished": self.finished,
            },
            **self.hooks.state_dict(),
        }

    def load_state(self, state: Dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        set_rng_state(state["rng"])
        pos = state["position"]
        self.epoch, self.next_batch, self.step = pos["epoch"], pos["next_batch"], pos["step"]
        self.bad_batches = pos["bad_batches"]
        self.finished = pos.get("finished", False)
        self.hooks.load_state_dict(state)

    def checkpoint(self) -> None:
        if self.dist.main:
            save_checkpoint(self.dir / "ckpt", self.step, self.state(), self.cfg.keep_checkpoints)

    def resume(self) -> bool:
        found = load_latest(self.dir / "ckpt", required=("model", "optimizer", "position"))
        if found is None:
            return False
        path, state = found
        self.load_state(state)
        for name in ("metrics.jsonl", *self.hooks.jsonl_logs):  # drop lines logged later
            self.metrics.truncate(name, self.step)
        where = (self.epoch, self.next_batch, self.step)
        log.info("resumed from %s (epoch %d, batch %d, step %d)", path, *where)
        return True

    def log_row(self, name: str, row: Dict[str, Any]) -> None:
        """Append ``row`` to ``<stage>/<name>`` (:class:`~pipeline.train.metrics.MetricsLog`)."""
        self.metrics.write(name, row)

    def tensorboard(self):
        """The stage's TensorBoard writer, or None without tensorboard."""
        return self.metrics.tensorboard()

    # -- steps ----------------------------------------------------------------------------
    def _forward(
        self, module: nn.Module, batch: Batch, choice: Optional[Choice]
    ) -> Tuple[Tensor, Tensor]:
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if self.cfg.amp and self.device.type == "cuda"
            else contextlib.nullcontext()
        )
        with autocast:
            if choice is None:
                return module(batch.feats, batch.lengths)
            return module(batch.feats, batch.lengths, choice)

    def batch_loss(
        self, module: nn.Module, batch: Batch, choice: Optional[Choice], global_utts: int
    ) -> Tuple[Tensor, Tensor]:
        """(loss to back-propagate, this rank's float64 sums :data:`STATS`).

        The loss is the objective summed over this rank's utterances / the global batch size
        × world: DDP's gradient average then gives the gradient of the mean over the global
        batch, as one process would compute it.
        """
        log_probs, lengths = self._forward(module, batch, choice)
        parts = self.loss_fn(log_probs, lengths, batch)
        loss = parts.objective.sum() * (self.dist.world / max(global_utts, 1))
        return loss, batch_stats(parts, lengths)

    def weight_step(self, batch: Batch, global_utts: int) -> Optional[Dict[str, float]]:
        """One optimiser step on ``batch``; per-frame losses, None when skipped (non-finite)."""
        self.model.train()
        choice = self.hooks.weight_choice()
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule.lr
        self.optimizer.zero_grad(set_to_none=True)
        loss, stats = self.batch_loss(self.wrapped, batch, choice, global_utts)
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
        return per_frame(all_sum(stats))

    def _report_bad_batch(self, what: str, batch: Batch, choice: Optional[Choice]) -> None:
        """Name the utterances that made a batch non-finite (warning + ``bad_batches.txt``)."""
        found = culprits(self.model, self.optimizer, self.batch_loss, batch, choice)
        report_bad_batch(
            self.dir, self.dist.rank, what, batch, found, self.step, self.epoch, self.bad_batches
        )

    # -- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def held_out_stats(
        self, model: Optional[nn.Module] = None, choice_fn: Optional[ChoiceFn] = None
    ) -> Dict[str, float]:
        """Per-frame ``-log p(l|x)`` (``loss``) and its parts over the whole held-out set
        (the stage's own model: run as the hooks' ``eval_choice`` says, the same every
        epoch)."""
        model = model or self.model
        model.eval()
        gen = torch.Generator().manual_seed(self.cfg.seed + 12345)  # same paths every epoch
        if choice_fn is None and model is self.model:
            choice_fn = self.hooks.eval_choice

        def stats(batch: Batch) -> Tensor:
            choice = choice_fn(gen) if choice_fn is not None else None
            return self.batch_loss(model, batch.to(self.device), choice, 1)[1]

        cfg, zeros = self.cfg, torch.zeros(len(STATS), dtype=torch.float64, device=self.device)
        held = (self.held_out, cfg.max_frames, cfg.max_utts, cfg.seed, self.dist)
        return per_frame(all_sum(summed_over(*held, zeros, stats)))

    def held_out_loss(
        self, model: Optional[nn.Module] = None, choice_fn: Optional[ChoiceFn] = None
    ) -> float:
        """``-log p(l|x)`` per output frame over the held-out set (what schedules decide on)."""
        return self.held_out_stats(model, choice_fn)["loss"]

    # -- the loop -------------------------------------------------------------------------
    def train_epochs(self, on_step: Optional[Callable[[], None]] = None) -> None:
        """Epochs until the schedule says stop (resumable at any batch)."""
        cfg = self.cfg
        if self.step == 0 and self.epoch == 0 and self.next_batch == 0:
            held = self.held_out_stats()
            parts = {f"held_out_{k}": v for k, v in held.items() if k != "loss"}
            row = {"kind": "init", "step": 0, "held_out_loss": held["loss"], **parts}
            self.log_row("metrics.jsonl", row)
        with self.signals.installed():
            while not self.finished:
                rank, world = self.dist.rank, self.dist.world
                batches = make_batches(
                    self.train, cfg.max_frames, cfg.max_utts, cfg.seed, self.epoch, min_utts=world
                )
                stream = BatchStream(self.train, batches, self.next_batch, rank, world)
                hidden = not (cfg.progress and self.dist.main and on_terminal())
                bar = tqdm(
                    total=len(batches),
                    initial=self.next_batch,
                    unit="batch",
                    desc=f"{cfg.stage} epoch {self.epoch + 1}",
                    disable=hidden,
                    dynamic_ncols=True,
                )
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

    def _one_batch(
        self,
        batch: Batch,
        global_utts: int,
        bar,
        t0: float,
        frames: int,
        on_step: Optional[Callable[[], None]],
    ) -> None:
        batch = batch.to(self.device)
        arch_loss = self.hooks.before_weight_step(self)
        losses = self.weight_step(batch, global_utts)
        loss = losses["loss"] if losses is not None else None
        self.step += 1
        if self.bad_batches > self.cfg.max_bad_batches:
            self.checkpoint()
            raise TrainingError(
                f"{self.bad_batches} batches with a non-finite loss (limit max_bad_batches="
                f"{self.cfg.max_bad_batches}); checkpoint saved in {self.dir / 'ckpt'}. Check the "
                "features for NaN/inf or lower the learning rate, then rerun to resume."
            )
        fps = (frames + int(batch.lengths.sum()) * self.dist.world) / max(time.time() - t0, 1e-9)
        show_progress(
            bar,
            self.cfg.stage,
            self.epoch,
            self.next_batch + 1,
            loss,
            self.schedule.lr,
            fps,
            plain=self.cfg.progress and self.dist.main,
        )
        if losses is not None and self.step % self.cfg.log_every == 0:
            row = {
                "kind": "train",
                "step": self.step,
                "epoch": self.epoch,
                **losses,
                "lr": self.schedule.lr,
                "frames_per_s": fps,
            }
            if arch_loss is not None:
                row["arch_loss"] = arch_loss
            self.log_row("metrics.jsonl", row)
        if on_step is not None:
            on_step()

    def _end_epoch(self, seconds: float) -> None:
        held_parts = self.held_out_stats()
        held = held_parts["loss"]
        lr_before = self.schedule.lr
        go_on = self.schedule.end_epoch(held)
        if self.schedule.improved:
            self.save_best()
        row = {
            "kind": "epoch",
            "step": self.step,
            "epoch": self.epoch,
            "held_out_loss": held,
            **{f"held_out_{k}": v for k, v in held_parts.items() if k != "loss"},
            "lr": lr_before,
            "bad_batches": self.bad_batches,
            "seconds": seconds,
        }
        self.hooks.end_epoch(self, held, row)
        self.log_row("metrics.jsonl", row)
        now = (self.cfg.stage, self.epoch + 1, held, self.schedule.best, self.schedule.lr)
        log.info("%s epoch %d: held-out loss %.4f (best %.4f), lr %.1e", *now)
        if self.dist.main and self.cfg.average_last:
            with atomic_path(self.dir / "epochs" / f"epoch-{self.epoch:04d}.pt") as tmp:
                torch.save(self.model.state_dict(), tmp)
        self.epoch, self.next_batch = self.epoch + 1, 0
        self.finished = not go_on
        self.checkpoint()

    def save_best(self) -> None:
        if not self.dist.main:
            return
        state = {
            "model": self.model.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "held_out_loss": self.schedule.best,
            "num_units": self.num_units,
            "stage": self.cfg.stage,
            **self.hooks.best_extra(),
        }
        with atomic_path(self.dir / "best.pt") as tmp:
            torch.save(state, tmp)

    def load_init(self, path: Path) -> None:
        """Start from trained weights, e.g. a search from the warm-up's (paper §3.2); the
        optimisers start fresh."""
        state = load_file(path, required=("model",))
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise StnasError(f"{path}: weights do not fit this supernet ({e})") from None

    def ranks_identical(self) -> bool:
        """Whether every rank holds bitwise the same weights (the model's and the hooks')
        (True in one process)."""
        return identical_on_ranks([*self.model.parameters(), *self.hooks.parameters()])
