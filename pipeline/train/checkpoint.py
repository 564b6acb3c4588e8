"""Atomic checkpoints with everything a bit-exact resume needs, and recovery from bad files.

A checkpoint (``ckpt/step-00001234.pt``) holds the model, optimisers, schedule, strategy and
α, every RNG state (python, numpy, torch, CUDA) and the data position (epoch, next batch,
held-out draw). Files are written to a temporary name and renamed, so a crash mid-write never
leaves a half file under the real name; the newest ``keep`` are kept. When the newest cannot be
read (a disk error, a copy cut short) the previous one is used, with a warning naming both.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from pipeline.errors import StnasError, WriteError
from pipeline.io import atomic_path
from pipeline.nas.arch import Arch

log = logging.getLogger(__name__)
PathLike = Union[str, Path]
_NAME = re.compile(r"^step-(\d{8})\.pt$")


class CheckpointError(StnasError):
    """A checkpoint that cannot be used."""


def rng_state() -> Dict[str, Any]:
    """Every random state a training step draws from."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(ckpt_dir: PathLike, step: int, state: Dict[str, Any], keep: int = 3) -> Path:
    """Write ``state`` as ``ckpt_dir/step-<step>.pt`` atomically; prune to the newest ``keep``."""
    ckpt_dir = Path(ckpt_dir)
    path = ckpt_dir / f"step-{step:08d}.pt"
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except WriteError as e:
        last = list_checkpoints(ckpt_dir)
        raise WriteError(
            f"{e} (last good checkpoint: {last[-1]}; free space and rerun the "
            "same command to resume from it)"
            if last
            else f"{e} (no checkpoint yet: the stage starts over when rerun)"
        ) from None
    for old in list_checkpoints(ckpt_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(ckpt_dir: PathLike) -> List[Path]:
    """Checkpoint files, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.iterdir() if _NAME.match(p.name))


def load_file(path: PathLike, required: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """Load one checkpoint file on the CPU.

    Raises:
        CheckpointError: unreadable, not a checkpoint, or missing ``required`` keys.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a stnas checkpoint")
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    return state


def load_latest(
    ckpt_dir: PathLike, required: Tuple[str, ...] = ()
) -> Optional[Tuple[Path, Dict[str, Any]]]:
    """The newest readable checkpoint (older ones are tried when newer ones are bad)."""
    bad: List[str] = []
    for path in reversed(list_checkpoints(ckpt_dir)):
        try:
            state = load_file(path, required)
        except CheckpointError as e:
            log.warning("%s", e)
            bad.append(path.name)
            continue
        if bad:
            log.warning(
                "skipped unreadable checkpoint(s) %s; resuming from %s", ", ".join(bad), path.name
            )
        return path, state
    if bad:
        raise CheckpointError(
            f"{ckpt_dir}: no readable checkpoint ({', '.join(bad)} are bad); "
            "remove them or rerun with --force"
        )
    return None


def load_model(
    path: Path, device: torch.device = torch.device("cpu")
) -> Tuple[torch.nn.Module, Arch, int]:
    """A retrained model from ``best.pt``/``avg.pt``: (network in eval mode, Arch, K)."""
    state = load_file(path, required=("model", "arch", "num_units"))
    if state["arch"] is None:
        raise StnasError(f"{path}: not a retrained model (stage {state.get('stage')})")
    arch = Arch.from_dict(state["arch"], str(path))
    net = arch.build(state["num_units"])
    net.load_state_dict(state["model"])
    return net.to(device).eval(), arch, state["num_units"]
