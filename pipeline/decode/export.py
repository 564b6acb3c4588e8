"""A retrained model as a file other programs run: TorchScript or ONNX.

The exported network maps ``feats`` (B, T, D) float32 — the features ``stnas prep`` writes:
fbank, per-speaker CMVN and Δ+ΔΔ (see ``<out>.json``) — and ``lengths`` (B,) int64 to
``log_probs`` (B, T', K), blank in column 0, and ``out_lengths`` (B,). A JSON file next to it
records the architecture, K, the input dimension and where the units and features come from.
Every export is checked: the exported model is run on random input and its log-probs must
equal the original's (``max_abs_diff`` in the JSON). The model is a ``.pt`` file or a model
package (:mod:`pipeline.decode.package`), whose ``units.txt`` and ``features.json`` then
describe the outputs and inputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Union

import torch

from pipeline.decode.package import FEATURES, UNITS, open_package
from pipeline.errors import StnasError
from pipeline.io import atomic_path, atomic_write_text
from pipeline.train.checkpoint import load_model

FORMATS = ("torchscript", "onnx")
TOLERANCE = 1e-4


def _check(run, net: torch.nn.Module, input_dim: int) -> float:
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 97, input_dim, generator=g)
    lengths = torch.tensor([97, 61])
    with torch.no_grad():
        want, want_len = net(feats, lengths)
        got, got_len = run(feats, lengths)
    if not torch.equal(torch.as_tensor(got_len), want_len):
        raise StnasError(f"the exported model gives output lengths {got_len} for {want_len}")
    return float((torch.as_tensor(got) - want).abs().max())


def export_model(
    model: Union[str, Path], out: Union[str, Path], fmt: str = "torchscript", opset: int = 17
) -> Dict[str, Any]:
    """Export ``model`` (a retrained ``best.pt``/``avg.pt``, or a package dir) to ``out``;
    returns the record.

    Raises:
        StnasError: an unknown format, ``onnx`` not installed, a model that cannot be read
            (unsafe, damaged), or an export whose outputs differ from the original's.
    """

    if fmt not in FORMATS:
        raise StnasError(f"unknown export format '{fmt}' (known: {', '.join(FORMATS)})")
    out = Path(out)
    if Path(model).is_dir():  # a package
        pkg = open_package(model)
        net, arch, num_units = pkg.load_network(), pkg.arch, pkg.num_units
        units, feats = f"{UNITS} of the package", f"{FEATURES} of the package"
    else:
        net, arch, num_units = load_model(Path(model))
        units = "the data dir's lang/units.txt"
        feats = "the data dir's fbank config; per-speaker CMVN, deltas order 2 window 2"
    net = net.cpu().eval()
    dim = int(arch.net["input_dim"])
    if fmt == "torchscript":
        scripted = torch.jit.script(net)
        with atomic_path(out) as tmp:
            scripted.save(str(tmp))
        loaded = torch.jit.load(str(out))
        diff = _check(lambda f, n: loaded(f, n), net, dim)
    else:
        try:
            import onnxruntime
        except ImportError:
            raise StnasError(
                "ONNX export needs the onnx and onnxruntime packages: "
                "pip install 'stnas[export]' (make install adds them)"
            ) from None
        example = (torch.zeros(1, 50, dim), torch.tensor([50]))
        with atomic_path(out) as tmp:
            torch.onnx.export(
                net,
                example,
                str(tmp),
                input_names=["feats", "lengths"],
                output_names=["log_probs", "out_lengths"],
                opset_version=opset,
                dynamo=False,
                dynamic_axes={
                    "feats": {0: "batch", 1: "frames"},
                    "lengths": {0: "batch"},
                    "log_probs": {0: "batch", 1: "out_frames"},
                    "out_lengths": {0: "batch"},
                },
            )
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        diff = _check(
            lambda f, n: tuple(
                torch.from_numpy(x)
                for x in session.run(None, {"feats": f.numpy(), "lengths": n.numpy()})
            ),
            net,
            dim,
        )
    if diff > TOLERANCE:
        out.unlink(missing_ok=True)
        raise StnasError(
            f"the {fmt} export differs from the model by {diff:.2e} (> "
            f"{TOLERANCE:g}); nothing written"
        )
    record = {
        "format": fmt,
        "model": str(model),
        "architecture": arch.describe(num_units),
        "ops": arch.ops,
        "num_units": num_units,
        "input_dim": dim,
        "inputs": {
            "feats": f"(B, T, input_dim) float32: fbank, CMVN and deltas as in {feats}",
            "lengths": "(B,) int64 frames",
        },
        "outputs": {
            "log_probs": f"(B, T', num_units) log-softmax, blank = column 0; units as in {units}",
            "out_lengths": "(B,) int64",
        },
        "max_abs_diff": diff,
        **({"opset": opset} if fmt == "onnx" else {}),
    }
    atomic_write_text(Path(f"{out}.json"), json.dumps(record, indent=2) + "\n")
    return record
