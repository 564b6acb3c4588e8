"""``stnas study`` parts: config checks, the plan, the statistics and the report's rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import StnasError
from pipeline.study.config import load_study
from pipeline.study.plan import command, draw_random_archs, make_plan
from pipeline.study.report import groups, summarise
from pipeline.study.stats import mean_std, paired_bootstrap, utterance_errors
from pipeline.study.write import write_study

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "study.yaml"
    p.write_text(text)
    return p


BASE = (
    f"name: t\nexp_dir: {{exp}}\nsearch_data: {{{{corpus: tts, data_dir: d, "
    f"conf: {REPO}/conf/debug}}}}\n"
)


def _cfg(tmp_path, extra="", overrides=()):
    return load_study(_write(tmp_path, BASE.format(exp=tmp_path / "exp") + extra), overrides)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(StnasError, match=r"unknown key\(s\) \['seed'\]"):
        _cfg(tmp_path, "seed: 3\n")
    with pytest.raises(StnasError, match="methods: unknown \\['enas'\\]"):
        _cfg(tmp_path, "methods: [st, enas]\n")
    with pytest.raises(StnasError, match="must include 'st'"):
        _cfg(tmp_path, "methods: [darts]\n")
    with pytest.raises(StnasError, match="seeds must be distinct"):
        _cfg(tmp_path, "seeds: [1, 1]\n")
    with pytest.raises(StnasError, match="decode: unknown"):
        _cfg(tmp_path, "decode: {beams: 3}\n")
    with pytest.raises(StnasError, match="warmup.yaml not found"):
        load_study(
            _write(
                tmp_path,
                f"name: t\nexp_dir: e\nsearch_data: {{corpus: tts, "
                f"data_dir: d, conf: {tmp_path}}}\n",
            )
        )
    assert _cfg(tmp_path, overrides=["seeds=[4, 5]"]).seeds == [4, 5]


def test_plan_members_and_commands(tmp_path):
    cfg = _cfg(tmp_path, "seeds: [1, 2, 3]\nrandom_archs: 2\nset: {search: [max_epochs=1]}\n")
    plan = make_plan(cfg)
    # 6 searched or fixed methods + 2 random draws, per seed; seed-major order
    assert len(plan.members) == 3 * 8
    assert [m.seed for m in plan.members[:8]] == [1] * 8
    assert set(plan.warmups) == {"conf", "ctc"}
    st = next(m for m in plan.members if m.method == "st" and m.seed == 2)
    assert st.search[st.search.index("--seed") + 1] == "2"
    assert st.search[st.search.index("--init") + 1].endswith("exp/warmup/warmup/best.pt")
    assert "max_epochs=1" in st.search
    nw = next(m for m in plan.members if m.method == "st_no_warmup")
    assert nw.search[nw.search.index("--init") + 1] == "scratch"
    ctc = next(m for m in plan.members if m.method == "st_ctc")
    assert "loss=ctc" in ctc.search and ctc.search[ctc.search.index("--init") + 1].endswith(
        "warmup_ctc/warmup/best.pt"
    )
    td = next(m for m in plan.members if m.method == "tdnn_d")
    assert td.search is None and td.arch.name == "tdnn_d_tiny.json"
    retrain = plan.retrain_args[st.name]
    assert retrain[retrain.index("--arch") + 1] == str(st.exp_dir / "search" / "arch.json")
    assert command(cfg, retrain)[:3] == [sys.executable, "-m", "steps_py"]
    ddp = _cfg(tmp_path, "launcher: [torchrun, --nproc_per_node, 2]\n")
    assert command(ddp, retrain)[:5] == ["torchrun", "--nproc_per_node", "2", "-m", "steps_py"]
    assert command(ddp, plan.prep[0])[0] == sys.executable  # prep is not data-parallel


def test_random_archs_are_distinct_reproducible_and_kept(tmp_path):
    cfg = _cfg(tmp_path, "random_archs: 4\n")
    paths = draw_random_archs(cfg, 7)
    ops = [json.loads(p.read_text())["ops"] for p in paths]
    assert len(ops) == 4 and len({tuple(o) for o in ops}) == 4
    first = paths[0].read_text()
    assert draw_random_archs(cfg, 7) == paths and paths[0].read_text() == first  # not redrawn
    for p in paths:
        p.unlink()
    assert [json.loads(p.read_text())["ops"] for p in draw_random_archs(cfg, 7)] == ops
    other = [json.loads(p.read_text())["ops"] for p in draw_random_archs(cfg, 8)]
    assert other != ops


def test_utterance_errors_match_the_alignment():
    ref = {"a": "the cat sat", "b": "on the mat", "c": "x"}
    hyp = {"a": "the cat sat", "b": "on a mat mat"}  # c missing: one deletion
    utts, err, words = utterance_errors(ref, hyp)
    assert utts == ["a", "b", "c"]
    assert err.tolist() == [0, 2, 1] and words.tolist() == [3, 3, 1]


def test_mean_std():
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(np.sqrt(2.0)))
    assert mean_std([5.0]) == (5.0, 0.0)


def test_bootstrap_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    words = rng.integers(5, 15, 200)
    base = rng.binomial(words, 0.2)[None].repeat(3, 0)
    worse = rng.binomial(words, 0.3, size=(3, 200))
    c = paired_bootstrap(base, worse, words, 1000, 0)
    assert c.delta == pytest.approx(100 * (worse.sum(1).mean() - base.sum(1).mean()) / words.sum())
    assert c.delta > 5 and c.low > 0 and c.p_value < 0.01
    same = paired_bootstrap(base, base.copy(), words, 1000, 0)
    assert same.delta == 0 and same.p_value == 1.0
    # two draws of the same error rate: no significant difference
    a, b = rng.binomial(words, 0.2, size=(3, 200)), rng.binomial(words, 0.2, size=(3, 200))
    null = paired_bootstrap(a, b, words, 1000, 1)
    assert null.low < null.delta < null.high and null.low < 0 < null.high


def test_bootstrap_interval_includes_the_seed_spread():
    """The same utterances, but one method's seeds disagree wildly: the interval must be wider
    than with seeds that agree (the test resamples seeds too)."""
    rng = np.random.default_rng(3)
    words = rng.integers(5, 15, 150)
    ref = rng.binomial(words, 0.2)[None].repeat(3, 0)
    calm = rng.binomial(words, 0.25)[None].repeat(3, 0)
    wild = np.stack([rng.binomial(words, q) for q in (0.1, 0.25, 0.4)])
    c1, c2 = paired_bootstrap(ref, calm, words, 800, 0), paired_bootstrap(ref, wild, words, 800, 0)
    assert (c2.high - c2.low) > 2 * (c1.high - c1.low)


def _record(method, seed, dev, test_errors, index=None, words=None):
    words = words or [10] * len(test_errors)
    return {
        "name": f"{method}/s{seed}" + (f"/a{index}" if index else ""),
        "method": method,
        "seed": seed,
        "index": index,
        "ops": ["a"],
        "arch": f"{method}{seed}{index}",
        "probabilities": [[0.7, 0.3]],
        "params": 1000,
        "search": {"wall_s": 10.0, "peak_rss_mib": 100.0} if method != "random" else None,
        "retrain": {"wall_s": 5.0},
        "wer": {"dev": dev, "test": 100.0 * sum(test_errors) / sum(words)},
        "setting": [1.0, 0.0],
        "utterances": {
            "test": {
                "ids": [f"u{i}" for i in range(len(test_errors))],
                "errors": test_errors,
                "words": words,
            }
        },
    }


def test_random_best_is_chosen_by_dev_and_report_is_written(tmp_path):
    cfg = _cfg(tmp_path, "methods: [st, random]\nseeds: [1, 2]\nrandom_archs: 2\nbootstrap: 200\n")
    recs = [
        _record("st", 1, 10.0, [1, 1, 1, 1]),
        _record("st", 2, 11.0, [1, 2, 1, 1]),
        _record("random", 1, 20.0, [9, 9, 9, 9], 1),
        _record("random", 1, 15.0, [3, 3, 3, 3], 2),
        _record("random", 2, 12.0, [2, 2, 2, 2], 1),
        _record("random", 2, 30.0, [0, 0, 0, 0], 2),
    ]
    rows = dict(groups(cfg, recs))
    assert [r["index"] for r in rows["random_best"]] == [2, 1]  # lowest dev, not lowest test
    summary = summarise(cfg, recs)
    assert summary["random"]["runs"] == 4 and summary["random_best"]["runs"] == 2
    assert summary["st"]["test"][0] == pytest.approx((10.0 + 12.5) / 2)
    assert summary["random_best"]["vs_st"]["delta"] == pytest.approx(
        (30.0 + 20.0) / 2 - (10.0 + 12.5) / 2
    )
    members = tmp_path / "exp" / "members"
    members.mkdir(parents=True)
    for r in recs:
        (members / (r["name"].replace("/", "_") + ".json")).write_text(json.dumps(r))
    out = write_study(cfg, make_plan(cfg), members)
    text = out.read_text()
    assert "| ST-NAS | 2 |" in text and "random, best of N by dev" in text
    assert "* ST-NAS: 1.00 (blocks where every seed agrees: 1 of 1)" in text  # same ops
    assert "6 of 6 members scored" in text
    assert (out.parent / "study.png").stat().st_size > 1000
    assert json.loads((out.parent / "results.json").read_text())["random_best"]["runs"] == 2


def test_tdnn_d_of_another_space_is_refused(tmp_path):
    cfg = _cfg(tmp_path, f"tdnn_d_arch: {REPO}/conf/arch/tdnn_d_wsj.json\n")
    with pytest.raises(StnasError, match="is of space 'wsj', but the study searches 'tiny'"):
        make_plan(cfg)


def test_seed_agreement_counts_pairs_per_block():
    from pipeline.study.report import seed_agreement

    recs = [
        {"method": "st", "search": {}, "ops": ops} for ops in (["a", "x"], ["a", "y"], ["b", "x"])
    ]
    recs.append({"method": "random", "search": None, "ops": ["a", "x"]})
    assert seed_agreement(recs) == {"st": [pytest.approx(1 / 3), pytest.approx(1 / 3)]}


def test_budgeted_plan_searches_draws_and_scales_within_each_budget(tmp_path):
    from pipeline.nas.arch import Arch
    from pipeline.nas.cost import CostModel
    from pipeline.nas.space import load_space
    from pipeline.study.plan import draw_budget_archs, random_arch_paths, tdnn_d_path

    conf = tmp_path / "conf"
    conf.mkdir()
    for stage in ("warmup", "search", "retrain"):
        (conf / f"{stage}.yaml").write_text("space: tiny_wide\n")
    text = (
        f"name: t\nexp_dir: {tmp_path / 'exp'}\nsearch_data: {{corpus: tts, data_dir: d, "
        f"conf: {conf}}}\nmethods: [st, darts, random, tdnn_d]\nseeds: [1, 2]\n"
        "random_archs: 3\nbudgets: [{params: 40000}, {params: 80000}]\n"
        f"tdnn_d_arch: {REPO}/conf/arch/tdnn_d_tiny_wide.json\n"
    )
    cfg = load_study(_write(tmp_path, text))
    plan = make_plan(cfg)
    # per seed and budget: st, darts, 3 random draws, tdnn_d
    assert len(plan.members) == 2 * 2 * 6
    assert set(plan.warmups) == {"conf"}  # one warm-up for every budget
    st = next(m for m in plan.members if m.method == "st" and m.budget == 2 and m.seed == 1)
    assert st.name == "b2/st/s1" and st.exp_dir == tmp_path / "exp" / "b2" / "st" / "s1"
    assert 'budget={"params": 80000}' in st.search and "budget_form=hard" in st.search
    K = 30
    draw_budget_archs(cfg, K)
    space = load_space("tiny_wide")
    model = CostModel(space, K)
    for b, target in ((1, 40000), (2, 80000)):
        for seed in (1, 2):
            archs = [Arch.from_json(p) for p in random_arch_paths(cfg, seed, b)]
            assert len({tuple(a.ops) for a in archs}) == 3
            assert all(model.of(space.index_of(a.ops))["params"] <= target for a in archs)
        scaled = Arch.from_json(tdnn_d_path(cfg, b))
        params = model.of(space.index_of(scaled.ops))["params"]
        assert params <= target
        # no other uniform kernel/width variant of the design that fits is bigger
        for k, d_low, d_high in ((1, 1, 1), (3, 1, 2), (5, 1, 3)):
            for w in (50, 100, 150):
                ops = [f"tdnn_k{k}_d{d_low}_w{w}"] * 2 + [f"tdnn_k{k}_d{d_high}_w{w}"] * 2
                c = model.of(space.index_of(ops))["params"]
                assert c > target or c <= params
    with pytest.raises(StnasError, match="below the cheapest architecture"):
        draw_budget_archs(load_study(_write(tmp_path, text.replace("40000", "1000"))), K)


def test_budget_front_report_compares_within_each_budget(tmp_path):
    cfg = _cfg(
        tmp_path,
        "methods: [st, tdnn_d]\nseeds: [1, 2]\nbootstrap: 200\n"
        "budgets: [{params: 50000}, {params: 90000}]\n",
    )
    recs = []
    for b, base in ((1, 2), (2, 1)):
        for method, extra in (("st", 0), ("tdnn_d", 2)):
            for seed in (1, 2):
                r = _record(method, seed, 10.0, [base + extra] * 4 + [base] * 4)
                r["budget"], r["name"] = b, f"b{b}/" + r["name"]
                r["costs"] = {"params": 40000.0 * b, "macs": 1e6 * b, "lookahead": 100.0 * b}
                r["held_out"] = {"per": 10.0 + extra, "ctc_crf_loss_per_frame": 0.05}
                recs.append(r)
    members = tmp_path / "exp" / "members"
    members.mkdir(parents=True)
    for r in recs:
        (members / (r["name"].replace("/", "_") + ".json")).write_text(json.dumps(r))
    out = write_study(cfg, make_plan(cfg), members)
    text = out.read_text()
    assert "## Budget b1: params 50,000" in text and "## Budget b2: params 90,000" in text
    results = json.loads((out.parent / "results.json").read_text())
    # within each budget TDNN-D has 2 more errors on half the 80 words: +10 points
    for b, st_wer in (("b1", 20.0), ("b2", 10.0)):
        assert results[b]["st"]["test"][0] == pytest.approx(st_wer)
        assert results[b]["tdnn_d"]["vs_st"]["delta"] == pytest.approx(10.0)
        lo, hi = results[b]["st"]["test_ci95"]
        assert lo <= st_wer <= hi
        assert results[b]["tdnn_d"]["held_out_per"][0] == pytest.approx(12.0)
    assert "80,000 parameters" in text and "200 ms look-ahead" in text
    assert (out.parent / "study.png").stat().st_size > 1000
