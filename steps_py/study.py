"""``stnas study``: the methods × seeds comparison of a ``conf/study/*.yaml``."""

from __future__ import annotations

from typing import Tuple

import click

from steps_py.common import echo_config, print_config_option, user_errors


@click.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="conf/study/<name>.yaml",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a top-level key (YAML value), e.g. --set 'seeds=[1, 2]'.",
)
@click.option(
    "--report-only",
    is_flag=True,
    help="Run nothing; write the report from the members scored so far.",
)
@click.option("--dry-run", is_flag=True, help="Print the stage commands and exit.")
@print_config_option
def study(
    config_path: str,
    overrides: Tuple[str, ...],
    report_only: bool,
    dry_run: bool,
    print_config: bool,
) -> None:
    """Compare ST-NAS with DARTS, SNAS, random search, TDNN-D and its ablations, with seeds.

    Every member (method × seed) goes through the ordinary stages (search, retrain, decode,
    score), each resumable; the report (study.md: mean ± sd of dev/test %WER, parameters,
    search time and memory, a paired bootstrap test against ST-NAS; study.png) is rewritten
    after every member, so a study stopped early reports what it finished.

    \b
    Example:
      stnas study --config conf/study/tts.yaml
      stnas study --config conf/study/tts.yaml --report-only
    """
    with user_errors():
        from pipeline.study.config import load_study
        from pipeline.study.plan import command, make_plan
        from pipeline.study.run import run_study

        cfg = load_study(config_path, overrides)
        if print_config:
            echo_config(cfg, f"stnas study --config {config_path}")
            return
        if dry_run:
            plan = make_plan(cfg)
            for args in plan.prep + list(plan.warmups.values()):
                click.echo(" ".join(command(cfg, args)))
            for m in plan.members:
                if m.search:
                    click.echo(" ".join(command(cfg, m.search)))
                click.echo(" ".join(command(cfg, plan.retrain_args[m.name])))
            click.echo(f"# {len(plan.members)} members, each decoded and scored")
            return
        out = run_study(cfg, report_only=report_only, progress=click.echo)
    click.echo(f"study report: {out}")
