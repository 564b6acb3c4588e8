"""``study.md``, ``study.png`` and ``results.json`` of a study, from ``members/*.json``.

One row per method (mean ± standard deviation over seeds of dev and test %WER, parameters,
search wall time and peak memory) and, for ``random``, two rows: every drawn architecture, and
per seed the best of them by dev WER (the paper's random baseline). Every row but ST-NAS's is
compared with ST-NAS on the test set by :func:`pipeline.study.stats.paired_bootstrap`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from pipeline.study.config import REFERENCE, StudyConfig
from pipeline.study.stats import mean_interval, mean_std, paired_bootstrap
from pipeline.train.plots import _save

LABELS = {
    "st": "ST-NAS",
    "darts": "DARTS",
    "snas": "SNAS",
    "random": "random (every draw)",
    "random_best": "random, best of N by dev",
    "tdnn_d": "TDNN-D (hand design)",
    "st_no_warmup": "ST-NAS without warm-up",
    "st_ctc": "ST-NAS searched with CTC",
    "st_crf": "ST-NAS searched with CTC-CRF",
}
ALPHA = 0.05


def read_members(members_dir: Path) -> List[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(members_dir).glob("*.json"))]


def groups(cfg: StudyConfig, records: Sequence[dict]) -> List[Tuple[str, List[dict]]]:
    """(row key, its records) in the order of ``cfg.methods``; ``random_best`` after random."""
    dev = cfg.decode.dev
    out: List[Tuple[str, List[dict]]] = []
    for method in cfg.methods:
        recs = sorted(
            (r for r in records if r["method"] == method),
            key=lambda r: (r["seed"], r["index"] or 0),
        )
        if not recs:
            continue
        out.append((method, recs))
        if method == "random":
            best = []
            for seed in sorted({r["seed"] for r in recs}):
                drawn = [r for r in recs if r["seed"] == seed]
                if len(drawn) == cfg.random_archs:  # only seeds with every draw scored
                    best.append(min(drawn, key=lambda r: (r["wer"][dev], r["index"])))
            if best:
                out.append(("random_best", best))
    return out


def _matrix(recs: Sequence[dict], name: str, ids: List[str]) -> np.ndarray:
    rows = []
    for r in recs:
        u = r["utterances"][name]
        if u["ids"] != ids:
            raise ValueError(f"{r['name']}: scored on other {name} utterances than the others")
        rows.append(u["errors"])
    return np.array(rows, dtype=np.int64)


def summarise(cfg: StudyConfig, records: Sequence[dict]) -> Dict[str, dict]:
    """Per row: runs, WER mean/sd, params, search cost, and the comparison with ST-NAS."""
    dev, test = cfg.decode.dev, cfg.decode.test
    rows = groups(cfg, records)
    ref = dict(rows).get(REFERENCE)
    out: Dict[str, dict] = {}
    for key, recs in rows:
        searches = [r["search"] for r in recs if r.get("search")]
        row = {
            "runs": len(recs),
            "seeds": sorted({r["seed"] for r in recs}),
            "dev": mean_std([r["wer"][dev] for r in recs]),
            "test": mean_std([r["wer"][test] for r in recs]),
            "params_m": mean_std([r["params"] / 1e6 for r in recs]),
            "search_s": mean_std([s["wall_s"] for s in searches if s.get("wall_s")])
            if searches
            else None,
            "search_peak_mib": max((s["peak_rss_mib"] or 0) for s in searches)
            if searches
            else None,
            "archs": [r["arch"] for r in recs],
            "test_ci95": None,
            "held_out_per": _held(recs, "per"),
            "held_out_loss": _held(recs, "ctc_crf_loss_per_frame"),
            "costs": {
                k: mean_std([r["costs"][k] for r in recs])
                for k in ("params", "macs", "lookahead")
                if all(r.get("costs") for r in recs)
            },
        }
        ids = recs[0]["utterances"][test]["ids"]
        row["test_ci95"] = list(
            mean_interval(
                _matrix(recs, test, ids),
                np.array(recs[0]["utterances"][test]["words"]),
                cfg.bootstrap,
                cfg.bootstrap_seed,
            )
        )
        if ref is not None and key != REFERENCE:
            ids = ref[0]["utterances"][test]["ids"]
            words = np.array(ref[0]["utterances"][test]["words"])
            row["vs_st"] = paired_bootstrap(
                _matrix(ref, test, ids),
                _matrix(recs, test, ids),
                words,
                cfg.bootstrap,
                cfg.bootstrap_seed,
            ).as_dict()
        out[key] = row
    return out


def _held(recs: Sequence[dict], key: str) -> Optional[Tuple[float, float]]:
    """Mean ± sd of a retrain's held-out measure (None when a member lacks it)."""
    values = [(r.get("held_out") or {}).get(key) for r in recs]
    if any(v is None for v in values):
        return None
    return mean_std([float(v) for v in values if v is not None])


