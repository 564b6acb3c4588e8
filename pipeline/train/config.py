"""Stage configuration: one dataclass for warmup, search and retrain, read from YAML.

Defaults per stage follow the paper (§3.2, §4.1) and DESIGN §3; a YAML file
(``conf/<corpus>/<stage>.yaml``) overrides them and ``key=value`` pairs on the command line
override the file. The fully resolved config is frozen into the stage dir as ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
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
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise StnasError(f"{path}: cannot read config: {e}") from None
        if not isinstance(data, Mapping):
            raise StnasError(f"{path}: a config must be a mapping of key: value")
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
    for key, value in values.items():  # YAML files read 2e-3 (no dot) as a string too
        if isinstance(getattr(defaults, key), float) and isinstance(value, str):
            values[key] = _coerce(key, value, getattr(defaults, key))
    cfg = TrainConfig(stage=stage, **values)
    if stage == "retrain" and not cfg.arch:
        cfg.arch = str(Path(cfg.exp_dir) / "search" / "arch.json")
    if stage == "search" and not cfg.init:
        cfg.init = str(Path(cfg.exp_dir) / "warmup" / "best.pt")
    if cfg.loss not in ("ctc", "ctc_crf"):
        raise StnasError(f"loss must be 'ctc' or 'ctc_crf', got '{cfg.loss}'")
    return cfg


def config_dict(cfg: TrainConfig) -> Dict[str, Any]:
    return dataclasses.asdict(cfg)
