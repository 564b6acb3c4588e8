"""Strategies registry, random/fixed search, state round trip, and 2-process gloo agreement."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path as FsPath

import pytest
import torch

from pipeline.nas.arch import Arch
from pipeline.nas.space import SpaceError, load_space, space_from_dict
from pipeline.nas.supernet import ArchWeights, Path, Supernet
from pipeline.search.derive import arch_from_strategy
from pipeline.search.strategies import (
    STRATEGIES,
    StrategyConfig,
    make_strategy,
    random_search,
)

REPO = FsPath(__file__).resolve().parents[2]


def _small_space():
    data = load_space("tiny").to_dict()
    data["width"] = 16
    return space_from_dict(data)


def test_registry_and_unknown_name():
    assert set(STRATEGIES) == {"st", "darts", "snas", "random", "fixed"}
    space = _small_space()
    with pytest.raises(ValueError, match="unknown search strategy 'enas'"):
        make_strategy("enas", Supernet(space, 5), ArchWeights(space))


def test_fixed_strategy_reads_arch_json(tmp_path):
    space = load_space("tiny")
    net, arch = Supernet(space, 5), ArchWeights(space)
    fixed = make_strategy(
        "fixed", net, arch, StrategyConfig(fixed_arch=str(REPO / "conf/arch/tdnn_d_tiny.json"))
    )
    ops = Arch.from_json(REPO / "conf/arch/tdnn_d_tiny.json").ops
    assert fixed.derive() == tuple(space.index_of(ops))
    assert fixed.weight_choice() == Path(fixed.derive()) and not fixed.has_arch_step
    with pytest.raises(SpaceError, match="not of 'tiny'"):
        make_strategy(
            "fixed", net, arch, StrategyConfig(fixed_arch=str(REPO / "conf/arch/tdnn_d_wsj.json"))
        )


def test_random_search_keeps_the_best_on_held_out():
    torch.manual_seed(0)
    space = _small_space()
    net, arch = Supernet(space, 5), ArchWeights(space)
    strategy = make_strategy("random", net, arch, StrategyConfig(seed=4, random_candidates=6))
    warmed = {k: v.clone() for k, v in net.state_dict().items()}
    seen = []

    def short_train(path):  # perturbs the weights: must be undone before the next candidate
        for k, v in net.state_dict().items():
            assert torch.equal(v, warmed[k])
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)

    def held_out_loss(path):  # a known score: the best is the smallest index sum
        seen.append(path.indices)
        return float(sum(path.indices))

    best = random_search(strategy, short_train, held_out_loss)
    assert len(seen) == 6 == len(set(seen))
    assert best == min(seen, key=sum)
    for k, v in net.state_dict().items():
        assert torch.equal(v, warmed[k])
    # resuming with the results recorded evaluates nothing again
    again = make_strategy("random", net, arch, StrategyConfig(seed=4, random_candidates=6))
    again.load_state_dict(strategy.state_dict() | {"generator": again.generator.get_state()})
    seen.clear()
    assert random_search(again, short_train, held_out_loss) == best and seen == []


def test_state_dict_round_trip_continues_identically():
    space = _small_space()

    def run(steps_before, resume_state=None):
        torch.manual_seed(0)
        net, arch = Supernet(space, 5).eval(), ArchWeights(space)  # eval: no dropout draws
        st = make_strategy("st", net, arch, StrategyConfig(seed=2, arch_lr=0.05))
        if resume_state is not None:
            arch.load_state_dict(resume_state[0])
            st.load_state_dict(resume_state[1])
        x, lengths = torch.randn(2, 24, 120), torch.tensor([24, 20])
        for _ in range(steps_before):
            st.arch_step(
                lambda c: (
                    net(x, lengths, c)[0].exp().sum(dim=-1).mean()
                    + net(x, lengths, c)[0][..., 1].mean()
                )
            )
        return arch, st

    full_arch, _ = run(4)
    arch2, st2 = run(2)
    state = ({k: v.clone() for k, v in arch2.state_dict().items()}, st2.state_dict())
    resumed_arch, _ = run(2, state)
    for a, b in zip(full_arch.alphas, resumed_arch.alphas):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


def test_arch_from_strategy_has_probabilities():
    space = _small_space()
    net, arch = Supernet(space, 5), ArchWeights(space)
    st = make_strategy("st", net, arch)
    with torch.no_grad():
        arch.alphas[0][2] = 3.0
    a = arch_from_strategy(st, st.derive(), seed=0, epoch=1)
    assert a.ops[0] == space.blocks[0][2]
    assert a.probabilities[0][2] == max(a.probabilities[0])
    assert a.provenance["strategy"] == "st"


WORKER = r"""
import json, os, sys
import torch
import torch.distributed as dist
from pipeline.nas.space import load_space, space_from_dict
from pipeline.search.strategies import StrategyConfig, make_strategy
from pipeline.nas.supernet import ArchWeights, Supernet

