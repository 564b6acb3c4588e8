"""``search/report.md`` and ``search/diagnostics.png``: did the search decide, and on what?

Written at the end of a search from its ``arch.json`` history (p, held-out loss and α-gradient
SNR per epoch), its ``alphas.jsonl`` (p after every arch step), the per-op held-out losses
(:func:`pipeline.search.diagnostics.op_losses`) and the warm-up's ``metrics.jsonl``. The
definitions of every number are in :mod:`pipeline.search.diagnostics`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from pipeline.io import atomic_write_text
from pipeline.nas.arch import Arch
from pipeline.search.budget import describe_costs
from pipeline.search.diagnostics import agreement, argmax_changes, block_stats
from pipeline.train.plots import _save

PathLike = Union[str, Path]
DECIDED_P = 0.5  # a block has decided when its max p reaches this


def _short(op: str) -> str:
    return op.replace("tdnn_", "").replace("_", "")


def summarise(
    arch: Arch,
    warm_losses: Optional[List[List[float]]],
    losses: Optional[List[List[float]]],
    alpha_rows: Sequence[dict],
    warmup_rows: Sequence[dict],
    search_rows: Sequence[dict],
) -> Dict[str, Any]:
    """The report's numbers as a dict (also stored in the search's ``stage.json``).

    ``warm_losses``: per-op held-out losses of the warm-up supernet, the other blocks drawn
    uniformly: the supernet's preference before the search trained some ops more than others,
    the reference α is compared with. ``losses``: the same after the search, the other blocks
    drawn from p; biased towards what α chose (the chosen ops got the training).
    """
    history = arch.history or []
    probs = arch.probabilities or []
    per_block = [block_stats(p) for p in probs]
    last_epoch = history[-1]["epoch"] if history else None
    last_rows = [r for r in alpha_rows if r.get("epoch") == last_epoch]
    changes = argmax_changes(last_rows)
    final = [block_stats(p) for p in alpha_rows[-1]["probs"]] if alpha_rows else per_block
    out: Dict[str, Any] = {
        "ops": arch.ops,
        "chosen_epoch": arch.provenance.get("chosen_epoch"),
        "blocks": per_block,
        "final_blocks": final,
        "decided": bool(per_block) and all(b["max_p"] >= DECIDED_P for b in per_block),
        "argmax_changes_last_epoch": changes,
        "stable": bool(changes) and not any(changes),
        "warmup": {
            "held_out": [r["held_out_loss"] for r in warmup_rows if r.get("kind") == "epoch"]
        },
        "search": {
            "held_out": [r["held_out_loss"] for r in search_rows if r.get("kind") == "epoch"]
        },
    }
    if losses is not None and probs:
        out["op_losses"] = losses
    if warm_losses is not None and probs:
        out["warmup_op_losses"] = warm_losses
        out["agreement"] = agreement(probs, warm_losses)
    return out


def write_report(
    out_dir: PathLike,
    arch: Arch,
    summary: Dict[str, Any],
    warmup_stopped_by: str = "",
    search_stopped_by: str = "",
) -> Path:
    """Write ``report.md`` (and ``diagnostics.png``) into the search dir; returns the report."""
    out_dir = Path(out_dir)
    history = arch.history or []
    probs = arch.probabilities or []
    lines = [
        f"# Search report: {arch.provenance.get('exp_dir', '')}/search "
        f"(strategy {arch.provenance.get('strategy')}, seed {arch.provenance.get('seed')})",
        "",
        f"Architecture `{arch.describe()}`, "
        + (
            "the most probable architecture within the budget under p"
            if (arch.costs or {}).get("form") == "hard"
            else "the argmax of p"
        )
        + f" at epoch {summary['chosen_epoch']} (the lowest held-out loss) of {len(history)}.",
        "",
    ]
    decided = "yes" if summary["decided"] else "**no**"
    stable = "yes" if summary["stable"] else "**no**"
    lines += [
        f"* Decided (max p >= {DECIDED_P} in every block): {decided}.",
        f"* Stable (argmax unchanged over the last epoch's arch steps): {stable} "
        f"(changes per block: {summary['argmax_changes_last_epoch']}).",
    ]
    if arch.costs:
        budget = arch.costs.get("targets")
        form = arch.costs.get("form", "")
        lines.append(
            f"* Budget ({form}): " + ", ".join(f"{n} {v:,.0f}" for n, v in budget.items()) + "."
            if budget
            else "* No budget."
        )
        if arch.costs.get("fits") is not None:
            lines.append(f"* Within the budget: {'yes' if arch.costs['fits'] else '**no**'}.")
        acc = arch.costs.get("random_acceptance")
        if acc:
            lines.append(
                f"* Random draws within the budget: {acc['accepted']} of {acc['drawn']} "
                f"({100 * acc['rate']:.1f} %)."
            )
        lines += [f"* Cost: {line}." for line in describe_costs(arch.costs.get("costs", {}))]
    lines.append("")
    head = "| block | chosen | p | runner-up | margin | H / log N | α-grad SNR |"
    sep = "|---|---|---|---|---|---|---|"
    agree = summary.get("agreement")
    if agree:
        head += " lowest warm-up loss | agrees | Kendall τ |"
        sep += "---|---|---|"
    lines += ["## Blocks (p at the chosen epoch)", "", head, sep]
    snr = next((h.get("grad_snr") for h in history if h["epoch"] == summary["chosen_epoch"]), None)
    if snr and [len(x) for x in snr] != [len(c) for c in arch.candidates]:
        snr = None  # factorized α: its gradients are per shape and width, not per op
    for b, (stats, cands) in enumerate(zip(summary["blocks"], arch.candidates)):
        p = probs[b]
        order = sorted(range(len(p)), key=lambda k: -p[k])
        chosen = cands.index(arch.ops[b])  # under a hard budget not always the argmax
        order = [chosen] + [k for k in order if k != chosen]
        row = (
            f"| {b + 1} | {_short(cands[order[0]])} | {p[order[0]]:.3f} | "
            f"{_short(cands[order[1]])} ({p[order[1]]:.3f}) | {stats['margin']:.3f} | "
            f"{stats['relative_entropy']:.3f} | "
            + (f"{snr[b][order[0]]:.3f}" if snr else "–")
            + " |"
        )
        if agree:
            a = agree[b]
            row += (
                f" {_short(cands[a['loss_first']])} | {'yes' if a['top1_agrees'] else 'no'}"
                f" | {a['kendall_tau']:+.2f} |"
            )
        lines.append(row)
    if "op_losses" in summary:
        warm = summary.get("warmup_op_losses")
        lines += [
            "",
            "## Held-out loss of each op",
            "",
            "-log p(l|x) per frame, lower is better. *Warm-up*: the warm-up supernet, the "
            "other blocks drawn uniformly: what the supernet prefers before the search "
            "trained some ops more than others, the reference α is compared with above. "
            "*After search*: the searched supernet, the other blocks drawn from p: biased "
            "towards the ops α chose, which got the training.",
            "",
            "| block | op | p | warm-up | after search |",
            "|---|---|---|---|---|",
        ]
        for b, (row, cands) in enumerate(zip(summary["op_losses"], arch.candidates)):
            for k, loss in enumerate(row):
                w = f"{warm[b][k]:.4f}" if warm else "–"
                lines.append(
                    f"| {b + 1} | {_short(cands[k])} | {probs[b][k]:.3f} | {w} | {loss:.4f} |"
                )
    lines += [
        "",
        "## Per epoch",
        "",
        "| epoch | held-out loss | arch steps | max p per block | max α-grad SNR per block |",
        "|---|---|---|---|---|",
    ]
    for h in history:
        maxp = " ".join(f"{max(p):.2f}" for p in h["probabilities"])
        snrs = " ".join(f"{max(s):.2f}" for s in h.get("grad_snr") or [])
        lines.append(
            f"| {h['epoch']} | {h['held_out_loss']:.4f} | {h.get('arch_steps', '')} | "
            f"{maxp} | {snrs} |"
        )
    warm = summary["warmup"]["held_out"]
    search = summary["search"]["held_out"]
    lines += [
        "",
        "## Convergence",
        "",
        "* Warm-up held-out loss per epoch: "
        + (", ".join(f"{x:.4f}" for x in warm) or "–")
        + (f"; stopped by {warmup_stopped_by}" if warmup_stopped_by else "")
        + ".",
        "* Search held-out loss per epoch (paths sampled from p): "
        + (", ".join(f"{x:.4f}" for x in search) or "–")
        + (f"; stopped by {search_stopped_by}" if search_stopped_by else "")
        + ".",
    ]
    if len(search) >= 2:
        change = (search[-1] - search[-2]) / max(abs(search[-2]), 1e-12)
        lines.append(
            f"* Last epoch changed the supernet's held-out loss by {100 * change:+.2f} %"
            + (" (still learning)" if change < -0.005 else "")
            + "."
        )
    lines += ["", "Definitions: `pipeline/search/diagnostics.py`. Plot: `diagnostics.png`."]
    path = out_dir / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    plot_diagnostics(arch, summary, out_dir / "diagnostics.png")
    return path


def plot_diagnostics(arch: Arch, summary: Dict[str, Any], out_png: PathLike) -> None:
    """Max p and relative entropy per block over the epochs; per-op held-out loss bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = arch.history or []
    losses = summary.get("warmup_op_losses") or summary.get("op_losses")
    n_blocks = len(arch.candidates)
    fig, axes = plt.subplots(
        1, 3 if losses else 2, figsize=(13 if losses else 9, 3.6), squeeze=False
    )
    epochs = [h["epoch"] for h in history]
    for b in range(n_blocks):
        stats = [block_stats(h["probabilities"][b]) for h in history]
        axes[0][0].plot(epochs, [s["max_p"] for s in stats], "o-", label=f"block {b + 1}")
        axes[0][1].plot(epochs, [s["relative_entropy"] for s in stats], "o-")
    axes[0][0].axhline(DECIDED_P, color="k", ls="--", lw=0.8)
    axes[0][0].set(title="max p per block", xlabel="epoch", ylim=(0, 1))
    axes[0][0].legend(fontsize=7)
    axes[0][1].set(title="entropy / log N", xlabel="epoch", ylim=(0, 1.05))
    if losses:
        ax = axes[0][2]
        x = 0
        for b, (row, cands) in enumerate(zip(losses, arch.candidates)):
            chosen = cands.index(arch.ops[b])
            for k, loss in enumerate(row):
                ax.bar(x, loss, color="#d62728" if k == chosen else "#9ecae1")
                ax.text(
                    x, loss, _short(cands[k]), rotation=90, fontsize=6, ha="center", va="bottom"
                )
                x += 1
            x += 1
        low = min(min(r) for r in losses)
        high = max(max(r) for r in losses)
        ax.set_ylim(low - 0.1 * (high - low + 1e-9), high + 0.25 * (high - low + 1e-9))
        ax.set(title="warm-up held-out loss per op (red: chosen)", xticks=[])
    for ax in axes[0]:
        ax.grid(alpha=0.3)
    fig.suptitle(f"{arch.describe()}", fontsize=9)
    _save(fig, out_png)
