"""``stnas decode`` and ``stnas score``: thin commands over :mod:`pipeline.stages.decode`."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.decode import defaults
from steps_py.common import echo_config, print_config_option, user_errors


def _floats(text: str):
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got '{text}'") from None


@click.command()
@click.option(
    "--model",
    required=True,
    type=click.Path(dir_okay=False),
    help="Retrained model (retrain/avg.pt or best.pt).",
)
@click.option("--data-dir", required=True, type=click.Path(file_okay=False))
@click.option("--sets", default="dev,test", show_default=True, help="Comma-separated sets.")
@click.option("--lm", default="tg", show_default=True, help="LM name: data/<c>/lang_test_<lm>.")
@click.option(
    "--lm-weights",
    default=",".join(map(str, defaults.LM_WEIGHTS)),
    show_default=True,
    help="LM weights tried on the tuning set.",
)
@click.option(
    "--word-penalties",
    default=",".join(map(str, defaults.WORD_PENALTIES)),
    show_default=True,
    help="Word insertion penalties tried on the tuning set (with every LM weight).",
)
@click.option(
    "--tune-set",
    default="dev",
    show_default=True,
    help="Set decoded at every (LM weight, penalty) pair; the other sets are decoded "
    "once, at the pair it chooses. '' decodes every set at every pair.",
)
@click.option("--beam", type=float, default=defaults.BEAM, show_default=True)
@click.option("--lattice-beam", type=float, default=defaults.LATTICE_BEAM, show_default=True)
@click.option("--max-active", type=int, default=defaults.MAX_ACTIVE, show_default=True)
@click.option("--nj", type=int, default=1, show_default=True, help="Decoding threads.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--write-logits", is_flag=True, help="Keep the log-probs as logits.ark/scp.")
@click.option("--force", is_flag=True, help="Decode again sets that are done.")
@print_config_option
def decode(
    model: str,
    data_dir: str,
    sets: str,
    lm: str,
    lm_weights: str,
    word_penalties: str,
    tune_set: str,
    beam: float,
    lattice_beam: float,
    max_active: int,
    nj: int,
    device: str,
    write_logits: bool,
    force: bool,
    print_config: bool,
) -> None:
    """Decode sets with the model against TLG: the tuning set (dev) at every LM weight and
    word penalty, the others once at the pair dev chooses.

    A finished decode is skipped while the model, graph, features and options are the same,
    and refused when any of them changed (rerun with --force).

    \b
    Example:
      stnas decode --model exp/tts/st/retrain/avg.pt --data-dir data/tts --nj 2
    """
    with user_errors():
        from pipeline.decode.run import DecodeConfig
        from pipeline.stages.decode import run_decode

        cfg = DecodeConfig(
            model=model,
            data_dir=data_dir,
            sets=sets.split(","),
            lm=lm,
            lm_weights=_floats(lm_weights),
            word_penalties=_floats(word_penalties),
            tune_set=tune_set,
            beam=beam,
            lattice_beam=lattice_beam,
            max_active=max_active,
            nj=nj,
            device=device,
            write_logits=write_logits,
        )
        if print_config:
            echo_config(cfg, "stnas decode")
            return
        summary = run_decode(cfg, force=force)
    for name, info in summary.items():
        where = Path(model).parent / f"decode_{name}_{lm}"
        if info.get("up_to_date"):
            click.echo(f"decoded {name} already (up to date): {where}")
            continue
        click.echo(
            f"decoded {name}: {info['utterances']} utterances at "
            f"{len(info['settings'])} setting(s), RTF per core "
            f"{info['rtf_per_core']:.3f} (search), {where}"
        )
        if "tuned" in info:
            t = info["tuned"]
            click.echo(
                f"  chosen on {name}: LM weight {t['lm_weight']:g}, word penalty "
                f"{t['word_penalty']:g} (%WER {t['wer']:.2f})"
            )


@click.command()
@click.option(
    "--model-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="The retrain dir holding decode_<set>_<lm>/.",
)
@click.option("--data-dir", required=True, type=click.Path(file_okay=False))
@click.option("--lm", default="tg", show_default=True)
@click.option("--dev", default="dev", show_default=True, help="Set the LM weight is chosen on.")
@click.option(
    "--test",
    "tests",
    default="test",
    show_default=True,
    help="Comma-separated sets scored at the dev-chosen weight.",
)
@click.option(
    "--results",
    default="RESULTS.md",
    show_default=True,
    help="Results table to update ('' to skip).",
)
@click.option("--arch-name", default="", help="Name in RESULTS.md [default: the exp tag].")
@click.option("--python-scoring", is_flag=True, help="Score without sclite.")
def score(
    model_dir: str,
    data_dir: str,
    lm: str,
    dev: str,
    tests: str,
    results: str,
    arch_name: str,
    python_scoring: bool,
) -> None:
    """Score with sclite: setting chosen on dev, applied to test; best_wer and RESULTS.md.

    Refuses decodes made from a model or graph that has changed since.

    \b
    Example:
      stnas score --model-dir exp/tts/st/retrain --data-dir data/tts
    """
    with user_errors():
        from pipeline.stages.score import run_score

        out = run_score(
            Path(model_dir),
            Path(data_dir),
            lm,
            dev,
            [t for t in tests.split(",") if t],
            Path(results) if results else None,
            arch_name,
            not python_scoring,
        )
    for r in out.values():
        ci = r.get("wer_ci95")
        interval = f", 95 % interval [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
        click.echo(f"{r['best_wer']}  (OOV {r['oov_rate']:.2f} %{interval})")
    if results:
        click.echo(f"updated {results}")
