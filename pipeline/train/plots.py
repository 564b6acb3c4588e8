"""Plots people would rather look at than read: training curves and α over time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Sequence, Union

from pipeline.io import atomic_path

PathLike = Union[str, Path]


def read_jsonl(path: PathLike) -> List[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _save(fig, path: PathLike) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_curves(metrics_jsonl: PathLike, out_png: PathLike, title: str = "") -> None:
    """Train loss (per logged step) and held-out loss (per epoch) with the learning rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_jsonl(metrics_jsonl)
    steps = [r for r in rows if r.get("kind") == "train"]
    epochs = [r for r in rows if r.get("kind") == "epoch"]
    fig, (ax, ax_lr) = plt.subplots(
        2, 1, figsize=(7, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    if steps:
        ax.plot(
            [r["step"] for r in steps],
            [r["loss"] for r in steps],
            lw=0.8,
            color="#1f77b4",
            label="train (batch)",
        )
    held = [r for r in rows if r.get("kind") in ("init", "epoch")]
    if held:
        ax.plot(
            [r["step"] for r in held],
            [r["held_out_loss"] for r in held],
            "o-",
            color="#d62728",
            label="held-out (start, then per epoch)",
        )
    if epochs:
        ax_lr.semilogy(
            [r["step"] for r in epochs], [r["lr"] for r in epochs], "s-", color="#2ca02c"
        )
    ax.set_ylabel("-log p(l|x) per frame")
    ax.legend()
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax_lr.set_ylabel("lr")
    ax_lr.set_xlabel("step")
    ax_lr.grid(alpha=0.3)
    _save(fig, out_png)


def plot_alphas(
    alphas_jsonl: PathLike, candidates: Sequence[Sequence[str]], out_png: PathLike, title: str = ""
) -> None:
    """Probability of each candidate op over arch steps, one panel per block."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_jsonl(alphas_jsonl)
    n = len(candidates)
    cols = min(3, n)
    fig, axes = plt.subplots(
        (n + cols - 1) // cols,
        cols,
        figsize=(4 * cols, 3 * ((n + cols - 1) // cols)),
        squeeze=False,
        sharey=True,
    )
    steps = [r["step"] for r in rows]
    for b, names in enumerate(candidates):
        ax = axes[b // cols][b % cols]
        for k, name in enumerate(names):
            ax.plot(steps, [r["probs"][b][k] for r in rows], label=name, lw=1.2)
        ax.set_title(f"block {b + 1}", fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        if b == 0 or list(names) != list(candidates[b - 1]):
            ax.legend(fontsize=6)
        ax.set_xlabel("arch step", fontsize=8)
    for b in range(n, len(axes) * cols):
        axes[b // cols][b % cols].axis("off")
    fig.suptitle(title or "p(op) per block during the search")
    _save(fig, out_png)
