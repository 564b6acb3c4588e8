"""The ``prep`` stage: corpus → validated Kaldi data dirs, features, lexicon, units and labels.

Sub-steps of one stage (:func:`pipeline.stages.runner.run_stage`), each with a done marker in
``<data_dir>/.done/`` so a rerun resumes:

1. ``corpus``   corpus-specific prep (``local/<corpus>/prepare.py``) → ``train``, ``dev``, ``test``
2. ``lang``     ``lang/{lexicon.txt, units.txt, words.txt}``
3. ``perturb``  3-way speed perturbation of ``train`` → ``train_sp``
   ``augment``  with ``augment`` kinds: ``train_sp`` + noisy/reverberant/telephone copies of
                ``train`` → ``train_sp_aug`` (:mod:`pipeline.data.augment`; never dev/test)
4. ``feats_<set>``  fbank + CMVN + Δ+ΔΔ (120-dim) for the training set, ``dev``, ``test``
5. ``labels_<set>`` ``text_number`` (OOV / too-short policy of :mod:`pipeline.lang.labels`)
6. ``validate``  every data dir against the Kaldi contract, with features
7. ``den``      phone 4-gram LM on the (unperturbed) training labels, den graph = T ∘ LM
                (``den/{phone_lm.arpa,den.fst,den_info.json}``) and path weights ``<set>/weight``
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, List, Tuple, Union

import yaml

from pipeline.data.augment import all_prefixes, augment_training_set
from pipeline.data.datadir import drop_utterances, read_map
from pipeline.data.features import make_features
from pipeline.data.layout import EVAL_SETS, FEATS_CONF, train_set_name
from pipeline.data.perturb import speed_perturb_data_dir
from pipeline.data.rates import FBANK_FOR_RATE, choose_fbank_conf, rate_counts, scan_rates
from pipeline.data.validate import unusable_utterances, validate_data_dir
from pipeline.errors import DataError, StnasError
from pipeline.io import atomic_write_text, fingerprint
from pipeline.lang.den_graph import build_den_graph
from pipeline.lang.graphs import read_arpa_vocabulary
from pipeline.lang.labels import make_labels
from pipeline.lang.lexicon import read_lexicon, read_symbol_table
from pipeline.stages.prep_config import CORPORA, PrepConfig
from pipeline.stages.prep_lang import (
    install_arpa,
    make_lang,
    redo_lang_if_edited,
    unpronounced_lm_words,
)
from pipeline.stages.record import StageDir
from pipeline.stages.runner import Stage, StageRun, run_stage
from pipeline.textfile import read_text

# options every local/<corpus>/prepare.py receives from PrepConfig (not --corpus-opt).
_COMMON_OPTS = {
    "hours",
    "seed",
    "nj",
    "noise_snr_db",
    "lexicon",
    "keep_stress",
    "skip_bad",
    "progress",
}
log = logging.getLogger(__name__)
PathLike = Union[str, Path]


def _changes(cfg: PrepConfig) -> Callable[[StageDir], List[str]]:
    """Prep's comparison with the last run: the options in ``config.yaml``; a file option
    (fbank config, lexicon) by content, so the same file at another path (a moved checkout)
    is no change and an edited one at the same path is."""

    def changes(stage: StageDir) -> List[str]:
        path = stage.root / "config.yaml"
        if not path.is_file():
            return []
        old = yaml.safe_load(path.read_text()) or {}
        new = asdict(cfg)
        # the rate options are used from the rates sub-step on: until it is done (a first run
        # refused for mixed rates) they may change without --force
        free = () if stage.is_done("rates") else ("resample", "fbank_conf")
        recorded = stage.recorded().get("inputs") or {}

        def same(k: str) -> bool:
            rec = recorded.get(k)
            if k == "fbank_conf" and new[k] is None and isinstance(old.get(k), str):
                # made before the config was chosen by rate: the default config then
                return Path(old[k]).name in FBANK_FOR_RATE.values()
            if isinstance(rec, dict) and new[k] and Path(new[k]).is_file():
                return fingerprint(new[k]) == rec.get("fingerprint")
            return old.get(k, PrepConfig.BEFORE_OPTION.get(k)) == new[k]

        return [
            f"{k}: {new[k]} has changed"
            if old.get(k) == new[k]
            else f"{k}: {old.get(k, PrepConfig.BEFORE_OPTION.get(k))!r} → {new[k]!r}"
            for k in new
            if k not in PrepConfig.RUNTIME_ONLY and k not in free and not same(k)
        ]

    return changes


def run_prep(cfg: PrepConfig, force: bool = False, progress: bool = True) -> Dict[str, object]:
    """Run (or resume) the prep stage.

    Args:
        cfg: options; resolved in place.
        force: redo every sub-stage.
        progress: show progress bars.

    Returns:
        summary: per-set utterance counts, hours, feature dim, units, OOV/dropped counts, and
        the sub-stages run now.

    Raises:
        DataError: bad input (names file/line/utterance); the failing sub-stage is not marked
            done, so a rerun after fixing resumes there.
    """
    cfg.resolve()
    corpus_module(cfg)  # refuses options of another corpus before anything is written
    if cfg.lm_arpa:
        read_arpa_vocabulary(cfg.lm_arpa)  # and an LM that is not one
    d = Path(cfg.data_dir)
    inputs = {
        **({"fbank_conf": Path(cfg.fbank_conf)} if cfg.fbank_conf else {}),
        **({"lexicon": Path(cfg.lexicon)} if cfg.lexicon else {}),
    }
    stage = Stage(
        name="prep",
        dir=d,
        inputs=inputs,
        config=asdict(cfg),
        seed=cfg.seed,
        body=lambda run: _prep_steps(run, cfg, progress),
        command=f"stnas prep --corpus {cfg.corpus}",
        changes=_changes(cfg),
        refusal=lambda changed, _: (
            f"{d} was prepared with other options "
            f"({'; '.join(changed)}); use --force to redo it or "
            "choose another --data-dir"
        ),
        reset=False,
        steps=True,
    )
    summary = run_stage(stage, force)
    if cfg.lm_arpa:
        install_arpa(Path(cfg.lm_arpa), d)  # also when it changed after prep finished
        summary["lm_words_unpronounced"] = len(unpronounced_lm_words(d))
    return summary


def _prep_steps(run: StageRun, cfg: PrepConfig, progress: bool) -> Dict[str, object]:
    d = run.dir
    train = train_set_name(cfg.speed_perturb, cfg.augment)
    sets = [train, *EVAL_SETS]

    def corpus() -> dict:
        module, extra = corpus_module(cfg)
        root = Path(cfg.corpus_root) if cfg.corpus_root else None
        try:
            info = module.prepare(
                root,
                d,
                hours=cfg.hours,
                seed=cfg.seed,
                nj=cfg.nj,
                noise_snr_db=cfg.noise_snr_db,
                lexicon=Path(cfg.lexicon) if cfg.lexicon else None,
                keep_stress=cfg.keep_stress,
                skip_bad=cfg.skip_bad,
                progress=progress,
                **extra,
            )
        except TypeError as e:
            if extra and "unexpected keyword" in str(e):
                raise StnasError(
                    f"--corpus-opt not understood by --corpus {cfg.corpus}: {e}{_OWN_CONF}"
                ) from None
            raise
        for s in ("train", *EVAL_SETS):
            if cfg.skip_bad:  # empty transcripts and missing audio: left out, listed
                bad = unusable_utterances(d / s)
                if bad:
                    log.warning(
                        "%s: %d utterance(s) left out (--skip-bad), listed in %s",
                        d / s,
                        len(bad),
                        d / s / "bad_utts.txt",
                    )
                drop_utterances(d / s, bad, keep_reference=s in EVAL_SETS)
            validate_data_dir(d / s)
        return json.loads(json.dumps(info, default=str))

    def rates() -> dict:
        found = scan_rates((d / s for s in ("train", *EVAL_SETS)), cfg.skip_bad)
        choice = choose_fbank_conf(found, cfg.fbank_conf, cfg.resample)
        (d / "conf").mkdir(exist_ok=True)
        atomic_write_text(d / FEATS_CONF, read_text(Path(choice.fbank_conf)))
        log.info(
            "sample rates %s: features at %d Hz with %s (%s)",
            rate_counts(found),
            choice.rate,
            choice.fbank_conf,
            choice.how,
        )
        return {**choice.summary(), "recordings": rate_counts(found)}

    def lang() -> dict:
        return make_lang(d, cfg, train)

    def perturb() -> dict:
        speed_perturb_data_dir(d / "train", d / "train_sp")
        return {"utts": len(read_map(d / "train_sp" / "utt2spk"))}

    def augment() -> dict:
        base = d / ("train_sp" if cfg.speed_perturb else "train")
        return augment_training_set(
            base,
            d / "train",
            d / train,
            cfg.augment,
            cfg.seed,
            d / "local" / "noise",
            fraction=cfg.augment_fraction,
            nj=cfg.nj,
            progress=progress,
            channel=cfg.channel,
        )

    def feats(s: str) -> Callable[[], dict]:
        def run() -> dict:
            r = make_features(
                d / s,
                d / "fbank",
                d / FEATS_CONF,
                nj=cfg.nj,
                skip_bad=cfg.skip_bad,
                progress=progress,
                channel=cfg.channel,
                keep_reference=s in EVAL_SETS,
                resample=cfg.resample,
            )
            frames = sum(r.num_frames.values())
            return {
                "utts": len(r.num_frames),
                "frames": frames,
                "bad": len(r.bad),
                "hours": round(frames / 360000.0, 4),
            }

        return run

    def labels(s: str) -> Callable[[], dict]:
        def run() -> dict:
            lex = read_lexicon(d / "lang" / "lexicon.txt")
            units = read_symbol_table(d / "lang" / "units.txt")
            rep = make_labels(d / s, lex, units, training=(s == train), subsampling=cfg.subsampling)
            if rep.dropped and len(rep.dropped) == rep.utts:
                raise DataError(
                    f"all {rep.utts} utterances of {s} were dropped (too short for "
                    "their labels or unmappable OOVs); see dropped_utts.txt",
                    d / s,
                )
            return rep.summary()

        return run

    def den() -> dict:
        return build_den_graph(
            d / "lang" / "units.txt",
            d / train / "text_number",
            d / "den",
            order=cfg.lm_order,
            max_extra_states=cfg.lm_max_extra_states,
            lm_type=cfg.lm_type,
            no_prune_order=cfg.lm_no_prune_order,
            dedup=cfg.lm_dedup,
            dev_text_number=d / "dev" / "text_number",
            weights={d / s / "text_number": d / s / "weight" for s in sets},
            exclude_prefixes=("sp0.9-", "sp1.1-", *all_prefixes()),
        )

    def validate() -> dict:
        return {s: validate_data_dir(d / s, need_feats=True) for s in sets}

    run.step("corpus", corpus)
    run.step("rates", rates)
    if cfg.lm_arpa:  # before lang: with --g2p espeak its words are pronounced too
        install_arpa(Path(cfg.lm_arpa), d)
    redo_lang_if_edited(run, d)
    run.step("lang", lang)
    if cfg.speed_perturb:
        run.step("perturb", perturb)
    if cfg.augment:
        run.step("augment", augment)
    for s in sets:
        run.step(f"feats_{s}", feats(s))
    for s in sets:
        run.step(f"labels_{s}", labels(s))
    run.step("validate", validate)
    run.step("den", den)
    return _summary(run, sets)


_OWN_CONF = (
    "; a conf/<corpus>/prep.yaml holds options of its own corpus: for your own data use "
    "--config conf/small/prep.yaml (./run.sh --corpus kaldi does), or a copy of it"
)


def corpus_module(cfg: PrepConfig) -> Tuple[ModuleType, Dict[str, object]]:
    """The corpus's ``local/<corpus>/prepare.py`` and its ``--corpus-opt`` options, typed.

    Raises:
        DataError: no ``--corpus-root`` for an external corpus.
        StnasError: an option that corpus does not take (naming ``conf/small``).
    """
    module = importlib.import_module(CORPORA[cfg.corpus])
    if cfg.corpus != "tts" and not cfg.corpus_root:
        what = (
            "a dir of train/, dev/ and test/ Kaldi data dirs: 'stnas data from-files' makes "
            "them from a folder of recordings"
            if cfg.corpus == "kaldi"
            else "the LDC/corpus directory"
        )
        raise DataError(f"--corpus {cfg.corpus} needs --corpus-root ({what})")
    extra = _typed(cfg.corpus_opts)
    known = [
        n
        for n, p in inspect.signature(module.prepare).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in _COMMON_OPTS
    ]
    unknown = sorted(set(extra) - set(known))
    if unknown:
        raise StnasError(
            f"--corpus-opt not understood by --corpus {cfg.corpus}: "
            f"{', '.join(unknown)} (it takes: {', '.join(known) or 'none'}){_OWN_CONF}"
        )
    return module, extra


def _typed(opts: Dict[str, str]) -> Dict[str, object]:
    """``--corpus-opt`` values as int/float/bool where they look like one."""
    out: Dict[str, object] = {}
    for k, v in opts.items():
        if v.lower() in ("true", "false"):
            out[k] = v.lower() == "true"
            continue
        for conv in (int, float):
            try:
                out[k] = conv(v)
                break
            except ValueError:
                continue
        else:
            out[k] = v
    return out


def _summary(run: StageRun, sets: List[str]) -> Dict[str, object]:
    info = run.step_info
    per_set: Dict[str, Dict[str, object]] = {}
    out: Dict[str, object] = {
        "data_dir": str(run.dir),
        "ran": run.ran,
        "units": info("lang").get("units"),
        "sets": per_set,
    }
    for s in sets:
        f, lab = info(f"feats_{s}"), info(f"labels_{s}")
        per_set[s] = {
            "utts": f.get("utts", 0) - lab.get("dropped", 0),
            "hours": f.get("hours"),
            "bad": f.get("bad", 0),
            "oov_words": lab.get("oov_words"),
            "dropped": lab.get("dropped"),
        }
    return out
