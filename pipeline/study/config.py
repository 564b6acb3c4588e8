"""``conf/study/<name>.yaml``: what a study compares, on which data, with which seeds.

A study (paper Table 2 in miniature; Table 3 with ``retrain_data`` on another corpus) runs
every *method* with every *seed* through the ordinary stages and compares the WERs:

============  =====================================================================================
method        what is retrained and decoded, per seed
============  =====================================================================================
st            ST-NAS: search (``strategy st``) from the shared warm-up
darts         first-order DARTS from the same warm-up, the same search budget in steps
snas          SNAS from the same warm-up, the same budget
random        ``random_archs`` architectures drawn uniformly from the space, each retrained; the
              table shows them all and the best of them by dev WER (the paper's random baseline)
tdnn_d        the space's hand-designed TDNN-D (``tdnn_d_arch``)
st_no_warmup  ST-NAS from a freshly initialised supernet (paper §4.5)
st_ctc        ST-NAS with warm-up and search on CTC (the ablation of "NAS with CTC-CRF")
st_crf        ST-NAS with warm-up and search on CTC-CRF (the same ablation for CTC configs)
============  =====================================================================================

With ``budgets`` (a list of targets, e.g. ``[{params: 40000}, {params: 70000}]``) the
methods run once per budget: searches under it (``budget_form``, default ``hard``), random
architectures drawn within it (rejection sampling), and TDNN-D scaled to it (the widest
uniform width, then the largest kernel, that fits); the report is a front of test WER
against cost, one point per method and budget. The warm-ups are shared by all budgets.

Seed ``s`` is the search seed (paths, batches) and the retrain seed (initialisation, batches);
the warm-up is shared by the methods with the same loss and made once (``warmup_seed``), and
every search holds out the same utterances (``split_seed``), as paper §4.1 does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import yaml

from pipeline.config import read_yaml_mapping
from pipeline.decode import defaults
from pipeline.errors import StnasError

METHODS = ("st", "darts", "snas", "random", "tdnn_d", "st_no_warmup", "st_ctc", "st_crf")
REFERENCE = "st"


@dataclass
class DataSpec:
    """One corpus: prepared into ``data_dir`` by ``stnas prep --corpus <corpus>``, trained with
    the stage configs in ``conf`` (``warmup.yaml``, ``search.yaml``, ``retrain.yaml``,
    ``prep.yaml``); ``prep_args`` are extra ``stnas prep`` arguments (e.g. ``--corpus-root``)."""

    corpus: str
    data_dir: str
    conf: str
    prep_args: List[str] = field(default_factory=list)


@dataclass
class DecodeSpec:
    """The decode of every retrained model (``stnas decode`` options)."""

    lm: str = "tg"
    lm_weights: List[float] = field(default_factory=lambda: list(defaults.LM_WEIGHTS))
    word_penalties: List[float] = field(default_factory=lambda: list(defaults.WORD_PENALTIES))
    beam: float = defaults.BEAM
    lattice_beam: float = defaults.LATTICE_BEAM
    max_active: int = defaults.MAX_ACTIVE
    nj: int = 2
    dev: str = "dev"
    test: str = "test"


@dataclass
class StudyConfig:
    """A whole study (see the module docstring); ``set`` holds ``KEY=VALUE`` overrides of the
    stage configs per stage (``warmup``, ``search``, ``retrain``), applied to every member."""

    name: str
    exp_dir: str
    search_data: DataSpec
    retrain_data: Optional[DataSpec] = None  # None: retrain on search_data (Table 2);
    #                                            another corpus: transfer (Table 3)
    methods: List[str] = field(default_factory=lambda: list(METHODS[:7]))
    seeds: List[int] = field(default_factory=lambda: [1, 2, 3])
    warmup_seed: int = 1
    split_seed: int = 1
    random_archs: int = 3
    tdnn_d_arch: Optional[str] = None  # [conf/arch/tdnn_d_<space>.json]
    set: Dict[str, List[str]] = field(default_factory=dict)
    decode: DecodeSpec = field(default_factory=DecodeSpec)
    device: str = "cpu"
    launcher: List[str] = field(default_factory=list)  # e.g. [torchrun, --nproc_per_node, "4"]:
    #                                                   runs the training stages data-parallel
    bootstrap: int = 2000  # resamples of the significance test
    bootstrap_seed: int = 0
    budgets: List[Dict[str, float]] = field(default_factory=list)  # [] : no budget
    budget_form: str = "hard"

    @property
    def train_data(self) -> DataSpec:
        """Where retrains, decodes and scores run."""
        return self.retrain_data or self.search_data


def _dataspec(value: Any, key: str, source: str) -> DataSpec:
    if not isinstance(value, Mapping):
        raise StnasError(f"{source}: {key} must be a mapping with corpus, data_dir and conf")
    known = {f.name for f in dataclasses.fields(DataSpec)}
    bad = sorted(set(value) - known)
    missing = sorted({"corpus", "data_dir", "conf"} - set(value))
    if bad or missing:
        raise StnasError(
            f"{source}: {key}: " + (f"unknown key(s) {bad}" if bad else f"missing {missing}")
        )
    spec = DataSpec(**{k: v for k, v in value.items()})
    spec.prep_args = [str(a) for a in spec.prep_args]
    for stage in ("warmup", "search", "retrain"):
        if not (Path(spec.conf) / f"{stage}.yaml").is_file() and key == "search_data":
            raise StnasError(f"{source}: {key}.conf: {spec.conf}/{stage}.yaml not found")
    if not (Path(spec.conf) / "retrain.yaml").is_file():
        raise StnasError(f"{source}: {key}.conf: {spec.conf}/retrain.yaml not found")
    return spec


def load_study(path: Union[str, Path], overrides: Sequence[str] = ()) -> StudyConfig:
    """Read ``path`` and apply ``key=value`` overrides of top-level keys (YAML values).

    Raises:
        StnasError: unreadable file, unknown key or method, bad value, naming the key.
    """
    source = str(path)
    data = read_yaml_mapping(path, "study config")
    for item in overrides:
        if "=" not in item:
            raise StnasError(f"override '{item}' is not KEY=VALUE")
        key, text = item.split("=", 1)
        data[key] = yaml.safe_load(text)
    known = {f.name for f in dataclasses.fields(StudyConfig)}
    bad = sorted(set(data) - known)
    if bad:
        raise StnasError(f"{source}: unknown key(s) {bad} (known: {', '.join(sorted(known))})")
    for key in ("name", "exp_dir", "search_data"):
        if key not in data:
            raise StnasError(f"{source}: '{key}' is required")
    data["search_data"] = _dataspec(data["search_data"], "search_data", source)
    if data.get("retrain_data") is not None:
        data["retrain_data"] = _dataspec(data["retrain_data"], "retrain_data", source)
    dec = data.get("decode") or {}
    dec_known = {f.name for f in dataclasses.fields(DecodeSpec)}
    if not isinstance(dec, Mapping) or set(dec) - dec_known:
        raise StnasError(
            f"{source}: decode: unknown key(s) "
            f"{sorted(set(dec) - dec_known) if isinstance(dec, Mapping) else dec}"
        )
    data["decode"] = DecodeSpec(**dec)
    cfg = StudyConfig(**data)
    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown:
        raise StnasError(f"{source}: methods: unknown {unknown} (known: {', '.join(METHODS)})")
    if len(set(cfg.methods)) != len(cfg.methods) or not cfg.methods:
        raise StnasError(f"{source}: methods must be a non-empty list without repeats")
    if REFERENCE not in cfg.methods:
        raise StnasError(
            f"{source}: methods must include '{REFERENCE}' (the method the "
            "significance tests compare the others with)"
        )
    if (
        not cfg.seeds
        or len(set(cfg.seeds)) != len(cfg.seeds)
        or not all(isinstance(s, int) for s in cfg.seeds)
    ):
        raise StnasError(f"{source}: seeds must be distinct integers, got {cfg.seeds}")
    if cfg.random_archs < 1:
        raise StnasError(f"{source}: random_archs must be >= 1, got {cfg.random_archs}")
    if cfg.bootstrap < 100:
        raise StnasError(f"{source}: bootstrap must be >= 100 resamples, got {cfg.bootstrap}")
    if not isinstance(cfg.set, Mapping) or set(cfg.set) - {"warmup", "search", "retrain"}:
        raise StnasError(f"{source}: set: a mapping of warmup/search/retrain to KEY=VALUE lists")
    if not isinstance(cfg.budgets, list) or not all(
        isinstance(b, Mapping) and b for b in cfg.budgets
    ):
        raise StnasError(f"{source}: budgets must be a list of non-empty mappings cost -> target")
    if cfg.budget_form not in ("abs", "relu", "hard"):
        raise StnasError(f"{source}: budget_form must be abs, relu or hard, got {cfg.budget_form}")
    cfg.launcher = [str(x) for x in cfg.launcher]
    cfg.set = {k: [str(x) for x in (v or [])] for k, v in cfg.set.items()}
    return cfg
