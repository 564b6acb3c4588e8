"""A study under budgets as a front: per budget the methods' table (as a study without
budgets has) and a plot of test %WER with its 95 % interval against each method's cost.

The aim of a budgeted search is a front below random's at every budget: at the same cost,
a lower WER. Each budget is compared on its own (Δ against ST-NAS at that budget).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from pipeline.study.budgets import budget_name
from pipeline.study.config import StudyConfig
from pipeline.study.report import (
    LABELS,
    agreement_lines,
    groups,
    method_table,
    seed_agreement,
    summarise,
    verdict,
)
from pipeline.train.plots import _save


def by_budget(cfg: StudyConfig, records: Sequence[dict]) -> List[Tuple[int, List[dict]]]:
    """(budget index, its records) for every budget with a scored member."""
    out = []
    for j in range(1, len(cfg.budgets) + 1):
        recs = [r for r in records if r.get("budget") == j]
        if recs:
            out.append((j, recs))
    return out


def front_lines(cfg: StudyConfig, records: Sequence[dict]) -> Tuple[List[str], Dict[str, dict]]:
    """The report's sections per budget, and the summaries (``results.json``)."""
    dev, test = cfg.decode.dev, cfg.decode.test
    lines: List[str] = [
        f"Budgets ({cfg.budget_form}): "
        + "; ".join(f"b{j}: {budget_name(b)}" for j, b in enumerate(cfg.budgets, 1))
        + ". Searches run under the budget, random architectures are drawn within it "
        "(rejection sampling), TDNN-D is scaled to it (`pipeline/study/budgets.py`).",
        "",
        "![test %WER against parameters and look-ahead, per method and budget](study.png)",
        "",
    ]
    summaries: Dict[str, dict] = {}
    for j, recs in by_budget(cfg, records):
        summary = summarise(cfg, recs)
        summaries[f"b{j}"] = summary
        lines += [f"## Budget b{j}: {budget_name(cfg.budgets[j - 1])}", ""]
        lines += method_table(summary, dev, test)
        lines += ["", "Mean cost of the retrained networks:", ""]
        for key, row in summary.items():
            costs = row.get("costs") or {}
            if costs:
                lines.append(
                    f"* {LABELS.get(key, key)}: {costs['params'][0]:,.0f} parameters, "
                    f"{costs['macs'][0] / 1e6:.2f} M multiply-adds per second, "
                    f"{costs['lookahead'][0]:.0f} ms look-ahead"
                )
        lines += ["", *[f"* {verdict(k, r)}" for k, r in summary.items() if "vs_st" in r], ""]
        lines += agreement_lines(seed_agreement(recs))
    return lines, summaries


def plot_front(cfg: StudyConfig, records: Sequence[dict], out_png: Path) -> None:
    """Test %WER (mean over seeds, bars: 95 % interval) against parameters and look-ahead;
    one line per method through its budgets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    points: Dict[str, List[Tuple[float, float, float, float, float]]] = {}
    for _, recs in by_budget(cfg, records):
        summary = summarise(cfg, recs)
        for key, _recs in groups(cfg, recs):
            if key == "random":  # every draw: the best-of-N row stands for random search
                continue
            row = summary[key]
            costs, ci = row.get("costs") or {}, row.get("test_ci95")
            if not costs or not ci:
                continue
            mean = row["test"][0]
            points.setdefault(key, []).append(
                (costs["params"][0], costs["lookahead"][0], mean, mean - ci[0], ci[1] - mean)
            )
    for i, (key, pts) in enumerate(points.items()):
        pts.sort()
        for ax, col in zip(axes, (0, 1)):
            ax.errorbar(
                [p[col] for p in pts],
                [p[2] for p in pts],
                yerr=[[p[3] for p in pts], [p[4] for p in pts]],
                marker="o",
                capsize=3,
                label=LABELS.get(key, key),
                color=f"C{i}",
            )
    axes[0].set_xlabel("parameters")
    axes[1].set_xlabel("look-ahead (ms)")
    axes[0].set_ylabel(f"{cfg.decode.test} %WER (mean over seeds, 95 % interval)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"study {cfg.name}: the front under budgets")
    _save(fig, out_png)
