"""Run a stnas command under torchrun with NCCL's device rule emulated on CPU.

NCCL moves only tensors on the process group's (CUDA) device: a collective on any other tensor
fails at once. A CPU-only machine cannot run NCCL, so this launcher runs the command in a gloo
group and wraps every ``torch.distributed`` collective to fail the same way unless each of its
tensors went through ``pipeline.train.distributed.to_comm_device``, the one function that puts
values on the group's device. Used by ``tests/integration/test_ddp_placement.py``.

Usage (under ``torch.distributed.run``): ``python tests/ddp_nccl_rule.py <stage> [options]``.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.train import distributed as stnas_dist  # noqa: E402

_place = stnas_dist.to_comm_device


def _placed(values: torch.Tensor) -> torch.Tensor:
    out = _place(values)
    out._on_group_device = True  # what a copy to the NCCL device would guarantee
    return out


def _nccl_rule(fn):
    @functools.wraps(fn)
    def collective(*args, **kwargs):
        tensors = []
        for a in list(args) + list(kwargs.values()):
            if isinstance(a, torch.Tensor):
                tensors.append(a)
            elif isinstance(a, (list, tuple)):
                tensors += [t for t in a if isinstance(t, torch.Tensor)]
        for t in tensors:
            if not getattr(t, "_on_group_device", False):
                raise RuntimeError(
                    f"dist.{fn.__name__} on a tensor that was not placed on the "
                    f"process group's device ({t.device}, shape "
                    f"{tuple(t.shape)}): NCCL rejects it"
                )
        return fn(*args, **kwargs)

    return collective


for _name in (
    "broadcast",
    "all_reduce",
    "all_gather",
    "all_gather_into_tensor",
    "reduce",
    "reduce_scatter",
    "reduce_scatter_tensor",
    "scatter",
    "gather",
    "all_to_all",
):
    setattr(dist, _name, _nccl_rule(getattr(dist, _name)))
stnas_dist.to_comm_device = _placed

if __name__ == "__main__":
    from steps_py.cli import cli

    cli.main(args=sys.argv[1:], prog_name="stnas")
