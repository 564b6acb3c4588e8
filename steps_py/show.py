"""``stnas show``: an ``arch.json`` as a table, not a list of floats; and, for scripts such as
``run.sh``, an architecture in one line, a value of a YAML config and the stage times."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional, Tuple

import click

from steps_py.common import user_errors


class _ArchByDefault(click.Group):
    """``stnas show ARCH_JSON ...`` (no subcommand) is ``stnas show arch ARCH_JSON ...``."""

    def parse_args(self, ctx: click.Context, args: List[str]) -> List[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["arch", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_ArchByDefault)
def show() -> None:
    """Print an architecture as a table (the default: stnas show ARCH_JSON is stnas show arch
    ARCH_JSON), or, for scripts, an architecture in one line, a value of a YAML config, the
    time each stage took.

    \b
    Example:
      stnas show exp/tts/st/search/arch.json
      stnas show arch conf/arch/tdnn_d_wsj.json --units 72 --summary
      stnas show config conf/debug/search.yaml --key space
      stnas show times data/tts exp/tts/st
    """


@show.command("arch")
@click.argument("arch_json", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--units",
    type=int,
    default=None,
    help="K, output units with blank [default: from --data-dir, else from the "
    "best.pt next to the arch.json].",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Prepared data dir whose lang/units.txt gives K.",
)
@click.option(
    "--summary",
    is_flag=True,
    help="One line instead of the table: the ops and the parameter count.",
)
def show_arch(arch_json: str, units: Optional[int], data_dir: Optional[str], summary: bool) -> None:
    """Print ARCH_JSON as a table: op, kernel, dilation, p(op), entropy, parameters and
    receptive field per layer; for a searched architecture also p per epoch.

    \b
    Example:
      stnas show exp/tts/st/search/arch.json
      stnas show conf/arch/tdnn_d_wsj.json --units 72
      stnas show arch exp/tts/st/search/arch.json --data-dir data/tts --summary
    """
    with user_errors():
        from pipeline.errors import StnasError
        from pipeline.nas.arch import Arch
        from pipeline.search.diagnostics import format_arch_table

        arch = Arch.from_json(arch_json)
        k = units or _units(Path(arch_json), data_dir)
        if k is None:
            raise StnasError(
                "give --units K or --data-dir DIR: the output layer's size "
                "depends on the data's units"
            )
        if summary:
            click.echo(
                f"{arch.describe()}  ({arch.num_parameters(k) / 1e6:.3f} M parameters "
                f"with K={k} units)"
            )
            return
        click.echo(format_arch_table(arch, k))
        if arch.history:
            _echo_history(arch)


def _echo_history(arch: Any) -> None:
    """p of the chosen op and H/log N per block at the end of each search epoch."""
    from pipeline.search.diagnostics import block_stats

    chosen = arch.provenance.get("chosen_epoch")
    click.echo(
        f"\nsearch ({arch.provenance.get('strategy')}), p of the chosen op and "
        "H/log N per block at the end of each epoch:"
    )
    for h in arch.history:
        cells = []
        for b, p in enumerate(h["probabilities"]):
            s = block_stats(p)
            cells.append(
                f"{p[arch.candidates[b].index(arch.ops[b])]:.2f}/{s['relative_entropy']:.2f}"
            )
        mark = "  ← chosen (lowest held-out loss)" if h["epoch"] == chosen else ""
        click.echo(
            f"  epoch {h['epoch']:3d}  held-out {h['held_out_loss']:.4f}  "
            + "  ".join(cells)
            + mark
        )


def _units(arch_json: Path, data_dir: Optional[str]) -> Optional[int]:
    if data_dir:
        from pipeline.train.loss_parts import num_units_of

        return num_units_of(Path(data_dir))
    best = arch_json.parent / "best.pt"
    if best.is_file():
        from pipeline.train.checkpoint import load_file

        return load_file(best).get("num_units")
    return None


@show.command("config")
@click.argument("yaml_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--key", required=True, help="The key to print; a.b for key b of the mapping under a."
)
def show_config(yaml_file: str, key: str) -> None:
    """Print the value of a key of YAML_FILE: text as it is, anything else as JSON (true,
    0.002, [1, 2]). A missing key or unreadable YAML is an error naming the file.

    \b
    Example:
      stnas show config conf/debug/search.yaml --key space
      stnas show config conf/wsj/search.yaml --key strategy_conf.arch_lr
    """
    with user_errors():
        value = _yaml_value(Path(yaml_file), key)
        click.echo(value if isinstance(value, str) else json.dumps(value, default=str))


def _yaml_value(path: Path, key: str) -> Any:
    from pipeline.config import parse_yaml
    from pipeline.errors import StnasError
    from pipeline.textfile import read_text

    try:
        value = parse_yaml(read_text(path), str(path))
    except OSError as e:
        raise StnasError(f"{path}: cannot read YAML: {e}") from None
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            keys = ", ".join(map(str, value)) if isinstance(value, dict) else "none"
            raise StnasError(f"{path}: no key '{key}' (keys there: {keys})")
        value = value[part]
    return value


@show.command("times")
@click.argument("dirs", nargs=-1, type=click.Path(file_okay=False))
def show_times(dirs: Tuple[str, ...]) -> None:
    """Print the time each stage under DIRS took, from the stage.json every stage writes
    (DIR/stage.json, DIR/*/stage.json, DIR/*/decode_*/stage.json; a skipped stage shows its
    first run). Prints nothing when there is none; a missing DIR is passed over.

    \b
    Example:
      stnas show times data/tts exp/tts/st exp/tts/st_tdnn_d
    """
    with user_errors():
        rows = [
            _stage_time(p)
            for root in map(Path, dirs)
            for p in sorted(
                [
                    root / "stage.json",
                    *root.glob("*/stage.json"),
                    *root.glob("*/decode_*/stage.json"),
                ]
            )
            if p.is_file()
        ]
    if rows:
        width = max(len(r[0]) for r in rows)
        click.echo("stage times:")
        for name, secs, when in rows:
            click.echo(f"  {name:<{width}}  {secs:8.1f} s  (finished {when})")


def _stage_time(path: Path) -> Tuple[str, float, str]:
    from pipeline.errors import StnasError

    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise StnasError(f"{path}: cannot read: {e}") from None
    return str(path.parent), info.get("wall_time_s") or 0.0, info.get("finished", "")
