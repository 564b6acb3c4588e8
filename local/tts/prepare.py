"""The built-in ``tts`` corpus: synthetic read speech, deterministic from a seed.

Sentences come from ``fortunes`` (see ``sentences.py``), speakers are TTS voices (see
``voices.py``). Train, dev and test have disjoint speakers and disjoint sentences. Audio is
16 kHz mono 16-bit wav under ``<out_dir>/wav/<speaker>/``; generation is parallel and resumable
(an utterance whose wav exists is not synthesised again).
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from local.tts.sentences import FORTUNES_DIR, sentence_pool
from local.tts.voices import Speaker, check_engines, make_extra_speakers, make_speakers, synthesise
from pipeline.data.datadir import write_data_dir
from pipeline.errors import DataError
from pipeline.io import atomic_write_text
from pipeline.lang.lexicon import read_cmudict, read_festival_cmudict, write_lexicon
from pipeline.progress import on_terminal

SPLITS = ("train", "dev", "test")
SECONDS_PER_WORD = 0.32  # measured mean over the voices; used only to size the corpus
SECONDS_PER_UTT = 0.45  # padding and leading/trailing silence


def split_speakers(speakers: List[Speaker], seed: int) -> Dict[str, List[Speaker]]:
    """Disjoint speaker sets: dev 2 espeak + 1 flite, test 2 espeak + 1 flite + 1 festival."""
    rng = random.Random(seed + 1)
    by_engine: Dict[str, List[Speaker]] = {}
    for s in speakers:
        by_engine.setdefault(s.engine, []).append(s)
    for group in by_engine.values():
        rng.shuffle(group)
    esp, fli, fes = by_engine["espeak-ng"], by_engine["flite"], by_engine["festival"]
    dev = esp[:2] + fli[:1]
    test = esp[2:4] + fli[1:2] + fes[:1]
    train = esp[4:] + fli[2:] + fes[1:]
    return {
        "train": sorted(train, key=lambda s: s.id),
        "dev": sorted(dev, key=lambda s: s.id),
        "test": sorted(test, key=lambda s: s.id),
    }


def plan_utterances(
    pool: List[str],
    speakers: Dict[str, List[Speaker]],
    hours: float,
    seed: int,
    shares: Tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> Dict[str, List[Tuple[str, Speaker, str]]]:
    """Choose (utt id, speaker, sentence) per split to reach ``hours`` of estimated audio.

    Sentences are partitioned between splits (no sentence in two splits); within a split they
    are used in a seeded order, cycling only when a split needs more than its partition holds.
    Speakers take turns, so every speaker gets utterances.
    """
    rng = random.Random(seed)
    order = list(pool)
    rng.shuffle(order)
    n_dev = n_test = max(1, len(order) // 10)
    parts = {
        "test": order[:n_test],
        "dev": order[n_test : n_test + n_dev],
        "train": order[n_test + n_dev :],
    }
    plan: Dict[str, List[Tuple[str, Speaker, str]]] = {}
    index = 0
    for split, share in zip(SPLITS, shares):
        target = hours * 3600.0 * share
        spks, sents = speakers[split], parts[split]
        items, total, k = [], 0.0, 0
        while total < target or k < len(spks):
            spk, sent = spks[k % len(spks)], sents[k % len(sents)]
            index += 1
            items.append((f"{spk.id}-{index:06d}", spk, sent))
            total += SECONDS_PER_UTT + SECONDS_PER_WORD * len(sent.split())
            k += 1
        plan[split] = items
    return plan


def write_corpus_text_and_lexicon(out_dir: Path, pool: List[str], lex: Dict[str, list]) -> None:
    """``local/lm/text`` (the whole sentence pool, the word LM's text before dev/test are taken
    out of it) and ``local/dict/lexicon.txt``: every pronunciation of every pool word.

    The lexicon covers the LM's whole possible vocabulary, not just the words of the chosen
    transcripts, so that what the decoder may output depends on the LM text alone.
    """
    words = {w for s in pool for w in s.split()}
    write_lexicon(out_dir / "local" / "dict" / "lexicon.txt", {w: lex[w] for w in words})
    atomic_write_text(out_dir / "local" / "lm" / "text", "".join(s + "\n" for s in pool))


def _synth_one(args) -> Tuple[str, float, Optional[str]]:
    utt, spk, sent, path, rate, seed, snr = args
    try:
        return utt, synthesise(spk, sent, Path(path), rate, seed, snr), None
    except (RuntimeError, OSError, DataError) as e:
        return utt, 0.0, str(e)


def _drop_stale_voices(wav_root: Path, speakers: List[Speaker], settings: dict) -> None:
    """Delete the wavs of a speaker whose voice or synthesis settings are not the ones that
    made them (``wav/speakers.json`` records them), so a changed voice is synthesised again
    instead of reused; then record the present ones."""
    record_path = wav_root / "speakers.json"
    old = json.loads(record_path.read_text()) if record_path.is_file() else {}
    new = {s.id: {**asdict(s), **settings} for s in speakers}
    for spk_id, rec in new.items():
        if old.get(spk_id) != rec and (wav_root / spk_id).is_dir():
            shutil.rmtree(wav_root / spk_id)
    wav_root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(record_path, json.dumps({**old, **new}, indent=1, sort_keys=True))


def prepare(
    corpus_root: Optional[Path],
    out_dir: Path,
    *,
    hours: float = 0.05,
    seed: int = 1,
    nj: int = 1,
    noise_snr_db: float = 0.0,
    sample_rate: int = 16000,
    lexicon: Optional[Path] = None,
    keep_stress: bool = False,
    skip_bad: bool = False,
    progress: bool = True,
    fortunes_dir: Path = FORTUNES_DIR,
    eval_share: float = 0.1,
    extra_train_voices: int = 0,
) -> dict:
    """Build the corpus: wavs, ``train``/``dev``/``test`` data dirs, ``local/dict/lexicon.txt``
    and ``local/lm/text`` (see :func:`write_corpus_text_and_lexicon`).

    Args:
        corpus_root: unused (the corpus is generated); accepted for the common contract.
        out_dir: ``data/tts``.
        hours: total audio to generate (estimated; the real total is returned).
        seed: everything (sentences, speakers, split, noise) follows from it.
        nj: parallel synthesis processes.
        noise_snr_db: add white noise at this SNR (0 = only a −70 dBFS noise floor).
        sample_rate: output rate in Hz.
        lexicon: a CMUdict text file instead of Festival's CMU dictionary.
        keep_stress: keep vowel stress in phones.
        skip_bad: leave out utterances whose synthesis fails (listed) instead of failing.
        progress: show a progress bar.
        eval_share: fraction of ``hours`` for each of dev and test (``--corpus-opt
            eval_share=0.15``); train gets the rest.
        extra_train_voices: this many more espeak-ng speakers with its named voice variants
            (``--corpus-opt extra_train_voices=40``), in the training set only: dev and test
            keep their speakers, sentences and utterance ids.

    Returns:
        ``{"sets": {split: utts}, "hours": {split: h}, "speakers": {split: [ids]}, ...}``
    """
    from tqdm import tqdm

    if hours <= 0:
        raise DataError(f"--hours must be positive, got {hours}")
    missing = check_engines()
    if missing:
        raise DataError(
            "TTS programs missing from PATH: "
            + ", ".join(missing)
            + " (run 'make install', which apt-installs espeak-ng, flite and festival)"
        )
    lex = (
        read_cmudict(lexicon, keep_stress)
        if lexicon
        else read_festival_cmudict(keep_stress=keep_stress)
    )
    pool = sentence_pool(lex, root=fortunes_dir)
    if len(pool) < 30:
        raise DataError(f"only {len(pool)} usable sentences in {fortunes_dir}")
    if not 0.0 < eval_share < 0.5:
        raise DataError(f"eval_share must be in (0, 0.5), got {eval_share}")
    base = make_speakers(seed)
    speakers = split_speakers(base, seed)
    if extra_train_voices:
        try:
            extra = make_extra_speakers(
                seed, extra_train_voices, first_id=sum(s.engine == "espeak-ng" for s in base) + 1
            )
        except ValueError as e:
            raise DataError(f"extra_train_voices: {e}") from None
        speakers["train"] = sorted(speakers["train"] + extra, key=lambda s: s.id)
    plan = plan_utterances(
        pool, speakers, hours, seed, shares=(1.0 - 2 * eval_share, eval_share, eval_share)
    )

    wav_root = (Path(out_dir) / "wav").resolve()
    _drop_stale_voices(
        wav_root,
        [s for items in speakers.values() for s in items],
        {"sample_rate": sample_rate, "noise_snr_db": noise_snr_db, "seed": seed},
    )
    jobs = []
    for items in plan.values():
        for n, (utt, spk, sent) in enumerate(items):
            path = wav_root / spk.id / f"{utt}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_file():
                jobs.append(
                    (utt, spk, sent, str(path), sample_rate, seed * 1000003 + n, noise_snr_db)
                )
    durations: Dict[str, float] = {}
    failed: Dict[str, str] = {}
    if jobs:
        with get_context("fork").Pool(max(1, nj)) as pool_:
            for utt, dur, err in tqdm(
                pool_.imap_unordered(_synth_one, jobs, chunksize=4),
                total=len(jobs),
                desc="tts synthesis",
                unit="utt",
                disable=not (progress and on_terminal()),
                leave=False,
            ):
                if err:
                    failed[utt] = err
                durations[utt] = dur
    if failed and not skip_bad:
        utt = sorted(failed)[0]
        raise DataError(
            f"synthesis failed: {failed[utt]} ({len(failed)} failures in all; "
            "--skip-bad leaves them out)",
            utt=utt,
        )

    info = {
        "sets": {},
        "speakers": {},
        "utterances_synthesised": len(jobs),
        "failed": sorted(failed),
    }
    for split, items in plan.items():
        kept = [(u, s, t) for u, s, t in items if u not in failed]
        write_data_dir(
            Path(out_dir) / split,
            wav_scp={u: str(wav_root / s.id / f"{u}.wav") for u, s, _ in kept},
            text={u: t for u, _, t in kept},
            utt2spk={u: s.id for u, s, _ in kept},
        )
        info["sets"][split] = len(kept)
        info["speakers"][split] = sorted({s.id for _, s, _ in kept})
    write_corpus_text_and_lexicon(Path(out_dir), pool, lex)
    if failed:
        (Path(out_dir) / "bad_utts.txt").write_text(
            "".join(f"{u} {failed[u]}\n" for u in sorted(failed))
        )
    info["sample_rate"] = sample_rate
    return info
