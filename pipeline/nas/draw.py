"""A PNG drawing of a derived network: one box per layer, bottom (input) to top (output).

Each searchable block shows its chosen op, kernel/dilation, receptive field so far (in input
frames) and, when the architecture was searched, a bar of the probabilities of its candidates
(those the choice was made from) with the chosen one highlighted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from pipeline.io import atomic_path
from pipeline.nas.arch import Arch


def _context(op_name: str):
    """(kernel, dilation, stride) of a registered TDNN op name (identity: (1, 1, 1))."""
    if op_name == "identity":
        return 1, 1, 1
    parts = dict((p[0], int(p[1:])) for p in op_name.split("_")[1:])
    return parts.get("k", 1), parts.get("d", 1), parts.get("s", 1)


def draw_arch(arch: Arch, path: Union[str, Path], num_units: int, title: str = "") -> None:
    """Write the drawing of ``arch`` with K = ``num_units`` outputs to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = arch.layer_specs()
    rows = len(layers) + 2  # input, layers, output
    fig, ax = plt.subplots(figsize=(7.5, 0.75 * rows + 1.0))
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.5, rows - 0.3)
    ax.axis("off")

    def box(y: float, text: str, color: str) -> None:
        ax.add_patch(
            plt.Rectangle(
                (0.3, y - 0.3), 5.2, 0.6, facecolor=color, edgecolor="black", linewidth=0.8
            )
        )
        ax.text(2.9, y, text, ha="center", va="center", fontsize=9)
        if y > 0:
            ax.annotate(
                "",
                xy=(2.9, y - 0.3),
                xytext=(2.9, y - 0.7),
                arrowprops={"arrowstyle": "->", "linewidth": 0.8},
            )

    box(0, f"input features ({arch.net['input_dim']}-d)", "#eeeeee")
    receptive, rate, block = 1, 1, 0
    after = arch.net["subsample_after"]
    for i, (name, _, width) in enumerate(layers, 1):
        kernel, dilation, stride = _context(name)
        receptive += (kernel - 1) * dilation * rate
        fixed = (i - 1) == after
        label = f"{name}  → {width}   context {receptive} frames"
        box(i, label, "#fde2b3" if fixed else "#cfe3f7")
        rate *= stride
        if not fixed:
            if arch.probabilities:
                probs = arch.probabilities[block]
                chosen = arch.candidates[block].index(arch.ops[block])
                span = 3.2 / len(probs)
                for k, p in enumerate(probs):
                    x0 = 5.8 + k * span
                    ax.add_patch(
                        plt.Rectangle(
                            (x0, i - 0.2),
                            0.85 * span,
                            0.5 * p,
                            color="#d62728" if k == chosen else "#888888",
                        )
                    )
                    short = arch.candidates[block][k].replace("tdnn_", "").replace("_", "")
                    ax.text(x0 + 0.42 * span, i - 0.3, short, ha="center", va="center", fontsize=6)
                ax.text(9.95, i, f"p={probs[chosen]:.2f}", ha="right", va="center", fontsize=7)
            block += 1
    box(len(layers) + 1, f"linear → {num_units} units, log-softmax", "#e3f2d9")
    params = arch.num_parameters(num_units)
    ax.set_title(
        title
        or f"{arch.space_name}: {arch.describe()}\n{params / 1e6:.2f} M parameters"
        + ("; bars: p the choice was made from (red: chosen)" if arch.probabilities else ""),
        fontsize=9,
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
