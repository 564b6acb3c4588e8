"""Stage configuration: one dataclass for warmup, search and retrain, read from YAML.

Defaults per stage follow the paper (§3.2, §4.1) and DESIGN §3; a YAML file
(``conf/<corpus>/<stage>.yaml``) overrides them and ``key=value`` pairs on the command line
override the file. The fully resolved config is frozen into the stage dir as ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import yaml

from pipeline.errors import StnasError

STAGES = ("warmup", "search", "retrain")
SCRATCH = "scratch"  # search init: a freshly initialised supernet (no warm-up, paper §4.5)


@dataclass
class TrainConfig:
    """Everything a training stage needs (see the module docstring for the sources)."""

    stage: str
    data_dir: str = "data/tts"
    exp_dir: str = "exp/tts/st"
    train_set: str = "train_sp"
    seed: int = 1
    split_seed: Optional[int] = None  # held-out split [default: seed]; fix it to vary seeds of
    #                                   a search without moving data the warm-up trained on
    device: str = "cpu"
    num_threads: int = 0              # torch threads; 0: OMP_NUM_THREADS or the CPUs available
    amp: bool = False
    # model
    space: str = "tiny"
    arch: Optional[str] = None        # retrain: the arch.json
    init: Optional[str] = None        # search: warm-up weights [default: <exp>/warmup/best.pt];
    #                                   'scratch': no warm-up, a freshly initialised supernet
    strategy: str = "st"
    strategy_conf: Dict[str, Any] = field(default_factory=dict)
    random_short_steps: int = 50      # random search: weight steps per candidate
    diagnostics: bool = True          # search: per-op held-out losses and report.md at the end
    # loss
    loss: str = "ctc"                 # ctc | ctc_crf
    lamb: float = 0.01                # CTC weight inside CTC-CRF
    # optimisation and stopping
    lr: float = 1e-3
    decay: float = 0.1
    patience: int = 1
    min_epochs: int = 0
    stop_lr: float = 0.0
    stop_patience: Optional[int] = None
    max_epochs: Optional[int] = None
    held_out_fraction: float = 0.1
    max_frames: int = 40000           # padded frames per batch (global, over all ranks)
    max_utts: int = 128
    arch_max_frames: Optional[int] = None  # search: held-out batch of an arch step [max_frames]
    arch_max_utts: Optional[int] = None    # [max_utts]
    average_last: int = 0             # retrain: average the last k epoch models into avg.pt
    # bookkeeping
    ckpt_every: int = 200             # steps
    keep_checkpoints: int = 3
    max_bad_batches: int = 20
    log_every: int = 10
    progress: bool = True


STAGE_DEFAULTS: Dict[str, Dict[str, Any]] = {
    # Paper §4.1: batch 128, lr 1e-3 fixed, stop after 3 epochs without improvement.
    "warmup": {"loss": "ctc", "lr": 1e-3, "decay": 1.0, "stop_patience": 3,
               "held_out_fraction": 0.1, "max_utts": 128},
    # Batch 64, lr 1e-3 ×0.1 after 3 stalled epochs, stop below 1e-4; α: Adam 5e-3.
    "search": {"loss": "ctc", "lr": 1e-3, "decay": 0.1, "patience": 3, "stop_lr": 1e-4,
               "held_out_fraction": 0.1, "max_utts": 64},
    # Batch 128, CTC-CRF + λ CTC, ×0.1 per stalled epoch after 10, stop below 1e-5.
    "retrain": {"loss": "ctc_crf", "lr": 1e-3, "decay": 0.1, "patience": 1, "min_epochs": 10,
                "stop_lr": 1e-5, "held_out_fraction": 0.05, "max_utts": 128},
}


def _coerce(name: str, text: str, current: Any) -> Any:
    """Parse a command-line override with YAML rules (numbers, bools, null, lists)."""
    value = yaml.safe_load(text)
    if isinstance(current, float) and not isinstance(current, bool):
        try:  # YAML reads 2e-3 (no dot) as a string
            return float(value)
        except (TypeError, ValueError):
            raise StnasError(f"{name} must be a number, got '{text}'") from None
    return value


def read_yaml_mapping(path: Union[str, Path], what: str = "config") -> Dict[str, Any]:
    """A YAML file that holds ``key: value`` pairs (empty: ``{}``).

    Raises:
        StnasError: unreadable, not YAML, or not a mapping, naming the file.
    """
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise StnasError(f"{path}: cannot read {what}: {e}") from None
    if not isinstance(data, Mapping):
        raise StnasError(f"{path}: a {what} must be a mapping of key: value")
    return dict(data)


def load_config(stage: str, path: Optional[Union[str, Path]] = None,
                overrides: Sequence[str] = (), **explicit: Any) -> TrainConfig:
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
        values[key] = _coerce(key, text, values.get(key, getattr(defaults, key)))
    values.update({k: v for k, v in explicit.items() if v is not None})
    if "train_set" not in values:  # the set prep made: train_sp, train_sp_aug, train, ...
        from pipeline.data.prepare import training_set_of

        values["train_set"] = training_set_of(values.get("data_dir", defaults.data_dir))
    for key, value in values.items():  # YAML files read 2e-3 (no dot) as a string too
        if isinstance(getattr(defaults, key), float) and isinstance(value, str):
            values[key] = _coerce(key, value, getattr(defaults, key))
    cfg = TrainConfig(stage=stage, **values)
    if stage == "retrain" and not cfg.arch:
        cfg.arch = str(Path(cfg.exp_dir) / "search" / "arch.json")
    if stage == "search" and not cfg.init:
        cfg.init = str(Path(cfg.exp_dir) / "warmup" / "best.pt")
    validate(cfg, str(path) if path is not None else "")
    return cfg


# The schema: key → (type, check, what the check allows). Types: int, float (an int is
# accepted), bool, str, dict; "?" after the type: None allowed too.
def _pos(x: float) -> bool:
    return x > 0


def _nonneg(x: float) -> bool:
    return x >= 0


_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")
SCHEMA: Dict[str, tuple] = {
    "data_dir": ("str", None, ""), "exp_dir": ("str", None, ""), "train_set": ("str", None, ""),
    "seed": ("int", _nonneg, ">= 0"), "split_seed": ("int?", _nonneg, ">= 0 or null"),
    "device": ("str", lambda d: bool(_DEVICE.match(d)), "cpu, cuda or cuda:N"),
    "num_threads": ("int", _nonneg, ">= 0 (0: automatic)"), "amp": ("bool", None, ""),
    "space": ("str", None, ""), "arch": ("str?", None, ""), "init": ("str?", None, ""),
    "strategy": ("str", lambda v: v in ("st", "darts", "snas", "random", "fixed"),
                 "st, darts, snas, random or fixed"),
    "strategy_conf": ("dict", None, ""),
    "random_short_steps": ("int", _pos, ">= 1"), "diagnostics": ("bool", None, ""),
    "loss": ("str", lambda v: v in ("ctc", "ctc_crf"), "'ctc' or 'ctc_crf'"),
    "lamb": ("float", _nonneg, ">= 0"), "lr": ("float", _pos, "> 0"),
    "decay": ("float", lambda v: 0 < v <= 1, "in (0, 1]"),
    "patience": ("int", _pos, ">= 1"), "min_epochs": ("int", _nonneg, ">= 0"),
    "stop_lr": ("float", _nonneg, ">= 0"), "stop_patience": ("int?", _pos, ">= 1 or null"),
    "max_epochs": ("int?", _pos, ">= 1 or null"),
    "held_out_fraction": ("float", lambda v: 0 < v < 1, "in (0, 1)"),
    "max_frames": ("int", _pos, ">= 1"), "max_utts": ("int", _pos, ">= 1"),
    "arch_max_frames": ("int?", _pos, ">= 1 or null"),
    "arch_max_utts": ("int?", _pos, ">= 1 or null"),
    "average_last": ("int", _nonneg, ">= 0"), "ckpt_every": ("int", _pos, ">= 1"),
    "keep_checkpoints": ("int", _pos, ">= 1"), "max_bad_batches": ("int", _nonneg, ">= 0"),
    "log_every": ("int", _pos, ">= 1"), "progress": ("bool", None, ""),
}
# strategy_conf keys (pipeline.nas.strategies.StrategyConfig, seed excepted)
STRATEGY_SCHEMA: Dict[str, tuple] = {
    "arch_lr": ("float", _nonneg, ">= 0"), "tau_start": ("float", _pos, "> 0"),
    "tau_min": ("float", _pos, "> 0"), "tau_decay": ("float", lambda v: 0 < v <= 1, "in (0, 1]"),
    "random_candidates": ("int", _pos, ">= 1"), "arch_samples": ("int", _pos, ">= 1"),
    "fixed_arch": ("str?", None, ""),
}


def _check(key: str, value: Any, spec: tuple, where: str) -> None:
    kind, ok, allowed = spec
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    if value is None and optional:
        return
    types = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,),
             "dict": (dict,)}[kind]
    if not isinstance(value, types) or (kind in ("int", "float") and isinstance(value, bool)):
        name = {"int": "an integer", "float": "a number", "bool": "true or false",
                "str": "a string", "dict": "a mapping"}[kind]
        raise StnasError(f"{where}config key '{key}': {value!r} is not {name}"
                         + (" (or null)" if optional else "")
                         + (f"; allowed: {allowed}" if allowed else ""))
    if ok is not None and not ok(value):
        raise StnasError(f"{where}config key '{key}': {value!r} is out of range; "
                         f"allowed: {allowed}")


def validate(cfg: TrainConfig, source: str = "") -> None:
    """Check the type and range of every key (:data:`SCHEMA`) before anything is written.

    Raises:
        StnasError: naming the key, the value and what is allowed.
    """
    where = f"{source}: " if source else ""
    for key, spec in SCHEMA.items():
        _check(key, getattr(cfg, key), spec, where)
    for key, value in cfg.strategy_conf.items():
        if key not in STRATEGY_SCHEMA:
            raise StnasError(f"{where}config key 'strategy_conf': unknown key '{key}' (known: "
                             f"{', '.join(sorted(STRATEGY_SCHEMA))})")
        _check(f"strategy_conf.{key}", value, STRATEGY_SCHEMA[key], where)


def config_dict(cfg: TrainConfig) -> Dict[str, Any]:
    return dataclasses.asdict(cfg)
