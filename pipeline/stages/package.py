"""``stnas package``: a retrained model and everything decoding it needs, as one directory to
hand on (the package, :mod:`pipeline.decode.package`).

What goes in is what ``stnas decode`` used: the model's weights (as safetensors) and
``arch.json``; from its data dir the units, the finished decoding graph ``lang_test_<lm>``
(``TLG.fst``, its ``words.txt`` and ``lexicon.txt``) and the ARPA LM it was built from, and
the fbank config; from the model's dev decode the LM weight and word penalty it chose and the
beams. The dev and test WERs, when scored, go into the model card (:mod:`.model_card`).
Every one of them must be current: a graph whose inputs changed since it was built, or a dev
decode of another model or graph, is refused (decode again first).

The package is written into a temporary directory next to ``out``, read back as ``stnas
transcribe`` reads it (manifest, descriptions, weights), and only then renamed onto ``out``:
a package is whole or absent. Absolute paths of this machine are kept out of it (the model
card's command shows them relative to the working directory or by their last parts).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from safetensors.torch import save_file as save_safetensors

from pipeline import __version__
from pipeline.config import read_yaml_mapping
from pipeline.data.fbank import FbankExtractor, read_kaldi_conf
from pipeline.data.layout import fbank_conf_of
from pipeline.decode import package as pk
from pipeline.decode.run import decode_dir_of, read_tuned
from pipeline.errors import DataError, StaleResultError, StnasError
from pipeline.io import atomic_path, atomic_write_text, fingerprint, git_sha
from pipeline.manifest import write_manifest
from pipeline.nas.cost import network_costs
from pipeline.stages.model_card import arpa_counts, model_card, read_best_wer
from pipeline.stages.record import finished_record, stage_info
from pipeline.stages.runner import session
from pipeline.stages.score import check_fresh
from pipeline.stages.transcribe import trained_data_dir
from pipeline.textfile import read_text
from pipeline.train.checkpoint import MODEL_KEYS, build_model, load_file

log = logging.getLogger(__name__)
SETS = ("dev", "test")  # the decodes whose scores the model card reports


@dataclass
class PackageConfig:
    """What ``stnas package`` needs (see the module docstring)."""

    model: str  # retrain/avg.pt or best.pt
    out: str  # the package directory to write
    data_dir: Optional[str] = None  # [the retrain's data dir]
    lm: str = "tg"
    lm_weight: Optional[float] = None  # [the one the dev decode chose]
    word_penalty: Optional[float] = None  # [the same]
    force: bool = False  # replace an existing package at ``out``


def portable(arg: str) -> str:
    """A path argument as a package may show it: relative to the working directory when it
    lies below it, else ``…/`` and its last two parts (options ``--x=/abs`` too)."""
    flag, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
    if not os.path.isabs(value):
        return arg
    p = Path(value)
    try:
        shown = str(p.relative_to(Path.cwd()))
    except ValueError:
        shown = "…/" + "/".join(p.parts[-2:])
    return f"{flag}{eq}{shown}"


def package_command(cfg: PackageConfig) -> str:
    """The ``stnas package`` command line of ``cfg``, paths made portable."""
    args = ["stnas", "package", "--model", cfg.model, "--out", cfg.out, "--lm", cfg.lm]
    if cfg.data_dir:
        args += ["--data-dir", cfg.data_dir]
    if cfg.lm_weight is not None:
        args += ["--lm-weight", f"{cfg.lm_weight:g}"]
    if cfg.word_penalty is not None:
        args += ["--word-penalty", f"{cfg.word_penalty:g}"]
    return " ".join(portable(a) for a in args)


def _portable_json(value: Any) -> Any:
    """``value`` with every absolute path string replaced by its file name."""
    if isinstance(value, dict):
        return {k: _portable_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable_json(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        return Path(value).name
    return value


def graph_sources(lang_test: Path) -> Dict[str, Path]:
    """The inputs a finished, current ``lang_test_<lm>`` was built from (name → file).

    Raises:
        StnasError: no finished graph.
        StaleResultError: an input changed since the graph was built.
    """
    record = finished_record(lang_test)
    if record is None or not (lang_test / pk.GRAPH).is_file():
        raise StnasError(f"{lang_test}: no finished decoding graph (stnas decode builds it)")
    out = {}
    for name, entry in (record.get("inputs") or {}).items():
        path = Path(entry["path"])
        if not path.is_file() or fingerprint(path) != entry["fingerprint"]:
            raise StaleResultError(
                f"{lang_test / pk.GRAPH} was built from another {name} ({path} has changed "
                "since); run 'stnas decode' to build it again"
            )
        out[name] = path
    if "arpa" not in out:
        raise StnasError(f"{lang_test}: its record names no ARPA LM; run 'stnas decode --force'")
    return out


def decode_of(decode_dir: Path, model_fp: str, lang_test: Path) -> Optional[Dict[str, Any]]:
    """The ``decode_info.json`` of a finished decode of this model (fingerprint ``model_fp``)
    with this graph, both unchanged since; None when there is none.

    Raises:
        StaleResultError: the decode's model or graph file changed since it was decoded.
    """
    if finished_record(decode_dir) is None:
        return None
    info = check_fresh(decode_dir)
    same_graph = Path(info.get("lang_test", "")).resolve() == lang_test.resolve()
    return info if info.get("model_fingerprint") == model_fp and same_graph else None


def decoding_spec(
    cfg: PackageConfig, dev: Optional[Dict[str, Any]], dev_dir: Path, model: Path
) -> pk.DecodingSpec:
    """The setting and beams of the package: those of the dev decode ``dev`` (its info, or
    None), or the given ones.

    Raises:
        StnasError: no dev decode of this model to take the setting from, and none given.
    """
    tuned = read_tuned(dev_dir) if dev is not None and (dev_dir / "tuned.json").is_file() else None
    weight = cfg.lm_weight if cfg.lm_weight is not None else tuned[0] if tuned else None
    penalty = cfg.word_penalty if cfg.word_penalty is not None else tuned[1] if tuned else None
    if weight is None or penalty is None:
        raise StnasError(
            f"{dev_dir}: no finished dev decode of {model} with the current graph to take the "
            "LM weight and word penalty from: run 'stnas decode' first, or give --lm-weight "
            "and --word-penalty"
        )
    conf = (dev or {}).get("config") or {}
    return pk.DecodingSpec(
        lm=cfg.lm,
        lm_weight=float(weight),
        word_penalty=float(penalty),
        chosen_on="given" if cfg.lm_weight is not None or cfg.word_penalty is not None else "dev",
        beam=float(conf.get("beam", pk.defaults.BEAM)),
        max_active=int(conf.get("max_active", pk.defaults.MAX_ACTIVE)),
    )


def training_facts(model: Path, data_dir: Path) -> Dict[str, Any]:
    """Corpus, prep hours, training set, its utterances and hours (what is known)."""
    prep = read_yaml_mapping(data_dir / "config.yaml", "prep config")
    stage_cfg = model.parent / "config.yaml"
    train_set = (
        read_yaml_mapping(stage_cfg, "stage config").get("train_set")
        if stage_cfg.is_file()
        else None
    )
    facts: Dict[str, Any] = {"corpus": prep.get("corpus"), "prep_hours": prep.get("hours")}
    frames = data_dir / str(train_set) / "utt2num_frames"
    if train_set and frames.is_file():
        counts = [int(v) for v in read_text(frames).split()[1::2]]
        shift_ms = float(read_kaldi_conf(fbank_conf_of(data_dir)).get("frame-shift", 10))
        facts.update(set=train_set, utterances=len(counts), hours=sum(counts) * shift_ms / 3.6e6)
    return facts


def _replaceable(out: Path, force: bool) -> None:
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not pk.is_package(out):
        raise StnasError(f"{out}: exists and is not a model package; not replacing it")
    if not force:
        raise StnasError(f"{out}: a model package is there already; --force replaces it")


def _publish(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` onto ``out`` (an old package or empty dir there goes)."""
    os.chmod(tmp, 0o777 & ~_umask())
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _check_portable(directory: Path, names: Sequence[str], local: Sequence[Path]) -> None:
    """Refuse to publish a package whose text files name a directory of this machine."""
    roots = {str(p) for p in local if len(p.parts) > 2}
    for name in names:
        text = (directory / name).read_text(encoding="utf-8")
        for root in roots:
            if root in text:
                raise StnasError(f"{name} of the package names {root} (a bug: nothing written)")


