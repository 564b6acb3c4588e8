"""``stnas``: the click root group. Stage commands import heavy libraries lazily so that
``stnas --help`` answers instantly."""

from __future__ import annotations

import logging
import sys

import click

from pipeline.threads import disable_dynamic_threads

disable_dynamic_threads()  # before any stage imports torch: see pipeline/threads.py

from steps_py.data import data  # noqa: E402
from steps_py.decode import decode, score  # noqa: E402
from steps_py.export import export  # noqa: E402
from steps_py.package import package  # noqa: E402
from steps_py.prep import prep  # noqa: E402
from steps_py.show import show  # noqa: E402
from steps_py.study import study  # noqa: E402
from steps_py.training import retrain, search, warmup  # noqa: E402
from steps_py.transcribe import transcribe  # noqa: E402


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="stnas")
def cli(verbose: int) -> None:
    """stnas: Straight-Through NAS for TDNN acoustic models, CTC-CRF training, WFST decoding.

    Stages run in order, each reading what the earlier ones wrote:
    prep → warmup → search → retrain → decode → score.
    """
    level = logging.WARNING - 10 * min(verbose + 1, 2)
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for handler in logging.getLogger().handlers:  # the console; stage log files take INFO
        handler.setLevel(level)


for command in (
    data,
    prep,
    warmup,
    search,
    retrain,
    decode,
    score,
    show,
    study,
    export,
    package,
    transcribe,
):
    cli.add_command(command)
