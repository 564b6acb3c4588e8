"""The latency lookup table: each layer of a space timed once per machine, then cached.

As FBNet and ProxylessNAS do, a network's latency is the sum of its layers' measured times,
so the search can use it like any other additive cost (:mod:`pipeline.nas.cost`). Each
distinct layer (op, widths, input frame period) of the space, and the output layer, runs
``repeats`` times on one utterance of ``frames`` input frames, batch 1, one CPU thread,
without gradients; the table keeps the median time per 10-ms input frame in µs.

The table is JSON (``latency.json``) and names the machine (CPU model, cores, torch
version) and the space (name and hash) it was measured for; a table of another space is
refused. Times vary between runs by a few per cent and between machines by far more: a
search under a latency budget is reproducible on another machine only with the same table
(``latency_table:`` in the search config).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from pipeline.errors import StnasError
from pipeline.io import atomic_write_text
from pipeline.nas.cost import LatencyLookup, layer_period
from pipeline.nas.ops import make_op, op_spec
from pipeline.nas.space import SearchSpace

TABLE_VERSION = 1
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stnas" / "latency"


def machine_name() -> str:
    """CPU model, core count and torch version, e.g. ``AMD EPYC 7B13, 2 cores, torch 2.x``."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__}"


def _time_us(module: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    with torch.no_grad():
        module(x)  # first call: allocations
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            module(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def measure(
    space: SearchSpace, num_units: int, frames: int = 600, repeats: int = 9
) -> Dict[str, Any]:
    """Time every distinct layer of ``space`` (and the output layer); the table as a dict."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    entries: Dict[str, float] = {}
    try:
        gen = torch.Generator().manual_seed(0)
        for b, cands in enumerate(space.blocks):
            for op in cands:
                ops = [c[0] for c in space.blocks]
                ops[b] = op
                layers = space.layer_specs(ops)
                for (name, i, o), period in zip(layers, layer_period(layers)):
                    key = LatencyLookup.key(name, i, o, period)
                    if name == "identity" or key in entries:
                        continue
                    module = make_op(name, i, o, 0.0).eval()
                    x = torch.randn(1, frames // period, i, generator=gen)
                    entries[key] = _time_us(module, x, repeats) / frames
        layers = space.layer_specs([c[0] for c in space.blocks])
        width, period = space.width, layer_period(layers)[-1] * op_spec(layers[-1][0]).stride
        head = torch.nn.Linear(width, num_units).eval()
        x = torch.randn(1, frames // period, width, generator=gen)
        key = LatencyLookup.key("output", width, num_units, period)
        entries[key] = _time_us(torch.nn.Sequential(head, torch.nn.LogSoftmax(-1)), x, repeats)
        entries[key] /= frames
    finally:
        torch.set_num_threads(threads)
    return {
        "schema_version": TABLE_VERSION,
        "space": {"name": space.name, "hash": space.hash},
        "num_units": num_units,
        "machine": machine_name(),
        "threads": 1,
        "frames": frames,
        "repeats": repeats,
        "unit": "µs per 10-ms input frame (median)",
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "entries": entries,
    }


def load_table(path: Union[str, Path], space: SearchSpace, num_units: int) -> LatencyLookup:
    """Read a table and check it was measured for ``space`` and K = ``num_units``.

    Raises:
        StnasError: missing or invalid file, or a table of another space or unit count.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise StnasError(f"{path}: latency table not found") from None
    except (OSError, json.JSONDecodeError) as e:
        raise StnasError(f"{path}: not a latency table ({e})") from None
    if not isinstance(data, dict) or data.get("schema_version") != TABLE_VERSION:
        raise StnasError(f"{path}: not a latency table of version {TABLE_VERSION}")
    got = data.get("space") or {}
    if got.get("hash") != space.hash:
        raise StnasError(
            f"{path}: latency table of space '{got.get('name')}' ({str(got.get('hash'))[:19]}), "
            f"not of space '{space.name}' ({space.hash[:19]}); measure one for it "
            "(delete latency_table: from the config to measure and cache it)"
        )
    if data.get("num_units") != num_units:
        raise StnasError(
            f"{path}: latency table measured with K={data.get('num_units')} output units, "
            f"the data has K={num_units}"
        )
    return LatencyLookup(data["entries"])


def cached_table(
    space: SearchSpace, num_units: int, path: Optional[Union[str, Path]] = None
) -> Path:
    """The table to use: ``path`` if given, else this machine's cached one for ``space`` and
    K (measured now if there is none)."""
    if path:
        return Path(path)
    slug = "".join(c if c.isalnum() else "-" for c in machine_name())[:60]
    cached = CACHE_DIR / f"{space.name}-{space.hash[7:19]}-K{num_units}-{slug}.json"
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cached, json.dumps(measure(space, num_units), indent=1) + "\n")
    return cached
