"""The decode stage: log-probs → hypotheses per decoding setting (LM weight, word penalty).

Per set, the model's log-probs (optionally kept as ``logits.ark/scp``) are decoded against
``data/<c>/lang_test_<lm>/TLG.fst`` (built once, :func:`lang_test_dir`) by ``nj`` worker
processes → ``decode_<set>_<lm>/hyp/<lm_weight>_<penalty>.txt``. ``method="lattice"``
decodes one lattice per utterance and penalty and reads every LM weight from it, as Kaldi's
scoring does; ``"redecode"`` runs one ``FasterDecoder`` search per setting (it honours
``max_active``, which the lattice decoder this ``kaldi_decoder`` exposes lacks), and is the
default. ``"auto"`` takes the lattice for the tuning sweep and one search for a set decoded at
one setting: on the demo model 0.32 RTF for the 18 settings against about 0.54 by re-decoding,
with the same best WER (``bench/results/decode.md``); but with no ``max_active`` the lattice
search has no bound on a weak model (a barely trained one, or audio unlike the training data),
where it ran more than 10 times longer.

**Tuning.** The tuning set (``tune_set``, ``dev``) is decoded first, at every pair of
``lm_weights`` × ``word_penalties``; its hypotheses are scored at once and the best pair is
written to its ``tuned.json``. Every other set is then decoded **once, at that pair**: test
never sees another setting, let alone chooses one. With ``tune_set=""`` every set gets the
whole grid (the choice is then left to ``stnas score``, still on dev).

**Fresh results.** Each decode dir records the fingerprints of the model, the graph and the
features and the decoding options (:mod:`pipeline.stage`): a finished decode with the same
ones is skipped, one with others is refused with a message naming what changed, until
``--force``.

Word LM (:mod:`pipeline.lang.lm_data`): WSJ uses the corpus's own ARPA LMs; ``tts``, SWBD and
your own data estimate a Kneser-Ney trigram on text that holds no dev/test sentence nor a
near-copy of one. The decoding vocabulary is the LM's: lexicon words the LM does not know are
not in the graph, and each scored set's OOV rate is measured against it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import numpy as np

from pipeline.data.datadir import read_map, write_map
from pipeline.children import die_with_parent
from pipeline.decode.decoder import Decoder, DecoderConfig, Setting, decode_set
from pipeline.decode.scoring import setting_name
from pipeline.errors import DataError, StaleResultError, StnasError
from pipeline.locks import dir_locks
from pipeline.logfile import stage_log
from pipeline.progress import on_terminal
from pipeline.stage import StageDir, atomic_write_text, input_fingerprints

log = logging.getLogger(__name__)
FRAME_SHIFT_S = 0.01
TUNED = "tuned.json"


@dataclass
class DecodeConfig:
    """What ``stnas decode`` needs (see the module docstring)."""

    model: str
    data_dir: str
    sets: List[str] = field(default_factory=lambda: ["dev", "test"])
    lm: str = "tg"
    lm_order: int = 3
    lm_weights: List[float] = field(default_factory=lambda: [0.3, 0.5, 0.7, 1.0, 1.5, 2.0])
    word_penalties: List[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    tune_set: str = "dev"
    beam: float = 17.0
    lattice_beam: float = 8.0
    max_active: int = 7000
    method: str = "redecode"   # redecode: FasterDecoder per setting (has max_active);
    #                            lattice: one LatticeSimpleDecoder lattice per penalty;
    #                            auto: lattice where a penalty has several weights
    nj: int = 1
    device: str = "cpu"
    num_threads: int = 0       # torch threads of the forward pass (pipeline/threads.py)
    write_logits: bool = False
    progress: bool = True

    def grid(self) -> List[Setting]:
        """Every (LM weight, word penalty) pair of the tuning sweep."""
        return [(float(w), float(p)) for w in self.lm_weights for p in self.word_penalties]


def lang_test_dir(data_dir: Path, lm: str, order: int = 3) -> Path:
    """``data/<c>/lang_test_<lm>`` with its TLG, built when missing or out of date."""
    from pipeline.lang.graphs import build_lang_test
    from pipeline.lang.lm_data import word_lm_arpa

    out = data_dir / f"lang_test_{lm}"
    info = build_lang_test(data_dir / "lang", word_lm_arpa(data_dir, lm, order), out)
    if not info.get("skipped"):
        log.info("built %s: TLG %s", out / "TLG.fst", info["TLG"])
    return out


def model_logprobs(model_path: Path, feats_scp: Path, device: str = "cpu",
                   max_frames: int = 20000) -> Iterator[Tuple[str, np.ndarray]]:
    """(utt, (T', K) float32 log-probs) for every utterance of ``feats_scp``, in its order."""
    import kaldiio
    import torch

    from pipeline.train.data import Batch, Utterance, collate, make_batches
    from pipeline.train.stages import load_model

    net, _, _ = load_model(model_path, torch.device(device))
    entries = read_map(feats_scp)
    utts = [Utterance(u, rx, int(kaldiio.load_mat(rx).shape[0]), (), u) for u, rx in
            entries.items()]
    batches = make_batches(utts, max_frames, 64, seed=0, epoch=0, shuffle=False)
    out: Dict[str, np.ndarray] = {}
    with torch.no_grad():
        for b in batches:
            batch: Batch = collate([utts[i] for i in b]).to(torch.device(device))
            log_probs, lengths = net(batch.feats, batch.lengths)
            for k, utt in enumerate(batch.utts):
                out[utt] = log_probs[k, :int(lengths[k])].float().cpu().numpy()
    for utt in entries:
        yield utt, out[utt]


_WORKER: Dict[str, Decoder] = {}


def _init_worker(lang_test: str, config: dict, parent_pid: int) -> None:
    die_with_parent(parent_pid)
    _WORKER["decoder"] = Decoder.from_lang_test(lang_test, DecoderConfig(**config))


def _decode_shard(args: Tuple[List[Tuple[str, np.ndarray]], List[Setting], str]):
    shard, settings, method = args
    res = decode_set(_WORKER["decoder"], shard, settings, method,
                     frame_shift_s=3 * FRAME_SHIFT_S)
    return res.hyps, res.rtf.summary(), res.not_final


def decode_dir_of(model: Path, name: str, lm: str) -> Path:
    """``<model dir>/decode_<set>_<lm>``."""
    return Path(model).parent / f"decode_{name}_{lm}"


def read_tuned(tune_dir: Path) -> Setting:
    """The (LM weight, word penalty) chosen on the tuning set (its ``tuned.json``)."""
    path = tune_dir / TUNED
    if not path.is_file():
        raise StnasError(f"{path}: missing: decode the tuning set first (--sets dev,test); "
                         "other sets are decoded only at the setting it chooses")
    info = json.loads(path.read_text())
    return float(info["lm_weight"]), float(info["word_penalty"])


def _tune(cfg: DecodeConfig, out: Path, hyps: Dict[Setting, Dict[str, List[str]]]) -> dict:
    """Score the tuning set's sweep and write ``tuned.json`` with the best pair."""
    from pipeline.decode.scoring import choose_setting, score_sweep

    ref = read_map(Path(cfg.data_dir) / cfg.tune_set / "text", allow_empty_value=True)
    results = score_sweep(ref, hyps, out)
    best = choose_setting(results)
    info = {"set": cfg.tune_set, "lm_weight": best[0], "word_penalty": best[1],
            "wer": round(results[best].wer, 4),
            "grid": {setting_name(k): round(r.wer, 4) for k, r in sorted(results.items())}}
    atomic_write_text(out / TUNED, json.dumps(info, indent=2) + "\n")
    log.info("tuned on %s: LM weight %g, word penalty %g (%%WER %.2f)", cfg.tune_set, best[0],
             best[1], results[best].wer)
    return info


def run_decode(cfg: DecodeConfig, force: bool = False) -> Dict[str, dict]:
    """Decode every set of ``cfg.sets`` (the tuning set first); per-set info (RTF, paths).

    Raises:
        StaleResultError: a finished decode whose inputs or options changed (without force).
        StnasError: a set other than the tuning set, with no tuning decode to take the setting
            from.
    """
    data_dir, model = Path(cfg.data_dir), Path(cfg.model)
    if not model.is_file():
        raise DataError("model not found (run 'stnas retrain')", model)
    locks = [(decode_dir_of(model, name, cfg.lm), False) for name in cfg.sets]
    with dir_locks((data_dir, True), (model.parent, True), *locks, what=" ".join(sys.argv)), \
            stage_log(model.parent / "log" / f"decode_{cfg.lm}.log"):
        return _run_decode(cfg, data_dir, model, force)


def _run_decode(cfg: DecodeConfig, data_dir: Path, model: Path, force: bool) -> Dict[str, dict]:
    from pipeline.threads import pin_threads

    pin_threads(cfg.num_threads)
    lang_test = lang_test_dir(data_dir, cfg.lm, cfg.lm_order)
    graph_k = json.loads((lang_test / "graph_info.json").read_text())["num_units"]
    sets = sorted(cfg.sets, key=lambda s: s != cfg.tune_set)  # the tuning set first
    built_from = input_fingerprints({"model": model, "graph": lang_test / "TLG.fst"})
    summary: Dict[str, dict] = {}
    for name in sets:
        feats = data_dir / name / "feats.scp"
        if not feats.is_file():
            raise DataError("missing (run 'stnas prep')", feats)
        out = decode_dir_of(model, name, cfg.lm)
        tuning = not cfg.tune_set or name == cfg.tune_set
        settings = cfg.grid() if tuning else \
            [read_tuned(decode_dir_of(model, cfg.tune_set, cfg.lm))]
        inputs = {**built_from, **input_fingerprints({"features": feats})}
        options = {"lm": cfg.lm, "settings": [list(s) for s in settings], "beam": cfg.beam,
                   "lattice_beam": cfg.lattice_beam, "max_active": cfg.max_active,
                   "method": cfg.method}
        sd = StageDir(out, force=force)
        if sd.is_done("decode"):
            changed = sd.changes(inputs, options)
            if changed:
                raise StaleResultError(
                    f"{out} was decoded from other inputs or with other options "
                    f"({'; '.join(changed)}); rerun with --force to decode it again")
            log.info("%s is decoded and up to date", out)
            summary[name] = {**json.loads((out / "decode_info.json").read_text()),
                             "up_to_date": True}
            continue
        if force:
            sd.reset()
        sd.record_inputs(inputs, options)
        summary[name], hyps = _decode_one(cfg, name, model, feats, lang_test, graph_k, settings,
                                          out)
        if tuning and cfg.tune_set:
            summary[name]["tuned"] = _tune(cfg, out, hyps)
        sd.write_stage_json("stnas decode", None, fingerprints=inputs, options=options,
                            extra={"summary": {k: v for k, v in summary[name].items()
                                               if k != "config"}})
        sd.mark_done("decode")
    return summary


def _decode_one(cfg: DecodeConfig, name: str, model: Path, feats: Path, lang_test: Path,
                graph_k: int, settings: List[Setting], out: Path
                ) -> Tuple[dict, Dict[Setting, Dict[str, List[str]]]]:
    """Forward pass and search of one set; writes ``hyp/`` and ``decode_info.json``; returns
    the info and the hypotheses (setting → utt → words)."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    mats = list(model_logprobs(model, feats, cfg.device))
    forward_s = time.perf_counter() - t0
    if mats and mats[0][1].shape[1] != graph_k:
        raise StnasError(f"{model} outputs {mats[0][1].shape[1]} units but "
                         f"{lang_test / 'TLG.fst'} was built for {graph_k} (units.txt)")
    if cfg.write_logits:
        import kaldiio

        with kaldiio.WriteHelper(f"ark,scp:{out / 'logits.ark'},{out / 'logits.scp'}") as w:
            for utt, m in mats:
                w(utt, m)
    dconf = {"beam": cfg.beam, "lattice_beam": cfg.lattice_beam, "max_active": cfg.max_active}
    nj = max(1, min(cfg.nj, len(mats)))
    shards = [(mats[j::nj], settings, cfg.method) for j in range(nj)]
    hyps: Dict[Setting, Dict[str, List[str]]] = {s: {} for s in settings}
    decode_s, audio_s, not_final = 0.0, 0.0, []
    t0 = time.perf_counter()
    with ProcessPoolExecutor(nj, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(str(lang_test), dconf, os.getpid())) as pool, \
            tqdm(total=len(mats), desc=f"decode {name} ({len(settings)} settings)", unit="utt",
                 disable=not (cfg.progress and on_terminal())) as bar:
        for shard_hyps, rtf, nf in pool.map(_decode_shard, shards):
            for s, h in shard_hyps.items():
                hyps[s].update(h)
            decode_s += rtf["decode_seconds"]
            audio_s += rtf["audio_seconds"]
            not_final += nf
            bar.update(int(rtf["utterances"]))
    wall = time.perf_counter() - t0
    for s, h in hyps.items():
        write_map(out / "hyp" / f"{setting_name(s)}.txt",
                  {u: " ".join(words) for u, words in h.items()})
    info = {"set": name, "utterances": len(mats), "lm": cfg.lm,
            "settings": [list(s) for s in settings], "audio_seconds": audio_s,
            "forward_seconds": round(forward_s, 3), "decode_cpu_seconds": round(decode_s, 3),
            "decode_wall_seconds": round(wall, 3),
            "rtf_per_core": decode_s / max(audio_s, 1e-9), "nj": nj, "not_final": not_final,
            "config": asdict(cfg), "model": str(model), "lang_test": str(lang_test)}
    atomic_write_text(out / "decode_info.json", json.dumps(info, indent=2) + "\n")
    log.info("decoded %s: %d utterances at %d settings, RTF per core %.4f (search only)", name,
             len(mats), len(settings), info["rtf_per_core"])
    return info, hyps
