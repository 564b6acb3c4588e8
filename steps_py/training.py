"""``stnas warmup | search | retrain``: thin commands over :func:`pipeline.stages.train.run_training`.

All three take a YAML config (``--config conf/<corpus>/<stage>.yaml``), ``--set KEY=VALUE``
overrides and the usual ``--force``; under ``torchrun`` they run data-parallel.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import click

from steps_py.common import echo_config, print_config_option, user_errors


def _common(fn: Callable) -> Callable:
    options = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help="YAML config (conf/<corpus>/<stage>.yaml).",
        ),
        click.option("--data-dir", default=None, help="Prepared data [config: data_dir]."),
        click.option(
            "--exp-dir",
            default=None,
            help="Experiment dir; the stage writes <exp-dir>/<stage> [config: exp_dir].",
        ),
        click.option("--device", default=None, help="cpu, cuda or cuda:N [config: device]."),
        click.option("--seed", type=int, default=None, help="[config: seed]"),
        click.option(
            "--set",
            "overrides",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override a config key (repeatable), e.g. --set max_epochs=3.",
        ),
        click.option(
            "--force",
            is_flag=True,
            help="Start the stage over, discarding its files "
            "and the stages built from it (search, retrain, decodes).",
        ),
        print_config_option,
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _run(
    stage: str,
    config_path: Optional[str],
    overrides: Tuple[str, ...],
    force: bool,
    print_config: bool,
    **explicit,
) -> None:
    with user_errors():
        from pipeline.stages.train import run_training
        from pipeline.train.config import load_config

        cfg = load_config(stage, config_path, overrides, **explicit)
        if print_config:
            echo_config(cfg, f"stnas {stage}" + (f" --config {config_path}" if config_path else ""))
            return
        summary = run_training(cfg, force=force)
    if summary.get("up_to_date"):
        click.echo(
            f"{stage} already done and up to date: {summary['dir']} (same inputs and "
            "options; --force redoes it)"
        )
        return
    if summary.get("world", 1) > 1:
        import torch.distributed as dist

        if dist.get_rank() != 0:
            return
    click.echo(
        f"{stage} done: {summary['dir']} ({summary['epochs']} epochs, {summary['steps']} "
        f"steps, best held-out loss {summary['best_held_out_loss']:.4f}"
        + (", resumed" if summary["resumed"] else "")
        + ")"
    )
    if summary.get("bad_batches"):
        click.echo(f"  skipped batches with a non-finite loss: {summary['bad_batches']}")
    if "arch" in summary:
        click.echo(f"  architecture: {summary['arch']}")
    if "arch_json" in summary:
        click.echo(f"  {summary['arch_json']}")


@click.command()
@_common
@click.option("--space", default=None, help="Search space name or JSON path [config: space].")
def warmup(**options) -> None:
    """Warm up the supernet: uniformly sampled paths, weights only (paper §3.2).

    \b
    Example:
      stnas warmup --config conf/tts/warmup.yaml --data-dir data/tts --exp-dir exp/tts/st
    """
    _run("warmup", **options)


@click.command()
@_common
@click.option(
    "--strategy", default=None, help="st, darts, snas, random or fixed [config: strategy]."
)
@click.option("--init", default=None, help="Warm-up weights [default: <exp-dir>/warmup/best.pt].")
def search(**options) -> None:
    """Search the architecture from the warmed-up supernet; writes arch.json and alphas.png.

    \b
    Example:
      stnas search --config conf/tts/search.yaml --exp-dir exp/tts/st --strategy st
    """
    _run("search", **options)


@click.command()
@_common
@click.option(
    "--arch",
    default=None,
    type=click.Path(dir_okay=False),
    help="arch.json to train (any corpus: transfer) [default: <exp-dir>/search/arch.json].",
)
def retrain(**options) -> None:
    """Train the derived network from scratch with CTC-CRF (+ λ·CTC); writes best.pt, curves.png.

    \b
    Example:
      stnas retrain --config conf/tts/retrain.yaml --exp-dir exp/tts/st
      stnas retrain --arch exp/wsj/st/search/arch.json --data-dir data/swbd --exp-dir exp/swbd/wsj_arch
    """
    _run("retrain", **options)
