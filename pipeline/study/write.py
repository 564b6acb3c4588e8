"""Write a study's ``study.md``, ``study.png`` and ``results.json`` from ``members/*.json``:
the methods' table (:mod:`pipeline.study.report`) or, under budgets, the front
(:mod:`pipeline.study.front`), the seeds' agreement and every member."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.decode.interval import bootstrap_interval, interval_text
from pipeline.io import atomic_write_text
from pipeline.stages.record import stage_info
from pipeline.study.config import StudyConfig
from pipeline.study.front import front_lines, plot_front
from pipeline.study.plan import Plan
from pipeline.study.report import (
    agreement_lines,
    method_table,
    plot_study,
    read_members,
    seed_agreement,
    summarise,
    verdict,
)


def write_study(cfg: StudyConfig, plan: Plan, members_dir: Path) -> Path:
    """Write ``study.md``, ``study.png`` and ``results.json`` into the study dir."""
    exp = Path(cfg.exp_dir)
    records = [
        r
        for r in read_members(members_dir)  # only what this config asks for
        if r["method"] in cfg.methods and r["seed"] in cfg.seeds
    ]
    if cfg.budgets:
        front, summary = front_lines(cfg, records)
    else:
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
        "Held-out: the retrain's held-out utterances, greedy CTC phone error rate and "
        "CTC-CRF loss (-log p(l|x)) per frame, lower-variance measures than a WER.",
        "",
    ]
    if cfg.budgets:
        lines += front
    else:
        lines += method_table(summary, dev, test)
        lines += ["", *[f"* {verdict(k, r)}" for k, r in summary.items() if "vs_st" in r], ""]
        lines += agreement_lines(seed_agreement(records))
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
        f"| member | architecture | max p per block | {dev} | {test} | {test} 95 % CI | "
        "LM weight, penalty | search s | retrain s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(
        records,
        key=lambda r: (
            r.get("budget") or 0,
            cfg.methods.index(r["method"]),
            r["seed"],
            r["index"] or 0,
        ),
    ):
        maxp = (
            " ".join(f"{max(p):.2f}" for p in r["probabilities"])
            if r.get("probabilities") and r["method"] not in ("random", "tdnn_d")
            else "–"
        )
        s = r.get("search") or {}
        arch = r["arch"].replace("|", "\\|")  # a pipe ends a table cell, even in code
        u = r["utterances"][test]
        ci = bootstrap_interval(np.array(u["errors"]), np.array(u["words"]))
        lines.append(
            f"| {r['name']} | `{arch}` | {maxp} | {r['wer'][dev]:.2f} | "
            f"{r['wer'][test]:.2f} | {interval_text(ci)} | "
            f"{r['setting'][0]:g}, {r['setting'][1]:g} | "
            f"{s.get('wall_s') or 0:.0f} | {r['retrain'].get('wall_s') or 0:.0f} |"
        )
    out = exp / "study.md"
    atomic_write_text(exp / "results.json", json.dumps(summary, indent=2) + "\n")
    if cfg.budgets:
        plot_front(cfg, records, exp / "study.png")
    else:
        lines += ["", "![WER per method, seeds as points](study.png)", ""]
        plot_study(cfg, records, exp / "study.png")
    atomic_write_text(out, "\n".join(lines))
    return out
