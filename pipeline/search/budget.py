"""Search under a budget: a differentiable penalty on the expected cost, and the checks.

``budget:`` in a search config names targets on any of the costs of
:mod:`pipeline.nas.cost` (``params``, ``macs``, ``lookahead``, ``latency``). During the
search each arch step adds, per budgeted cost C with target B,

* ``abs``  (the default, TuNAS): ``weight · |E[C]/B − 1|``: the search aims at the budget;
* ``relu``: ``weight · max(0, E[C]/B − 1)``: only a network above the budget is pushed down;
* ``hard``: the ``relu`` penalty, and the derived architecture must fit: it is the most
  probable architecture (Π_b p_b) among those within every target.

``E[C] = fixed + Σ_b Σ_k p_bk C_bk`` is exact for independent per-block choices, so its
gradient is the analytic one for every strategy; for ST-NAS it is also what the
straight-through estimator gives, since Eq. 10 with the cost as the block's "output" yields
``∂E[C]/∂p_bk = C_bk``. Random search draws only architectures within the targets
(rejection sampling, acceptance rate reported).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from pipeline.errors import StnasError
from pipeline.nas.cost import COSTS, UNITS, CostModel

FORMS = ("abs", "relu", "hard")
MAX_ENUMERATED = 5_000_000  # architectures the hard derivation may score one by one


class BudgetError(StnasError):
    """A budget that cannot be searched for, or an architecture that breaks one."""


@dataclass
class Budget:
    """Targets per cost name on one :class:`CostModel`."""

    model: CostModel
    targets: Dict[str, float]
    form: str = "abs"
    weight: float = 1.0
    acceptance: Optional[Tuple[int, int]] = field(default=None)  # random: (accepted, drawn)
    latency_table: Optional[str] = None  # the table the latency costs come from

    @classmethod
    def from_config(
        cls, targets: Mapping[str, Any], form: str, weight: float, model: CostModel
    ) -> "Budget":
        """Check ``targets`` against the space before any training.

        Raises:
            BudgetError: an unknown cost name, a form not in :data:`FORMS`, a non-numeric
                target, or a target below the cheapest or at/above the dearest architecture
                (a budget every architecture meets decides nothing).
        """
        if form not in FORMS:
            raise BudgetError(f"budget_form '{form}' is not one of {', '.join(FORMS)}")
        space = model.space.name
        out: Dict[str, float] = {}
        for name, value in targets.items():
            if name not in COSTS:
                raise BudgetError(f"budget: unknown cost '{name}' (known: {', '.join(COSTS)})")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BudgetError(
                    f"budget: {name} must be a number of {UNITS[name]}, got {value!r}"
                )
            lo, hi = model.extremes(name)
            if value < lo:
                raise BudgetError(
                    f"budget: {name} {value:g} is below the cheapest architecture of space "
                    f"'{space}' ({lo:,.0f} {UNITS[name]}): no network fits"
                )
            if value >= hi:
                raise BudgetError(
                    f"budget: {name} {value:g} is at or above the dearest architecture of space "
                    f"'{space}' ({hi:,.0f} {UNITS[name]}): every network fits, it decides nothing"
                )
            out[name] = float(value)
        return cls(model, out, form, weight)

    # -- the search --------------------------------------------------------------------------
    def expected(self, probs: Sequence[Tensor]) -> Dict[str, Tensor]:
        """E[C] of every budgeted cost under p."""
        return {n: self.model.expected(n, probs) for n in self.targets}

    def penalty(self, probs: Sequence[Tensor]) -> Tensor:
        """The penalty of p (in p's graph), summed over the budgeted costs."""
        total = torch.zeros((), dtype=probs[0].dtype, device=probs[0].device)
        for name, value in self.expected(probs).items():
            excess = value / self.targets[name] - 1.0
            total = total + (excess.abs() if self.form == "abs" else torch.relu(excess))
        return self.weight * total

    # -- architectures ---------------------------------------------------------------------
    def costs(self, indices: Sequence[int]) -> Dict[str, Dict[str, Any]]:
        """Each cost of an architecture, with its target where there is one."""
        out: Dict[str, Dict[str, Any]] = {}
        for name, value in self.model.of(indices).items():
            row: Dict[str, Any] = {"value": value, "unit": UNITS[name]}
            if name in self.targets:
                row["budget"] = self.targets[name]
                row["ratio"] = value / self.targets[name]
            out[name] = row
        return out

    def fits(self, indices: Sequence[int]) -> bool:
        costs = self.model.of(indices)
        return all(costs[n] <= t * (1 + 1e-9) for n, t in self.targets.items())

    def check(self, indices: Sequence[int], what: str = "the derived architecture") -> None:
        """Raise :class:`BudgetError` saying by how much ``indices`` breaks a hard budget."""
        if self.form != "hard" or self.fits(indices):
            return
        costs = self.model.of(indices)
        over = [
            f"{n} {costs[n]:,.0f} > {t:,.0f} {UNITS[n]} (+{100 * (costs[n] / t - 1):.1f} %)"
            for n, t in self.targets.items()
            if costs[n] > t * (1 + 1e-9)
        ]
        raise BudgetError(f"{what} breaks the hard budget: {'; '.join(over)}")

    def best_within(self, probs: Sequence[Sequence[float]]) -> Tuple[int, ...]:
        """The most probable architecture (Σ_b log p_b) among those within every target."""
        sizes = [len(p) for p in probs]
        if math.prod(sizes) > MAX_ENUMERATED:
            raise BudgetError(
                f"space '{self.model.space.name}' has {math.prod(sizes):,} architectures, more "
                f"than the {MAX_ENUMERATED:,} a hard budget's derivation scores"
            )
        score = np.zeros(())
        ok = np.ones((), dtype=bool)
        totals = {n: np.full((), self.model.fixed[n]) for n in self.targets}
        for b, p in enumerate(probs):
            shape = [1] * len(sizes)
            shape[b] = sizes[b]
            score = score + np.log(np.maximum(np.asarray(p, dtype=np.float64), 1e-300)).reshape(
                shape
            )
            for n in self.targets:
                totals[n] = totals[n] + np.asarray(self.model.per_block[n][b]).reshape(shape)
        for n, t in self.targets.items():
            ok = ok & (totals[n] <= t * (1 + 1e-9))
        score = np.where(np.broadcast_to(ok, score.shape), score, -np.inf)
        if not np.isfinite(score).any():
            raise BudgetError("no architecture of the space fits the budget")
        flat = int(np.argmax(score))  # ties: the first in C order (lowest indices)
        return tuple(int(i) for i in np.unravel_index(flat, sizes))

    def derive(self, probs: Sequence[Sequence[float]]) -> Tuple[int, ...]:
        """The architecture a search derives from p: argmax per block, or with ``hard`` the
        most probable one within the budget."""
        if self.form == "hard":
            return self.best_within(probs)
        return tuple(max(range(len(p)), key=lambda k: (p[k], -k)) for p in probs)

    def draw_within(
        self, draw: Callable[[], Tuple[int, ...]], max_draws: int = 100_000
    ) -> Tuple[int, ...]:
        """Draw with ``draw`` until an architecture fits (every target is a limit here);
        counts the draws in :attr:`acceptance`."""
        accepted, drawn = self.acceptance or (0, 0)
        for _ in range(max_draws):
            path = draw()
            drawn += 1
            if self.fits(path):
                self.acceptance = (accepted + 1, drawn)
                return path
        raise BudgetError(f"no architecture within the budget in {max_draws} random draws")

    def acceptance_rate(self) -> Optional[float]:
        if not self.acceptance or not self.acceptance[1]:
            return None
        return self.acceptance[0] / self.acceptance[1]

    def share_within(self) -> float:
        """The exact share of the space's architectures within every target."""
        sizes = [len(t) for t in self.model.per_block[self.model.names[0]]]
        if math.prod(sizes) > MAX_ENUMERATED:
            return math.nan
        inside = sum(self.fits(idx) for idx in itertools.product(*(range(n) for n in sizes)))
        return inside / math.prod(sizes)

    def summary(self, indices: Optional[Sequence[int]] = None) -> Dict[str, Any]:
        """For ``arch.json``, stage.json and the report."""
        out: Dict[str, Any] = {
            "targets": dict(self.targets),
            "form": self.form,
            "weight": self.weight,
            **({"latency_table": self.latency_table} if self.latency_table else {}),
        }
        if self.acceptance:
            out["random_acceptance"] = {
                "accepted": self.acceptance[0],
                "drawn": self.acceptance[1],
                "rate": self.acceptance_rate(),
            }
        if indices is not None:
            out["costs"] = self.costs(indices)
            out["fits"] = self.fits(indices)
        return out


def describe_costs(costs: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """One line per cost: ``params 41,234 parameters (budget 45,000: 92 %)``."""
    lines = []
    for name, row in costs.items():
        text = f"{name} {row['value']:,.0f} {row['unit']}"
        if "budget" in row:
            text += f" (budget {row['budget']:,.0f}: {100 * row['ratio']:.0f} %)"
        lines.append(text)
    return lines