def seed_agreement(records: Sequence[dict]) -> Dict[str, List[float]]:
    """Per searched method with 2+ seeds: per block, the share of seed pairs choosing the
    same op."""
    out: Dict[str, List[float]] = {}
    for method in sorted({r["method"] for r in records if r.get("search") is not None}):
        ops = [r["ops"] for r in records if r["method"] == method]
        if len(ops) < 2:
            continue
        pairs = [(a, b) for i, a in enumerate(ops) for b in ops[i + 1 :]]
        out[method] = [sum(a[k] == b[k] for a, b in pairs) / len(pairs) for k in range(len(ops[0]))]
    return out


def _pm(ms: Optional[Sequence[float]], digits: int = 2) -> str:
    if ms is None or ms[0] != ms[0]:
        return "–"
    return f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def verdict(key: str, row: dict) -> str:
    c = row["vs_st"]
    name = LABELS.get(key, key)
    if c["p"] >= ALPHA:
        return (
            f"ST-NAS vs {name}: no significant difference on test (Δ {c['delta']:+.2f}, "
            f"95 % CI [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}], p = {c['p']:.3f})."
        )
    better = "better" if c["delta"] > 0 else "worse"
    return (
        f"ST-NAS is significantly {better} than {name} on test (Δ {c['delta']:+.2f}, "
        f"95 % CI [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}], p = {c['p']:.3f})."
    )


def plot_study(cfg: StudyConfig, records: Sequence[dict], out_png: Path) -> None:
    """%WER per method, every seed a point, the mean a bar; dev and test side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = groups(cfg, records)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, name in zip(axes, (cfg.decode.dev, cfg.decode.test)):
        for x, (key, recs) in enumerate(rows):
            wers = [r["wer"][name] for r in recs]
            jitter = np.linspace(-0.15, 0.15, len(wers)) if len(wers) > 1 else [0.0]
            ax.scatter(
                x + np.asarray(jitter),
                wers,
                s=18,
                color="C0" if key == REFERENCE else "C1" if key.startswith("random") else "C2",
                zorder=3,
            )
            ax.hlines(float(np.mean(wers)), x - 0.3, x + 0.3, color="k", lw=1.5, zorder=2)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([LABELS.get(k, k) for k, _ in rows], rotation=35, ha="right", fontsize=8)
        ax.set_title(f"{name} %WER (points: seeds, bar: mean)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("%WER")
    fig.suptitle(f"study {cfg.name}")
    _save(fig, out_png)


def method_table(summary: Dict[str, dict], dev: str, test: str) -> List[str]:
    """The table of one set of rows (a study, or one budget of a front)."""
    lines = [
        f"| method | runs | {dev} %WER | {test} %WER | {test} 95 % CI | held-out PER | "
        "held-out loss | params (M) | search s | search peak RSS MiB | "
        "Δ test vs ST-NAS [95 % CI] | p |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, row in summary.items():
        c = row.get("vs_st")
        delta = (
            f"{c['delta']:+.2f} [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]" if c else "(reference)"
        )
        peak = f"{row['search_peak_mib']:.0f}" if row["search_peak_mib"] else "–"
        ci = row.get("test_ci95")
        lines.append(
            f"| {LABELS.get(key, key)} | {row['runs']} | {_pm(row['dev'])} | "
            f"{_pm(row['test'])} | "
            + (f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "–")
            + f" | {_pm(row.get('held_out_per'))} | {_pm(row.get('held_out_loss'), 4)} | "
            f"{_pm(row['params_m'], 3)} | {_pm(row['search_s'], 0)} | {peak} | {delta} | "
            + (f"{c['p']:.3f} |" if c else "– |")
        )
    return lines


def agreement_lines(agree: Dict[str, List[float]]) -> List[str]:
    if not agree:
        return []
    lines = [
        "Do the seeds of a search choose the same architecture? Per block, the share "
        "of seed pairs that chose the same op (1/N for a uniform pick among N ops):",
        "",
    ]
    lines += [
        f"* {LABELS.get(m, m)}: "
        + ", ".join(f"{a:.2f}" for a in shares)
        + f" (blocks where every seed agrees: {sum(a == 1.0 for a in shares)} of "
        f"{len(shares)})"
        for m, shares in agree.items()
    ]
    return lines + [""]
