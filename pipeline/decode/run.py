"""Decoding a set: log-probs → hypotheses per decoding setting (LM weight, word penalty).

The body of the decode stage (:mod:`pipeline.stages.decode`). Per set, the model's log-probs
(optionally kept as ``logits.ark/scp``) are decoded against
``data/<c>/lang_test_<lm>/TLG.fst`` (the graphs stage, :mod:`pipeline.stages.graphs`) by ``nj``
threads → ``decode_<set>_<lm>/hyp/<lm_weight>_<penalty>.txt``. Each utterance is decoded
once into a lattice bounded by ``max_active``, and every (LM weight, word penalty) setting is
a best path through it (:mod:`pipeline.decode.decoder`), as Kaldi's scoring does.

**Tuning.** The tuning set (``tune_set``, ``dev``) is decoded first, at every pair of
``lm_weights`` × ``word_penalties``; its hypotheses are scored at once and the best pair is
written to its ``tuned.json``. Every other set is then decoded **once, at that pair**: test
never sees another setting, let alone chooses one. With ``tune_set=""`` every set gets the
whole grid (the choice is then left to ``stnas score``, still on dev).

**Fresh results.** Each decode dir records the fingerprints of the model, the graph and the
features and the decoding options (:mod:`pipeline.stages.runner`): a finished decode with the same
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
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, cast

import kaldiio
import numpy as np
import torch

from pipeline.config import non_negative, option, positive
from pipeline.data.datadir import read_map, write_map
from pipeline.decode import defaults
from pipeline.decode.decoder import Setting
from pipeline.decode.pool import decode_in_workers
from pipeline.decode.scoring import choose_setting, score_sweep, setting_name
from pipeline.errors import StnasError
from pipeline.io import atomic_write_text
from pipeline.train.checkpoint import load_model
from pipeline.train.data import Batch, Utterance, collate, make_batches

log = logging.getLogger(__name__)
TUNED = "tuned.json"


@dataclass
class DecodeConfig:
    """What ``stnas decode`` needs (see the module docstring)."""

    model: str = option(kind="str", help="retrained model (retrain/avg.pt or best.pt)")
    data_dir: str = option(kind="str", help="prepared data dir")
    sets: List[str] = option(
        kind="list", factory=lambda: ["dev", "test"], help="sets to decode (the tuning set first)"
    )
    lm: str = option("tg", kind="str", help="word LM name: data/<c>/lang_test_<lm>")
    lm_order: Optional[int] = option(
        None,
        kind="int?",
        check=positive,
        allowed=">= 1 or null",
        help="order of an estimated word LM [by its name: ug 1, bg 2, tg 3, fg 4]",
    )
    lm_weights: List[float] = option(
        kind="list",
        factory=lambda: list(defaults.LM_WEIGHTS),
        help="LM weights tried on the tuning set",
    )
    word_penalties: List[float] = option(
        kind="list",
        factory=lambda: list(defaults.WORD_PENALTIES),
        help="word insertion penalties tried with every LM weight",
    )
    tune_set: str = option(
        "dev",
        kind="str",
        help="set that chooses the (LM weight, penalty) pair; '': every set gets the whole grid",
    )
    beam: float = option(
        defaults.BEAM,
        kind="float",
        check=positive,
        allowed="> 0",
        help="search beam (unscaled cost)",
    )
    lattice_beam: float = option(
        defaults.LATTICE_BEAM,
        kind="float",
        check=positive,
        allowed="> 0",
        help="lattice beam (unscaled cost)",
    )
    max_active: int = option(
        defaults.MAX_ACTIVE,
        kind="int",
        check=positive,
        allowed=">= 1",
        unit="tokens",
        help="most active tokens per frame",
    )
    nj: int = option(1, kind="int", check=positive, allowed=">= 1", help="decoding processes")
    device: str = option("cpu", kind="str", help="device of the forward pass")
    num_threads: int = option(
        0,
        kind="int",
        check=non_negative,
        allowed=">= 0 (0: automatic)",
        help="torch threads of the forward pass",
    )
    write_logits: bool = option(False, kind="bool", help="keep the log-probs as logits.ark/scp")
    progress: bool = option(True, kind="bool", help="progress bar on a terminal")

    def grid(self) -> List[Setting]:
        """Every (LM weight, word penalty) pair of the tuning sweep."""
        return [(float(w), float(p)) for w in self.lm_weights for p in self.word_penalties]


def model_logprobs(
    model_path: Path, feats_scp: Path, device: str = "cpu", max_frames: int = 20000
) -> Iterator[Tuple[str, np.ndarray]]:
    """(utt, (T', K) float32 log-probs) for every utterance of ``feats_scp``, in its order."""
    net, _, _ = load_model(model_path, torch.device(device))
    entries = read_map(feats_scp)
    utts = [
        Utterance(u, rx, int(kaldiio.load_mat(rx).shape[0]), (), u) for u, rx in entries.items()
    ]
    batches = make_batches(utts, max_frames, 64, seed=0, epoch=0, shuffle=False)
    out: Dict[str, np.ndarray] = {}
    with torch.no_grad():
        for b in batches:
            batch: Batch = collate([utts[i] for i in b]).to(torch.device(device))
            log_probs, lengths = net(batch.feats, batch.lengths)
            for k, utt in enumerate(batch.utts):
                out[utt] = log_probs[k, : int(lengths[k])].float().cpu().numpy()
    for utt in entries:
        yield utt, out[utt]


def decode_dir_of(model: Path, name: str, lm: str) -> Path:
    """``<model dir>/decode_<set>_<lm>``."""
    return Path(model).parent / f"decode_{name}_{lm}"


def read_tuned(tune_dir: Path) -> Setting:
    """The (LM weight, word penalty) chosen on the tuning set (its ``tuned.json``)."""
    path = tune_dir / TUNED
    if not path.is_file():
        raise StnasError(
            f"{path}: missing: decode the tuning set first (--sets dev,test); "
            "other sets are decoded only at the setting it chooses"
        )
    info = json.loads(path.read_text())
    return float(info["lm_weight"]), float(info["word_penalty"])


def tune(cfg: DecodeConfig, out: Path, hyps: Dict[Setting, Dict[str, List[str]]]) -> dict:
    """Score the tuning set's sweep and write ``tuned.json`` with the best pair."""
    ref = read_map(Path(cfg.data_dir) / cfg.tune_set / "text", allow_empty_value=True)
    results = score_sweep(ref, hyps, out)
    best = choose_setting(results)
    info = {
        "set": cfg.tune_set,
        "lm_weight": best[0],
        "word_penalty": best[1],
        "wer": round(results[best].wer, 4),
        "grid": {setting_name(k): round(r.wer, 4) for k, r in sorted(results.items())},
    }
    atomic_write_text(out / TUNED, json.dumps(info, indent=2) + "\n")
    log.info(
        "tuned on %s: LM weight %g, word penalty %g (%%WER %.2f)",
        cfg.tune_set,
        best[0],
        best[1],
        results[best].wer,
    )
    return info


def decode_one(
    cfg: DecodeConfig,
    name: str,
    model: Path,
    feats: Path,
    lang_test: Path,
    graph_k: int,
    settings: List[Setting],
    out: Path,
) -> Tuple[dict, Dict[Setting, Dict[str, List[str]]]]:
    """Forward pass and search of one set; writes ``hyp/`` and ``decode_info.json``; returns
    the info and the hypotheses (setting → utt → words)."""
    t0 = time.perf_counter()
    mats = list(model_logprobs(model, feats, cfg.device))
    forward_s = time.perf_counter() - t0
    if mats and mats[0][1].shape[1] != graph_k:
        raise StnasError(
            f"{model} outputs {mats[0][1].shape[1]} units but "
            f"{lang_test / 'TLG.fst'} was built for {graph_k} (units.txt)"
        )
    if cfg.write_logits:
        with kaldiio.WriteHelper(f"ark,scp:{out / 'logits.ark'},{out / 'logits.scp'}") as w:
            for utt, m in mats:
                w(utt, m)
    dconf = {"beam": cfg.beam, "lattice_beam": cfg.lattice_beam, "max_active": cfg.max_active}
    nj = max(1, min(cfg.nj, len(mats)))
    t0 = time.perf_counter()
    found, shards = decode_in_workers(
        mats,
        settings,
        lang_test,
        dconf,
        nj,
        f"decode {name} ({len(settings)} settings)",
        cfg.progress,
    )
    wall = time.perf_counter() - t0
    hyps = cast(Dict[Setting, Dict[str, List[str]]], found)  # keyed by the settings given
    decode_s = sum(r.rtf.seconds for r in shards)
    audio_s = sum(r.rtf.audio_seconds for r in shards)
    frames = sum(r.rtf.frames for r in shards)
    for s, h in hyps.items():
        write_map(
            out / "hyp" / f"{setting_name(s)}.txt", {u: " ".join(words) for u, words in h.items()}
        )
    info = {
        "set": name,
        "utterances": len(mats),
        "lm": cfg.lm,
        "settings": [list(s) for s in settings],
        "audio_seconds": audio_s,
        "forward_seconds": round(forward_s, 3),
        "decode_cpu_seconds": round(decode_s, 3),
        "decode_wall_seconds": round(wall, 3),
        "rtf_per_core": decode_s / max(audio_s, 1e-9),
        "nj": nj,
        "not_final": [u for r in shards for u in r.not_final],
        "tokens_per_frame": round(sum(r.tokens for r in shards) / max(frames, 1), 1),
        "max_frame_tokens": max((r.max_frame_tokens for r in shards), default=0),
        "config": asdict(cfg),
        "model": str(model),
        "lang_test": str(lang_test),
    }
    atomic_write_text(out / "decode_info.json", json.dumps(info, indent=2) + "\n")
    log.info(
        "decoded %s: %d utterances at %d settings, RTF per core %.4f (search only)",
        name,
        len(mats),
        len(settings),
        info["rtf_per_core"],
    )
    return info, hyps
