"""Search diagnostics on a toy where one op is known to be better, and ``stnas show``."""

from __future__ import annotations

import math
from pathlib import Path as FsPath

import pytest
import torch
from click.testing import CliRunner

from pipeline.nas.arch import Arch
from pipeline.nas.space import space_from_dict
from pipeline.nas.supernet import ArchWeights, Path, Supernet
from pipeline.search.derive import arch_from_strategy
from pipeline.search.diagnostics import (
    GradStats,
    agreement,
    arch_rows,
    argmax_changes,
    block_stats,
    op_losses,
)
from pipeline.search.report import summarise, write_report
from pipeline.search.strategies import StrategyConfig, make_strategy

REPO = FsPath(__file__).resolve().parents[2]
BETTER = (2, 0)  # block 1: tdnn_k5_d1, block 2: tdnn_k3_d1 reproduce the target


def _toy():
    """A supernet whose target is its own output along BETTER: that path has loss 0."""
    space = space_from_dict(
        {
            "schema_version": 1,
            "name": "toy",
            "input_dim": 6,
            "width": 12,
            "dropout": 0.0,
            "subsample_after": 1,
            "subsample_op": "tdnn_k3_d1_s3",
            "blocks": [
                ["tdnn_k3_d1", "tdnn_k3_d2", "tdnn_k5_d1", "tdnn_k5_d2"],
                ["tdnn_k3_d1", "tdnn_k5_d1"],
            ],
        }
    )
    torch.manual_seed(0)
    net = Supernet(space, 5)
    feats = [torch.randn(4, 60, 6) for _ in range(8)]
    lengths = torch.full((4,), 60)
    with torch.no_grad():
        targets = [net(x, lengths, Path(BETTER))[0] for x in feats]

    def loss(choice, i):
        y, _ = net(feats[i % 8], lengths, choice)
        return ((y - targets[i % 8]) ** 2).mean()

    return space, net, loss


def test_diagnostics_rank_the_better_op_first(tmp_path):
    space, net, loss = _toy()
    aw = ArchWeights(space)
    strategy = make_strategy("st", net, aw, StrategyConfig(seed=3, arch_lr=0.05))
    grads = GradStats([len(b) for b in space.blocks])
    rows = []
    for step in range(300):
        strategy.arch_step(lambda choice, step=step: loss(choice, step))
        grads.add([a.grad for a in aw.alphas])
        rows.append({"step": step + 1, "epoch": 0, "probs": strategy.probabilities()})
    probs = strategy.probabilities()
    assert aw.argmax() == BETTER  # α ranks the better ops first
    assert probs[0][2] > 0.5 and probs[1][0] > 0.5
    snr = grads.snr()
    assert snr[0][2] > 0.1 and grads.n == 300

    def held_out(choice_fn):
        gen = torch.Generator().manual_seed(7)
        with torch.no_grad():
            return sum(float(loss(choice_fn(gen), i)) for i in range(8)) / 8

    losses = op_losses(held_out, probs)
    assert [min(range(len(r)), key=r.__getitem__) for r in losses] == list(BETTER)
    assert losses[0][2] < min(losses[0][k] for k in (0, 1, 3))
    agree = agreement(probs, losses)
    assert [a["top1_agrees"] for a in agree] == [True, True]

    history = [
        {
            "epoch": 0,
            "held_out_loss": held_out(lambda g: Path(BETTER)) + 0.1,
            "probabilities": probs,
            "grad_snr": snr,
            "arch_steps": 300,
        }
    ]
    arch = arch_from_strategy(strategy, aw.argmax(), history, exp_dir="toy", seed=3)
    summary = summarise(arch, losses, losses, rows, [], [{"kind": "epoch", "held_out_loss": 0.2}])
    assert summary["decided"]
    report = write_report(tmp_path, arch, summary).read_text()
    blocks = report.split("## Blocks")[1].split("##")[0]
    block_rows = [
        ln for ln in blocks.splitlines() if ln.startswith("| 1 |") or ln.startswith("| 2 |")
    ]
    assert block_rows[0].startswith("| 1 | k5d1 |") and block_rows[1].startswith("| 2 | k3d1 |")
    # the report ranks the better op first by loss as well, and says α and loss agree
    assert all(ln.count("k5d1") + ln.count("k3d1") >= 2 and "| yes |" in ln for ln in block_rows), (
        block_rows
    )
    assert "Decided (max p >= 0.5 in every block): yes" in report
    assert (tmp_path / "diagnostics.png").stat().st_size > 1000


def test_block_stats_grad_snr_and_argmax_changes():
    s = block_stats([0.5, 0.3, 0.2])
    assert s["max_p"] == 0.5 and s["margin"] == pytest.approx(0.2) and s["argmax"] == 0
    assert s["entropy"] == pytest.approx(
        -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2))
    )
    assert block_stats([0.25] * 4)["relative_entropy"] == pytest.approx(1.0)
    assert block_stats([1.0, 0.0])["relative_entropy"] == 0.0
    g = GradStats([2])
    for v in ([1.0, 2.0], [3.0, -2.0]):
        g.add([torch.tensor(v)])
    assert g.snr() == [[pytest.approx(2.0), 0.0]]  # mean 2 std 1; mean 0
    again = GradStats([2])
    again.load_state_dict(g.state_dict())
    assert again.snr() == g.snr()
    rows = [
        {"probs": [[0.6, 0.4]]},
        {"probs": [[0.4, 0.6]]},
        {"probs": [[0.3, 0.7]]},
        {"probs": [[0.6, 0.4]]},
    ]
    assert argmax_changes(rows) == [2]


def test_arch_table_receptive_field_and_show():
    arch = Arch.from_json(REPO / "conf" / "arch" / "tdnn_d_wsj.json")
    rows = arch_rows(arch, 72)
    # k5d1 x3 (1+4+4+4 = 13), sub k3 s3 (+2 = 15), then k5d2 at a 3-frame hop (+24 each)
    assert [r["receptive_field"] for r in rows] == [5, 9, 13, 15, 39, 63, 87, 87]
    assert sum(r["params"] for r in rows) == 11_912_392
    from steps_py.cli import cli

    out = CliRunner().invoke(
        cli, ["show", str(REPO / "conf" / "arch" / "tdnn_d_wsj.json"), "--units", "72"]
    )
    assert out.exit_code == 0 and "11,912,392 parameters" in out.output
    assert "870 ms" in out.output
    out = CliRunner().invoke(cli, ["show", str(REPO / "conf" / "arch" / "tdnn_d_wsj.json")])
    assert out.exit_code == 1 and "--units" in out.output
