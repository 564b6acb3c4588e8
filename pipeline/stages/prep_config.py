"""The prep stage's config: :class:`PrepConfig`, the corpora and their defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from pipeline.config import non_negative, one_of, option, positive, validate
from pipeline.data.augment import parse_kinds
from pipeline.data.rates import CONF_DIR
from pipeline.decode.defaults import SUBSAMPLING
from pipeline.errors import StnasError

# corpus name → module with prepare(corpus_root, out_dir, **options) (DESIGN §1: local/)
CORPORA = {
    "tts": "local.tts.prepare",
    "wsj": "local.wsj.prepare",
    "swbd": "local.swbd.prepare",
    "kaldi": "local.kaldi.prepare",
}
DEFAULT_FBANK_CONF = {"swbd": "fbank_8k.conf"}
DEFAULT_KEEP_STRESS = {"wsj": True, "swbd": True}
# 2: the lexicon holds every pronunciation of the whole dictionary (tts: of every word of the
#    LM text, written to local/lm/text), so the decoding vocabulary is the LM's alone
PREP_VERSION = 2


@dataclass
class PrepConfig:
    """Resolved options of ``stnas prep`` (frozen into ``<data_dir>/config.yaml``)."""

    corpus: str = option(
        kind="str",
        check=one_of(*CORPORA),
        allowed=", ".join(CORPORA),
        help="corpus: tts (built in), wsj, swbd, kaldi (your own data dirs)",
    )
    data_dir: str = option(kind="str", help="output data dir")
    corpus_root: Optional[str] = option(None, kind="str?", help="corpus location")
    hours: float = option(
        0.05,
        kind="float",
        check=positive,
        allowed="> 0",
        unit="h",
        help="tts: hours of audio to synthesise",
    )
    seed: int = option(1, kind="int", check=non_negative, allowed=">= 0", help="random seed")
    nj: int = option(1, kind="int", check=positive, allowed=">= 1", help="parallel jobs")
    speed_perturb: bool = option(True, kind="bool", help="3-way speed perturbation of train")
    augment: List[str] = option(
        kind="list",
        factory=list,
        help="augmented copies of the training recordings: noise, "
        "reverb, telephone (never dev/test)",
    )
    augment_fraction: float = option(
        1.0,
        kind="float",
        check=lambda v: 0.0 < v <= 1.0,
        allowed="in (0, 1]",
        help="share of the training recordings each kind copies",
    )
    fbank_conf: Optional[str] = option(
        None,
        kind="str?",
        help="Kaldi fbank config [the one made for the recordings' sample rate: "
        "conf/fbank.conf at 16 kHz, conf/fbank_8k.conf at 8 kHz]",
    )
    resample: Optional[int] = option(
        None,
        kind="int?",
        check=positive,
        allowed="> 0 or null",
        unit="Hz",
        help="resample recordings at other rates to this one with sox as features are made "
        "(the files are not changed) [null: every recording must have one rate]",
    )
    keep_stress: Optional[bool] = option(
        None, kind="bool?", help="keep vowel stress in units [yes for wsj/swbd, no for tts]"
    )
    lexicon: Optional[str] = option(None, kind="str?", help="CMUdict-format dictionary")
    g2p: str = option(
        "none",
        kind="str",
        check=one_of("none", "espeak"),
        allowed="none, espeak",
        help="pronunciations for words outside the dictionary: espeak (espeak-ng, mapped to "
        "the CMU phones; written to local/dict/lexicon_g2p.txt, which may be edited) or none",
    )
    lm_text_filter: str = option(
        "auto",
        kind="str",
        check=one_of("auto", "none", "exact", "near"),
        allowed="auto, none, exact, near",
        help="word LM text: remove dev/test sentences (exact) and their near-copies (near), or "
        "nothing (none) [auto: near for an LM text pool apart from the transcripts (tts), none "
        "for the train transcripts]",
    )
    lm_arpa: Optional[str] = option(
        None, kind="str?", help="your own word LM (ARPA), used as the 'tg' LM as it is"
    )
    subsampling: int = option(
        SUBSAMPLING,
        kind="int",
        check=positive,
        allowed=">= 1",
        help="the network's frame sub-sampling (labels too long for it are dropped)",
    )
    noise_snr_db: float = option(
        0.0, kind="float", unit="dB", help="tts: white noise at this SNR (0: a faint floor only)"
    )
    lm_type: str = option(
        "kaldi",
        kind="str",
        check=one_of("kaldi", "witten_bell"),
        allowed="kaldi, witten_bell",
        help="den phone LM: kaldi (unsmoothed, chain-est-phone-lm) or witten_bell (smoothed)",
    )
    lm_order: int = option(4, kind="int", check=positive, allowed=">= 1", help="den phone LM order")
    lm_max_extra_states: int = option(
        1000,
        kind="int",
        check=non_negative,
        allowed=">= 0",
        help="den phone LM: states kept beyond the unpruned orders",
    )
    lm_no_prune_order: int = option(
        3, kind="int", check=positive, allowed=">= 1", help="den phone LM: orders kept whole"
    )
    lm_dedup: bool = option(True, kind="bool", help="den phone LM: each transcript once")
    skip_bad: bool = option(
        False, kind="bool", help="skip unreadable utterances (listed) instead of stopping"
    )
    channel: Optional[int] = option(
        None,
        kind="int?",
        check=positive,
        allowed=">= 1 or null",
        help="1-based channel of multi-channel audio (null: mono only)",
    )
    corpus_opts: Dict[str, str] = option(
        kind="dict", factory=dict, help="corpus-specific options (--corpus-opt)"
    )
    prep_version: int = option(
        PREP_VERSION, kind="int", help="data dir format; another version is redone only by --force"
    )

    def resolve(self) -> "PrepConfig":
        """Fill corpus-dependent defaults, make paths absolute and validate every option."""
        self.augment = parse_kinds(self.augment)
        if not 0.0 < self.augment_fraction <= 1.0:
            raise StnasError(f"augment_fraction must be in (0, 1], got {self.augment_fraction}")
        if self.corpus not in CORPORA:
            raise StnasError(f"unknown corpus '{self.corpus}' (choose from {', '.join(CORPORA)})")
        validate(self)
        if self.fbank_conf is None and self.corpus in DEFAULT_FBANK_CONF:
            self.fbank_conf = str(CONF_DIR / DEFAULT_FBANK_CONF[self.corpus])
        if self.keep_stress is None:
            self.keep_stress = DEFAULT_KEEP_STRESS.get(self.corpus, False)
        self.data_dir = str(Path(self.data_dir).resolve())
        for name in ("corpus_root", "lexicon", "fbank_conf", "lm_arpa"):
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, str(Path(v).resolve()))
        return self

    # options that change no output (or only where it is): a rerun with other values resumes
    # (the word LM's text filter and a given ARPA LM are used by decode; prep records them)
    RUNTIME_ONLY = ("nj", "data_dir", "lm_text_filter", "lm_arpa")
    # what a data dir whose config.yaml predates an option was made with
    BEFORE_OPTION = {
        "lm_type": "witten_bell",
        "lm_no_prune_order": 3,
        "lm_dedup": False,
        "augment": [],
        "augment_fraction": 1.0,
        "resample": None,
        "g2p": "none",
    }
