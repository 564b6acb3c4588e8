"""Decoding in ``nj`` worker processes, each holding the graph once.

The workers import neither torch nor the model: they get (utt, log-probs) shards and return
hypotheses, so a worker starts in the time it takes to read ``TLG.fst``.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from tqdm import tqdm

from pipeline.children import die_with_parent
from pipeline.decode.decoder import Decoder, DecoderConfig, Setting
from pipeline.decode.defaults import OUTPUT_FRAME_SHIFT_S
from pipeline.decode.sweep import decode_set
from pipeline.progress import on_terminal

Shard = List[Tuple[str, np.ndarray]]
_WORKER: Dict[str, Decoder] = {}


def _init_worker(lang_test: str, config: dict, parent_pid: int) -> None:
    die_with_parent(parent_pid)
    _WORKER["decoder"] = Decoder.from_lang_test(lang_test, DecoderConfig(**config))


def _decode_shard(args: Tuple[Shard, List[Setting], str]):
    shard, settings, method = args
    res = decode_set(
        _WORKER["decoder"], shard, settings, method, frame_shift_s=OUTPUT_FRAME_SHIFT_S
    )
    return res.hyps, res.rtf.summary(), res.not_final


def decode_in_workers(
    mats: Shard,
    settings: List[Setting],
    method: str,
    lang_test: Path,
    dconf: dict,
    nj: int,
    desc: str,
    progress: bool = True,
):
    """Decode ``mats`` (utt, (T', K) log-probs) at every setting in ``nj`` processes.

    Returns:
        (hyps: setting → utt → words, search CPU seconds, audio seconds, utterances that
        reached no final state, wall seconds).
    """
    shards = [(mats[j::nj], settings, method) for j in range(nj)]
    hyps: Dict[Setting, Dict[str, List[str]]] = {s: {} for s in settings}
    decode_s, audio_s, not_final = 0.0, 0.0, []
    t0 = time.perf_counter()
    with (
        ProcessPoolExecutor(
            nj,
            mp_context=get_context("spawn"),
            initializer=_init_worker,
            initargs=(str(lang_test), dconf, os.getpid()),
        ) as pool,
        tqdm(
            total=len(mats), desc=desc, unit="utt", disable=not (progress and on_terminal())
        ) as bar,
    ):
        for shard_hyps, rtf, nf in pool.map(_decode_shard, shards):
            for s, h in shard_hyps.items():
                hyps[s].update(h)
            decode_s += rtf["decode_seconds"]
            audio_s += rtf["audio_seconds"]
            not_final += nf
            bar.update(int(rtf["utterances"]))
    return hyps, decode_s, audio_s, not_final, time.perf_counter() - t0
