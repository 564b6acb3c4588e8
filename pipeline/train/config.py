"""Stage configuration: one dataclass for warmup, search and retrain, read from YAML.

Defaults per stage follow the paper (§3.2, §4.1) and DESIGN §3; a YAML file
(``conf/<corpus>/<stage>.yaml``) overrides them and ``key=value`` pairs on the command line
override the file. The fully resolved config is frozen into the stage dir as ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

from pipeline.config import (
    check_value,
    coerce,
    non_negative,
    one_of,
    option,
    positive,
    read_yaml_mapping,
)
from pipeline.config import validate as validate_options
from pipeline.data.layout import training_set_of
from pipeline.errors import StnasError

STAGES = ("warmup", "search", "retrain")
SCRATCH = "scratch"  # search init: a freshly initialised supernet (no warm-up, paper §4.5)


_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")
_STRATEGIES = ("st", "darts", "snas", "random", "fixed")


def valid_device(d: str) -> bool:
    return bool(_DEVICE.match(d))


@dataclass
class TrainConfig:
    """Everything a training stage needs (see the module docstring for the sources)."""

    stage: str
    data_dir: str = option("data/tts", kind="str", help="prepared data dir (stnas prep)")
    exp_dir: str = option(
        "exp/tts/st", kind="str", help="experiment dir; the stage writes <exp_dir>/<stage>"
    )
    train_set: str = option(
        "train_sp", kind="str", help="training set dir [default: the one prep made]"
    )
    seed: int = option(1, kind="int", check=non_negative, allowed=">= 0", help="random seed")
    split_seed: Optional[int] = option(
        None,
        kind="int?",
        check=non_negative,
        allowed=">= 0 or null",
        help="seed of the held-out split [seed]; fix it to vary the seeds of a search "
        "without moving data the warm-up trained on",
    )
    device: str = option(
        "cpu",
        kind="str",
        check=valid_device,
        allowed="cpu, cuda or cuda:N",
        help="device to train on",
    )
    num_threads: int = option(
        0,
        kind="int",
        check=non_negative,
        allowed=">= 0 (0: automatic)",
        help="torch threads; 0: OMP_NUM_THREADS or the CPUs available",
    )
    amp: bool = option(False, kind="bool", help="bf16 autocast on CUDA")
    # model
    space: str = option("tiny", kind="str", help="search space name or JSON path")
    arch: Optional[str] = option(
        None, kind="str?", help="retrain: the arch.json [<exp_dir>/search/arch.json]"
    )
    init: Optional[str] = option(
        None,
        kind="str?",
        help="search: warm-up weights [<exp_dir>/warmup/best.pt]; "
        "'scratch': a freshly initialised supernet",
    )
    strategy: str = option(
        "st",
        kind="str",
        check=one_of(*_STRATEGIES),
        allowed="st, darts, snas, random or fixed",
        help="search strategy",
    )
    strategy_conf: Dict[str, Any] = option(
        kind="dict", factory=dict, help="options of the strategy (STRATEGY_SCHEMA)"
    )
    random_short_steps: int = option(
        50,
        kind="int",
        check=positive,
        allowed=">= 1",
        unit="steps",
        help="random search: weight steps per candidate",
    )
    diagnostics: bool = option(
        True, kind="bool", help="search: per-op held-out losses and report.md at the end"
    )
    budget: Dict[str, Any] = option(
        kind="dict",
        factory=dict,
        help="search: targets on params, macs (per s of audio), lookahead (ms), latency "
        "(µs per frame); empty: no budget (pipeline/search/budget.py)",
    )
    budget_form: str = option(
        "abs",
        kind="str",
        check=one_of("abs", "relu", "hard"),
        allowed="abs, relu or hard",
        help="search: penalty |E[C]/B-1| (abs), max(0, E[C]/B-1) (relu), or relu and a limit "
        "the derived architecture must meet (hard)",
    )
    budget_weight: float = option(
        1.0, kind="float", check=positive, allowed="> 0", help="search: weight of the penalty"
    )
    latency_table: Optional[str] = option(
        None,
        kind="str?",
        help="search: latency lookup table (JSON); null: this machine's, measured and cached",
    )
    # loss
    loss: str = option(
        "ctc",
        kind="str",
        check=one_of("ctc", "ctc_crf"),
        allowed="'ctc' or 'ctc_crf'",
        help="training loss",
    )
    lamb: float = option(
        0.01, kind="float", check=non_negative, allowed=">= 0", help="CTC weight inside CTC-CRF"
    )
    # optimisation and stopping
    lr: float = option(
        1e-3, kind="float", check=positive, allowed="> 0", help="learning rate (Adam)"
    )
    decay: float = option(
        0.1,
        kind="float",
        check=lambda v: 0 < v <= 1,
        allowed="in (0, 1]",
        help="learning-rate factor when the held-out loss stalls",
    )
    patience: int = option(
        1,
        kind="int",
        check=positive,
        allowed=">= 1",
        unit="epochs",
        help="stalled epochs before a decay",
    )
    min_epochs: int = option(
        0,
        kind="int",
        check=non_negative,
        allowed=">= 0",
        unit="epochs",
        help="no decay before this epoch",
    )
    stop_lr: float = option(
        0.0,
        kind="float",
        check=non_negative,
        allowed=">= 0",
        help="stop when the learning rate falls below this",
    )
    stop_patience: Optional[int] = option(
        None,
        kind="int?",
        check=positive,
        allowed=">= 1 or null",
        unit="epochs",
        help="stop after this many stalled epochs",
    )
    max_epochs: Optional[int] = option(
        None,
        kind="int?",
        check=positive,
        allowed=">= 1 or null",
        unit="epochs",
        help="stop after this many epochs",
    )
    held_out_fraction: float = option(
        0.1,
        kind="float",
        check=lambda v: 0 < v < 1,
        allowed="in (0, 1)",
        help="share of the training set held out",
    )
    max_frames: int = option(
        40000,
        kind="int",
        check=positive,
        allowed=">= 1",
        unit="frames",
        help="padded frames per batch (global, over all ranks)",
    )
    max_utts: int = option(
        128,
        kind="int",
        check=positive,
        allowed=">= 1",
        unit="utterances",
        help="utterances per batch",
    )
    arch_max_frames: Optional[int] = option(
        None,
        kind="int?",
        check=positive,
        allowed=">= 1 or null",
        unit="frames",
        help="search: held-out batch of an arch step [max_frames]",
    )
    arch_max_utts: Optional[int] = option(
        None,
        kind="int?",
        check=positive,
        allowed=">= 1 or null",
        unit="utterances",
        help="search: held-out batch of an arch step [max_utts]",
    )
    average_last: int = option(
        0,
        kind="int",
        check=non_negative,
        allowed=">= 0",
        unit="epochs",
        help="retrain: average the last k epoch models into avg.pt",
    )
    # bookkeeping
    ckpt_every: int = option(
        200, kind="int", check=positive, allowed=">= 1", unit="steps", help="checkpoint interval"
    )
    keep_checkpoints: int = option(
        3, kind="int", check=positive, allowed=">= 1", help="checkpoints kept"
    )
    max_bad_batches: int = option(
        20,
        kind="int",
        check=non_negative,
        allowed=">= 0",
        help="non-finite batches tolerated before stopping",
    )
    log_every: int = option(
        10, kind="int", check=positive, allowed=">= 1", unit="steps", help="metrics.jsonl interval"
    )
    progress: bool = option(True, kind="bool", help="progress bars on a terminal")


STAGE_DEFAULTS: Dict[str, Dict[str, Any]] = {
    # Paper §4.1: batch 128, lr 1e-3 fixed, stop after 3 epochs without improvement.
    "warmup": {
        "loss": "ctc",
        "lr": 1e-3,
        "decay": 1.0,
        "stop_patience": 3,
        "held_out_fraction": 0.1,
        "max_utts": 128,
    },
    # Batch 64, lr 1e-3 ×0.1 after 3 stalled epochs, stop below 1e-4; α: Adam 5e-3.
    "search": {
        "loss": "ctc",
        "lr": 1e-3,
        "decay": 0.1,
        "patience": 3,
        "stop_lr": 1e-4,
        "held_out_fraction": 0.1,
        "max_utts": 64,
    },
    # Batch 128, CTC-CRF + λ CTC, ×0.1 per stalled epoch after 10, stop below 1e-5.
    "retrain": {
        "loss": "ctc_crf",
        "lr": 1e-3,
        "decay": 0.1,
        "patience": 1,
        "min_epochs": 10,
        "stop_lr": 1e-5,
        "held_out_fraction": 0.05,
        "max_utts": 128,
    },
}


def load_config(
    stage: str,
    path: Optional[Union[str, Path]] = None,
    overrides: Sequence[str] = (),
    **explicit: Any,
) -> TrainConfig:
    """Defaults of ``stage`` ← YAML file ``path`` ← ``key=value`` overrides ← ``explicit``.

    Raises:
        StnasError: unknown stage or key, a malformed override or file.
    """
    if stage not in STAGES:
        raise StnasError(f"unknown stage '{stage}' (known: {', '.join(STAGES)})")
    values: Dict[str, Any] = dict(STAGE_DEFAULTS[stage])
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"stage"}
    if path is not None:
        data = read_yaml_mapping(path)
        bad = sorted(set(data) - known)
        if bad:
            raise StnasError(f"{path}: unknown key(s) {bad}")
        values.update(data)
    defaults = TrainConfig(stage=stage)
    for item in overrides:
        if "=" not in item:
            raise StnasError(f"override '{item}' is not KEY=VALUE")
        key, text = item.split("=", 1)
        if key not in known:
            raise StnasError(f"unknown config key '{key}' in override '{item}'")
        values[key] = coerce(key, text, values.get(key, getattr(defaults, key)))
    values.update({k: v for k, v in explicit.items() if v is not None})
    if "train_set" not in values:  # the set prep made: train_sp, train_sp_aug, train, ...
        values["train_set"] = training_set_of(values.get("data_dir", defaults.data_dir))
    for key, value in values.items():  # YAML files read 2e-3 (no dot) as a string too
        if isinstance(getattr(defaults, key), float) and isinstance(value, str):
            values[key] = coerce(key, value, getattr(defaults, key))
    cfg = TrainConfig(stage=stage, **values)
    if stage == "retrain" and not cfg.arch:
        cfg.arch = str(Path(cfg.exp_dir) / "search" / "arch.json")
    if stage == "search" and not cfg.init:
        cfg.init = str(Path(cfg.exp_dir) / "warmup" / "best.pt")
    validate(cfg, str(path) if path is not None else "")
    return cfg


# strategy_conf keys (pipeline.search.strategies.StrategyConfig, seed excepted)
STRATEGY_SCHEMA: Dict[str, tuple] = {
    "arch_lr": ("float", non_negative, ">= 0"),
    "tau_start": ("float", positive, "> 0"),
    "tau_min": ("float", positive, "> 0"),
    "tau_decay": ("float", lambda v: 0 < v <= 1, "in (0, 1]"),
    "random_candidates": ("int", positive, ">= 1"),
    "arch_samples": ("int", positive, ">= 1"),
    "fixed_arch": ("str?", None, ""),
}


def validate(cfg: TrainConfig, source: str = "") -> None:
    """Check the type and range of every key (their :func:`~pipeline.config.option`) and of
    ``strategy_conf`` (:data:`STRATEGY_SCHEMA`) before anything is written.

    Raises:
        StnasError: naming the key, the value and what is allowed.
    """
    where = f"{source}: " if source else ""
    validate_options(cfg, source)
    for key, value in cfg.strategy_conf.items():
        if key not in STRATEGY_SCHEMA:
            raise StnasError(
                f"{where}config key 'strategy_conf': unknown key '{key}' (known: "
                f"{', '.join(sorted(STRATEGY_SCHEMA))})"
            )
        kind, ok, allowed = STRATEGY_SCHEMA[key]
        check_value(f"strategy_conf.{key}", value, kind, ok, allowed, where)


def config_dict(cfg: TrainConfig) -> Dict[str, Any]:
    return dataclasses.asdict(cfg)
