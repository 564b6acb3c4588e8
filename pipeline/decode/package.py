"""A model package: one directory with everything decoding needs and nothing that is code.

``stnas package`` writes it (:mod:`pipeline.stages.package`); ``stnas transcribe --model DIR``
and ``stnas export --model DIR`` read it, with no data dir or experiment dir. It holds:

====================  ========================================================================
``model.safetensors``  the weights (safetensors: a JSON header and raw tensors, never a pickle)
``arch.json``          the network (:mod:`pipeline.nas.arch`); K is the size of ``units.txt``
``units.txt``          ``<blk> 0`` and the phones: the network's output columns
``words.txt``          the word table of the graph
``lexicon.txt``        the decoding lexicon: the LM's words with their pronunciations
``TLG.fst``            the decoding graph (:mod:`pipeline.lang.graphs`)
``lm.arpa``            the word LM the graph was built from
``fbank.conf``         Kaldi fbank options
``features.json``      sample rate, CMVN and deltas: how ``fbank.conf``'s output becomes the
                       network's input (:class:`FeatureSpec`)
``decoding.json``      the LM's name, the LM weight and word penalty chosen on dev, the beams
                       (:class:`DecodingSpec`)
``README.md``          the model card
``manifest.json``      format, version, size and sha256 of every other file
                       (:mod:`pipeline.manifest`)
====================  ========================================================================

Nothing in it names a path of the machine that made it. :func:`open_package` checks every
file against the manifest before anything is read, and refuses one that differs, naming it.
A package is untrusted input: every file is parsed as data, and what does not parse is a
:class:`PackageError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors

from pipeline.decode import defaults
from pipeline.decode.decoder import Decoder, DecoderConfig
from pipeline.errors import StnasError
from pipeline.lang.den_graph import read_units
from pipeline.lang.lexicon import read_symbol_table
from pipeline.manifest import MANIFEST, ManifestError, read_manifest, verify_files
from pipeline.nas.arch import Arch
from pipeline.textfile import read_text

PathLike = Union[str, Path]
FORMAT = "stnas-model-package"
VERSION = 1
MODEL, ARCH, UNITS, WORDS = "model.safetensors", "arch.json", "units.txt", "words.txt"
LEXICON, GRAPH, LM, FBANK = "lexicon.txt", "TLG.fst", "lm.arpa", "fbank.conf"
FEATURES, DECODING, CARD = "features.json", "decoding.json", "README.md"
FILES = (MODEL, ARCH, UNITS, WORDS, LEXICON, GRAPH, LM, FBANK, FEATURES, DECODING, CARD)
MAX_DIM = 1 << 16  # widths beyond any network here: a crafted arch.json must not exhaust memory


class PackageError(StnasError):
    """A model package that cannot be used (the message names the file)."""


def _field(data: Dict[str, Any], key: str, kind: type, source: Path) -> Any:
    value = data.get(key)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PackageError(f"{source}: '{key}' must be a {kind.__name__}, got {value!r}")
    return value


@dataclass
class FeatureSpec:
    """How audio becomes the network's input, as ``stnas prep`` makes it.

    fbank (``fbank_conf``) at ``sample_rate`` Hz → CMVN with the statistics of the speaker
    (of the utterance when no speaker is known), means and, with ``norm_vars``, variances →
    Δ and ΔΔ (``delta_order``, ``delta_window``) → (T, ``input_dim``) float32; the network's
    output frames are ``output_frame_shift_s`` apart.
    """

    fbank_conf: str
    sample_rate: int
    input_dim: int
    norm_vars: bool = True
    delta_order: int = 2
    delta_window: int = 2
    output_frame_shift_s: float = defaults.OUTPUT_FRAME_SHIFT_S

    def to_dict(self) -> Dict[str, Any]:
        """``features.json`` (the fbank config by its name in the package, whatever its
        name where it came from)."""
        return {
            **asdict(self),
            "fbank_conf": FBANK,
            "cmvn": "per speaker (utt2spk), else per utterance; means and variances",
            "layout": f"fbank, then deltas up to order {self.delta_order}: (T, input_dim)",
        }

    @classmethod
    def from_file(cls, path: Path) -> "FeatureSpec":
        data = read_json(path)
        if _field(data, "fbank_conf", str, path) != FBANK:
            raise PackageError(f"{path}: 'fbank_conf' must be {FBANK}")
        spec = cls(
            fbank_conf=str(path.parent / FBANK),
            sample_rate=_field(data, "sample_rate", int, path),
            input_dim=_field(data, "input_dim", int, path),
            norm_vars=_field(data, "norm_vars", bool, path),
            delta_order=_field(data, "delta_order", int, path),
            delta_window=_field(data, "delta_window", int, path),
            output_frame_shift_s=_field(data, "output_frame_shift_s", float, path),
        )
        if not (0 <= spec.delta_order <= 3 and 1 <= spec.delta_window <= 10):
            raise PackageError(f"{path}: deltas of order 0..3 and window 1..10 only")
        if spec.sample_rate <= 0 or spec.input_dim <= 0:
            raise PackageError(f"{path}: 'sample_rate' and 'input_dim' must be positive")
        return spec


@dataclass
class DecodingSpec:
    """The decoding setting of a package: word LM name, LM weight and word penalty (chosen on
    ``chosen_on``: a set's name, or ``given``), and the search beams of the decode."""

    lm: str
    lm_weight: float
    word_penalty: float
    chosen_on: str
    beam: float = defaults.BEAM
    max_active: int = defaults.MAX_ACTIVE

    def to_dict(self) -> Dict[str, Any]:
        """``decoding.json``."""
        return asdict(self)

    @classmethod
    def from_file(cls, path: Path) -> "DecodingSpec":
        data = read_json(path)
        spec = cls(
            lm=_field(data, "lm", str, path),
            lm_weight=_field(data, "lm_weight", float, path),
            word_penalty=_field(data, "word_penalty", float, path),
            chosen_on=_field(data, "chosen_on", str, path),
            beam=_field(data, "beam", float, path),
            max_active=_field(data, "max_active", int, path),
        )
        if not (spec.lm_weight > 0 and spec.beam > 0 and spec.max_active > 0):
            raise PackageError(f"{path}: 'lm_weight', 'beam' and 'max_active' must be > 0")
        return spec


def read_json(path: Path) -> Dict[str, Any]:
    """A JSON object from a package file.

    Raises:
        PackageError: not UTF-8, not JSON, or not an object (naming the file).
    """
    try:
        data = json.loads(read_text(path))
    except StnasError as e:  # not UTF-8 (the message names the line and byte)
        raise PackageError(str(e)) from None
    except (ValueError, RecursionError) as e:
        raise PackageError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise PackageError(f"{path}: must hold a JSON object")
    return data


def read_arch(path: Path) -> Arch:
    """``arch.json`` of a package, validated.

    Raises:
        PackageError: not an architecture (naming the file).
    """
    data = read_json(path)
    try:
        arch = Arch.from_dict(data, str(path))
    except StnasError as e:
        raise PackageError(str(e)) from None
    except (TypeError, KeyError, AttributeError, ValueError, IndexError) as e:
        # Arch.from_dict checks the fields arch.json must have, not the JSON type of each:
        # a crafted file with a list where an object belongs ends here
        raise PackageError(f"{path}: not a valid architecture ({type(e).__name__}: {e})") from None
    net = arch.net
    sizes = [net[k] for k in ("input_dim", "width", "subsample_after")]
    if any(not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_DIM for v in sizes):
        raise PackageError(f"{path}: input_dim, width and subsample_after must be 0..{MAX_DIM}")
    if not isinstance(net["dropout"], (int, float)) or not 0 <= net["dropout"] < 1:
        raise PackageError(f"{path}: dropout must be a number in [0, 1)")
    return arch


def is_package(path: PathLike) -> bool:
    """Whether ``path`` is a directory with a package manifest (its content unchecked)."""
    return Path(path).is_dir() and (Path(path) / MANIFEST).is_file()


@dataclass
class ModelPackage:
    """An opened, verified package (:func:`open_package`)."""

    dir: Path
    arch: Arch
    num_units: int
    features: FeatureSpec
    decoding: DecodingSpec

    def load_network(self, device: torch.device = torch.device("cpu")) -> torch.nn.Module:
        """The network with the package's weights, in eval mode on ``device``.

        Raises:
            PackageError: ``model.safetensors`` unreadable, or weights that do not fit
                ``arch.json`` with K outputs.
        """
        path = self.dir / MODEL
        try:
            weights = load_safetensors(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise PackageError(f"{path}: not a safetensors file ({e})") from None
        net = self.arch.build(self.num_units)
        try:
            net.load_state_dict(weights)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[-1].strip()[:300]
            raise PackageError(
                f"{path}: the weights do not fit {ARCH} with K={self.num_units} ({first})"
            ) from None
        return net.to(device).eval()

    def decoder(self, config: Optional[DecoderConfig] = None) -> Decoder:
        """A decoder on ``TLG.fst`` and ``words.txt`` for K-column log-probs."""
        words = {i: w for w, i in read_symbol_table(self.dir / WORDS).items()}
        return Decoder(self.dir / GRAPH, words, config, self.num_units)

    def setting(self) -> Tuple[float, float]:
        """(LM weight, word penalty) of ``decoding.json``."""
        return self.decoding.lm_weight, self.decoding.word_penalty


def open_package(directory: PathLike) -> ModelPackage:
    """Verify a package against its manifest and read its descriptions.

    Raises:
        PackageError: not a package, a required file missing from the manifest, a file whose
            size or sha256 differs from the manifest's, or a description that does not parse
            (each naming the file).
    """
    d = Path(directory)
    if not d.is_dir():
        raise PackageError(f"{d}: not a model package directory")
    try:
        files = read_manifest(d, FORMAT, VERSION)
        missing = [name for name in FILES if name not in files]
        if missing:
            raise PackageError(f"{d / MANIFEST}: lists no {', '.join(missing)}")
        verify_files(d, files)
    except ManifestError as e:
        raise PackageError(str(e)) from None
    arch = read_arch(d / ARCH)
    try:
        num_units, _ = read_units(d / UNITS)
    except StnasError as e:
        raise PackageError(str(e)) from None
    features = FeatureSpec.from_file(d / FEATURES)
    if features.input_dim != arch.net.get("input_dim"):
        raise PackageError(
            f"{d / FEATURES}: input_dim {features.input_dim} but {ARCH} reads "
            f"{arch.net.get('input_dim')}"
        )
    return ModelPackage(d, arch, num_units, features, DecodingSpec.from_file(d / DECODING))
