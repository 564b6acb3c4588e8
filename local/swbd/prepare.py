"""Data preparation for Switchboard-1 (LDC97S62) with Hub5 eval2000 as test set.

Kaldi's swbd1_data_prep.sh / eval2000_data_prep.sh semantics: one speaker per conversation
side (``sw02001-A``), recordings read as ``sph2pipe -f wav -p -c 1|2 FILE |`` (8 kHz),
utterance ids ``<side>_<start cs>-<end cs>`` (``sw02001-A_000098-001156``) with a ``segments``
file of the transcript times. ``train`` is Switchboard minus ``dev``, the first ``dev_utts``
utterances in C order (Kaldi's ``subset_data_dir.sh --first 4000``), extended to the end of the
conversation side the cut falls in, so no side is in both. ``test`` is eval2000: the scored
segments of the stm (its ``IGNORE_TIME_SEGMENT`` regions left out), with ``stm`` and ``glm``
kept in ``test/`` for sclite. Every set also gets ``reco2file_and_channel`` for ctm scoring.

Example:
    >>> prepare(Path("/corpora"), Path("data/swbd"))  # doctest: +SKIP
    {'sets': {'train': 259890, 'dev': 4000, 'test': 4458}, 'sample_rate': 8000, ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from local.ldc_common import (
    BadUtts,
    build_lexicon,
    load_dictionary,
    oov_note,
    shorten_note,
    sph2pipe_entry,
    write_dict,
    write_set,
)
from local.swbd import layout
from local.swbd.layout import LAYOUT_HELP, Segment
from local.swbd.normalize import SPECIALS, normalize_ms98, normalize_stm
from pipeline.data.datadir import c_sort_key, write_map
from pipeline.errors import DataError
from pipeline.io import atomic_path

SAMPLE_RATE = 8000
_CHANNEL = {"A": 1, "B": 2}
# utterance id → (conversation, side, start cs, end cs, text)
Utts = Dict[str, Tuple[str, str, int, int, str]]


def _centi(seconds: float) -> int:
    """Seconds → centiseconds, rounded half up as Kaldi's swbd prep does."""
    return int(100 * seconds + 0.5)


def _collect(
    segments: Iterable[Segment],
    audio: Mapping[str, Path],
    normalize: Callable[[List[str]], List[str]],
    bad: BadUtts,
) -> Tuple[Utts, int]:
    """Utterances of transcript segments; returns them and the number left without words."""
    utts: Utts = {}
    empty = 0
    for seg in segments:
        words = normalize(seg.words)
        if not words:
            empty += 1
            continue
        start, end = _centi(seg.start), _centi(seg.end)
        utt = f"{seg.conv}-{seg.side}_{start:06d}-{end:06d}"
        if seg.conv not in audio:
            bad.report(
                utt,
                "missing-audio",
                f"transcript refers to conversation {seg.conv} "
                "but its audio (.sph) is not in the corpus",
                seg.path,
                seg.line,
            )
        elif end <= start:
            bad.report(
                utt,
                "bad-segment",
                f"segment end {seg.end} is not after its start {seg.start}",
                seg.path,
                seg.line,
            )
        elif utt in utts:
            bad.report(
                utt,
                "duplicate-id",
                "another segment has the same side and times",
                seg.path,
                seg.line,
            )
        else:
            utts[utt] = (seg.conv, seg.side, start, end, " ".join(words))
    return utts, empty


def _write(data_dir: Path, utts: Utts, ids: List[str], audio: Mapping[str, Path]) -> int:
    """Write the data dir of the utterances ``ids`` (with segments); returns their number."""
    wav: Dict[str, str] = {}
    reco: Dict[str, str] = {}
    text, utt2spk, segments = {}, {}, {}
    for utt in ids:
        conv, side, start, end, words = utts[utt]
        rec = f"{conv}-{side}"
        wav[rec] = sph2pipe_entry(audio[conv], _CHANNEL[side])
        reco[rec] = f"{conv} {side}"
        text[utt] = words
        utt2spk[utt] = rec
        segments[utt] = f"{rec} {start / 100:.2f} {end / 100:.2f}"
    n = write_set(data_dir, wav, text, utt2spk, segments)
    write_map(Path(data_dir) / "reco2file_and_channel", reco)
    return n


def split_dev(ids: List[str], dev_utts: int) -> Tuple[List[str], List[str]]:
    """(dev, train): the first ``dev_utts`` ids (C order), completed to a whole side."""
    ids = sorted(ids, key=c_sort_key)
    if not ids:
        raise DataError(f"no Switchboard utterances with words and audio; {LAYOUT_HELP}")
    n = min(max(dev_utts, 1), len(ids))
    side = ids[n - 1].rsplit("_", 1)[0]
    while n < len(ids) and ids[n].rsplit("_", 1)[0] == side:
        n += 1
    if n == len(ids):
        raise DataError(
            f"dev_utts={dev_utts} leaves no training utterances "
            f"({len(ids)} Switchboard utterances in all)"
        )
    return ids[:n], ids[n:]


