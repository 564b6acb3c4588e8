"""``stnas package``: a retrained model as one directory to hand on (no code in it)."""

from __future__ import annotations

from typing import Optional

import click

from steps_py.common import user_errors


@click.command()
@click.option(
    "--model",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A retrained model (exp/.../retrain/avg.pt or best.pt), decoded on dev.",
)
@click.option("--out", required=True, help="The package directory to write.")
@click.option(
    "--data-dir",
    default=None,
    help="The data dir the model was trained on [default: the retrain's].",
)
@click.option("--lm", default="tg", show_default=True, help="Word LM: data/<c>/lang_test_<lm>.")
@click.option(
    "--lm-weight", type=float, default=None, help="[the one the dev decode chose for this model]"
)
@click.option("--word-penalty", type=float, default=None, help="[the dev decode's choice]")
@click.option("--force", is_flag=True, help="Replace a package already at --out.")
def package(
    model: str,
    out: str,
    data_dir: Optional[str],
    lm: str,
    lm_weight: Optional[float],
    word_penalty: Optional[float],
    force: bool,
) -> None:
    """Write a model package: the weights (safetensors), arch.json, units, words, lexicon,
    TLG.fst and the word LM, the feature config, the LM weight and word penalty chosen on
    dev, a model card (README.md) and manifest.json with the sha256 of every file.

    stnas transcribe --model DIR and stnas export --model DIR read it with nothing else.

    \b
    Example:
      stnas decode --model exp/tts/st/retrain/avg.pt --data-dir data/tts
      stnas score --model-dir exp/tts/st/retrain --data-dir data/tts
      stnas package --model exp/tts/st/retrain/avg.pt --out tts-model
    """
    with user_errors():
        from pipeline.stages.package import PackageConfig, make_package

        info = make_package(
            PackageConfig(
                model=model,
                out=out,
                data_dir=data_dir,
                lm=lm,
                lm_weight=lm_weight,
                word_penalty=word_penalty,
                force=force,
            )
        )
    size = sum(info["files"].values()) / 2**20
    scored = ", ".join(f"{k} %WER {v['wer']:.2f}" for k, v in info["results"].items())
    click.echo(
        f"packaged {model} into {info['out']} ({len(info['files'])} files, {size:.1f} MiB; "
        f"LM weight {info['lm_weight']:g}, word penalty {info['word_penalty']:g}"
        + (f"; {scored}" if scored else "")
        + ")"
    )
