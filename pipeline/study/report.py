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

from pipeline.io import atomic_write_text
from pipeline.stages.record import stage_info
from pipeline.study.config import REFERENCE, StudyConfig
from pipeline.study.plan import Plan
from pipeline.study.stats import mean_std, paired_bootstrap
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
        }
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


def write_study(cfg: StudyConfig, plan: Plan, members_dir: Path) -> Path:
    """Write ``study.md``, ``study.png`` and ``results.json`` into the study dir."""
    exp = Path(cfg.exp_dir)
    records = [
        r
        for r in read_members(members_dir)  # only what this config asks for
        if r["method"] in cfg.methods and r["seed"] in cfg.seeds
    ]
    summary = summarise(cfg, records)
    dev, test = cfg.decode.dev, cfg.decode.test
    td = cfg.train_data
    lines = [
        f"# Study `{cfg.name}`",
        "",
        f"Search on `{cfg.search_data.corpus}` ({cfg.search_data.data_dir}, "
        f"{cfg.search_data.conf}), retrain, decode and score on `{td.corpus}` "
        f"({td.data_dir}, {td.conf}); seeds {cfg.seeds} (search and retrain seed); "
        f"{len(records)} of {len(plan.members)} members scored.",
        f"%WER: the dev-chosen LM weight and word penalty (sweep "
        f"{cfg.decode.lm_weights} × {cfg.decode.word_penalties}), sclite. Δ: %WER of the "
        "row minus ST-NAS's on test; 95 % interval and two-sided p from a paired "
        f"bootstrap over test utterances and seeds ({cfg.bootstrap} resamples, "
        "`pipeline/study/stats.py`).",
        "",
        f"| method | runs | {dev} %WER | {test} %WER | params (M) | search s | "
        "search peak RSS MiB | Δ test vs ST-NAS [95 % CI] | p |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, row in summary.items():
        c = row.get("vs_st")
        delta = (
            f"{c['delta']:+.2f} [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]" if c else "(reference)"
        )
        peak = f"{row['search_peak_mib']:.0f}" if row["search_peak_mib"] else "–"
        lines.append(
            f"| {LABELS.get(key, key)} | {row['runs']} | {_pm(row['dev'])} | "
            f"{_pm(row['test'])} | {_pm(row['params_m'], 3)} | "
            f"{_pm(row['search_s'], 0)} | {peak} | {delta} | "
            f"{c['p']:.3f} |"
            if c
            else f"| {LABELS.get(key, key)} | {row['runs']} | {_pm(row['dev'])} | "
            f"{_pm(row['test'])} | {_pm(row['params_m'], 3)} | "
            f"{_pm(row['search_s'], 0)} | {peak} | {delta} | – |"
        )
    lines += ["", *[f"* {verdict(k, r)}" for k, r in summary.items() if "vs_st" in r], ""]
    agree = seed_agreement(records)
    if agree:
        lines += [
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
        lines.append("")
    warm = {
        k: stage_info(exp / ("warmup" if k == "conf" else f"warmup_{k}") / "warmup").get("wall_s")
        for k in plan.warmups
    }
    warm = {k: v for k, v in warm.items() if v is not None}
    if warm:
        lines += [
            "Warm-up (shared by the searches with the same loss, not in 'search s'): "
            + ", ".join(
                f"{'search config' if k == 'conf' else k} {v:.0f} s" for k, v in warm.items()
            )
            + ". Random search costs no search "
            f"but {cfg.random_archs} retrains per seed.",
            "",
        ]
    lines += [
        "## Every member",
        "",
        f"| member | architecture | max p per block | {dev} | {test} | LM weight, "
        "penalty | search s | retrain s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(
        records, key=lambda r: (cfg.methods.index(r["method"]), r["seed"], r["index"] or 0)
    ):
        maxp = (
            " ".join(f"{max(p):.2f}" for p in r["probabilities"])
            if r.get("probabilities") and r["method"] not in ("random", "tdnn_d")
            else "–"
        )
        s = r.get("search") or {}
        arch = r["arch"].replace("|", "\\|")  # a pipe ends a table cell, even in code
        lines.append(
            f"| {r['name']} | `{arch}` | {maxp} | {r['wer'][dev]:.2f} | "
            f"{r['wer'][test]:.2f} | {r['setting'][0]:g}, {r['setting'][1]:g} | "
            f"{s.get('wall_s') or 0:.0f} | {r['retrain'].get('wall_s') or 0:.0f} |"
        )
    lines += ["", "![WER per method, seeds as points](study.png)", ""]
    out = exp / "study.md"
    atomic_write_text(exp / "results.json", json.dumps(summary, indent=2) + "\n")
    plot_study(cfg, records, exp / "study.png")
    atomic_write_text(out, "\n".join(lines))
    return out