dist.init_process_group("gloo")
rank = dist.get_rank()
data = load_space("tiny").to_dict(); data["width"] = 16
space = space_from_dict(data)
torch.manual_seed(0)                       # same initial weights on every rank
net, arch = Supernet(space, 6), ArchWeights(space)
strategy = make_strategy(sys.argv[1], net, arch, StrategyConfig(seed=7, arch_lr=0.05))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
data_gen = torch.Generator().manual_seed(100 + rank)   # every rank sees different data
draws = []
for step in range(int(sys.argv[2])):
    x = torch.randn(2, 27, 120, generator=data_gen)
    lengths = torch.tensor([27, 21])
    target = torch.randn(2, 9, 6, generator=data_gen)
    strategy.arch_step(lambda c: (net(x, lengths, c)[0] * target).sum())
    choice = strategy.weight_choice()
    draws.append(list(getattr(choice, "indices", ())))
    opt.zero_grad()
    (net(x, lengths, choice)[0] * target).sum().backward()
    for p in net.parameters():             # what DDP does to weight gradients
        if p.grad is not None:
            dist.all_reduce(p.grad); p.grad /= dist.get_world_size()
    opt.step()
json.dump({"alphas": [a.tolist() for a in arch.alphas], "arch": list(strategy.derive()),
           "draws": draws}, open(sys.argv[3] + f".{rank}", "w"))
dist.destroy_process_group()
"""


@pytest.mark.parametrize("name", ["st", "snas"])
def test_two_gloo_processes_derive_the_same_architecture(tmp_path, name):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "result"
    procs = []
    for rank in range(2):
        env = dict(
            os.environ,
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            RANK=str(rank),
            WORLD_SIZE="2",
            OMP_NUM_THREADS="1",
            PYTHONPATH=str(REPO),
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), name, "6", str(out)],
                env=env,
                cwd=REPO,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    r0, r1 = (json.loads(FsPath(f"{out}.{r}").read_text()) for r in range(2))
    assert r0["alphas"] == r1["alphas"]  # bitwise: the same averaged gradients on both ranks
    assert r0["arch"] == r1["arch"] and r0["draws"] == r1["draws"]
    assert any(abs(v) > 1e-4 for block in r0["alphas"] for v in block)  # α did move


@pytest.mark.parametrize("name", ["st", "snas", "darts"])
def test_arch_samples_average_the_gradients_of_independent_draws(name):
    """M samples per arch step: α's gradient is the mean of the M single-sample gradients
    (the same draws, in order); deterministic DARTS draws nothing and computes one."""
    space = _small_space()
    torch.manual_seed(0)
    net, arch = Supernet(space, 5).eval(), ArchWeights(space)
    with torch.no_grad():
        for a in arch.alphas:
            a.normal_()
    x, lengths = torch.randn(2, 24, 120), torch.tensor([24, 20])
    calls = []

    def loss_of(c):
        calls.append(c)
        out = net(x, lengths, c)[0]
        return out.exp().sum(dim=-1).mean() + out[..., 1].mean()

    many = make_strategy(name, net, arch, StrategyConfig(seed=3, arch_samples=3, arch_lr=0.0))
    many.arch_step(loss_of)
    got = [a.grad.clone() for a in arch.alphas]
    expected_calls = 3 if name != "darts" else 1
    assert len(calls) == expected_calls
    one = make_strategy(name, net, arch, StrategyConfig(seed=3, arch_samples=1, arch_lr=0.0))
    grads = []
    for _ in range(expected_calls):
        one.arch_step(loss_of)
        grads.append([a.grad.clone() for a in arch.alphas])
    if name == "st":  # the single-sample strategy drew the same paths, in the same order
        assert [c.indices for c in calls[:3]] == [c.indices for c in calls[3:]]
        assert len({c.indices for c in calls[:3]}) > 1
    for b, g in enumerate(got):
        mean = torch.stack([gr[b] for gr in grads]).mean(0)
        torch.testing.assert_close(g, mean, rtol=1e-5, atol=1e-7)
