"""``stnas export``: a retrained model as TorchScript or ONNX."""

from __future__ import annotations

from typing import Optional

import click

from steps_py.common import user_errors


@click.command()
@click.option(
    "--model",
    required=True,
    type=click.Path(exists=True),
    help="A model package (stnas package) or a retrained model (exp/.../retrain/avg.pt).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["torchscript", "onnx"]),
    default="torchscript",
    show_default=True,
)
@click.option(
    "--out",
    default=None,
    help="Output file [default: next to the model, model.torchscript.pt or model.onnx; "
    "for a package DIR, DIR.torchscript.pt or DIR.onnx].",
)
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset.")
def export(model: str, fmt: str, out: Optional[str], opset: int) -> None:
    """Export a retrained acoustic model; the exported outputs are checked against it.

    \b
    Example:
      stnas export --model exp/tts/st/retrain/avg.pt --format torchscript
      stnas export --model exp/tts/st/retrain/avg.pt --format onnx --out am.onnx
      stnas export --model tts-model/ --format onnx --out am.onnx
    """
    from pathlib import Path

    with user_errors():
        from pipeline.decode.export import export_model

        suffix = ".torchscript.pt" if fmt == "torchscript" else ".onnx"
        m = Path(model).resolve()
        if m.is_dir():  # next to a package, not into it (it holds no code; TorchScript is)
            target = out or str(m.with_name(m.name + suffix))
        else:
            target = out or str(Path(model).with_name("model" + suffix))
        rec = export_model(model, target, fmt, opset)
    click.echo(
        f"exported {rec['architecture']} as {fmt}: {target} (max |Δ log-prob| "
        f"{rec['max_abs_diff']:.1e} against the model; {target}.json describes it)"
    )
