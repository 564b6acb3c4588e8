"""``stnas prep``: build data dirs, features, lexicon/units and labels for a corpus."""

from __future__ import annotations

from typing import Optional, Tuple

import click

from steps_py.common import echo_config, options_from_yaml, print_config_option, user_errors


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    callback=options_from_yaml,
    is_eager=True,
    expose_value=False,
    help="YAML file of option defaults (conf/<corpus>/prep.yaml: hours, corpus_opt, "
    "...); options on the command line win.",
)
@click.option(
    "--corpus",
    type=click.Choice(["tts", "wsj", "swbd", "kaldi"]),
    default="tts",
    show_default=True,
    help="tts: built-in synthetic corpus; wsj/swbd: LDC corpora; kaldi: your own Kaldi data dirs.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Output directory [default: data/<corpus>].",
)
@click.option(
    "--corpus-root",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Corpus location (LDC root for wsj/swbd, dir of train/dev/test for kaldi).",
)
@click.option(
    "--hours",
    type=float,
    default=0.05,
    show_default=True,
    help="tts only: hours of audio to synthesise.",
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--nj", type=int, default=1, show_default=True, help="Parallel jobs.")
@click.option(
    "--speed-perturb/--no-speed-perturb",
    default=True,
    show_default=True,
    help="3-way speed perturbation of the training set (train_sp).",
)
@click.option(
    "--augment",
    default="none",
    show_default=True,
    metavar="KINDS",
    help="Augmented copies of the training recordings added to the training set "
    "(train_sp_aug), comma-separated: noise (generated noise, music and babble at "
    "sampled SNRs), reverb (sox rooms), telephone (300-3400 Hz, mu-law 8 kHz). Never "
    "applied to dev/test.",
)
@click.option(
    "--augment-fraction",
    type=click.FloatRange(0, 1, min_open=True),
    default=1.0,
    show_default=True,
    help="Share of the training recordings each --augment kind copies.",
)
@click.option(
    "--fbank-conf",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Kaldi fbank config [default: the one made for the recordings' sample rate: "
    "conf/fbank.conf at 16 kHz, conf/fbank_8k.conf at 8 kHz].",
)
@click.option(
    "--resample",
    type=click.IntRange(min=1),
    default=None,
    metavar="RATE",
    help="Resample recordings at other rates to RATE Hz with sox as features are made (the "
    "files are not changed) [default: all recordings must have one rate].",
)
@click.option(
    "--lexicon",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CMUdict-format dictionary [default: Festival's CMU dictionary].",
)
@click.option(
    "--g2p",
    type=click.Choice(["none", "espeak"]),
    default="none",
    show_default=True,
    help="Pronounce training words outside the dictionary with espeak-ng (mapped to the CMU "
    "phones), into local/dict/lexicon_g2p.txt: review or edit it, the next prep uses it.",
)
@click.option(
    "--lm-text-filter",
    type=click.Choice(["auto", "none", "exact", "near"]),
    default="auto",
    show_default=True,
    help="Remove dev/test sentences (exact) and their near-copies (near) from the word LM's "
    "text, or nothing (none); auto: near for a separate LM text (tts), none for the train "
    "transcripts.",
)
@click.option(
    "--lm-arpa",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Your own word LM (ARPA), used as the 'tg' LM as it is.",
)
@click.option(
    "--keep-stress/--no-stress",
    default=None,
    help="Keep vowel stress in units [default: yes for wsj/swbd, no for tts].",
)
@click.option(
    "--noise-snr",
    type=float,
    default=0.0,
    show_default=True,
    help="tts only: white noise at this SNR in dB (0: only a faint noise floor).",
)
@click.option(
    "--corpus-opt",
    "corpus_opt",
    multiple=True,
    metavar="KEY=VALUE",
    help="Corpus-specific option passed to local/<corpus>/prepare.py "
    "(e.g. dev_utts=4000 for swbd, test_set=eval92_5k for wsj). Repeatable.",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Skip unreadable utterances, listing them in bad_utts.txt, instead of stopping.",
)
@click.option(
    "--channel",
    type=click.IntRange(min=1),
    default=None,
    help="1-based channel to take from multi-channel audio [default: multi-channel "
    "audio is an error].",
)
@click.option(
    "--den-lm",
    type=click.Choice(["kaldi", "witten_bell"]),
    default="kaldi",
    show_default=True,
    help="Phone LM of the CTC-CRF den graph: 'kaldi' is unsmoothed like Kaldi's "
    "chain-est-phone-lm and CAT (order 4, 1000 extra states, transcripts deduplicated; "
    "about 7x fewer den arcs); 'witten_bell' is smoothed (every phone sequence "
    "possible).",
)
@click.option("--force", is_flag=True, help="Redo every sub-stage.")
@print_config_option
def prep(
    corpus: str,
    data_dir: Optional[str],
    corpus_root: Optional[str],
    hours: float,
    seed: int,
    nj: int,
    speed_perturb: bool,
    augment: str,
    augment_fraction: float,
    fbank_conf: Optional[str],
    resample: Optional[int],
    lexicon: Optional[str],
    g2p: str,
    lm_text_filter: str,
    lm_arpa: Optional[str],
    keep_stress: Optional[bool],
    noise_snr: float,
    corpus_opt: Tuple[str, ...],
    skip_bad: bool,
    channel: Optional[int],
    den_lm: str,
    force: bool,
    print_config: bool,
) -> None:
    """Prepare CORPUS: data dirs, 120-dim features, lexicon/units, labels (resumable).

    \b
    Example:
      stnas prep --corpus tts --data-dir data/tts --hours 0.05 --nj 2
      stnas prep --corpus wsj --corpus-root /export/LDC --nj 8
      stnas prep --corpus tts --config conf/tts/prep.yaml --nj 2
      stnas prep --corpus kaldi --corpus-root mydata --config conf/small/prep.yaml
      stnas prep --corpus kaldi --corpus-root mydata --resample 16000 --g2p espeak
    """
    opts = {}
    for item in corpus_opt:
        if "=" not in item:
            raise click.BadParameter(f"expected KEY=VALUE, got '{item}'", param_hint="--corpus-opt")
        k, v = item.split("=", 1)
        opts[k] = v
    with user_errors():
        from pipeline.stages.prep import PrepConfig, run_prep

        cfg = PrepConfig(
            corpus=corpus,
            data_dir=data_dir or f"data/{corpus}",
            corpus_root=corpus_root,
            hours=hours,
            seed=seed,
            nj=nj,
            speed_perturb=speed_perturb,
            augment=augment.split(","),
            augment_fraction=augment_fraction,
            fbank_conf=fbank_conf,
            resample=resample,
            keep_stress=keep_stress,
            lexicon=lexicon,
            g2p=g2p,
            lm_text_filter=lm_text_filter,
            lm_arpa=lm_arpa,
            noise_snr_db=noise_snr,
            skip_bad=skip_bad,
            channel=channel,
            lm_type=den_lm,
            corpus_opts=opts,
        )
        if print_config:
            echo_config(cfg.resolve(), "stnas prep")
            return
        summary = run_prep(cfg, force=force)
    click.echo(
        f"prep done: {summary['data_dir']} ({summary['units']} units)"
        + ("" if summary["ran"] else " — already complete, nothing to do")
    )
    for name, s in summary["sets"].items():
        click.echo(
            f"  {name:10s} {s['utts']:6d} utts  {s['hours'] or 0:7.3f} h"
            + (f"  dropped {s['dropped']}" if s.get("dropped") else "")
            + (f"  bad {s['bad']}" if s.get("bad") else "")
            + (f"  OOV words {s['oov_words']}" if s.get("oov_words") else "")
        )
