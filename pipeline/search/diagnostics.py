"""Search diagnostics: did the search decide, and does the decision agree with the supernet?

A search that ends with p near uniform has chosen nothing: its ``arch.json`` is an argmax
over noise. These numbers, written while the search runs and summarised at its end in
``search/report.md``, tell a decision from noise:

* per block, the op probabilities with their **entropy** (nats, and relative to the uniform
  distribution's ``log N``), **max p** and **margin** (max p minus the runner-up)
  (:func:`block_stats`), at the end of every epoch (``arch.json`` history);
* the **signal-to-noise ratio of the α gradients** per candidate, ``|mean| / std`` of the
  per-step gradients over an epoch (:class:`GradStats`): an estimator whose steps mostly
  disagree (SNR ≪ 1) needs many steps, or bigger held-out batches, to move α anywhere;
* **each op's held-out loss** with the other blocks sampled from p (:func:`op_losses`): what
  the trained supernet itself prefers, compared with the α ranking (:func:`agreement`);
* whether the argmax still changed during the last epoch (:func:`argmax_changes`), and how the
  warm-up and the supernet converged (their held-out losses per epoch).

``stnas show arch.json`` prints an architecture as a table (:func:`arch_rows`): op, kernel,
dilation, p, entropy, parameters and receptive field per layer.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from pipeline.nas.arch import Arch
from pipeline.nas.cost import network_costs
from pipeline.nas.supernet import Path


def block_stats(p: Sequence[float]) -> Dict[str, float]:
    """Entropy (nats), entropy / log N, max p, margin (max p - second), argmax of one block."""
    q = np.asarray(p, dtype=np.float64)
    nz = q[q > 0]
    entropy = float(-(nz * np.log(nz)).sum())
    order = np.argsort(-q, kind="stable")
    second = float(q[order[1]]) if len(q) > 1 else 0.0
    return {
        "entropy": entropy,
        "relative_entropy": entropy / math.log(len(q)) if len(q) > 1 else 0.0,
        "max_p": float(q[order[0]]),
        "margin": float(q[order[0]]) - second,
        "argmax": int(order[0]),
    }


class GradStats:
    """Running mean and spread of the α gradients of one epoch, per candidate.

    Args:
        sizes: candidates per block.
    """

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = list(sizes)
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.sum = [np.zeros(k) for k in self.sizes]
        self.sumsq = [np.zeros(k) for k in self.sizes]

    def add(self, grads: Sequence[Optional[torch.Tensor]]) -> None:
        """Account one arch step's gradients (one (N_b,) tensor per block; None = zeros)."""
        self.n += 1
        for b, g in enumerate(grads):
            v = np.zeros(self.sizes[b]) if g is None else g.detach().double().cpu().numpy()
            self.sum[b] += v
            self.sumsq[b] += v * v

    def snr(self) -> List[List[float]]:
        """``|mean| / std`` per candidate over the steps so far (0 with fewer than 2 steps)."""
        out = []
        for s, sq in zip(self.sum, self.sumsq):
            if self.n < 2:
                out.append([0.0] * len(s))
                continue
            mean = s / self.n
            std = np.sqrt(np.maximum(sq / self.n - mean * mean, 0.0))
            out.append([float(abs(m) / sd) if sd > 0 else 0.0 for m, sd in zip(mean, std)])
        return out

    def state_dict(self) -> Dict[str, Any]:
        return {
            "n": self.n,
            "sum": [s.tolist() for s in self.sum],
            "sumsq": [s.tolist() for s in self.sumsq],
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.n = int(state["n"])
        self.sum = [np.asarray(s, dtype=np.float64) for s in state["sum"]]
        self.sumsq = [np.asarray(s, dtype=np.float64) for s in state["sumsq"]]


def op_losses(
    held_out: Callable[[Callable[[torch.Generator], Path]], float], probs: Sequence[Sequence[float]]
) -> List[List[float]]:
    """Held-out loss of every op of every block, the other blocks sampled from ``probs``.

    Args:
        held_out: ``held_out(choice_fn)`` → mean held-out loss, where ``choice_fn(generator)``
            gives the path of a batch (the trainer's :meth:`held_out_loss`).
        probs: p per block, the distribution the other blocks are drawn from.

    Returns:
        loss[b][k]. Every evaluation draws its paths from the same seeded generator, so the
        ops of a block are compared on the same samples of the other blocks.
    """
    dists = [torch.tensor(p, dtype=torch.float64) for p in probs]
    out = []
    for b, p in enumerate(probs):
        row = []
        for k in range(len(p)):

            def choice(gen: torch.Generator, b: int = b, k: int = k) -> Path:
                drawn = [int(torch.multinomial(d, 1, generator=gen)) for d in dists]
                drawn[b] = k
                return Path(tuple(drawn))

            row.append(float(held_out(choice)))
        out.append(row)
    return out


def _kendall(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau between two score lists (ties count as neither agreement nor not)."""
    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
    if not pairs:
        return 1.0
    s = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in pairs)
    return float(s / len(pairs))


def agreement(
    probs: Sequence[Sequence[float]], losses: Sequence[Sequence[float]]
) -> List[Dict[str, Any]]:
    """Per block: does the op α ranks first have the lowest held-out loss, and Kendall's tau
    between p and minus the loss (1: the same order)."""
    out = []
    for p, loss in zip(probs, losses):
        best_p = int(np.argmax(p))
        best_loss = int(np.argmin(loss))
        out.append(
            {
                "alpha_first": best_p,
                "loss_first": best_loss,
                "top1_agrees": best_p == best_loss,
                "kendall_tau": _kendall(list(p), [-x for x in loss]),
            }
        )
    return out


def argmax_changes(rows: Sequence[Dict[str, Any]]) -> List[int]:
    """How often the argmax of each block changed over ``rows`` (``alphas.jsonl`` rows)."""
    if not rows:
        return []
    changes = [0] * len(rows[0]["probs"])
    prev = [int(np.argmax(p)) for p in rows[0]["probs"]]
    for r in rows[1:]:
        cur = [int(np.argmax(p)) for p in r["probs"]]
        changes = [c + (x != y) for c, x, y in zip(changes, cur, prev)]
        prev = cur
    return changes


def _receptive_steps(layer: torch.nn.Module) -> tuple:
    return (getattr(layer, "kernel", 1), getattr(layer, "dilation", 1), getattr(layer, "stride", 1))


def arch_rows(arch: Arch, num_units: int) -> List[Dict[str, Any]]:
    """One row per layer of ``arch``: op, kernel, dilation, stride, parameters, receptive field
    so far (input frames), and for searched blocks p(op) and the block's entropy."""
    net = arch.build(num_units)
    rows, field, hop, block = [], 1, 1, 0
    after = arch.net["subsample_after"]
    for i, layer in enumerate(net.layers):
        kernel, dilation, stride = _receptive_steps(layer)
        field += (kernel - 1) * dilation * hop
        hop *= stride
        searched = i != after
        row: Dict[str, Any] = {
            "layer": i + 1,
            "block": block + 1 if searched else None,
            "op": net.op_names[i],
            "kernel": kernel,
            "dilation": dilation,
            "stride": stride,
            "params": sum(p.numel() for p in layer.parameters()),
            "receptive_field": field,
        }
        if searched and arch.probabilities is not None:
            p = arch.probabilities[block]
            k = arch.candidates[block].index(arch.ops[block])
            stats = block_stats(p)
            row.update(
                {
                    "p": p[k],
                    "entropy": stats["entropy"],
                    "relative_entropy": stats["relative_entropy"],
                }
            )
        block += searched
        rows.append(row)
    rows.append(
        {
            "layer": len(net.layers) + 1,
            "block": None,
            "op": f"linear → {num_units}",
            "kernel": None,
            "dilation": None,
            "stride": None,
            "params": sum(p.numel() for p in net.output.parameters()),
            "receptive_field": field,
        }
    )
    return rows


def format_arch_table(arch: Arch, num_units: int) -> str:
    """:func:`arch_rows` as an aligned text table with a total line."""
    rows = arch_rows(arch, num_units)
    head = ["layer", "block", "op", "k", "d", "s", "p(op)", "H/log N", "params", "RF frames"]
    body = []
    for r in rows:
        body.append(
            [
                str(r["layer"]),
                str(r["block"] or ""),
                r["op"],
                str(r["kernel"] or ""),
                str(r["dilation"] or ""),
                str(r["stride"] or ""),
                f"{r['p']:.3f}" if "p" in r else "",
                f"{r['relative_entropy']:.2f}" if "relative_entropy" in r else "",
                f"{r['params']:,}",
                str(r["receptive_field"]),
            ]
        )
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(
        c.rjust(w) if i not in (2,) else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
    )
    total = sum(r["params"] for r in rows)
    out = [line(head), line(["-" * w for w in widths])] + [line(b) for b in body]
    out.append(
        f"{arch.describe()}: {total:,} parameters (K={num_units}), receptive field "
        f"{rows[-1]['receptive_field']} input frames ({rows[-1]['receptive_field'] * 10}"
        " ms)"
    )
    costs = network_costs(arch.layer_specs(), num_units)
    out.append(
        f"{costs['macs'] / 1e6:.2f} M multiply-adds per second of audio, look-ahead "
        f"{costs['lookahead']:.0f} ms"
    )
    return "\n".join(out)
