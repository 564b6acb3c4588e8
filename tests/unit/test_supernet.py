"""Supernet modes against independent formulas (paper Eq. 10, DARTS and SNAS mixtures)."""

import pytest
import torch

from pipeline.nas.model import apply_layer
from pipeline.nas.space import load_space, space_from_dict
from pipeline.nas.supernet import ArchWeights, ChoiceBlock, Mixture, Path, StraightThrough, Supernet
from pipeline.search.strategies import StrategyConfig, gumbel_softmax, make_strategy

K = 7


def _space(dropout=0.0):
    data = load_space("tiny").to_dict()
    data["dropout"] = dropout
    data["width"] = 16
    return space_from_dict(data)


def _setup(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    space = _space()
    net = Supernet(space, K).to(dtype).eval()
    arch = ArchWeights(space).to(dtype)
    with torch.no_grad():
        for a in arch.alphas:
            a.normal_()
    lengths = torch.tensor([40, 31, 22])
    x = torch.randn(3, 40, 120, dtype=dtype) * (
        torch.arange(40)[None, :, None] < lengths[:, None, None]
    )  # zero padding
    return space, net, arch, x, lengths


def test_st_forward_equals_sampled_subnetwork_exactly():
    _, net, arch, x, lengths = _setup(torch.float32)
    indices = (3, 0, 4, 2)
    st, st_len = net(x, lengths, StraightThrough(indices, arch.probs()))
    path, _ = net(x, lengths, Path(indices))
    alone, alone_len = net.extract(indices).eval()(x, lengths)
    assert torch.equal(st, path) and torch.equal(st, alone)
    assert torch.equal(st_len, alone_len)


def test_st_alpha_gradient_is_eq10_in_float64():
    _, net, arch, x, lengths = _setup()
    indices = (1, 2, 4, 0)
    weight = torch.randn(3, 14, K, dtype=torch.float64)
    out, _ = net(x, lengths, StraightThrough(indices, arch.probs()))
    (out * weight).sum().backward()

    # Independently: run the sampled path, keep every block's input and output gradient.
    inputs, outputs, h, lens = [], [], x, lengths
    block = 0
    for layer in net.layers:
        if isinstance(layer, ChoiceBlock):
            inputs.append((h, lens))
            h, lens = apply_layer(layer.candidates[indices[block]], h, lens)
            h.retain_grad()
            outputs.append(h)
            block += 1
        else:
            h, lens = apply_layer(layer, h, lens)
    (net.output(h).log_softmax(-1) * weight).sum().backward()
    block = 0
    for layer in net.layers:
        if not isinstance(layer, ChoiceBlock):
            continue
        g = outputs[block].grad
        h_in, l_in = inputs[block]
        with torch.no_grad():
            dp = torch.stack(
                [(g * apply_layer(c, h_in, l_in)[0]).sum() for c in layer.candidates]
            )  # Eq. 10: dL/dp_k = <dL/dy, o_k>
            p = arch.alphas[block].softmax(0)
            expected = p * (dp - (p * dp).sum())  # through p = softmax(alpha)
        torch.testing.assert_close(arch.alphas[block].grad, expected, rtol=1e-10, atol=1e-12)
        assert expected.abs().max() > 1e-6  # the check is not vacuous
        block += 1


def test_st_gradient_reaches_every_probability():
    """Eq. 10 is linear in p: d/dp of sum_k p_k <g, o_k> with g fixed is what ST computes."""
    _, net, arch, x, lengths = _setup()
    indices = (0, 0, 0, 0)
    p = [pb.detach().requires_grad_(True) for pb in arch.probs()]
    out, _ = net(x, lengths, StraightThrough(indices, p))
    out.sum().backward()
    assert all(pb.grad is not None and pb.grad.abs().sum() > 0 for pb in p)


def test_mixture_equals_formula():
    _, net, arch, x, lengths = _setup()
    weights = [torch.rand(len(a), dtype=torch.float64) for a in arch.alphas]
    out, _ = net(x, lengths, Mixture(weights))
    h, lens, block = x, lengths, 0
    for layer in net.layers:
        if isinstance(layer, ChoiceBlock):
            outs = [apply_layer(c, h, lens) for c in layer.candidates]
            h = sum(w * o for w, (o, _) in zip(weights[block], outs))
            lens = outs[0][1]
            block += 1
        else:
            h, lens = apply_layer(layer, h, lens)
    torch.testing.assert_close(out, net.output(h).log_softmax(-1), rtol=1e-12, atol=1e-12)


def test_snas_low_temperature_approaches_one_hot():
    _, net, arch, x, lengths = _setup()
    gen = torch.Generator().manual_seed(0)
    for tau in (5.0, 0.01):
        maxes = torch.tensor(
            [float(gumbel_softmax(arch.alphas[0].detach(), tau, gen).max()) for _ in range(200)]
        )
        if tau > 1:
            assert maxes.mean() < 0.7  # high temperature: soft
        else:
            assert maxes.median() > 0.999 and maxes.mean() > 0.99
    w = [gumbel_softmax(a.detach(), 1e-3, gen) for a in arch.alphas]
    hard = tuple(int(wb.argmax()) for wb in w)
    soft_out, _ = net(x, lengths, Mixture(w))
    hard_out, _ = net(x, lengths, Path(hard))
    torch.testing.assert_close(soft_out, hard_out, rtol=1e-6, atol=1e-6)


def test_weight_step_touches_only_sampled_ops():
    torch.manual_seed(0)
    space = _space(dropout=0.1)
    net = Supernet(space, K)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    indices = (2, 1, 4, 3)
    out, _ = net(torch.randn(2, 30, 120), torch.tensor([30, 25]), Path(indices))
    out.sum().backward()
    opt.step()
    sampled = {f"layers.{pos}.candidates.{indices[b]}." for b, pos in enumerate(net.block_layer)}
    for name, p in net.named_parameters():
        in_path = "candidates" not in name or any(name.startswith(s) for s in sampled)
        changed = not torch.equal(before[name], p.detach())
        if in_path:
            assert p.grad is not None
        else:
            assert p.grad is None and not changed and p not in opt.state, name
    # identity (index 4 of block 3) has no weights; other sampled ops must have moved
    assert any(
        not torch.equal(before[n], p)
        for n, p in net.named_parameters()
        if n.startswith(f"layers.{net.block_layer[0]}.candidates.2.")
    )


@pytest.mark.parametrize("name", ["st", "darts", "snas"])
def test_arch_step_freezes_weights_and_moves_alpha(name):
    torch.manual_seed(0)
    space = _space(dropout=0.1)
    net, arch = Supernet(space, K), ArchWeights(space)
    strategy = make_strategy(name, net, arch, StrategyConfig(seed=1, arch_lr=0.1))
    x, lengths = torch.randn(2, 30, 120), torch.tensor([30, 24])
    target = torch.randn(2, 10, K)

    def loss_of(choice):
        return (net(x, lengths, choice)[0] * target).sum()

    weights = [p.detach().clone() for p in net.parameters()]
    loss = strategy.arch_step(loss_of)
    assert loss == loss  # finite
    assert all(p.grad is None for p in net.parameters())
    assert all(p.requires_grad for p in net.parameters())  # restored after the step
    assert all(torch.equal(w, p) for w, p in zip(weights, net.parameters()))
    assert any(a.detach().abs().max() > 0 for a in arch.alphas)
    choice = strategy.weight_choice()
    assert isinstance(choice, Path if name == "st" else Mixture)


def test_shared_taps_candidates_share_weights_and_extract_exactly():
    """shared_taps: one weight per time offset per block; k3 d1 is the centre of k5 d1,
    k3 d2 reuses k5 d1's ±2 taps; a path extracted as a plain TdnnNet computes the same."""
    from pipeline.nas.shared import SharedTdnn
    from pipeline.nas.space import load_space, space_from_dict
    from pipeline.nas.supernet import Path as NetPath
    from pipeline.nas.supernet import Supernet

    data = load_space("tiny").to_dict()
    plain = space_from_dict(data)
    data["shared_taps"] = True
    space = space_from_dict(data)
    assert space.hash != plain.hash and space_from_dict(space.to_dict()) == space
    torch.manual_seed(0)
    net = Supernet(space, 7).eval()
    separate = Supernet(plain, 7)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(net) < count(separate) / 2
    block = net.layers[net.block_layer[0]]
    k3d1, k3d2, k5d1, k5d2 = block.candidates[:4]
    assert all(isinstance(c, SharedTdnn) for c in (k3d1, k3d2, k5d1, k5d2))
    k5 = k5d1.taps.kernel(5, 1)
    torch.testing.assert_close(k3d1.taps.kernel(3, 1), k5[:, :, 1:4])
    torch.testing.assert_close(k3d2.taps.kernel(3, 2), k5[:, :, [0, 2, 4]])
    # offsets {-4, -2, -1, 0, 1, 2, 4}: 7 matrices for the 4 candidates of a block
    assert k5d1.taps.weight.shape[0] == 7
    x, lengths = torch.randn(2, 40, 120), torch.tensor([40, 31])
    path = (3, 1, 4, 0)  # identity in block 3
    want, want_len = net(x, lengths, NetPath(path))
    got, got_len = net.extract(path).eval()(x, lengths)
    assert torch.equal(got_len, want_len)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # training one path moves the weights every candidate of the block uses
    before = k3d1.taps.kernel(3, 1).detach().clone()
    net.train()
    net(x, lengths, NetPath((2, 0, 0, 0)))[0].sum().backward()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    assert not torch.equal(k3d1.taps.kernel(3, 1), before)


def test_width_slicing_shares_the_first_channels_and_extracts_exactly():
    """tiny_wide: a 0.5x candidate is the first half of the 1.5x one of the same taps; a
    path extracted as a standalone TdnnNet computes the same as the supernet."""
    from pipeline.nas.shared import SharedWideTdnn
    from pipeline.nas.space import load_space
    from pipeline.nas.supernet import Path as NetPath
    from pipeline.nas.supernet import Supernet

    space = load_space("tiny_wide")
    torch.manual_seed(0)
    net = Supernet(space, 9).eval()
    block = net.layers[net.block_layer[1]]
    names = space.blocks[1]
    small = block.candidates[names.index("tdnn_k5_d3_w50")]
    big = block.candidates[names.index("tdnn_k5_d3_w150")]
    k3 = block.candidates[names.index("tdnn_k3_d1_w100")]
    assert isinstance(small, SharedWideTdnn) and small.taps is big.taps is k3.taps
    assert (small.h, big.h) == (32, 96)
    torch.testing.assert_close(small.taps.kernel(5, 3, 32), big.taps.kernel(5, 3)[:32])
    x, lengths = torch.randn(2, 45, 120), torch.tensor([45, 33])
    for path in [(0, 15, 7, 3), (14, 2, 15, 9), (5, 11, 0, 15)]:
        want, want_len = net(x, lengths, NetPath(path))
        got, got_len = net.extract(path).eval()(x, lengths)
        assert torch.equal(got_len, want_len)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # training the 0.5x candidate moves the 1.5x candidate's first 32 hidden channels only
    before = big.taps.kernel(5, 3).detach().clone()
    net.train()
    p = names.index("tdnn_k5_d3_w50")
    net(x, lengths, NetPath((0, p, 0, 0)))[0].sum().backward()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    after = big.taps.kernel(5, 3).detach()
    assert not torch.equal(after[:32], before[:32])
    assert torch.equal(after[32:], before[32:])
