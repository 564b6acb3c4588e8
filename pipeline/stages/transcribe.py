"""Transcribe audio with a retrained model: wav files, a ``wav.scp`` or a directory → text and
CTM (word times from the best path).

The model is a package (``stnas package``, :mod:`pipeline.decode.package`), which holds
everything used here, or a ``retrain/avg.pt`` read with the data dir it was trained on.
Features are made as ``stnas prep`` makes them (the fbank config, CMVN, Δ+ΔΔ), with CMVN per
speaker when ``utt2spk`` is given and per utterance otherwise; audio at another sample rate
than the fbank config's is refused, or resampled with sox (``resample=True``). Decoding uses
the package's ``TLG.fst`` (a ``.pt`` model: the data dir's ``lang_test_<lm>/TLG.fst``) at the
LM weight and word penalty the model's dev decode chose (the package's ``decoding.json``,
else ``decode_dev_<lm>/tuned.json``), or the given ones.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from pipeline.config import read_yaml_mapping
from pipeline.data.audio import read_audio
from pipeline.data.cmvn import apply_cmvn, cmvn_stats
from pipeline.data.datadir import read_map
from pipeline.data.deltas import add_deltas
from pipeline.data.fbank import FbankExtractor
from pipeline.data.layout import fbank_conf_of
from pipeline.data.rates import resample as resample_audio
from pipeline.decode import defaults
from pipeline.decode.decoder import Decoder, DecoderConfig
from pipeline.decode.package import FeatureSpec, PackageError, open_package
from pipeline.decode.run import decode_dir_of, read_tuned
from pipeline.errors import DataError, StnasError
from pipeline.io import atomic_write_text
from pipeline.stages.graphs import lang_test_dir
from pipeline.train.checkpoint import load_model

log = logging.getLogger(__name__)
AUDIO_SUFFIXES = (".wav", ".sph", ".WAV")
DEFAULT_LM = "tg"


@dataclass
class TranscribeConfig:
    """What ``stnas transcribe`` needs (see the module docstring)."""

    model: str  # a package dir, or retrain/avg.pt
    inputs: List[str]
    data_dir: Optional[str] = None  # [the retrain's data dir] (a .pt model only)
    lm: Optional[str] = None  # [the package's; tg]
    lm_weight: Optional[float] = None  # [decoding.json or decode_dev_<lm>/tuned.json, else 1.0]
    word_penalty: Optional[float] = None  # [the same, else 0.0]
    utt2spk: Optional[str] = None
    resample: bool = False
    beam: Optional[float] = None  # [the package's, else defaults.BEAM]
    max_active: Optional[int] = None  # [the package's, else defaults.MAX_ACTIVE]
    nj: int = 1
    device: str = "cpu"
    channel: Optional[int] = None
    out_dir: Optional[str] = None


@dataclass
class Recogniser:
    """A network, how its features are made, its graph and its decoding setting."""

    net: torch.nn.Module
    features: FeatureSpec
    decoder: Decoder
    setting: Tuple[float, float]  # (LM weight, word penalty)
    origin: str  # of the setting: "chosen on dev", "given when packaged", "default"


def resolve_inputs(inputs: Sequence[str]) -> Dict[str, str]:
    """utt id → wav.scp entry for audio files, ``wav.scp`` files and directories.

    Raises:
        StnasError: nothing to transcribe, an input that does not exist, a repeated id.
    """
    out: Dict[str, str] = {}

    def add(utt: str, entry: str, where: str) -> None:
        if utt in out:
            raise StnasError(f"{where}: utterance id '{utt}' given twice")
        out[utt] = entry

    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix in AUDIO_SUFFIXES)
            if not files:
                raise StnasError(f"{p}: no .wav or .sph files in this directory")
            for f in files:
                add(f.stem, str(f), str(p))
        elif p.is_file() and (p.suffix == ".scp" or p.name == "wav.scp"):
            for utt, entry in read_map(p).items():
                add(utt, entry, str(p))
        elif p.is_file():
            add(p.stem, str(p), str(p))
        else:
            raise StnasError(f"{item}: no such file or directory")
    if not out:
        raise StnasError("nothing to transcribe")
    return out


def trained_data_dir(model: Path, data_dir: Optional[str] = None) -> Path:
    """The prepared data dir of a retrained model: ``data_dir``, else the one its stage
    recorded (``config.yaml`` next to it).

    Raises:
        StnasError: no record to find it by, or not a prepared data dir here.
    """
    cfg_file = model.parent / "config.yaml"
    if data_dir is None:
        if not cfg_file.is_file():
            raise StnasError(
                f"{model}: no config.yaml next to it to find its data dir; give --data-dir"
            )
        data_dir = str(read_yaml_mapping(cfg_file, "stage config").get("data_dir"))
    if not (Path(data_dir) / "config.yaml").is_file():
        raise StnasError(
            f"{data_dir}: the model's data dir (recorded in {cfg_file}) is not a "
            "prepared data dir from here; give --data-dir"
        )
    return Path(data_dir)


def _model_defaults(
    model: Path, data_dir: Optional[str], lm: str
) -> Tuple[Path, Tuple[float, float], bool]:
    tune_dir = decode_dir_of(model, "dev", lm)
    if (tune_dir / "tuned.json").is_file():
        return trained_data_dir(model, data_dir), read_tuned(tune_dir), True
    return trained_data_dir(model, data_dir), (1.0, 0.0), False


def _from_package(cfg: TranscribeConfig) -> Recogniser:
    model = Path(cfg.model)
    if cfg.data_dir is not None:
        raise StnasError(
            f"{model}: a model package holds its own graph and features; --data-dir is for "
            "a .pt model"
        )
    pkg = open_package(model)
    if cfg.lm is not None and cfg.lm != pkg.decoding.lm:
        raise StnasError(f"{model}: the package's graph is built with LM '{pkg.decoding.lm}'")
    net = pkg.load_network(torch.device(cfg.device))
    dconf = DecoderConfig(
        beam=pkg.decoding.beam if cfg.beam is None else cfg.beam,
        max_active=pkg.decoding.max_active if cfg.max_active is None else cfg.max_active,
    )
    chosen = pkg.decoding.chosen_on
    origin = "given when packaged" if chosen == "given" else f"chosen on {chosen}"
    return Recogniser(net, pkg.features, pkg.decoder(dconf), pkg.setting(), origin)


def _from_checkpoint(cfg: TranscribeConfig) -> Recogniser:
    model = Path(cfg.model)
    if not model.is_file():
        raise DataError("model not found", model)
    net, arch, _ = load_model(model, torch.device(cfg.device))  # first: refuses unsafe files
    lm = cfg.lm or DEFAULT_LM
    data_dir, tuned, from_dev = _model_defaults(model, cfg.data_dir, lm)
    fbank_conf = str(fbank_conf_of(data_dir))
    spec = FeatureSpec(
        fbank_conf, FbankExtractor(fbank_conf).sample_rate, int(arch.net["input_dim"])
    )
    dconf = DecoderConfig(
        beam=defaults.BEAM if cfg.beam is None else cfg.beam,
        max_active=defaults.MAX_ACTIVE if cfg.max_active is None else cfg.max_active,
    )
    decoder = Decoder.from_lang_test(lang_test_dir(data_dir, lm), dconf)
    return Recogniser(net, spec, decoder, tuned, "chosen on dev" if from_dev else "default")


def recogniser(cfg: TranscribeConfig) -> Recogniser:
    """The network, features, graph and setting of ``cfg.model`` (a package or a ``.pt``).

    Raises:
        PackageError: a package that is damaged or changed since it was made.
        StnasError: a ``.pt`` file that is unsafe to load, or whose data dir is not here.
    """
    return _from_package(cfg) if Path(cfg.model).is_dir() else _from_checkpoint(cfg)


def _audio(entry: str, utt: str, rate: int, resample: bool, channel: Optional[int]) -> np.ndarray:
    got, x = read_audio(entry, utt, channel)
    if got == rate:
        return x
    if not resample:
        raise DataError(
            f"sample rate {got} Hz, but the model's features need {rate} Hz "
            "(add --resample to convert it with sox)",
            utt=utt,
        )

    return resample_audio(x, got, rate, utt)


def features(
    entries: Dict[str, str],
    spec: FeatureSpec,
    utt2spk: Optional[Dict[str, str]],
    resample: bool = False,
    channel: Optional[int] = None,
) -> Dict[str, np.ndarray]:
    """utt → (T, input_dim) features as prep makes them (CMVN per speaker or utterance)."""
    fb = FbankExtractor(spec.fbank_conf)
    if fb.sample_rate != spec.sample_rate:
        raise PackageError(
            f"{spec.fbank_conf}: {fb.sample_rate} Hz, but the features are described at "
            f"{spec.sample_rate} Hz"
        )
    raw = {
        utt: fb(_audio(e, utt, fb.sample_rate, resample, channel), fb.sample_rate, utt)
        for utt, e in entries.items()
    }
    groups: Dict[str, List[str]] = {}
    for utt in raw:
        spk = utt2spk.get(utt) if utt2spk else utt
        if spk is None:
            raise DataError("not in utt2spk", utt=utt)
        groups.setdefault(spk, []).append(utt)
    out = {}
    for utts in groups.values():
        stats = cmvn_stats(raw[u] for u in utts)
        for u in utts:
            normed = apply_cmvn(raw[u], stats, spec.norm_vars)
            out[u] = add_deltas(normed, spec.delta_order, spec.delta_window)
    return out


def _decode_timed(decoder: Decoder, logprobs: np.ndarray, weight: float, penalty: float):
    """(words, word times, CPU seconds of the search) of one utterance."""
    t0 = time.thread_time()
    hyp, timed = decoder.best_path_timed(logprobs, weight, penalty)
    return hyp.words, timed, time.thread_time() - t0


def transcribe(cfg: TranscribeConfig) -> Dict[str, dict]:
    """Transcribe ``cfg.inputs``; utt → {"words", "times"}; writes ``text`` and ``ctm`` into
    ``cfg.out_dir`` when given."""

    rec = recogniser(cfg)
    weight = cfg.lm_weight if cfg.lm_weight is not None else rec.setting[0]
    penalty = cfg.word_penalty if cfg.word_penalty is not None else rec.setting[1]
    given = cfg.lm_weight is not None or cfg.word_penalty is not None
    log.info(
        "LM weight %g, word penalty %g (%s)", weight, penalty, "given" if given else rec.origin
    )
    entries = resolve_inputs(cfg.inputs)
    utt2spk = read_map(cfg.utt2spk) if cfg.utt2spk else None
    feats = features(entries, rec.features, utt2spk, cfg.resample, cfg.channel)
    logprobs = {}
    with torch.no_grad():
        for utt, f in feats.items():
            x = torch.from_numpy(f).to(cfg.device)[None]
            lp, n = rec.net(x, torch.tensor([x.shape[1]], device=cfg.device))
            logprobs[utt] = lp[0, : int(n[0])].float().cpu().numpy()
    decoder = rec.decoder
    with ThreadPoolExecutor(max(1, cfg.nj)) as pool:  # the search releases the GIL
        found = list(
            pool.map(lambda u: _decode_timed(decoder, logprobs[u], weight, penalty), entries)
        )
    results = [(u, words, timed) for u, (words, timed, _) in zip(entries, found)]
    shift = rec.features.output_frame_shift_s
    audio = sum(len(m) for m in logprobs.values()) * shift
    log.info(
        "decoded %d utterances (%.1f s of audio): RTF per core %.4f (search only)",
        len(results),
        audio,
        sum(cpu for _, _, cpu in found) / max(audio, 1e-9),
    )
    out: Dict[str, Dict[str, Any]] = {
        utt: {
            "words": words,
            "times": [(w, a * shift, (b - a) * shift) for w, a, b in timed],
        }
        for utt, words, timed in results
    }
    if cfg.out_dir:
        d = Path(cfg.out_dir)
        atomic_write_text(
            d / "text", "".join(f"{u} {' '.join(r['words'])}\n" for u, r in out.items())
        )
        atomic_write_text(
            d / "ctm",
            "".join(
                f"{u} 1 {s:.2f} {dur:.2f} {w}\n" for u, r in out.items() for w, s, dur in r["times"]
            ),
        )
    return out
