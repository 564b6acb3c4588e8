"""Search strategies on one supernet: ``st`` (ST-NAS), ``darts``, ``snas``, ``random``, ``fixed``.

All strategies share the supernet, the data and the training loop, so comparisons are fair
(paper Table 2). The search's side of the loop (:class:`pipeline.search.steps.SearchSteps`)
alternates, as in paper Algorithm 1:

1. if ``strategy.has_arch_step``: ``strategy.arch_step(loss_of)`` on the next held-out batch,
   where ``loss_of(choice)`` runs the supernet on that batch and returns the loss;
2. a weight step on a training batch with ``strategy.weight_choice()``.

========  ==========================================  =========================================
name      arch step (weights frozen)                  weight step
========  ==========================================  =========================================
st        sample s ~ p, ST gradient (Eq. 10)          one path, s ~ p
darts     mixture, w = softmax(α) (first order)       mixture, w = softmax(α) (no grad to α)
snas      mixture, w = Gumbel-softmax(α, τ)           mixture, fresh Gumbel sample
random    none; afterwards k sampled architectures     uniform path (a warm-up continued)
          are short-trained and the best on held-out
          is kept (:func:`random_search`)
fixed     none                                        the given architecture
========  ==========================================  =========================================

Distributed: every draw comes from a generator seeded identically on all ranks and is then
broadcast from rank 0 (so ranks agree even if a generator diverged), and α gradients are
averaged over ranks before each arch update, so every rank holds the same α and derives the
same architecture. Collectives go through :mod:`pipeline.train.distributed`, which runs them
on the process group's device (a GPU under NCCL), whatever device the values live on.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

import torch
import torch.distributed as dist
from torch import Tensor

from pipeline.nas.arch import Arch
from pipeline.nas.space import SpaceError
from pipeline.nas.supernet import ArchWeights, Choice, Mixture, Path, StraightThrough, Supernet
from pipeline.search.budget import Budget
from pipeline.train.distributed import all_sum, broadcast, distributed

LossOf = Callable[[Choice], Tensor]


@dataclass
class StrategyConfig:
    """Hyper-parameters of the strategies (paper §4.1 defaults).

    Attributes:
        seed: seed of the architecture sampler (identical on every rank).
        arch_lr: Adam learning rate of α (5e-3, constant).
        tau_start, tau_min, tau_decay: SNAS temperature ``max(tau_min, tau_start *
            tau_decay ** epoch)``.
        random_candidates: k, architectures tried by ``random``.
        arch_samples: M, architectures drawn per arch step (``st``: paths, ``snas``: Gumbel
            samples) on the same held-out batch, their gradients averaged: an M-sample Monte
            Carlo estimate whose variance from the sampling falls as 1/M (``darts`` is
            deterministic and uses one).
        fixed_arch: path of the ``arch.json`` for ``fixed``.
    """

    seed: int = 0
    arch_lr: float = 5e-3
    tau_start: float = 1.0
    tau_min: float = 0.05
    tau_decay: float = 0.7
    random_candidates: int = 10
    arch_samples: int = 1
    fixed_arch: Optional[str] = None


class Strategy:
    """Base class: owns α's optimiser, the sampler and the derivation rule."""

    name = ""
    has_arch_step = False
    stochastic = False  # whether arch_choice() draws a new sample on each call

    def __init__(self, supernet: Supernet, arch: ArchWeights, config: StrategyConfig) -> None:
        self.supernet = supernet
        self.arch = arch
        self.config = config
        self.generator = torch.Generator().manual_seed(config.seed)
        self.optimizer = (
            torch.optim.Adam(arch.parameters(), lr=config.arch_lr) if self.has_arch_step else None
        )
        self.epoch = 0
        self.budget: Optional[Budget] = None  # set by the search stage when it has one
        self.last_penalty = 0.0

    # -- sampling -------------------------------------------------------------------------
    def draw_path(self, uniform: bool = False) -> Tuple[int, ...]:
        """One op per block from p (or uniform), the same on every rank."""
        drawn = torch.tensor(self.arch.sample(self.generator, uniform=uniform))
        return tuple(int(i) for i in broadcast(drawn))

    # -- the two steps --------------------------------------------------------------------
    def weight_choice(self) -> Choice:
        """How the supernet runs in the next weight step."""
        raise NotImplementedError

    def arch_choice(self) -> Choice:
        """How the supernet runs in the next arch step (strategies with an arch step)."""
        raise NotImplementedError

    def eval_choice(self, generator: torch.Generator) -> Choice:
        """How the supernet is evaluated on held-out data: a path sampled from p (paper §3.2:
        the expected performance of the current supernet), drawn from ``generator`` so that
        evaluation never moves the training sampler."""
        drawn = torch.tensor(self.arch.sample(generator))
        return Path(tuple(int(i) for i in broadcast(drawn)))

    def arch_step(self, loss_of: LossOf) -> float:
        """One α update on a held-out batch with the weights frozen; returns the loss."""
        if not self.has_arch_step or self.optimizer is None:
            raise RuntimeError(f"strategy '{self.name}' has no arch step")
        self.optimizer.zero_grad(set_to_none=True)
        samples = max(1, self.config.arch_samples) if self.stochastic else 1
        total = 0.0
        with self.supernet.frozen_weights():
            for _ in range(samples):
                loss = loss_of(self.arch_choice())
                (loss / samples).backward()
                total += float(loss.detach())
            if self.budget is not None:  # the same on every rank: no averaging needed
                penalty = self.budget.penalty(self.arch.probs())
                penalty.backward()
                self.last_penalty = float(penalty.detach())
        self._average_alpha_grads()
        if not all(a.grad is None or bool(torch.isfinite(a.grad).all()) for a in self.arch.alphas):
            self.optimizer.zero_grad(set_to_none=True)  # a NaN batch must not poison α
            return math.nan
        self.optimizer.step()
        return total / samples

    def _average_alpha_grads(self) -> None:
        if not distributed():
            return
        world = dist.get_world_size()
        for a in self.arch.alphas:
            grad = a.grad if a.grad is not None else torch.zeros_like(a)
            a.grad = all_sum(grad) / world

    # -- bookkeeping ----------------------------------------------------------------------
    def end_epoch(self, epoch: int) -> None:
        """Called after each epoch (SNAS anneals its temperature here)."""
        self.epoch = epoch + 1

    def probabilities(self) -> List[List[float]]:
        """Current p per block (for ``alphas.jsonl`` and ``arch.json``)."""
        return [p.detach().cpu().tolist() for p in self.arch.probs()]

    def derive(self) -> Tuple[int, ...]:
        """The final architecture: the most probable op per block (under a hard budget: the
        most probable architecture within it)."""
        if self.budget is not None:
            return self.budget.derive(self.probabilities())
        return self.arch.argmax()

    def state_dict(self) -> Dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "budget_acceptance": list(self.budget.acceptance)
            if self.budget is not None and self.budget.acceptance
            else None,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.epoch = state["epoch"]
        if self.optimizer is not None and state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.budget is not None and state.get("budget_acceptance"):
            accepted, drawn = state["budget_acceptance"]
            self.budget.acceptance = (int(accepted), int(drawn))


