"""warmup → search → retrain on the tts corpus: end to end, kill/resume, NaN batches, DDP."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from pipeline.errors import StaleResultError
from pipeline.nas.arch import Arch
from pipeline.nas.space import load_space
from pipeline.stages.train import run_training
from pipeline.train.checkpoint import list_checkpoints, load_model
from pipeline.train.config import load_config
from pipeline.train.data import load_utterances, split_held_out
from pipeline.train.loop import TrainingError

REPO = Path(__file__).resolve().parents[2]
DEBUG = REPO / "conf" / "debug"
STNAS = [sys.executable, "-m", "steps_py"]

pytestmark = pytest.mark.slow


def _run(stage, data, exp, *overrides, force=False, **explicit):
    cfg = load_config(
        stage,
        DEBUG / f"{stage}.yaml",
        list(overrides) + ["progress=false"],
        data_dir=str(data),
        exp_dir=str(exp),
        **explicit,
    )
    return run_training(cfg, force=force)


def _read_jsonl(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def warmed(tts_data, tmp_path_factory):
    """A finished debug warm-up (shared; copied before use)."""
    exp = tmp_path_factory.mktemp("warm") / "exp"
    _run("warmup", tts_data, exp)
    return exp


def test_debug_recipe_end_to_end(tts_data, warmed, tmp_path):
    exp = tmp_path / "exp"
    shutil.copytree(warmed / "warmup", exp / "warmup")
    summary = _run("search", tts_data, exp)
    arch = Arch.from_json(exp / "search" / "arch.json")
    assert arch.space_hash == load_space("tiny").hash and arch.probabilities is not None
    assert arch.provenance["strategy"] == "st" and arch.provenance["seed"] == 1
    rows = _read_jsonl(exp / "search" / "alphas.jsonl")
    assert len(rows) == summary["steps"] and len(rows[-1]["probs"]) == 4
    for name in ("alphas.png", "arch.png", "curves.png", "stage.json", "config.yaml"):
        assert (exp / "search" / name).is_file(), name
    assert list((exp / "search" / "tensorboard").glob("events.out.tfevents.*"))

    summary = _run("retrain", tts_data, exp)
    metrics = _read_jsonl(exp / "retrain" / "metrics.jsonl")
    initial = metrics[0]["held_out_loss"]
    assert metrics[0]["kind"] == "init"
    # -log p(l|x) per frame (path weight added back): a true NLL, never negative, and the
    # trained model is far below where it started; the parts add up
    assert summary["best_held_out_loss"] < 0.6 * initial, (initial, summary)
    for r in metrics:
        if "held_out_loss" in r:
            assert r["held_out_loss"] >= -1e-6
            assert r["held_out_loss"] == pytest.approx(
                r["held_out_den"] + r["held_out_ctc"] - r["held_out_lm"], abs=1e-9
            )
        if r["kind"] == "train":
            assert r["loss"] >= -1e-6 and {"den", "ctc", "lm"} <= set(r)
    net, loaded_arch, k = load_model(exp / "retrain" / "avg.pt")
    assert loaded_arch.ops == arch.ops and k == net.num_units
    # a finished stage: the same inputs and options → nothing to do; others → refused
    assert _run("retrain", tts_data, exp)["up_to_date"]
    with pytest.raises(StaleResultError, match=r"lr: 0.002 → 0.001.*--force"):
        _run("retrain", tts_data, exp, "lr=0.001")
    warm = torch.load(exp / "warmup" / "best.pt", weights_only=True)
    name = next(iter(warm["model"]))
    warm["model"][name] = warm["model"][name] + 1.0
    torch.save(warm, exp / "warmup" / "best.pt")
    with pytest.raises(StaleResultError, match="input init changed"):
        _run("search", tts_data, exp)
    # search --force removes the retrain built from its arch.json
    _run("search", tts_data, exp, "max_epochs=1", force=True)
    assert not (exp / "retrain").exists()


def test_snas_anneals_and_the_arch_comes_from_the_best_held_out_epoch(tts_data, warmed, tmp_path):
    exp = tmp_path / "exp"
    shutil.copytree(warmed / "warmup", exp / "warmup")
    _run("search", tts_data, exp, "strategy=snas", "max_epochs=3")
    epochs = [r for r in _read_jsonl(exp / "search" / "metrics.jsonl") if r["kind"] == "epoch"]
    # tau = max(0.05, 1.0 * 0.7 ** epoch): lower every epoch
    assert [round(r["tau"], 6) for r in epochs] == [1.0, 0.7, 0.49]
    assert _final_state(exp, "search")["strategy"]["epoch"] == 3
    arch = Arch.from_json(exp / "search" / "arch.json")
    assert [h["epoch"] for h in arch.history] == [0, 1, 2]
    assert [h["held_out_loss"] for h in arch.history] == [r["held_out_loss"] for r in epochs]
    best = min(arch.history, key=lambda h: h["held_out_loss"])
    assert arch.provenance["chosen_epoch"] == best["epoch"]
    assert arch.probabilities == best["probabilities"]
    assert arch.ops == [
        c[max(range(len(p)), key=p.__getitem__)]
        for c, p in zip(arch.candidates, best["probabilities"])
    ]
    report = (exp / "search" / "report.md").read_text()  # the search diagnostics
    assert (
        "Decided (max p >= 0.5 in every block)" in report
        and "| block | op | p | warm-up" in report
        and (exp / "search" / "diagnostics.png").is_file()
    )
    saved = torch.load(exp / "search" / "best.pt", weights_only=True)
    probs = [torch.softmax(a, 0).tolist() for a in saved["arch_weights"].values()]
    np.testing.assert_allclose(
        np.concatenate(probs), np.concatenate(best["probabilities"]), atol=1e-6
    )


class _CpuHog:
    """Busy-loop processes on every CPU, started on demand: results must not depend on load."""

    def __init__(self) -> None:
        self.procs = []

    def start(self) -> None:
        self.procs = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 2)
        ]

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        self.procs = []


@pytest.fixture
def cpu_hog():
    hog = _CpuHog()
    yield hog
    hog.stop()


def _wait_and_kill(proc, ckpt_dir, min_step):
    while proc.poll() is None:
        steps = [int(p.stem.split("-")[1]) for p in list_checkpoints(ckpt_dir)]
        if steps and max(steps) >= min_step:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.005)
    pytest.fail(f"the run finished before step {min_step}: {proc.stderr.read()}")


def _cli(stage, data, exp, *extra):
    return [
        *STNAS,
        stage,
        "--config",
        str(DEBUG / f"{stage}.yaml"),
        "--data-dir",
        str(data),
        "--exp-dir",
        str(exp),
        "--set",
        "progress=false",
        "--set",
        "ckpt_every=2",
        *extra,
    ]


def _final_state(exp, stage):
    return torch.load(list_checkpoints(exp / stage / "ckpt")[-1], weights_only=True)


def test_retrain_killed_and_resumed_equals_uninterrupted(tts_data, tmp_path, cpu_hog):
    arch = str(REPO / "conf" / "arch" / "tdnn_d_tiny.json")
    cmd = lambda exp: _cli("retrain", tts_data, exp, "--arch", arch, "--set", "max_epochs=3")
    subprocess.run(cmd(tmp_path / "full"), check=True, capture_output=True, cwd=REPO)
    cpu_hog.start()  # the uninterrupted run had the CPUs to itself, this one shares them
    proc = subprocess.Popen(cmd(tmp_path / "killed"), stderr=subprocess.PIPE, text=True, cwd=REPO)
    _wait_and_kill(proc, tmp_path / "killed" / "retrain" / "ckpt", min_step=6)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "retrain" / ".done" / "stage").exists()
    # the newest checkpoint is damaged as well: the run must fall back to the one before it
    newest = list_checkpoints(tmp_path / "killed" / "retrain" / "ckpt")[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    out = subprocess.run(
        cmd(tmp_path / "killed"), check=True, capture_output=True, text=True, cwd=REPO
    )
    assert "resumed" in out.stdout and newest.name in out.stderr
    full, resumed = (
        _final_state(tmp_path / "full", "retrain"),
        _final_state(tmp_path / "killed", "retrain"),
    )
    assert full["position"]["step"] == resumed["position"]["step"]
    for name, value in full["model"].items():  # bit for bit, with the CPUs busy
        assert torch.equal(resumed["model"][name], value), name
    for name in ("inputs.json", "stage.json"):
        threads = json.loads((tmp_path / "killed" / "retrain" / name).read_text())
        assert threads["torch_threads"] == torch.get_num_threads()


def test_search_killed_and_resumed_gives_the_same_arch(tts_data, warmed, tmp_path, cpu_hog):
    for run in ("full", "killed"):
        shutil.copytree(warmed / "warmup", tmp_path / run / "warmup")
    cmd = lambda exp: _cli("search", tts_data, exp, "--set", "max_epochs=3")
    cpu_hog.start()  # this time the uninterrupted run shares the CPUs, the resumed one not
    subprocess.run(cmd(tmp_path / "full"), check=True, capture_output=True, cwd=REPO)
    cpu_hog.stop()
    proc = subprocess.Popen(cmd(tmp_path / "killed"), stderr=subprocess.PIPE, text=True, cwd=REPO)
    _wait_and_kill(proc, tmp_path / "killed" / "search" / "ckpt", min_step=6)
    subprocess.run(cmd(tmp_path / "killed"), check=True, capture_output=True, cwd=REPO)
    a, b = (
        json.loads((tmp_path / r / "search" / "arch.json").read_text()) for r in ("full", "killed")
    )
    assert a["ops"] == b["ops"] and a["probabilities"] == b["probabilities"]
    assert a["history"] == b["history"]
    fa, fb = (_final_state(tmp_path / r, "search") for r in ("full", "killed"))
    for x, y in zip(fa["arch_weights"].values(), fb["arch_weights"].values()):
        assert torch.equal(x, y)
    for name, value in fa["model"].items():
        assert torch.equal(fb["model"][name], value), name
    assert len(_read_jsonl(tmp_path / "killed" / "search" / "alphas.jsonl")) == len(
        _read_jsonl(tmp_path / "full" / "search" / "alphas.jsonl")
    )


def _data_with_nan(tts_data, dst):
    """A copy of the data dir whose first training utterance has NaN features."""
    for sub in ("lang", "den", "train_sp"):
        shutil.copytree(tts_data / sub, dst / sub)
    scp = dst / "train_sp" / "feats.scp"
    lines = scp.read_text().splitlines()
    train, _ = split_held_out(load_utterances(tts_data / "train_sp"), 0.05, seed=1)
    first = next(i for i, line in enumerate(lines) if line.split()[0] == train[0].utt)
    utt, rxfile = lines[first].split(maxsplit=1)
    mat = kaldiio.load_mat(rxfile).copy()
    mat[3, 5] = np.nan
    kaldiio.save_ark(str(dst / "nan.ark"), {utt: mat}, scp=str(dst / "nan.scp"))
    lines[first] = (dst / "nan.scp").read_text().strip()
    scp.write_text("\n".join(lines) + "\n")
    return utt


def test_nan_batch_is_skipped_and_counted_then_limit_stops(tts_data, tmp_path, caplog):
    data = tmp_path / "data"
    bad = _data_with_nan(tts_data, data)
    arch = str(REPO / "conf" / "arch" / "tdnn_d_tiny.json")
    summary = _run("retrain", data, tmp_path / "exp", "max_epochs=1", "average_last=0", arch=arch)
    assert summary["bad_batches"] >= 1
    # the culprit is named (not the batch's first ids): in the warning and bad_batches.txt
    assert f"{bad} (non-finite features)" in caplog.text
    lines = (tmp_path / "exp" / "retrain" / "bad_batches.txt").read_text().splitlines()
    assert len(lines) == summary["bad_batches"]
    assert all(f"{bad}:non-finite_features" in line for line in lines)
    assert np.isfinite(summary["best_held_out_loss"])
    with pytest.raises(TrainingError, match=r"max_bad_batches=0.*checkpoint saved"):
        _run("retrain", data, tmp_path / "exp2", "max_epochs=1", "max_bad_batches=0", arch=arch)
    assert list_checkpoints(tmp_path / "exp2" / "retrain" / "ckpt")


def test_two_process_ddp_search_matches_one_process(tts_data, tmp_path):
    space = load_space("tiny").to_dict()
    space["dropout"] = 0.0  # no dropout: one process and two draw no different masks
    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps(space))
    base = tmp_path / "base"
    _run("warmup", tts_data, base, f"space={space_file}", "max_epochs=1")
    results = {}
    for world in (1, 2):
        exp = tmp_path / f"w{world}"
        shutil.copytree(base / "warmup", exp / "warmup")
        cmd = _cli(
            "search",
            tts_data,
            exp,
            "--set",
            f"space={space_file}",
            "--set",
            "max_epochs=2",
            "--set",
            "log_every=1",
        )
        if world == 2:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            cmd = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc_per_node",
                "2",
                "--master_port",
                str(port),
                "-m",
                *cmd[1:],
            ]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        subprocess.run(cmd, check=True, capture_output=True, cwd=REPO, env=env)
        results[world] = exp
    one, two = (_read_jsonl(results[w] / "search" / "metrics.jsonl") for w in (1, 2))
    loss1 = [r["loss"] for r in one if r["kind"] == "train"]
    loss2 = [r["loss"] for r in two if r["kind"] == "train"]
    assert len(loss1) == len(loss2) > 5
    # same global batches and paths; only the summation order of the all-reduce differs
    np.testing.assert_allclose(loss2, loss1, rtol=2e-3)
    stage = json.loads((results[2] / "search" / "stage.json").read_text())
    assert stage["summary"]["world"] == 2 and stage["summary"]["ranks_identical"] is True
    a1, a2 = (Arch.from_json(results[w] / "search" / "arch.json") for w in (1, 2))
    assert a1.ops == a2.ops
    np.testing.assert_allclose(a2.probabilities[0], a1.probabilities[0], atol=1e-3)


def test_sigterm_writes_a_checkpoint_and_exits(tts_data, tmp_path):
    arch = str(REPO / "conf" / "arch" / "tdnn_d_tiny.json")
    exp = tmp_path / "exp"
    cmd = _cli(
        "retrain",
        tts_data,
        exp,
        "--arch",
        arch,
        "--set",
        "max_epochs=50",
        "--set",
        "ckpt_every=100000",
    )
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=REPO)
    metrics = exp / "retrain" / "metrics.jsonl"
    while proc.poll() is None and not (metrics.is_file() and '"epoch"' in metrics.read_text()):
        time.sleep(0.02)  # wait until training is under way (an epoch has ended)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    state = torch.load(list_checkpoints(exp / "retrain" / "ckpt")[-1], weights_only=True)
    # epoch-end checkpoints have next_batch 0; the one written on the signal is mid-epoch
    assert state["position"]["next_batch"] > 0 and state["position"]["step"] > 0
    assert not (exp / "retrain" / ".done" / "stage").exists()


def test_search_under_a_hard_budget_fits_it_or_refuses(tts_data, tmp_path):
    """A search of tiny_wide under a hard parameter budget derives a network within it and
    records its costs; an impossible budget is refused before any training."""
    from pipeline.errors import StnasError
    from pipeline.nas.cost import CostModel
    from pipeline.train.loss_parts import num_units_of

    space = load_space("tiny_wide")
    model = CostModel(space, num_units_of(tts_data))
    lo, hi = model.extremes("params")
    target = lo + 0.2 * (hi - lo)
    exp = tmp_path / "exp"
    out = _run(
        "search",
        tts_data,
        exp,
        "space=tiny_wide",
        "max_epochs=1",
        f"budget={{params: {target}}}",
        "budget_form=hard",
        init="scratch",
    )
    arch = Arch.from_json(exp / "search" / "arch.json")
    params = model.of(space.index_of(arch.ops))["params"]
    assert params <= target and arch.num_parameters(model.num_units) == params
    assert arch.costs["fits"] and arch.costs["targets"] == {"params": target}
    assert out["costs"]["costs"]["params"]["value"] == params
    report = (exp / "search" / "report.md").read_text()
    assert "Within the budget: yes" in report and "most probable architecture within" in report
    with pytest.raises(StnasError, match="below the cheapest architecture"):
        _run(
            "search",
            tts_data,
            tmp_path / "exp2",
            "space=tiny_wide",
            f"budget={{params: {lo - 1}}}",
            init="scratch",
        )
    assert not (tmp_path / "exp2" / "search" / "ckpt").exists()
