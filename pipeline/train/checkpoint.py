"""Atomic checkpoints with everything a bit-exact resume needs, and recovery from bad files.

A checkpoint (``ckpt/step-00001234.pt``) holds the model, optimisers, schedule, strategy and
α, every RNG state (python, numpy, torch, CUDA) and the data position (epoch, next batch,
held-out draw). Files are written to a temporary name and renamed, so a crash mid-write never
leaves a half file under the real name; the newest ``keep`` are kept. When the newest cannot be
read (a disk error, a copy cut short) the previous one is used, with a warning naming both.

**Loading never runs code.** A ``.pt`` file is a pickle, and unpickling can call any function
the file names. Every checkpoint is read with ``torch.load(weights_only=True)``, which builds
only tensors and plain Python data; what stnas writes holds nothing else (the numpy RNG state
is stored as a tensor). The numpy types of the RNG state of older checkpoints are the only
others allowed (:data:`LEGACY_GLOBALS`). A file that names any other function or class is
refused (:class:`UnsafeCheckpointError`, naming them), never skipped for an older one.
"""

from __future__ import annotations

import logging
import pickle
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


# numpy's RNG state as checkpoints written before it was stored as a tensor hold it: an
# ndarray of uint32 keys (numpy 2 names the array constructor numpy._core, numpy 1 numpy.core)
_np_core = getattr(np, "_core", None) or np.core
LEGACY_GLOBALS = [
    _np_core.multiarray._reconstruct,
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),
]


class CheckpointError(StnasError):
    """A checkpoint that cannot be used."""


class UnsafeCheckpointError(CheckpointError):
    """A ``.pt`` file whose pickle names functions or classes: loading it would run code."""


def rng_state() -> Dict[str, Any]:
    """Every random state a training step draws from (tensors and plain Python data only)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(np.asarray(keys, np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]  # keys: a tensor, or an ndarray (older checkpoints)
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else keys
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
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


def _unsafe_globals(path: Path) -> List[str]:
    """The functions and classes a ``torch.save`` file's pickle names beyond what a weights-only
    load builds and :data:`LEGACY_GLOBALS` (read from its opcodes, nothing is run); empty
    when there are none or the file is not a ``torch.save`` archive."""
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in LEGACY_GLOBALS}
    try:
        named = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - not an archive: the load's own error says enough
        return []
    return sorted(set(named) - allowed)


def _reason(e: Exception) -> str:
    """The gist of a failed load (torch's weights-only errors run to a page)."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation")[0]
    return f"{type(e).__name__}: {' '.join(text.split())[:300]}"


def load_file(path: PathLike, required: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """Load one checkpoint file on the CPU, without running code (the module docstring).

    Raises:
        UnsafeCheckpointError: the file's pickle names functions or classes (which loading
            would call), listed in the message.
        CheckpointError: unreadable, not a checkpoint, or missing ``required`` keys.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals(LEGACY_GLOBALS):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        unsafe = _unsafe_globals(path) if isinstance(e, pickle.UnpicklingError) else []
        if unsafe:
            raise UnsafeCheckpointError(
                f"{path}: refused: loading it would run code it names ({', '.join(unsafe)}). "
                "A stnas checkpoint holds only tensors and plain data; do not load .pt files "
                "from sources you do not trust (a model to hand on is a package: stnas package)"
            ) from None
        raise CheckpointError(f"{path}: cannot read checkpoint ({_reason(e)})") from None
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
        except UnsafeCheckpointError:
            raise  # tampered with, not damaged: an older checkpoint is no way out
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


MODEL_KEYS = ("model", "arch", "num_units")  # what a retrained model's file must hold


def build_model(
    state: Dict[str, Any], path: PathLike, device: torch.device = torch.device("cpu")
) -> Tuple[torch.nn.Module, Arch, int]:
    """The network of a loaded retrained model (``state`` of ``path``): (network in eval
    mode, Arch, K)."""
    if state["arch"] is None:
        raise StnasError(f"{path}: not a retrained model (stage {state.get('stage')})")
    arch = Arch.from_dict(state["arch"], str(path))
    net = arch.build(state["num_units"])
    net.load_state_dict(state["model"])
    return net.to(device).eval(), arch, state["num_units"]


def load_model(
    path: Path, device: torch.device = torch.device("cpu")
) -> Tuple[torch.nn.Module, Arch, int]:
    """A retrained model from ``best.pt``/``avg.pt``: (network in eval mode, Arch, K)."""
    return build_model(load_file(path, required=MODEL_KEYS), path, device)
