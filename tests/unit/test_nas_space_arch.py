"""Search spaces, arch.json and the derived model (issue: NAS engine)."""

import json

import pytest
import torch

from pipeline.nas.arch import Arch
from pipeline.nas.draw import draw_arch
from pipeline.nas.model import TdnnNet, num_parameters
from pipeline.nas.space import SpaceError, load_space, space_from_dict


def test_builtin_spaces():
    wsj, swbd, tiny = load_space("wsj"), load_space("swbd"), load_space("tiny")
    assert wsj.num_subgraphs == 4096 and swbd.num_subgraphs == 46656
    assert wsj.width == 640 and wsj.subsample_after == 3 and wsj.num_blocks == 6
    assert set(swbd.blocks[0]) - set(wsj.blocks[0]) == {"tdnn_k7_d1", "tdnn_k7_d2"}
    assert tiny.num_subgraphs == 400
    assert len({wsj.hash, swbd.hash, tiny.hash}) == 3


def _space_dict(**changes):
    data = load_space("tiny").to_dict()
    first = changes.pop("first_block", None)
    if first is not None:
        data["blocks"][0] = first
    data.update(changes)
    return data


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"first_block": ["tdnn_k9_d1"]}, "unknown op 'tdnn_k9_d1' in block 1"),
        ({"width": 0}, "must be positive"),
        ({"input_dim": "120"}, "'input_dim' must be a int"),
        ({"schema_version": 2}, "schema_version 2 is not supported"),
        ({"subsample_after": 9}, "outside 0..4"),
        ({"first_block": ["identity"]}, "identity cannot map 120 to 64"),
        ({"first_block": ["tdnn_k3_d1", "tdnn_k3_d1"]}, "lists an op twice"),
        ({"colour": "red"}, "unknown field"),
    ],
)
def test_space_validation_errors(changes, message):
    with pytest.raises(SpaceError, match=message):
        space_from_dict(_space_dict(**changes), "my_space.json")


def test_space_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "name": \n}')
    with pytest.raises(SpaceError, match=r"bad.json:3: invalid JSON"):
        load_space(bad)
    with pytest.raises(SpaceError, match="search space not found"):
        load_space("no_such_space")


def test_all_k5_wsj_parameter_count():
    space = load_space("wsj")
    arch = Arch.from_space(space, ["tdnn_k5_d1", "tdnn_k5_d2"] * 3)
    params = arch.num_parameters(72)
    assert abs(params - 11.9e6) <= 0.1e6, params
    assert "11.91 M" in arch.describe(72)


def test_arch_json_round_trip_and_build(tmp_path):
    space = load_space("tiny")
    probs = [[0.1, 0.2, 0.3, 0.4]] * 2 + [[0.1, 0.1, 0.2, 0.2, 0.4]] * 2
    arch = Arch.from_space(
        space,
        ["tdnn_k5_d2", "tdnn_k3_d1", "identity", "tdnn_k5_d1"],
        probs,
        strategy="st",
        seed=3,
        epoch=7,
    )
    path = tmp_path / "arch.json"
    arch.to_json(path)
    again = Arch.from_json(path)
    assert again.to_dict() == arch.to_dict()
    assert again.space_hash == space.hash and again.provenance["seed"] == 3
    net = again.build(num_units=10)
    assert isinstance(net, TdnnNet)
    assert net.op_names == ["tdnn_k5_d2", "tdnn_k3_d1", "tdnn_k3_d1_s3", "identity", "tdnn_k5_d1"]
    assert num_parameters(net) == again.num_parameters(10)
    y, lengths = net.eval()(torch.randn(2, 30, 120), torch.tensor([30, 20]))
    assert y.shape == (2, 10, 10) and lengths.tolist() == [10, 7]
    png = tmp_path / "arch.png"
    draw_arch(again, png, num_units=10)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(schema_version=0), "schema_version 0 is not supported"),
        (lambda d: d["ops"].__setitem__(0, "tdnn_k4_d1"), "unknown op 'tdnn_k4_d1' in block 1"),
        (lambda d: d["ops"].__setitem__(0, "identity"), "block 1: op 'identity' is not among"),
        (lambda d: d.pop("net"), "missing field 'net'"),
    ],
)
def test_arch_json_errors(tmp_path, edit, message):
    data = Arch.from_space(load_space("tiny"), ["tdnn_k3_d1"] * 4).to_dict()
    edit(data)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SpaceError, match=message):
        Arch.from_json(path)


def test_fixed_tdnn_d_architectures_load():
    for name in ("wsj", "swbd", "tiny", "tiny_wide"):
        arch = Arch.from_json(f"conf/arch/tdnn_d_{name}.json")
        space = load_space(name)
        assert arch.space_hash == space.hash
        space.index_of(arch.ops)  # every op is a candidate of its block
        assert "TDNN-D" in arch.provenance["note"]


def test_model_is_padding_invariant():
    torch.manual_seed(0)
    net = (
        Arch.from_space(load_space("tiny"), ["tdnn_k5_d2", "tdnn_k3_d1", "tdnn_k5_d1", "identity"])
        .build(12)
        .eval()
    )
    x = torch.randn(3, 41, 120)
    lengths = torch.tensor([41, 29, 17])
    y, out_len = net(x, lengths)
    for b in range(3):
        alone, alone_len = net(x[b : b + 1, : lengths[b]], lengths[b : b + 1])
        assert alone_len.item() == out_len[b].item() == alone.shape[1]
        torch.testing.assert_close(y[b, : out_len[b]], alone[0], atol=1e-5, rtol=1e-5)


def test_a_factorized_space_must_be_a_full_grid():
    from pipeline.nas.space import space_from_dict

    data = load_space("tiny_wide").to_dict()
    assert space_from_dict(data).factorized
    broken = [list(b) for b in data["blocks"]]
    broken[2].remove("tdnn_k3_d1_w150")  # k3 d1 lacks a width: not a grid
    with pytest.raises(SpaceError, match="block 3: a factorized block needs every"):
        space_from_dict({**data, "blocks": broken})
    assert not space_from_dict({**data, "blocks": broken, "factorized": False}).factorized
