"""The ``prep`` stage: corpus → validated Kaldi data dirs, features, lexicon, units and labels.

Sub-stages, each with a done marker in ``<data_dir>/.done/`` so a rerun resumes:

1. ``corpus``   corpus-specific prep (``local/<corpus>/prepare.py``) → ``train``, ``dev``, ``test``
2. ``lang``     ``lang/{lexicon.txt, units.txt, words.txt}``
3. ``perturb``  3-way speed perturbation of ``train`` → ``train_sp``
   ``augment``  with ``augment`` kinds: ``train_sp`` + noisy/reverberant/telephone copies of
                ``train`` → ``train_sp_aug`` (:mod:`pipeline.data.augment`; never dev/test)
4. ``feats_<set>``  fbank + CMVN + Δ+ΔΔ (120-dim) for the training set, ``dev``, ``test``
5. ``labels_<set>`` ``text_number`` (OOV / too-short policy of :mod:`pipeline.data.labels`)
6. ``validate``  every data dir against the Kaldi contract, with features
7. ``den``      phone 4-gram LM on the (unperturbed) training labels, den graph = T ∘ LM
                (``den/{phone_lm.arpa,den.fst,den_info.json}``) and path weights ``<set>/weight``
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

import yaml

from pipeline.data.augment import all_prefixes, augment_training_set, parse_kinds
from pipeline.data.datadir import drop_utterances, read_map
from pipeline.data.features import make_features
from pipeline.data.labels import make_labels
from pipeline.data.perturb import speed_perturb_data_dir
from pipeline.data.validate import unusable_utterances, validate_data_dir
from pipeline.errors import DataError, StnasError
from pipeline.locks import dir_locks
from pipeline.logfile import stage_log
from pipeline.lang.lexicon import (read_lexicon, read_symbol_table, units_from_lexicon,
                                   write_lexicon, write_units, write_words)
from pipeline.stage import StageDir, atomic_write_text, fingerprint, input_fingerprints

# options every local/<corpus>/prepare.py receives from PrepConfig (not --corpus-opt).
_COMMON_OPTS = {"hours", "seed", "nj", "noise_snr_db", "lexicon", "keep_stress", "skip_bad",
                "progress"}
log = logging.getLogger(__name__)
PathLike = Union[str, Path]
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

# corpus name → module with prepare(corpus_root, out_dir, **options) (DESIGN §1: local/)
CORPORA = {
    "tts": "local.tts.prepare",
    "wsj": "local.wsj.prepare",
    "swbd": "local.swbd.prepare",
    "kaldi": "local.kaldi.prepare",
}
DEFAULT_FBANK_CONF = {"swbd": "fbank_8k.conf"}
DEFAULT_KEEP_STRESS = {"wsj": True, "swbd": True}
EVAL_SETS = ("dev", "test")
# 2: the lexicon holds every pronunciation of the whole dictionary (tts: of every word of the
#    LM text, written to local/lm/text), so the decoding vocabulary is the LM's alone
PREP_VERSION = 2


@dataclass
class PrepConfig:
    """Resolved options of ``stnas prep`` (frozen into ``<data_dir>/config.yaml``)."""

    corpus: str
    data_dir: str
    corpus_root: Optional[str] = None
    hours: float = 0.05
    seed: int = 1
    nj: int = 1
    speed_perturb: bool = True
    augment: List[str] = field(default_factory=list)  # noise, reverb, telephone (train only)
    augment_fraction: float = 1.0  # share of the training recordings each kind copies
    fbank_conf: Optional[str] = None
    keep_stress: Optional[bool] = None
    lexicon: Optional[str] = None
    subsampling: int = 3
    noise_snr_db: float = 0.0
    lm_type: str = "kaldi"  # den phone LM: "kaldi" (unsmoothed) or "witten_bell" (smoothed)
    lm_order: int = 4
    lm_max_extra_states: int = 1000
    lm_no_prune_order: int = 3
    lm_dedup: bool = True
    skip_bad: bool = False
    channel: Optional[int] = None  # 1-based channel of multi-channel audio (None: mono only)
    corpus_opts: Dict[str, str] = field(default_factory=dict)
    prep_version: int = PREP_VERSION  # a data dir of another version is redone only by --force

    def resolve(self) -> "PrepConfig":
        """Fill corpus-dependent defaults and make paths absolute."""
        self.augment = parse_kinds(self.augment)
        if not 0.0 < self.augment_fraction <= 1.0:
            raise StnasError(f"augment_fraction must be in (0, 1], got {self.augment_fraction}")
        if self.corpus not in CORPORA:
            raise StnasError(f"unknown corpus '{self.corpus}' (choose from {', '.join(CORPORA)})")
        if self.fbank_conf is None:
            self.fbank_conf = str(CONF_DIR / DEFAULT_FBANK_CONF.get(self.corpus, "fbank.conf"))
        if self.keep_stress is None:
            self.keep_stress = DEFAULT_KEEP_STRESS.get(self.corpus, False)
        self.data_dir = str(Path(self.data_dir).resolve())
        for name in ("corpus_root", "lexicon", "fbank_conf"):
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, str(Path(v).resolve()))
        return self

    # options that change no output (or only where it is): a rerun with other values resumes
    RUNTIME_ONLY = ("nj", "data_dir")
    # what a data dir whose config.yaml predates an option was made with
    BEFORE_OPTION = {"lm_type": "witten_bell", "lm_no_prune_order": 3, "lm_dedup": False,
                     "augment": [], "augment_fraction": 1.0}


def corpus_of(data_dir: PathLike) -> str:
    """The corpus a prepared data dir holds (its ``config.yaml``; else the dir's name)."""
    cfg = Path(data_dir) / "config.yaml"
    if not cfg.is_file():
        return Path(data_dir).name
    return str((yaml.safe_load(cfg.read_text()) or {}).get("corpus", Path(data_dir).name))


def train_set_name(cfg: PrepConfig) -> str:
    """The training set dir name: ``train``, ``_sp`` with speed perturbation, ``_aug`` with
    augmentation (``train_sp``, ``train_sp_aug``, ...)."""
    return "train" + ("_sp" if cfg.speed_perturb else "") + ("_aug" if cfg.augment else "")


def training_set_of(data_dir: PathLike) -> str:
    """The training set a prepared data dir holds (from its ``config.yaml``; ``train_sp`` when
    there is none yet)."""
    cfg = Path(data_dir) / "config.yaml"
    old = (yaml.safe_load(cfg.read_text()) or {}) if cfg.is_file() else {}
    return train_set_name(PrepConfig(corpus="", data_dir=str(data_dir),
                                     speed_perturb=bool(old.get("speed_perturb", True)),
                                     augment=parse_kinds(old.get("augment") or [])))


def _check_same_config(stage: StageDir, cfg: PrepConfig) -> None:
    path = stage.root / "config.yaml"
    if stage.force or not path.is_file():
        return
    old = yaml.safe_load(path.read_text()) or {}
    new = asdict(cfg)
    recorded = stage.recorded().get("inputs") or {}

    def same(k: str) -> bool:
        # a file input (fbank config, lexicon) is compared by content: the same file at
        # another path (a moved checkout) is no change, an edited one at the same path is
        rec = recorded.get(k)
        if isinstance(rec, dict) and new[k] and Path(new[k]).is_file():
            return fingerprint(new[k]) == rec.get("fingerprint")
        return old.get(k, PrepConfig.BEFORE_OPTION.get(k)) == new[k]

    diffs = [f"{k}: {new[k]} has changed" if old.get(k) == new[k] else
             f"{k}: {old.get(k, PrepConfig.BEFORE_OPTION.get(k))!r} → {new[k]!r}" for k in new
             if k not in PrepConfig.RUNTIME_ONLY and not same(k)]
    if diffs:
        raise StnasError(f"{stage.root} was prepared with other options ({'; '.join(diffs)}); "
                         "use --force to redo it or choose another --data-dir")


def _substage(stage: StageDir, name: str, fn: Callable[[], Optional[dict]], done: List[str]) -> None:
    if stage.is_done(name):
        log.info("prep: %s already done, skipping", name)
        return
    log.info("prep: %s ...", name)
    info = fn() or {}
    stage.mark_done(name, info)
    done.append(name)


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
    with dir_locks((cfg.data_dir, False), what=" ".join(sys.argv)), \
            stage_log(Path(cfg.data_dir) / "log" / "prep.log"):
        return _run_prep(cfg, force, progress)


def _run_prep(cfg: PrepConfig, force: bool, progress: bool) -> Dict[str, object]:
    d = Path(cfg.data_dir)
    stage = StageDir(d, force=force)
    _check_same_config(stage, cfg)
    atomic_write_text(d / "config.yaml", yaml.safe_dump(asdict(cfg), sort_keys=True))
    ran: List[str] = []
    train = train_set_name(cfg)
    sets = [train, *EVAL_SETS]

    def corpus() -> dict:
        module = importlib.import_module(CORPORA[cfg.corpus])
        root = Path(cfg.corpus_root) if cfg.corpus_root else None
        if cfg.corpus != "tts" and root is None:
            raise DataError(f"--corpus {cfg.corpus} needs --corpus-root (the LDC/corpus directory)")
        extra = _typed(cfg.corpus_opts)
        known = [n for n, p in inspect.signature(module.prepare).parameters.items()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in _COMMON_OPTS]
        unknown = sorted(set(extra) - set(known))
        if unknown:
            raise StnasError(f"--corpus-opt not understood by --corpus {cfg.corpus}: "
                             f"{', '.join(unknown)} (it takes: {', '.join(known) or 'none'})")
        try:
            info = module.prepare(
                root, d, hours=cfg.hours, seed=cfg.seed, nj=cfg.nj, noise_snr_db=cfg.noise_snr_db,
                lexicon=Path(cfg.lexicon) if cfg.lexicon else None, keep_stress=cfg.keep_stress,
                skip_bad=cfg.skip_bad, progress=progress, **extra,
            )
        except TypeError as e:
            if extra and "unexpected keyword" in str(e):
                raise StnasError(f"--corpus-opt not understood by --corpus {cfg.corpus}: {e}") from None
            raise
        for s in ("train", *EVAL_SETS):
            if cfg.skip_bad:  # empty transcripts and missing audio: left out, listed
                bad = unusable_utterances(d / s)
                if bad:
                    log.warning("%s: %d utterance(s) left out (--skip-bad), listed in %s",
                                d / s, len(bad), d / s / "bad_utts.txt")
                drop_utterances(d / s, bad, keep_reference=s in EVAL_SETS)
            validate_data_dir(d / s)
        return json.loads(json.dumps(info, default=str))

    def lang() -> dict:
        lex = read_lexicon(d / "local" / "dict" / "lexicon.txt")
        phones = units_from_lexicon(lex)
        write_lexicon(d / "lang" / "lexicon.txt", lex)
        write_units(d / "lang" / "units.txt", phones)
        write_words(d / "lang" / "words.txt", lex.keys())
        return {"units": len(phones) + 1, "words": len(lex)}

    def perturb() -> dict:
        speed_perturb_data_dir(d / "train", d / "train_sp")
        return {"utts": len(read_map(d / "train_sp" / "utt2spk"))}

    def augment() -> dict:
        base = d / ("train_sp" if cfg.speed_perturb else "train")
        return augment_training_set(base, d / "train", d / train, cfg.augment, cfg.seed,
                                    d / "local" / "noise", fraction=cfg.augment_fraction,
                                    nj=cfg.nj, progress=progress, channel=cfg.channel)

    def feats(s: str) -> Callable[[], dict]:
        def run() -> dict:
            r = make_features(d / s, d / "fbank", cfg.fbank_conf, nj=cfg.nj,
                              skip_bad=cfg.skip_bad, progress=progress, channel=cfg.channel,
                              keep_reference=s in EVAL_SETS)
            frames = sum(r.num_frames.values())
            return {"utts": len(r.num_frames), "frames": frames, "bad": len(r.bad),
                    "hours": round(frames / 360000.0, 4)}
        return run

    def labels(s: str) -> Callable[[], dict]:
        def run() -> dict:
            lex = read_lexicon(d / "lang" / "lexicon.txt")
            units = read_symbol_table(d / "lang" / "units.txt")
            rep = make_labels(d / s, lex, units, training=(s == train), subsampling=cfg.subsampling)
            if rep.dropped and len(rep.dropped) == rep.utts:
                raise DataError(f"all {rep.utts} utterances of {s} were dropped (too short for "
                                "their labels or unmappable OOVs); see dropped_utts.txt", d / s)
            return rep.summary()
        return run

    def den() -> dict:
        from pipeline.lang.den_graph import build_den_graph

        return build_den_graph(
            d / "lang" / "units.txt", d / train / "text_number", d / "den",
            order=cfg.lm_order, max_extra_states=cfg.lm_max_extra_states, lm_type=cfg.lm_type,
            no_prune_order=cfg.lm_no_prune_order, dedup=cfg.lm_dedup,
            dev_text_number=d / "dev" / "text_number",
            weights={d / s / "text_number": d / s / "weight" for s in sets},
            exclude_prefixes=("sp0.9-", "sp1.1-", *all_prefixes()),
        )

    def validate() -> dict:
        return {s: validate_data_dir(d / s, need_feats=True) for s in sets}
    _substage(stage, "corpus", corpus, ran)
    _substage(stage, "lang", lang, ran)
    if cfg.speed_perturb:
        _substage(stage, "perturb", perturb, ran)
    if cfg.augment:
        _substage(stage, "augment", augment, ran)
    for s in sets:
        _substage(stage, f"feats_{s}", feats(s), ran)
    for s in sets:
        _substage(stage, f"labels_{s}", labels(s), ran)
    _substage(stage, "validate", validate, ran)
    _substage(stage, "den", den, ran)

    summary = _summary(stage, sets, ran)
    if not ran and stage.is_done("stage") and (d / "stage.json").is_file():
        return summary  # nothing redone: stage.json keeps the run that made the data dir
    inputs = {"fbank_conf": cfg.fbank_conf, **({"lexicon": cfg.lexicon} if cfg.lexicon else {})}
    stage.write_stage_json(f"stnas prep --corpus {cfg.corpus}", seed=cfg.seed,
                           fingerprints=input_fingerprints(inputs), extra={"summary": summary})
    stage.mark_done("stage")
    return summary


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


def _summary(stage: StageDir, sets: List[str], ran: List[str]) -> Dict[str, object]:
    def info(name: str) -> dict:
        p = stage.root / ".done" / name
        return json.loads(p.read_text()) if p.is_file() else {}

    out: Dict[str, object] = {"data_dir": str(stage.root), "ran": ran,
                              "units": info("lang").get("units"), "sets": {}}
    for s in sets:
        f, lab = info(f"feats_{s}"), info(f"labels_{s}")
        out["sets"][s] = {"utts": f.get("utts", 0) - lab.get("dropped", 0),
                          "hours": f.get("hours"), "bad": f.get("bad", 0),
                          "oov_words": lab.get("oov_words"), "dropped": lab.get("dropped")}
    return out
