"""Search spaces as JSON files (``conf/space/*.json``), validated on load.

A space is a chain of layers (DESIGN §3): ``blocks`` searchable blocks, each a list of
candidate op names from :data:`pipeline.nas.ops.OPS`, with the fixed sub-sampling op
inserted after block ``subsample_after``, then a linear output layer to the K units (K comes
from the data's ``units.txt``, not from the space). Example (``conf/space/wsj.json``)::

    {"schema_version": 1, "name": "wsj", "input_dim": 120, "width": 640, "dropout": 0.5,
     "subsample_after": 3, "subsample_op": "tdnn_k3_d1_s3",
     "blocks": [["tdnn_k3_d1", "tdnn_k3_d2", "tdnn_k5_d1", "tdnn_k5_d2"], ...]}

The space hash is the SHA-256 of the canonical JSON of every field but ``description``, so
an ``arch.json`` can say exactly which space it was searched in.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, Union

from pipeline.errors import StnasError
from pipeline.nas.ops import OPS, factor_grid, is_op

SPACE_SCHEMA_VERSION = 1
SPACE_DIR = Path(__file__).resolve().parents[2] / "conf" / "space"
_FIELDS = {
    "schema_version",
    "name",
    "description",
    "input_dim",
    "width",
    "dropout",
    "subsample_after",
    "subsample_op",
    "blocks",
    "shared_taps",
    "factorized",
}


class SpaceError(StnasError):
    """A search space or architecture file that cannot be used."""


@dataclass(frozen=True)
class SearchSpace:
    """A chain of searchable blocks with one fixed sub-sampling layer.

    Attributes:
        name: short name (``wsj``, ``swbd``, ``tiny``).
        input_dim: feature dimension D of the (B, T, D) input (120 = fbank + Δ + ΔΔ).
        width: channels of every hidden layer.
        dropout: dropout probability after each op.
        subsample_after: number of searchable blocks before the sub-sampling layer.
        subsample_op: registered op name of the fixed sub-sampling layer.
        blocks: candidate op names per block.
        description: free text, not part of the hash.
        shared_taps: in the super-network, the TDNN candidates of a block share one weight
            per time offset (k3 d1 is the centre of k5 d1, k3 d2 reuses k5's ±2 taps) and
            their bias and LayerNorm, so every sampled path trains the same features
            (:mod:`pipeline.nas.shared`); derived networks are unaffected.
        factorized: the search's α is per block one logit per kernel/dilation and one per
            width (:class:`pipeline.nas.supernet.ArchWeights`); the candidates must form that
            grid (plus identity).
    """

    name: str
    input_dim: int
    width: int
    dropout: float
    subsample_after: int
    subsample_op: str
    blocks: Tuple[Tuple[str, ...], ...]
    description: str = ""
    shared_taps: bool = False
    factorized: bool = False

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_subgraphs(self) -> int:
        """Number of distinct architectures (product of candidates per block)."""
        return math.prod(len(b) for b in self.blocks)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "schema_version": SPACE_SCHEMA_VERSION,
            "name": self.name,
            "description": self.description,
            "input_dim": self.input_dim,
            "width": self.width,
            "dropout": self.dropout,
            "subsample_after": self.subsample_after,
            "subsample_op": self.subsample_op,
            "blocks": [list(b) for b in self.blocks],
            **({"shared_taps": True} if self.shared_taps else {}),
            **({"factorized": True} if self.factorized else {}),
        }

    @property
    def hash(self) -> str:
        """``sha256:<hex>`` of the canonical JSON (without ``description``)."""
        body = {k: v for k, v in self.to_dict().items() if k != "description"}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def index_of(self, ops: Sequence[str]) -> List[int]:
        """Candidate indices of one op name per block (raises if an op is not a candidate)."""
        if len(ops) != self.num_blocks:
            raise SpaceError(
                f"space '{self.name}' has {self.num_blocks} blocks, got {len(ops)} ops"
            )
        out = []
        for i, (op, cands) in enumerate(zip(ops, self.blocks)):
            if op not in cands:
                raise SpaceError(
                    f"op '{op}' is not a candidate of block {i + 1} in space "
                    f"'{self.name}' (candidates: {', '.join(cands)})"
                )
            out.append(cands.index(op))
        return out

    def layer_specs(self, ops: Sequence[str]) -> List[Tuple[str, int, int]]:
        """The derived chain for one op per block: ``(op, in_dim, out_dim)`` per layer."""
        names = (
            list(ops[: self.subsample_after])
            + [self.subsample_op]
            + list(ops[self.subsample_after :])
        )
        dims = [self.input_dim] + [self.width] * len(names)
        return [(n, dims[i], dims[i + 1]) for i, n in enumerate(names)]


def space_from_dict(data: Any, source: str = "<dict>") -> SearchSpace:
    """Validate a parsed space JSON and build the :class:`SearchSpace`.

    Raises:
        SpaceError: naming ``source`` and what is wrong (unknown op or field, bad dims, ...).
    """

    def bad(msg: str) -> SpaceError:
        return SpaceError(f"{source}: {msg}")

    if not isinstance(data, dict):
        raise bad("a search space must be a JSON object")
    unknown = set(data) - _FIELDS
    if unknown:
        raise bad(f"unknown field(s) {sorted(unknown)} (known: {sorted(_FIELDS)})")
    version = data.get("schema_version")
    if version != SPACE_SCHEMA_VERSION:
        raise bad(f"schema_version {version!r} is not supported (expected {SPACE_SCHEMA_VERSION})")
    for key, kind in (
        ("name", str),
        ("input_dim", int),
        ("width", int),
        ("subsample_after", int),
        ("subsample_op", str),
        ("blocks", list),
    ):
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise bad(f"field '{key}' must be a {kind.__name__}, got {data.get(key)!r}")
    if data["input_dim"] < 1 or data["width"] < 1:
        raise bad(
            f"input_dim and width must be positive, got {data['input_dim']} and {data['width']}"
        )
    dropout = data.get("dropout", 0.5)
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise bad(f"dropout must be in [0, 1), got {dropout!r}")
    blocks = data["blocks"]
    if not blocks:
        raise bad("'blocks' is empty")
    if not 0 <= data["subsample_after"] <= len(blocks):
        raise bad(f"subsample_after {data['subsample_after']} is outside 0..{len(blocks)}")
    if not is_op(data["subsample_op"]):
        raise bad(
            f"unknown op '{data['subsample_op']}' as subsample_op (known: {', '.join(sorted(OPS))})"
        )
    for i, cands in enumerate(blocks, 1):
        if not isinstance(cands, list) or not cands:
            raise bad(f"block {i} must be a non-empty list of op names")
        if len(set(cands)) != len(cands):
            raise bad(f"block {i} lists an op twice: {cands}")
        for op in cands:
            if not is_op(op):
                raise bad(f"unknown op '{op}' in block {i} (known: {', '.join(sorted(OPS))})")
            in_dim = data["input_dim"] if i == 1 else data["width"]
            if op == "identity" and in_dim != data["width"]:
                raise bad(f"block {i}: identity cannot map {in_dim} to {data['width']} channels")
    return SearchSpace(
        name=data["name"],
        input_dim=data["input_dim"],
        width=data["width"],
        dropout=float(dropout),
        subsample_after=data["subsample_after"],
        subsample_op=data["subsample_op"],
        blocks=tuple(tuple(b) for b in blocks),
        description=str(data.get("description", "")),
        shared_taps=_flag(data.get("shared_taps", False), "shared_taps", bad),
        factorized=_factorized(data, bad),
    )


def _factorized(data: Dict[str, Any], bad: Any) -> bool:
    flag = _flag(data.get("factorized", False), "factorized", bad)
    if flag:
        for i, cands in enumerate(data["blocks"], 1):
            try:
                factor_grid(cands)
            except ValueError as e:
                raise bad(f"block {i}: {e}") from None
    return flag


def _flag(value: Any, key: str, bad) -> bool:
    if not isinstance(value, bool):
        raise bad(f"field '{key}' must be true or false, got {value!r}")
    return value


def load_space(name_or_path: Union[str, Path]) -> SearchSpace:
    """Load a space by name (``wsj`` → ``conf/space/wsj.json``) or by path.

    Raises:
        SpaceError: missing file, invalid JSON or invalid content, naming the file.
    """
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = SPACE_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SPACE_DIR.glob("*.json")))
        raise SpaceError(f"{path}: search space not found (built-in: {known})")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SpaceError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    return space_from_dict(data, str(path))