class StraightThroughNas(Strategy):
    """ST-NAS (paper §3): sampled sub-graphs in both steps, ST gradients for α."""

    name = "st"
    has_arch_step = True
    stochastic = True

    def weight_choice(self) -> Choice:
        return Path(self.draw_path())

    def arch_choice(self) -> Choice:
        return StraightThrough(self.draw_path(), self.arch.probs())


class Darts(Strategy):
    """First-order DARTS: softmax mixture of all candidates."""

    name = "darts"
    has_arch_step = True

    def weight_choice(self) -> Choice:
        return Mixture([p.detach() for p in self.arch.probs()])

    def arch_choice(self) -> Choice:
        return Mixture(self.arch.probs())

    def eval_choice(self, generator: torch.Generator) -> Choice:
        return Mixture([p.detach() for p in self.arch.probs()])


def gumbel_softmax(logits: Tensor, tau: float, generator: torch.Generator) -> Tensor:
    """Soft one-hot ``softmax((α + g) / τ)`` with Gumbel noise g drawn from ``generator``."""
    u = torch.rand(logits.shape, generator=generator).clamp_(1e-10, 1.0 - 1e-7)
    noise = broadcast(-torch.log(-torch.log(u))).to(logits.device, logits.dtype)
    return ((logits + noise) / tau).softmax(dim=-1)


class Snas(Strategy):
    """SNAS: Gumbel-softmax mixture with an annealed temperature."""

    name = "snas"
    has_arch_step = True
    stochastic = True

    @property
    def tau(self) -> float:
        c = self.config
        return max(c.tau_min, c.tau_start * c.tau_decay**self.epoch)

    def weight_choice(self) -> Choice:
        return Mixture(
            [gumbel_softmax(a.detach(), self.tau, self.generator) for a in self.arch.logits()]
        )

    def arch_choice(self) -> Choice:
        return Mixture([gumbel_softmax(a, self.tau, self.generator) for a in self.arch.logits()])

    def eval_choice(self, generator: torch.Generator) -> Choice:
        return Mixture(
            [gumbel_softmax(a.detach(), self.tau, generator) for a in self.arch.logits()]
        )


