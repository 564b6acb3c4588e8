"""Process-group set-up for ``torchrun`` and the only collectives stnas calls.

``torchrun --nproc_per_node N --no-python stnas <stage> ...`` (or ``-m steps_py <stage>``) sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; without them everything here is a no-op and the run is
single-process.

Backends: gloo on CPU; on CUDA a ``cpu:gloo,cuda:nccl`` group. NCCL only moves CUDA tensors,
so every collective goes through the helpers below, which copy the tensor to the group's
device (:func:`comm_device`: this rank's GPU under NCCL, else the CPU) and the result back to
where it came from. Small values drawn on the CPU (sampled paths, Gumbel noise) are therefore
safe to broadcast; the gloo half of the group is a second line of defence.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

_COMM_DEVICE = torch.device("cpu")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank, world size, device."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0 alone writes files."""
        return self.rank == 0


def backend_for(device: torch.device) -> str:
    """The process-group backend for a run on ``device``."""
    return "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"


def init_distributed(device: str = "cpu") -> DistInfo:
    """Join the process group when launched by torchrun; pick this rank's device."""
    global _COMM_DEVICE
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend_for(dev))
    _COMM_DEVICE = dev if dev.type == "cuda" else torch.device("cpu")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return DistInfo(rank, dist.get_world_size() if dist.is_initialized() else 1, dev)


def distributed() -> bool:
    """True inside a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def comm_device() -> torch.device:
    """The device collectives run on (set by :func:`init_distributed`)."""
    return _COMM_DEVICE


def to_comm_device(values: Tensor) -> Tensor:
    """A private copy of ``values`` on :func:`comm_device`, ready for a collective."""
    return values.detach().to(comm_device(), copy=True)


def broadcast(values: Tensor, src: int = 0) -> Tensor:
    """Rank ``src``'s ``values`` on every rank, on the device ``values`` is on (identity
    when not distributed)."""
    if not distributed():
        return values
    buf = to_comm_device(values)
    dist.broadcast(buf, src=src)
    return buf.to(values.device)


def all_sum(values: Tensor) -> Tensor:
    """Sum over ranks, on the device ``values`` is on (identity in a single process)."""
    if not distributed():
        return values
    buf = to_comm_device(values)
    dist.all_reduce(buf)
    return buf.to(values.device)


def all_gather(values: Tensor) -> List[Tensor]:
    """Every rank's ``values`` (rank order), on the device ``values`` is on."""
    if not distributed():
        return [values]
    buf = to_comm_device(values)
    out = [to_comm_device(torch.zeros_like(values)) for _ in range(dist.get_world_size())]
    dist.all_gather(out, buf)
    return [t.to(values.device) for t in out]


def barrier() -> None:
    if distributed():
        dist.barrier()


def identical_on_ranks(params: Sequence[Tensor]) -> bool:
    """Whether every rank holds bitwise the same ``params`` (True in one process): two
    checksums of all values (their sum and a position-weighted sum), gathered and compared."""
    if not distributed():
        return True
    flat = torch.cat([p.detach().double().flatten() for p in params])
    weights = torch.arange(1, len(flat) + 1, device=flat.device, dtype=flat.dtype).sin()
    mine = torch.stack([flat.sum(), (flat * weights).sum()])
    gathered = all_gather(mine)
    return all(torch.equal(g, gathered[0]) for g in gathered)
