"""``stnas study`` end to end at CI size (conf/study/debug.yaml) on the session's tts data."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from steps_py.cli import cli

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_debug_study_runs_reports_and_resumes(tts_data, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    data = tmp_path / "data"
    shutil.copytree(tts_data, data)
    exp = tmp_path / "exp"
    args = [
        "study",
        "--config",
        "conf/study/debug.yaml",
        "--set",
        f"exp_dir={exp}",
        "--set",
        f"search_data={{corpus: tts, data_dir: {data}, conf: conf/debug}}",
    ]
    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    report = (exp / "study.md").read_text()
    assert "8 of 8 members scored" in report
    for row in (
        "| ST-NAS | 2 |",
        "| ST-NAS without warm-up | 2 |",
        "| random (every draw) | 2 |",
        "| random, best of N by dev | 2 |",
        "| TDNN-D (hand design) | 2 |",
    ):
        assert row in report
    summary = json.loads((exp / "results.json").read_text())
    assert set(summary) == {"st", "st_no_warmup", "random", "random_best", "tdnn_d"}
    for key, row in summary.items():
        assert 0.0 <= row["test"][0] <= 200.0
        if key != "st":
            c = row["vs_st"]
            assert c["ci95"][0] <= c["delta"] <= c["ci95"][1] and 0.0 < c["p"] <= 1.0
    # the searches ran: a no-warm-up search records no warm-up weights as an input
    nw = json.loads((exp / "st_no_warmup" / "s1" / "search" / "stage.json").read_text())
    assert "init" not in nw["inputs"] and nw["peak_rss_mib"] > 0
    st = json.loads((exp / "st" / "s1" / "search" / "stage.json").read_text())
    assert st["inputs"]["init"]["path"].endswith("warmup/warmup/best.pt")
    # a different seed is a different search
    assert (exp / "st" / "s2" / "search" / "arch.json").is_file()
    assert (exp / "study.png").stat().st_size > 1000
    assert (exp / "log" / "retrain_tdnn_d_s2.log").is_file()

    # resumed: nothing is trained again, each member's numbers come back the same
    before = (exp / "members" / "st_s1.json").read_text()
    (exp / "members" / "st_s1.json").unlink()
    r = CliRunner().invoke(
        cli, args + ["--set", "seeds=[1]", "--set", "methods=[st]"], catch_exceptions=False
    )
    assert r.exit_code == 0, r.output
    assert (exp / "members" / "st_s1.json").read_text() == before
    assert "already done" in (exp / "log" / "retrain_st_s1.log").read_text()


def _prep_args(root, *extra):
    return f"[--corpus-root, {root}, --nj, '1'{''.join(', ' + e for e in extra)}]"


@pytest.mark.parametrize("name", ["wsj", "swbd", "swbd_from_wsj"])
def test_ldc_study_configs_on_fake_corpora(name, tmp_path, monkeypatch):
    """The WSJ and SWBD study configs, pointed at the fake LDC trees: their prep commands run
    for real, and every stage command of every member is one the stage accepts (its config
    loads, its inputs exist after prep, the architectures are of the searched space)."""
    import numpy as np

    from pipeline.nas.arch import Arch
    from pipeline.nas.space import load_space
    from pipeline.study.config import load_study
    from pipeline.study.plan import draw_random_archs, make_plan, search_space
    from pipeline.study.run import run_command
    from pipeline.train.config import load_config
    from tests.fixtures_ldc import build_swbd, build_wsj, write_sphere

    monkeypatch.chdir(REPO)
    ldc = tmp_path / "ldc"
    build_wsj(ldc)
    rng = np.random.default_rng(0)
    for wv1 in ldc.rglob("*.wv1"):  # 4 s per utterance so that labels fit
        write_sphere(wv1, rng.normal(0, 2000, 64000).astype(np.int16), 16000)
    build_swbd(ldc)
    sets = [f"exp_dir={tmp_path / 'exp'}", "device=cpu"]
    text = (REPO / "conf" / "study" / f"{name}.yaml").read_text()
    for corpus in ("wsj", "swbd"):
        if f"corpus: {corpus}" not in text:
            continue
        key = "search_data" if f"search_data:\n  corpus: {corpus}" in text else "retrain_data"
        extra = ["--corpus-opt, dev_utts=2"] if corpus == "swbd" else []
        sets.append(
            f"{key}={{corpus: {corpus}, data_dir: {tmp_path / corpus}, "
            f"conf: conf/{corpus}, prep_args: {_prep_args(ldc, *extra)}}}"
        )
    cfg = load_study(REPO / "conf" / "study" / f"{name}.yaml", sets)
    assert cfg.device == "cpu" and len(cfg.seeds) >= 3
    plan = make_plan(cfg)
    for args in plan.prep:
        run_command(cfg, args, tmp_path / "log" / "prep.log")
    space = load_space(search_space(cfg))
    for seed in cfg.seeds:
        for p in draw_random_archs(cfg, seed) if "random" in cfg.methods else []:
            assert Arch.from_json(p).space_hash == space.hash
    stage_cmds = (
        list(plan.warmups.values())
        + [m.search for m in plan.members if m.search]
        + list(plan.retrain_args.values())
    )
    assert stage_cmds
    for args in stage_cmds:
        stage = args[0]
        conf = args[args.index("--config") + 1]
        overrides = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
        cfg_stage = load_config(stage, conf, overrides)
        data = Path(args[args.index("--data-dir") + 1])
        assert (data / cfg_stage.train_set / "feats.scp").is_file()
        assert (data / cfg_stage.train_set / "text_number").is_file()
        if cfg_stage.loss == "ctc_crf":
            assert (data / "den" / "den.fst").is_file()
        if stage == "retrain":
            arch = args[args.index("--arch") + 1]
            if Path(arch).is_file():  # hand design or random draw (searched ones come later)
                Arch.from_json(arch).build(8)
    if name == "swbd_from_wsj":  # searched on WSJ, retrained on SWBD
        assert all(cfg.search_data.data_dir in " ".join(m.search) for m in plan.members if m.search)
        assert all(str(tmp_path / "swbd") in " ".join(a) for a in plan.retrain_args.values())
