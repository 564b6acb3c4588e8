"""``stnas data``: make Kaldi data dirs from the layouts users have (``data from-files``)."""

from __future__ import annotations

from typing import Optional

import click

from steps_py.common import user_errors


@click.group()
def data() -> None:
    """Make Kaldi data dirs (train/, dev/, test/) for stnas prep --corpus kaldi.

    \b
    Example:
      stnas data from-files /export/LibriSpeech/dev-clean data/mine
      stnas prep --corpus kaldi --corpus-root data/mine
    """


@data.command("from-files")
@click.argument("audio_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option(
    "--transcripts",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A .csv or .tsv table with a header naming the columns path, text and optionally "
    "speaker (without it, each file's parent folder is its speaker); relative paths are "
    "relative to the table's folder. Without this option, AUDIO_DIR is searched for "
    "LibriSpeech-style *.trans.txt files.",
)
@click.option(
    "--split",
    default="train=0.8,dev=0.1,test=0.1",
    show_default=True,
    metavar="SET=SHARE,...",
    help="Shares of the utterances for train, dev and test (summing to 1); speakers are "
    "split, never shared between sets. A set with share 0 is not written.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the speaker shuffle.")
@click.option(
    "--force",
    is_flag=True,
    help="Write into a non-empty OUT_DIR, replacing its train/, dev/ and test/.",
)
def from_files_cmd(
    audio_dir: str, out_dir: str, transcripts: Optional[str], split: str, seed: int, force: bool
) -> None:
    """Turn audio files with transcripts into sorted, validated Kaldi data dirs
    OUT_DIR/{train,dev,test} (wav.scp, text, utt2spk, spk2utt) and OUT_DIR/from_files.json.

    Transcripts are upper-cased, punctuation (but apostrophes inside words) removed;
    utterance ids are SPEAKER-STEM; .wav files are named by path, other audio (flac, mp3,
    ...) read through a sox pipe; the audio itself is never rewritten.

    \b
    Layouts:
      LibriSpeech style: *.trans.txt files (lines 'UTTID WORDS...') anywhere under
      AUDIO_DIR, UTTID.flac or UTTID.wav next to them, speaker = UTTID up to its first '-'.
      A table: --transcripts FILE.csv or FILE.tsv, header 'path,text,speaker' (speaker
      optional: then a file's parent folder name is its speaker).

    \b
    Example:
      stnas data from-files /export/LibriSpeech/train-clean-100 data/libri
      stnas data from-files recordings data/mine --transcripts recordings/list.csv
      stnas data from-files recordings data/mine --transcripts list.tsv \\
          --split train=0.9,dev=0.05,test=0.05 --seed 3 --force
      stnas prep --corpus kaldi --corpus-root data/mine
    """
    with user_errors():
        from pipeline.data.from_files import from_files

        summary = from_files(audio_dir, out_dir, transcripts, split, seed, force)
    click.echo(f"data dirs written to {summary['out_dir']} ({summary['layout']} layout)")
    for name, s in summary["sets"].items():
        hours = "      ? h" if s["hours"] is None else f"{s['hours']:7.3f} h"
        click.echo(f"  {name:6s} {s['speakers']:6d} speakers {s['utterances']:8d} utts {hours}")
    if len(summary["sets"]) < 3:
        click.echo("note: stnas prep --corpus kaldi needs all of train, dev and test")
