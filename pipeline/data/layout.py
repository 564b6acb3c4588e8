"""What a prepared data dir holds: its corpus, its evaluation sets and its training set's name.

``stnas prep`` freezes its resolved options into ``<data_dir>/config.yaml``; later stages read
them from there (never from the prep code itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

from pipeline.config import read_yaml_mapping
from pipeline.data.augment import parse_kinds
from pipeline.errors import StnasError

PathLike = Union[str, Path]
EVAL_SETS = ("dev", "test")
FEATS_CONF = Path("conf") / "fbank.conf"  # the fbank config the features were made with


def _prep_options(data_dir: PathLike) -> dict:
    cfg = Path(data_dir) / "config.yaml"
    return read_yaml_mapping(cfg, "prep config") if cfg.is_file() else {}


def prep_option(data_dir: PathLike, key: str, default: object = None) -> object:
    """One option of the prep run that made ``data_dir`` (its ``config.yaml``)."""
    return _prep_options(data_dir).get(key, default)


def corpus_of(data_dir: PathLike) -> str:
    """The corpus a prepared data dir holds (its ``config.yaml``; else the dir's name)."""
    return str(_prep_options(data_dir).get("corpus", Path(data_dir).name))


def fbank_conf_of(data_dir: PathLike) -> Path:
    """The fbank config the data dir's features were made with: its ``conf/fbank.conf`` (a
    copy of the config prep chose), else the one its ``config.yaml`` names (older dirs).

    Raises:
        StnasError: neither is there.
    """
    own = Path(data_dir) / FEATS_CONF
    if own.is_file():
        return own
    named = _prep_options(data_dir).get("fbank_conf")
    if not isinstance(named, str) or not Path(named).is_file():
        raise StnasError(f"{data_dir}: no {FEATS_CONF}, and its config.yaml names no fbank config")
    return Path(named)


def train_set_name(speed_perturb: bool, augment: Sequence[str]) -> str:
    """The training set dir name: ``train``, ``_sp`` with speed perturbation, ``_aug`` with
    augmentation (``train_sp``, ``train_sp_aug``, ...)."""
    return "train" + ("_sp" if speed_perturb else "") + ("_aug" if augment else "")


def training_set_of(data_dir: PathLike) -> str:
    """The training set a prepared data dir holds (from its ``config.yaml``; ``train_sp`` when
    there is none yet)."""
    old = _prep_options(data_dir)
    return train_set_name(
        bool(old.get("speed_perturb", True)), parse_kinds(old.get("augment") or [])
    )
