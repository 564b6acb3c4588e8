"""Decoding a set in ``nj`` threads that share one graph.

The lattice decoder releases the GIL while it searches, so threads decode in parallel; the
graph is read once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from pipeline.decode.decoder import Decoder, DecoderConfig, SettingKey
from pipeline.decode.defaults import OUTPUT_FRAME_SHIFT_S
from pipeline.decode.sweep import SweepResult, decode_set
from pipeline.progress import on_terminal

Shard = List[Tuple[str, np.ndarray]]


def decode_in_workers(
    mats: Shard,
    settings: Sequence[SettingKey],
    lang_test: Path,
    dconf: dict,
    nj: int,
    desc: str,
    progress: bool = True,
) -> Tuple[Dict[SettingKey, Dict[str, List[str]]], List[SweepResult]]:
    """Decode ``mats`` (utt, (T', K) log-probs) at every setting in ``nj`` threads.

    Returns:
        (hyps: setting → utt → words, the shards' results: speed, token counts, utterances
        that reached no final state).
    """
    decoder = Decoder.from_lang_test(lang_test, DecoderConfig(**dconf))
    shards = [mats[j::nj] for j in range(nj)]
    hyps: Dict[SettingKey, Dict[str, List[str]]] = {s: {} for s in settings}
    results: List[SweepResult] = []
    with (
        ThreadPoolExecutor(nj) as pool,
        tqdm(
            total=len(mats), desc=desc, unit="utt", disable=not (progress and on_terminal())
        ) as bar,
    ):
        for res in pool.map(
            lambda shard: decode_set(decoder, shard, settings, OUTPUT_FRAME_SHIFT_S), shards
        ):
            for s, h in res.hyps.items():
                hyps[s].update(h)
            results.append(res)
            bar.update(res.rtf.utterances)
    return hyps, results
