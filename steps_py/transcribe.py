"""``stnas transcribe``: audio → text and CTM with a retrained model."""

from __future__ import annotations

from typing import Optional, Tuple

import click

from pipeline.decode import defaults
from steps_py.common import user_errors


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--model",
    required=True,
    type=click.Path(exists=True),
    help="A model package (stnas package), or a retrained model (exp/.../retrain/avg.pt).",
)
@click.option(
    "--data-dir",
    default=None,
    help="For a .pt model: the data dir it was trained on (fbank "
    "config, lang_test_<lm>) [default: the retrain's].",
)
@click.option("--lm", default=None, help="Word LM [the package's; tg].")
@click.option(
    "--lm-weight", type=float, default=None, help="[the one dev chose for this model, else 1.0]"
)
@click.option("--word-penalty", type=float, default=None, help="[dev's choice, else 0.0]")
@click.option(
    "--utt2spk",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CMVN per speaker (as prep does) [default: per utterance].",
)
@click.option(
    "--resample", is_flag=True, help="Resample audio at another rate with sox [default: refuse it]."
)
@click.option(
    "--channel", type=click.IntRange(min=1), default=None, help="Channel of multi-channel audio."
)
@click.option("--out-dir", default=None, help="Write text and ctm here.")
@click.option("--nj", type=int, default=1, show_default=True, help="Decoding processes.")
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--beam", type=float, default=None, help=f"[the package's decode's, else {defaults.BEAM:g}]"
)
def transcribe(
    inputs: Tuple[str, ...],
    model: str,
    data_dir: Optional[str],
    lm: Optional[str],
    lm_weight: Optional[float],
    word_penalty: Optional[float],
    utt2spk: Optional[str],
    resample: bool,
    channel: Optional[int],
    out_dir: Optional[str],
    nj: int,
    device: str,
    beam: Optional[float],
) -> None:
    """Transcribe wav files, wav.scp files or directories of wav files.

    Prints 'utt words' per utterance; --out-dir also writes Kaldi text and a CTM whose word
    times come from the best path.

    \b
    Examples:
      stnas transcribe --model tts-model/ my.wav recordings/ --out-dir out
      stnas transcribe --model exp/tts/st/retrain/avg.pt my.wav
    """
    with user_errors():
        from pipeline.stages.transcribe import TranscribeConfig
        from pipeline.stages.transcribe import transcribe as run

        out = run(
            TranscribeConfig(
                model=model,
                inputs=list(inputs),
                data_dir=data_dir,
                lm=lm,
                lm_weight=lm_weight,
                word_penalty=word_penalty,
                utt2spk=utt2spk,
                resample=resample,
                channel=channel,
                out_dir=out_dir,
                nj=nj,
                device=device,
                beam=beam,
            )
        )
    for utt, r in out.items():
        click.echo(f"{utt} {' '.join(r['words'])}")