def prepare(
    corpus_root: Optional[Path],
    out_dir: Path,
    *,
    lexicon: Optional[Path] = None,
    keep_stress: bool = True,
    skip_bad: bool = False,
    swbd: Optional[Path] = None,
    transcripts: Optional[Path] = None,
    eval2000_audio: Optional[Path] = None,
    eval2000_text: Optional[Path] = None,
    dev_utts: int = 4000,
    full_lexicon: bool = True,
    **kwargs: Any,
) -> Dict[str, Any]:
    """Prepare Switchboard train/dev, eval2000 test and the lexicon under ``out_dir``.

    Args:
        corpus_root: directory below which (at most four levels down) the four LDC parts
            are found: ``swb1_d*``, ``swb_ms98_transcriptions``, eval2000 ``english`` and
            ``reference``. Each can be given explicitly instead with the options below.
        out_dir: output directory (``data/swbd``).
        lexicon: a CMUdict text file; default Festival's CMU dictionary.
        keep_stress: keep vowel stress digits in the lexicon.
        skip_bad: skip utterances whose audio is missing or whose segment is invalid (listed
            in ``out_dir/bad_utts.txt``) instead of raising.
        swbd: root of LDC97S62.
        transcripts: directory holding ``swb_ms98_transcriptions``.
        eval2000_audio: root of LDC2002S09 (holds ``english/``).
        eval2000_text: root of LDC2002T43 (holds ``reference/``).
        dev_utts: size of the held-out dev set (utterances, rounded up to a whole side).
        full_lexicon: put the whole dictionary into lexicon.txt (the default), so that the
            decoding vocabulary (the LM's words that have a pronunciation) does not depend on
            which words the dev/test transcripts happen to hold; ``False`` keeps only the
            transcript words (smaller lang dir, for training-only use).
        **kwargs: options of other corpora; ignored (named in the notes).

    Returns:
        ``{"sets": {...}, "sample_rate": 8000, "notes": [...], "bad_utts": n,
        "lexicon": path, "oov_words": n, "stm": path, "glm": path}``.

    Raises:
        DataError: a part of the corpus not found; a transcript referring to missing audio or
            an invalid segment (unless ``skip_bad``).
    """
    root = Path(corpus_root) if corpus_root is not None else None
    parts = (swbd, transcripts, eval2000_audio, eval2000_text)
    if any(p is None for p in parts) and (root is None or not root.is_dir()):
        raise DataError(f"Switchboard corpus directory not found; {LAYOUT_HELP}", root)
    audio = layout.swbd_audio(Path(swbd or root))
    trans_files = layout.ms98_files(Path(transcripts or root))
    eval_audio = layout.eval2000_audio(Path(eval2000_audio or root))
    stm, glm = layout.eval2000_reference(Path(eval2000_text or root))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bad = BadUtts(skip_bad)
    notes: List[str] = []
    if kwargs:
        notes.append(f"options ignored by the Switchboard preparer: {', '.join(sorted(kwargs))}")
    segs = (s for p in trans_files for s in layout.read_ms98(p))
    utts, empty = _collect(segs, audio, normalize_ms98, bad)
    test_utts, test_empty = _collect(layout.read_stm(stm), eval_audio, normalize_stm, bad)
    dev_ids, train_ids = split_dev(list(utts), dev_utts)
    counts = {
        "train": _write(out / "train", utts, train_ids, audio),
        "dev": _write(out / "dev", utts, dev_ids, audio),
        "test": _write(out / "test", test_utts, sorted(test_utts, key=c_sort_key), eval_audio),
    }
    with atomic_path(out / "test" / "stm") as tmp:
        tmp.write_bytes(layout.kaldi_stm_bytes(stm))
    with atomic_path(out / "test" / "glm") as tmp:
        tmp.write_bytes(glm.read_bytes())
    notes += [
        f"dev = first {len(dev_ids)} Switchboard utterances (C order, whole sides), "
        f"train = the other {len(train_ids)}",
        f"{empty} Switchboard and {test_empty} eval2000 segments without words dropped",
        f"test/stm is {stm} with Kaldi's fixes (asides removed, first '((' per line → '('); "
        f"test/glm is {glm}; hypotheses are upper case like the stm",
    ]
    n_bad = bad.write(out)
    if n_bad:
        notes.append(f"{n_bad} bad utterances skipped, listed in {out / 'bad_utts.txt'}")
    first_test = test_utts[min(test_utts, key=c_sort_key)]
    note = shorten_note([audio[utts[train_ids[0]][0]], eval_audio[first_test[0]]])
    if note:
        notes.append(note)

    words = {w for u in (utts, test_utts) for v in u.values() for w in v[4].split()}
    lex, oov = build_lexicon(
        words, load_dictionary(lexicon, keep_stress), SPECIALS, full=full_lexicon
    )
    lex_path = write_dict(out, lex)
    if oov:
        notes.append(oov_note(oov))
    return {
        "corpus": "swbd",
        "sets": counts,
        "sample_rate": SAMPLE_RATE,
        "notes": notes,
        "bad_utts": n_bad,
        "lexicon": str(lex_path),
        "oov_words": len(oov),
        "stm": str(out / "test" / "stm"),
        "glm": str(out / "test" / "glm"),
    }