@dataclass
class _Inputs:
    """What a package is made of, gathered (and checked current) under the locks."""

    copies: Dict[str, Path]  # package file name → the file to copy
    features: pk.FeatureSpec
    decoding: pk.DecodingSpec
    results: Dict[str, Optional[Dict[str, Any]]]  # set → its scored WER, or None
    vocabulary: Optional[int]


def _gather(cfg: PackageConfig, model: Path, data_dir: Path, input_dim: int) -> _Inputs:
    lang_test = data_dir / f"lang_test_{cfg.lm}"
    sources = graph_sources(lang_test)
    model_fp = fingerprint(model)
    decodes = {name: decode_dir_of(model, name, cfg.lm) for name in SETS}
    infos = {name: decode_of(d, model_fp, lang_test) for name, d in decodes.items()}
    fbank_conf = str(fbank_conf_of(data_dir))
    graph_info = json.loads(read_text(lang_test / "graph_info.json"))
    return _Inputs(
        copies={
            pk.UNITS: sources["units"],
            pk.WORDS: lang_test / "words.txt",
            pk.LEXICON: lang_test / "lexicon.txt",
            pk.GRAPH: lang_test / pk.GRAPH,
            pk.LM: sources["arpa"],
            pk.FBANK: Path(fbank_conf),
        },
        features=pk.FeatureSpec(fbank_conf, FbankExtractor(fbank_conf).sample_rate, input_dim),
        decoding=decoding_spec(cfg, infos["dev"], decodes["dev"], model),
        results={
            n: read_best_wer(d / "best_wer") if infos[n] else None for n, d in decodes.items()
        },
        vocabulary=graph_info.get("vocabulary"),
    )