class RandomSearch(Strategy):
    """Random search: uniform weight steps, then :func:`random_search` picks the best of k."""

    name = "random"

    def __init__(self, supernet: Supernet, arch: ArchWeights, config: StrategyConfig) -> None:
        super().__init__(supernet, arch, config)
        self.results: List[Tuple[Tuple[int, ...], float]] = []

    def weight_choice(self) -> Choice:
        return Path(self.draw_path(uniform=True))

    def eval_choice(self, generator: torch.Generator) -> Choice:
        drawn = torch.tensor(self.arch.sample(generator, uniform=True))
        return Path(tuple(int(i) for i in broadcast(drawn)))

    def candidates(self) -> List[Tuple[int, ...]]:
        """k distinct uniformly drawn architectures (fewer if the space is smaller); under a
        budget only those within it (rejection sampling)."""
        size = math.prod(self.arch.sizes)
        if self.budget is not None:
            share = self.budget.share_within()
            size = int(round(share * size)) if share == share else size
        k = min(self.config.random_candidates, size)
        seen: List[Tuple[int, ...]] = []
        while len(seen) < k:
            if self.budget is not None:
                path = self.budget.draw_within(lambda: self.draw_path(uniform=True))
            else:
                path = self.draw_path(uniform=True)
            if path not in seen:
                seen.append(path)
        return seen

    def derive(self) -> Tuple[int, ...]:
        if not self.results:
            raise RuntimeError("random search has evaluated no architecture yet")
        return min(self.results, key=lambda r: r[1])[0]

    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), "results": [[list(a), v] for a, v in self.results]}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.results = [(tuple(a), float(v)) for a, v in state.get("results", [])]


class FixedArch(Strategy):
    """A hand-designed architecture (``config.fixed_arch``): no search at all."""

    name = "fixed"

    def __init__(self, supernet: Supernet, arch: ArchWeights, config: StrategyConfig) -> None:
        super().__init__(supernet, arch, config)
        if not config.fixed_arch:
            raise SpaceError("strategy 'fixed' needs an architecture file (fixed_arch)")
        fixed = Arch.from_json(config.fixed_arch)
        if fixed.space_hash and fixed.space_hash != supernet.space.hash:
            raise SpaceError(
                f"{config.fixed_arch}: architecture of space "
                f"'{fixed.space_name}', not of '{supernet.space.name}'"
            )
        self.indices = tuple(supernet.space.index_of(fixed.ops))

    def weight_choice(self) -> Choice:
        return Path(self.indices)

    def eval_choice(self, generator: torch.Generator) -> Choice:
        return Path(self.indices)

    def derive(self) -> Tuple[int, ...]:
        return self.indices


STRATEGIES: Dict[str, Type[Strategy]] = {
    cls.name: cls for cls in (StraightThroughNas, Darts, Snas, RandomSearch, FixedArch)
}


def make_strategy(
    name: str, supernet: Supernet, arch: ArchWeights, config: Optional[StrategyConfig] = None
) -> Strategy:
    """Build a registered strategy (raises ValueError naming the known ones)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown search strategy '{name}' (known: {', '.join(STRATEGIES)})")
    return STRATEGIES[name](supernet, arch, config or StrategyConfig())


def random_search(
    strategy: RandomSearch,
    short_train: Callable[[Path], None],
    held_out_loss: Callable[[Path], float],
    progress: Optional[Callable[[int, Tuple[int, ...], float], None]] = None,
) -> Tuple[int, ...]:
    """Try k architectures, each short-trained from the same warmed supernet weights.

    Args:
        strategy: the ``random`` strategy (its ``results`` are filled; already evaluated
            candidates are skipped, so a resumed search continues).
        short_train: trains the supernet along a path for a few steps (its own optimiser).
        held_out_loss: mean held-out loss along a path.
        progress: called as ``progress(i, arch, loss)`` after each candidate.

    Returns:
        The architecture with the lowest held-out loss.
    """
    warmed = copy.deepcopy(strategy.supernet.state_dict())
    done = {a for a, _ in strategy.results}
    for i, arch in enumerate(strategy.candidates()):
        if arch in done:
            continue
        short_train(Path(arch))
        loss = float(held_out_loss(Path(arch)))
        strategy.results.append((arch, loss))
        strategy.supernet.load_state_dict(warmed)
        if progress is not None:
            progress(i, arch, loss)
    return strategy.derive()
