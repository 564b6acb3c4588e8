"""``stnas export``: the exported model's log-probs equal the original's."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pipeline.nas.arch import Arch
from pipeline.nas.space import load_space
from steps_py.cli import cli


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(3)
    space = load_space("tiny")
    arch = Arch.from_space(space, ["tdnn_k5_d2", "tdnn_k3_d1", "identity", "tdnn_k3_d2"])
    net = arch.build(41)
    path = tmp_path / "retrain" / "best.pt"
    path.parent.mkdir()
    torch.save(
        {"model": net.state_dict(), "arch": arch.to_dict(), "num_units": 41, "stage": "retrain"},
        path,
    )
    return path, net.eval()


def _inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 143, 120, generator=g), torch.tensor([143, 100, 9])


def test_torchscript_export_equals_the_model(model_file, tmp_path):
    path, net = model_file
    r = CliRunner().invoke(cli, ["export", "--model", str(path)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = path.with_name("model.torchscript.pt")
    loaded = torch.jit.load(str(out))
    feats, lengths = _inputs()
    want, want_len = net(feats, lengths)
    got, got_len = loaded(feats, lengths)
    assert torch.equal(got_len, want_len)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    rec = json.loads(out.with_name(out.name + ".json").read_text())
    assert rec["num_units"] == 41 and rec["ops"][2] == "identity"


def test_onnx_export_equals_the_model(model_file, tmp_path):
    import onnxruntime

    path, net = model_file
    out = tmp_path / "am.onnx"
    r = CliRunner().invoke(
        cli,
        ["export", "--model", str(path), "--format", "onnx", "--out", str(out)],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    feats, lengths = _inputs()  # another batch size and length than the export's example
    want, want_len = net(feats, lengths)
    got, got_len = session.run(None, {"feats": feats.numpy(), "lengths": lengths.numpy()})
    assert got_len.tolist() == want_len.tolist()
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=0, atol=1e-4)


def test_not_a_retrained_model_is_refused(tmp_path):
    p = tmp_path / "x.pt"
    torch.save({"model": {}, "arch": None, "num_units": 3, "stage": "warmup"}, p)
    r = CliRunner().invoke(cli, ["export", "--model", str(p)])
    assert r.exit_code == 1 and "not a retrained model" in r.output