def _write(
    tmp: Path, cfg: PackageConfig, state: Dict[str, Any], data_dir: Path, got: _Inputs
) -> Dict[str, int]:
    """Every file of the package into ``tmp``; their sizes."""
    net, arch, num_units = build_model(state, cfg.model)
    for name, src in got.copies.items():
        shutil.copyfile(src, tmp / name)
    weights = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(tmp / pk.MODEL) as path:
        save_safetensors(weights, str(path), metadata={"format": "pt"})
    for name, record in (
        (pk.ARCH, _portable_json(arch.to_dict())),
        (pk.FEATURES, got.features.to_dict()),
        (pk.DECODING, got.decoding.to_dict()),
    ):
        atomic_write_text(tmp / name, json.dumps(record, indent=2) + "\n")
    files = {n: (tmp / n).stat().st_size for n in pk.FILES if (tmp / n).is_file()}
    facts = {
        "title": arch.describe(),
        "num_units": num_units,
        "costs": network_costs(arch.layer_specs(), num_units),
        "training": training_facts(Path(cfg.model), data_dir),
        "model": {k: state.get(k) for k in ("stage", "epoch", "held_out_loss", "averaged")},
        "held_out": stage_info(Path(cfg.model).parent).get("held_out"),
        "graph": {"vocabulary": got.vocabulary, "ngrams": arpa_counts(tmp / pk.LM)},
        "features": got.features,
        "decoding": got.decoding,
        "results": got.results,
        "files": files,
        "version": __version__,
        "git_sha": git_sha(),
        "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": package_command(cfg),
    }
    atomic_write_text(tmp / pk.CARD, model_card(facts))
    write_manifest(tmp, pk.FILES, pk.FORMAT, pk.VERSION)
    return {n: (tmp / n).stat().st_size for n in (*pk.FILES, pk.MANIFEST)}


def make_package(cfg: PackageConfig) -> Dict[str, Any]:
    """Write the package of ``cfg.model`` to ``cfg.out`` (see the module docstring); a
    summary: the directory, its files and sizes, the decoding setting, the scored WERs.

    Raises:
        CheckpointError: the model cannot be read, or is refused (it would run code).
        StaleResultError: the graph's inputs, or the dev decode's model or graph, changed.
        StnasError: no finished graph or dev decode, an ``out`` that is not a package.
    """
    model, out = Path(cfg.model), Path(cfg.out)
    if not model.is_file():
        raise DataError("model not found", model)
    state = load_file(model, required=MODEL_KEYS)  # first: refuses a file that would run code
    arch = build_model(state, model)[1]
    _replaceable(out, cfg.force)
    data_dir = trained_data_dir(model, cfg.data_dir)
    decodes = [decode_dir_of(model, name, cfg.lm) for name in SETS]
    locks = [(data_dir, True), (model.parent, True), (data_dir / f"lang_test_{cfg.lm}", True)]
    locks += [(d, True) for d in decodes if d.is_dir()]
    with session(model.parent / "log" / f"package_{cfg.lm}.log", locks):
        got = _gather(cfg, model, data_dir, int(arch.net["input_dim"]))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
        try:
            files = _write(tmp, cfg, state, data_dir, got)
            local = [model.resolve().parent, data_dir.resolve(), got.copies[pk.FBANK].parent]
            written = [pk.ARCH, pk.FEATURES, pk.DECODING, pk.CARD, pk.MANIFEST]
            _check_portable(tmp, written, [p.resolve() for p in local])
            pk.open_package(tmp).load_network()  # read back as transcribe will
            _publish(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log.info("packaged %s into %s", model, out)
    return {
        "out": str(out),
        "files": files,
        "lm_weight": got.decoding.lm_weight,
        "word_penalty": got.decoding.word_penalty,
        "chosen_on": got.decoding.chosen_on,
        "results": {k: v for k, v in got.results.items() if v},
    }
