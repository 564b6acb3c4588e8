"""``arch.json``: a searched (or hand-designed) architecture that travels as a file.

Schema (version 1)::

    {"schema_version": 1,
     "space": {"name": "wsj", "hash": "sha256:..."},
     "net": {"input_dim": 120, "width": 640, "dropout": 0.5,
             "subsample_after": 3, "subsample_op": "tdnn_k3_d1_s3"},
     "ops": ["tdnn_k5_d1", "tdnn_k5_d2", ...],            # one per searchable block
     "candidates": [["tdnn_k3_d1", ...], ...],            # the space's candidates per block
     "probabilities": [[0.1, 0.2, 0.3, 0.4], ...],        # p the choice was made from (or null)
     "history": [{"epoch": 0, "held_out_loss": 1.23,      # searched: p at each epoch's end
                  "probabilities": [[...], ...]}, ...],
     "provenance": {"strategy": "st", "exp_dir": ..., "epoch": ..., "seed": ...,
                    "chosen_epoch": ..., "rule": ..., "git_sha": ..., "created": ...},
     "costs": {"targets": {"params": 45000}, "form": "hard", "fits": true,   # (optional)
               "costs": {"params": {"value": 41234, "unit": ..., "budget": 45000,
                                    "ratio": 0.92}, "macs": {...}, ...}}}

``net`` holds everything needed to build the model, so :meth:`Arch.build` needs neither the
space file nor any supernet code: an architecture searched on one corpus is retrained on
another (transfer) with that corpus's unit count K.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from pipeline.errors import DataError
from pipeline.io import atomic_write_text
from pipeline.nas.model import TdnnNet, num_parameters
from pipeline.nas.ops import OPS, is_op
from pipeline.nas.space import SearchSpace, SpaceError
from pipeline.textfile import read_text

ARCH_SCHEMA_VERSION = 1
PathLike = Union[str, Path]
_NET_FIELDS = ("input_dim", "width", "dropout", "subsample_after", "subsample_op")


@dataclass
class Arch:
    """One op per searchable block plus what is needed to build the network.

    Attributes:
        ops: op name per searchable block.
        net: ``input_dim``, ``width``, ``dropout``, ``subsample_after``, ``subsample_op``.
        space_name, space_hash: the space it was chosen in.
        candidates: candidate names per block (for reading ``probabilities``).
        probabilities: p per block the choice was made from (a searched architecture: the
            best held-out epoch's), or None (hand-designed).
        history: p and held-out loss at the end of each search epoch (or None).
        provenance: where it came from (strategy, exp dir, epoch, seed, git sha, time).
        costs: the architecture's costs (:mod:`pipeline.nas.cost`) next to the search's
            budget (:meth:`pipeline.search.budget.Budget.summary`), or None.
    """

    ops: List[str]
    net: Dict[str, Any]
    space_name: str
    space_hash: str
    candidates: List[List[str]]
    probabilities: Optional[List[List[float]]] = None
    provenance: Dict[str, Any] = field(default_factory=dict)
    history: Optional[List[Dict[str, Any]]] = None
    costs: Optional[Dict[str, Any]] = None

    @classmethod
    def from_space(
        cls,
        space: SearchSpace,
        ops: Sequence[str],
        probabilities: Optional[Sequence[Sequence[float]]] = None,
        **provenance: Any,
    ) -> "Arch":
        """The architecture with ``ops`` in ``space`` (checked against its candidates)."""
        space.index_of(ops)
        net = {k: getattr(space, k) for k in _NET_FIELDS}
        probs = [[float(x) for x in p] for p in probabilities] if probabilities else None
        prov = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **provenance}
        return cls(
            list(ops), net, space.name, space.hash, [list(b) for b in space.blocks], probs, prov
        )

    def layer_specs(self) -> List[tuple]:
        """``(op, in_dim, out_dim)`` per layer, sub-sampling layer included."""
        after = self.net["subsample_after"]
        names = self.ops[:after] + [self.net["subsample_op"]] + self.ops[after:]
        dims = [self.net["input_dim"]] + [self.net["width"]] * len(names)
        return [(n, dims[i], dims[i + 1]) for i, n in enumerate(names)]

    def build(self, num_units: int) -> TdnnNet:
        """A fresh standalone model with K = ``num_units`` outputs."""
        return TdnnNet(self.layer_specs(), num_units, self.net["dropout"])

    def num_parameters(self, num_units: int) -> int:
        return num_parameters(self.build(num_units))

    def to_dict(self) -> Dict[str, Any]:
        return {
            "schema_version": ARCH_SCHEMA_VERSION,
            "space": {"name": self.space_name, "hash": self.space_hash},
            "net": dict(self.net),
            "ops": list(self.ops),
            "candidates": self.candidates,
            "probabilities": self.probabilities,
            "provenance": self.provenance,
            **({"history": self.history} if self.history is not None else {}),
            **({"costs": self.costs} if self.costs is not None else {}),
        }

    def to_json(self, path: PathLike) -> None:
        """Write atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> "Arch":
        """Validate and build (raises :class:`SpaceError` naming ``source``)."""

        def bad(msg: str) -> SpaceError:
            return SpaceError(f"{source}: {msg}")

        if not isinstance(data, dict):
            raise bad("arch.json must hold a JSON object")
        if data.get("schema_version") != ARCH_SCHEMA_VERSION:
            raise bad(
                f"schema_version {data.get('schema_version')!r} is not supported "
                f"(expected {ARCH_SCHEMA_VERSION})"
            )
        for key in ("space", "net", "ops", "candidates"):
            if key not in data:
                raise bad(f"missing field '{key}'")
        net, ops, cands = data["net"], data["ops"], data["candidates"]
        if not isinstance(net, dict) or not isinstance(data["space"], dict):
            raise bad("'net' and 'space' must be JSON objects")
        if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
            raise bad("'ops' must be a list of op names")
        if not isinstance(cands, list) or not all(
            isinstance(c, list) and all(isinstance(o, str) for o in c) for c in cands
        ):
            raise bad("'candidates' must be a list of lists of op names")
        missing = [k for k in _NET_FIELDS if k not in net]
        if missing:
            raise bad(f"'net' lacks {missing}")
        for key in ("input_dim", "width", "subsample_after"):
            if not isinstance(net[key], int) or isinstance(net[key], bool) or net[key] < 0:
                raise bad(f"'net.{key}' must be a non-negative integer, got {net[key]!r}")
        if net["input_dim"] < 1 or net["width"] < 1:
            raise bad("'net.input_dim' and 'net.width' must be positive")
        if not isinstance(net["dropout"], (int, float)) or not 0 <= net["dropout"] < 1:
            raise bad(f"'net.dropout' must be in [0, 1), got {net['dropout']!r}")
        if not isinstance(net["subsample_op"], str):
            raise bad("'net.subsample_op' must be an op name")
        if not isinstance(ops, list) or not ops or len(ops) != len(cands):
            raise bad(f"'ops' must list one op per block ({len(cands)} blocks)")
        for i, op in enumerate(ops + [net["subsample_op"]], 1):
            if not is_op(op):
                raise bad(
                    f"unknown op '{op}'"
                    + (f" in block {i}" if i <= len(ops) else "")
                    + f" (known: {', '.join(sorted(OPS))})"
                )
        for i, (op, c) in enumerate(zip(ops, cands), 1):
            if op not in c:
                raise bad(f"block {i}: op '{op}' is not among its candidates {c}")
        if not 0 <= net["subsample_after"] <= len(ops):
            raise bad(f"subsample_after {net['subsample_after']} outside 0..{len(ops)}")
        probs = data.get("probabilities")
        if probs is not None and (
            not isinstance(probs, list)
            or len(probs) != len(ops)
            or any(
                not isinstance(p, list)
                or len(p) != len(c)
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in p)
                for p, c in zip(probs, cands)
            )
        ):
            raise bad("'probabilities' must have one value per candidate of each block")
        space = data["space"]
        history = data.get("history")
        if history is not None and not isinstance(history, list):
            raise bad("'history' must be a list of epochs")
        return cls(
            list(ops),
            dict(net),
            str(space.get("name", "")),
            str(space.get("hash", "")),
            [list(c) for c in cands],
            probs,
            dict(data.get("provenance") or {}),
            history,
            data.get("costs") if isinstance(data.get("costs"), dict) else None,
        )

    @classmethod
    def from_json(cls, path: PathLike) -> "Arch":
        """Read and validate an ``arch.json``."""
        path = Path(path)
        if not path.is_file():
            raise SpaceError(f"{path}: architecture file not found")
        try:
            data = json.loads(read_text(path))
        except DataError as e:
            raise SpaceError(str(e)) from None
        except json.JSONDecodeError as e:
            raise SpaceError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
        except RecursionError:
            raise SpaceError(f"{path}: JSON nested too deeply") from None
        return cls.from_dict(data, str(path))

    def describe(self, num_units: Optional[int] = None) -> str:
        """One line: ``k5d1 k5d2 k5d1 | sub | k5d2 k5d1 k5d2`` (+ parameter count)."""
        short = [op.replace("tdnn_", "").replace("_", "") for op in self.ops]
        after = self.net["subsample_after"]
        text = " ".join(short[:after]) + " | sub | " + " ".join(short[after:])
        if num_units is not None:
            text += f"  ({self.num_parameters(num_units) / 1e6:.2f} M parameters, K={num_units})"
        return text.strip()
