"""The cost model (pipeline/nas/cost.py), the latency table and search budgets.

References: hand-counted parameters and multiply-adds, the parameters torch counts in the
built network, multiply-adds counted by hooks on a real forward pass, the right context found
by perturbing the input, and the analytic and finite-difference gradient of E[C].
"""

from __future__ import annotations

import json
import random

import pytest
import torch

from pipeline.errors import StnasError
from pipeline.nas.arch import Arch
from pipeline.nas.cost import CostModel, LatencyLookup, network_costs
from pipeline.nas.latency import load_table, measure
from pipeline.nas.model import num_parameters
from pipeline.nas.space import load_space
from pipeline.nas.supernet import ArchWeights, Supernet
from pipeline.search.budget import Budget, BudgetError
from pipeline.search.strategies import StrategyConfig, make_strategy

K = 30
SPACES = ("tiny", "tiny_shared", "tiny_wide", "wsj", "swbd")


def _archs(space, n=3, seed=0):
    rng = random.Random(seed)
    return [[rng.randrange(len(b)) for b in space.blocks] for _ in range(n)]


def _hook_macs(net, frames=300):
    """Multiply-adds of every Conv1d and Linear in a forward pass, per second of audio."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv1d):
            total[0] += out.shape[-1] * mod.out_channels * mod.in_channels * mod.kernel_size[0]
        elif isinstance(mod, torch.nn.Linear):
            total[0] += out.shape[0] * out.shape[1] * mod.in_features * mod.out_features

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, frames, net.layers[0].conv.in_channels), torch.tensor([frames]))
    for h in handles:
        h.remove()
    return total[0] * 100.0 / frames


def _right_context(net, frames=240, t=30):
    """The furthest input frame after output frame t's span that changes it (brute force)."""
    net.eval()
    d = net.layers[0].conv.in_channels
    x = torch.randn(1, frames, d, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([frames])
    with torch.no_grad():
        y0, _ = net(x, lengths)
        n_out = y0.shape[1]
        stride = round(frames / n_out)
        last = 0
        for j in range(1, 80):
            x2 = x.clone()
            x2[0, stride * t + j] += 10.0
            y, _ = net(x2, lengths)
            if (y[0, t] - y0[0, t]).abs().max() > 1e-6:
                last = j
    return last + (stride - 1 if stride > 1 else 0), stride


def test_hand_counted_tiny_wide_and_tiny():
    wide = load_space("tiny_wide")
    # k3d1 at 0.5x (h=32) on 120 inputs, identity, sub, k5d3 at 1.5x (h=96), k1 at 1x (h=64)
    arch = Arch.from_space(
        wide, ["tdnn_k3_d1_w50", "identity", "tdnn_k5_d3_w150", "tdnn_k1_d1_w100"]
    )
    c = network_costs(arch.layer_specs(), K)
    b1 = 120 * 32 * 3 + 32 + 32 * 64 + 64 + 128
    sub = 64 * 64 * 3 + 64 + 128
    b3 = 64 * 96 * 5 + 96 + 96 * 64 + 64 + 128
    b4 = 64 * 64 * 1 + 64 + 64 * 64 + 64 + 128
    out = 64 * K + K
    assert c["params"] == b1 + sub + b3 + b4 + out == arch.num_parameters(K)
    macs = (120 * 32 * 3 + 32 * 64) * 100 + 64 * 64 * 3 * 100 / 3
    macs += (64 * 96 * 5 + 96 * 64 + 64 * 64 + 64 * 64 + 64 * K) * 100 / 3
    assert c["macs"] == pytest.approx(macs)
    # right context: k3d1 1 frame (10 ms), sub 1 frame (10 ms), k5d3 6 frames at 30 ms
    assert c["lookahead"] == pytest.approx(10 + 10 + 6 * 30)
    tiny = load_space("tiny")
    arch = Arch.from_space(tiny, ["tdnn_k5_d2", "tdnn_k3_d1", "identity", "tdnn_k3_d2"])
    c = network_costs(arch.layer_specs(), K)
    params = (120 * 64 * 5 + 192) + (64 * 64 * 3 + 192) + (64 * 64 * 3 + 192)
    params += 64 * 64 * 3 + 192 + 64 * K + K
    assert c["params"] == params
    assert c["lookahead"] == pytest.approx(4 * 10 + 1 * 10 + 10 + 2 * 30)


@pytest.mark.parametrize("name", SPACES)
def test_costs_match_the_built_network(name):
    space = load_space(name)
    model = CostModel(space, K)
    for idx in _archs(space):
        ops = [space.blocks[b][k] for b, k in enumerate(idx)]
        arch = Arch.from_space(space, ops)
        net = arch.build(K)
        costs = model.of(idx)
        assert costs == pytest.approx(network_costs(arch.layer_specs(), K))
        assert costs["params"] == num_parameters(net)
        assert costs["macs"] == pytest.approx(_hook_macs(net), rel=0.02)  # edges: 300 frames
        if name in ("tiny", "tiny_wide"):
            right, stride = _right_context(net)
            # brute force sees output-frame granularity: within one output frame's span
            assert abs(costs["lookahead"] / 10 - right) < stride


def test_expected_cost_gradient_through_the_st_arch_step():
    from pipeline.nas.space import space_from_dict

    space = space_from_dict({**load_space("tiny_wide").to_dict(), "factorized": False})
    net = Supernet(space, K)
    arch = ArchWeights(space)
    with torch.no_grad():
        for a in arch.alphas:
            a.copy_(torch.randn(a.shape, generator=torch.Generator().manual_seed(len(a))))
    model = CostModel(space, K)
    lo, hi = model.extremes("params")
    budget = Budget.from_config({"params": (lo + hi) / 3}, "abs", 0.7, model)
    strategy = make_strategy("st", net, arch, StrategyConfig(seed=1))
    strategy.budget = budget

    def zero_task_loss(choice):  # the task's gradient is Eq. 10's; here only the cost's
        return sum(p.sum() for p in choice.probs) * 0.0

    lr = strategy.optimizer.param_groups[0]["lr"]
    strategy.optimizer.param_groups[0]["lr"] = 0.0
    strategy.arch_step(zero_task_loss)
    strategy.optimizer.param_groups[0]["lr"] = lr
    got = [a.grad.double().clone() for a in arch.alphas]

    # analytic: d/dα_b of w·|E/B − 1|, E = fixed + Σ p·C, p = softmax(α)
    alphas = [a.detach().double() for a in arch.alphas]
    probs = [a.softmax(0) for a in alphas]
    e = model.fixed["params"] + sum(
        float((p * torch.tensor(t, dtype=torch.float64)).sum())
        for p, t in zip(probs, model.per_block["params"])
    )
    sign = 1.0 if e > budget.targets["params"] else -1.0
    for b, (p, g) in enumerate(zip(probs, got)):
        c = torch.tensor(model.per_block["params"][b], dtype=torch.float64)
        dp = 0.7 * sign / budget.targets["params"] * c
        analytic = p * (dp - (p * dp).sum())
        assert torch.allclose(g, analytic, rtol=1e-4, atol=1e-9)

    def penalty(al):
        ps = [a.softmax(0) for a in al]
        return float(budget.penalty(ps))

    eps = 1e-6
    for b in range(len(alphas)):
        for k in range(len(alphas[b])):
            plus = [a.clone() for a in alphas]
            minus = [a.clone() for a in alphas]
            plus[b][k] += eps
            minus[b][k] -= eps
            fd = (penalty(plus) - penalty(minus)) / (2 * eps)
            assert fd == pytest.approx(float(got[b][k]), rel=1e-3, abs=1e-7)


def test_hard_budget_is_never_broken_and_random_draws_fit():
    space = load_space("tiny_wide")
    model = CostModel(space, K)
    lo, hi = model.extremes("params")
    budget = Budget.from_config(
        {"params": lo + 0.25 * (hi - lo), "lookahead": 150}, "hard", 1, model
    )
    rng = torch.Generator().manual_seed(3)
    for _ in range(20):  # p that favours the dearest ops
        probs = [torch.rand(len(b), generator=rng) for b in space.blocks]
        probs = [(p**4 / (p**4).sum()).tolist() for p in probs]
        idx = budget.derive(probs)
        assert budget.fits(idx)
        budget.check(idx)
        score = sum(torch.tensor(p[k]).log() for p, k in zip(probs, idx))
        for _ in range(200):  # no fitting architecture is more probable (random probes)
            other = [int(torch.randint(len(p), (1,), generator=rng)) for p in probs]
            if budget.fits(other):
                assert sum(torch.tensor(p[k]).log() for p, k in zip(probs, other)) <= score + 1e-9
    net = Supernet(space, K)
    strategy = make_strategy(
        "random", net, ArchWeights(space), StrategyConfig(seed=2, random_candidates=25)
    )
    strategy.budget = budget
    drawn = strategy.candidates()
    assert len(drawn) == 25 and len(set(drawn)) == 25
    assert all(budget.fits(a) for a in drawn)
    accepted, total = budget.acceptance
    assert accepted >= 25 and total > accepted  # some draws were rejected
    over = max(
        (
            tuple(int(torch.randint(len(b), (1,), generator=rng)) for b in space.blocks)
            for _ in range(500)
        ),
        key=lambda a: model.of(a)["params"],
    )
    with pytest.raises(BudgetError, match=r"breaks the hard budget: params .* \(\+"):
        budget.check(over)


def test_bad_budgets_are_refused_before_training(tmp_path):
    space = load_space("tiny_wide")
    model = CostModel(space, K)
    lo, hi = model.extremes("params")
    with pytest.raises(BudgetError, match="below the cheapest architecture"):
        Budget.from_config({"params": lo - 1}, "abs", 1, model)
    with pytest.raises(BudgetError, match="above the dearest architecture"):
        Budget.from_config({"params": hi}, "abs", 1, model)
    with pytest.raises(BudgetError, match="unknown cost 'flops'"):
        Budget.from_config({"flops": 1e6}, "abs", 1, model)
    with pytest.raises(BudgetError, match="budget_form 'soft'"):
        Budget.from_config({"params": lo + 1}, "soft", 1, model)
    table = measure(load_space("tiny"), K, frames=60, repeats=1)
    path = tmp_path / "latency.json"
    path.write_text(json.dumps(table))
    with pytest.raises(StnasError, match="latency table of space 'tiny'.*not of space 'tiny_wide'"):
        load_table(path, space, K)
    with pytest.raises(StnasError, match="K=30 output units, the data has K=31"):
        load_table(path, load_space("tiny"), K + 1)


def test_latency_table_covers_every_architecture():
    space = load_space("tiny_wide")
    table = measure(space, K, frames=60, repeats=1)
    assert table["machine"] and table["space"]["hash"] == space.hash
    model = CostModel(space, K, LatencyLookup(table["entries"]))
    lo, hi = model.extremes("latency")
    assert 0 < lo < hi
    for idx in _archs(space, 5):
        assert model.of(idx)["latency"] > 0


def test_factorized_probabilities_and_their_cost_gradient():
    """tiny_wide's α is per block one logit per shape and one per width: p(op) is their
    product, sums to 1, and the ST arch step's α gradient of the penalty is the finite
    difference of the penalty of those p."""
    space = load_space("tiny_wide")
    assert space.factorized
    net = Supernet(space, K)
    arch = ArchWeights(space).double()  # float64: a finite difference to compare with
    assert [len(a) for a in arch.alphas][:4] == [5, 3, 6, 3]  # block 1 has no identity
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for a in arch.alphas:
            a.copy_(torch.randn(a.shape, generator=gen))
    probs = arch.probs()
    for b, p in enumerate(probs):
        assert len(p) == len(space.blocks[b]) and float(p.sum()) == pytest.approx(1.0)
    ps, pw = arch.alphas[2].softmax(0), arch.alphas[3].softmax(0)
    op = space.blocks[1].index("tdnn_k5_d3_w150")
    assert float(probs[1][op]) == pytest.approx(float(ps[4] * pw[2]))
    assert float(probs[1][space.blocks[1].index("identity")]) == pytest.approx(float(ps[5]))
    model = CostModel(space, K)
    lo, hi = model.extremes("params")
    budget = Budget.from_config({"params": (lo + hi) / 4}, "abs", 1.0, model)
    strategy = make_strategy("st", net, arch, StrategyConfig(seed=1))
    strategy.budget = budget
    strategy.optimizer.param_groups[0]["lr"] = 0.0
    strategy.arch_step(lambda choice: sum(p.sum() for p in choice.probs) * 0.0)
    eps = 1e-6
    for a in arch.alphas:
        for k in range(len(a)):
            with torch.no_grad():
                a[k] += eps
                up = float(budget.penalty(arch.probs()))
                a[k] -= 2 * eps
                down = float(budget.penalty(arch.probs()))
                a[k] += eps
            assert float(a.grad[k]) == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-9)
