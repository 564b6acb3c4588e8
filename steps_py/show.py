"""``stnas show``: an ``arch.json`` as a table, not a list of floats."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from steps_py.common import user_errors


@click.command()
@click.argument("arch_json", type=click.Path(exists=True, dir_okay=False))
@click.option("--units", type=int, default=None,
              help="K, output units with blank [default: from --data-dir, else from the "
              "best.pt next to the arch.json].")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Prepared data dir whose lang/units.txt gives K.")
def show(arch_json: str, units: Optional[int], data_dir: Optional[str]) -> None:
    """Print ARCH_JSON as a table: op, kernel, dilation, p(op), entropy, parameters and
    receptive field per layer; for a searched architecture also p per epoch.

    \b
    Example:
      stnas show exp/tts/st/search/arch.json
      stnas show conf/arch/tdnn_d_wsj.json --units 72
    """
    with user_errors():
        from pipeline.errors import StnasError
        from pipeline.nas.arch import Arch
        from pipeline.nas.diagnostics import block_stats, format_arch_table

        arch = Arch.from_json(arch_json)
        k = units or _units(Path(arch_json), data_dir)
        if k is None:
            raise StnasError("give --units K or --data-dir DIR: the output layer's size "
                             "depends on the data's units")
        click.echo(format_arch_table(arch, k))
        if arch.history:
            chosen = arch.provenance.get("chosen_epoch")
            click.echo(f"\nsearch ({arch.provenance.get('strategy')}), p of the chosen op and "
                       "H/log N per block at the end of each epoch:")
            for h in arch.history:
                cells = []
                for b, p in enumerate(h["probabilities"]):
                    s = block_stats(p)
                    cells.append(f"{p[arch.candidates[b].index(arch.ops[b])]:.2f}/"
                                 f"{s['relative_entropy']:.2f}")
                mark = "  ← chosen (lowest held-out loss)" if h["epoch"] == chosen else ""
                click.echo(f"  epoch {h['epoch']:3d}  held-out {h['held_out_loss']:.4f}  "
                           + "  ".join(cells) + mark)


def _units(arch_json: Path, data_dir: Optional[str]) -> Optional[int]:
    if data_dir:
        from pipeline.train.loop import num_units_of

        return num_units_of(Path(data_dir))
    best = arch_json.parent / "best.pt"
    if best.is_file():
        from pipeline.train.checkpoint import load_file

        return load_file(best).get("num_units")
    return None
