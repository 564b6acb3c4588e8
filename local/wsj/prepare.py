"""Data preparation for Wall Street Journal (LDC93S6B + LDC94S13B), as Kaldi's wsj_data_prep.sh.

Writes ``data/wsj/{train,dev,test}`` (train = si284, dev = dev93, test = eval92 by default),
``local/dict/lexicon.txt`` and ``local/lm/lm_paths.txt`` (the distributed ARPA LMs, left
compressed where they are). Utterance ids are the lower-case audio basenames (``011c0201``),
the speaker is their first three characters (``011``), and wav.scp reads the ``.wv1`` SPHERE
files through ``sph2pipe -f wav -p FILE |``.

Example:
    >>> prepare(Path("/corpora/wsj"), Path("data/wsj"))  # doctest: +SKIP
    {'sets': {'train': 37416, 'dev': 503, 'test': 333}, 'sample_rate': 16000, ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from local.ldc_common import (
    BASE_SPECIALS,
    BadUtts,
    build_lexicon,
    load_dictionary,
    oov_note,
    resolve_ci,
    shorten_note,
    sph2pipe_entry,
    write_dict,
    write_set,
)
from local.wsj.layout import (
    LAYOUT_HELP,
    LM_FILES,
    SUBSETS,
    DotTranscripts,
    IndexEntry,
    compression,
    find_discs,
    find_lms,
    subset_entries,
)
from local.wsj.normalize import normalize_transcript
from pipeline.data.datadir import c_sort_key, write_map
from pipeline.errors import DataError

SAMPLE_RATE = 16000


def _audio(discs: Mapping[str, Path], e: IndexEntry, bad: BadUtts) -> Optional[Path]:
    """The audio file of an index entry, or None (reported as bad) when it is missing."""
    disc = discs.get(e.disc)
    if disc is None:
        bad.report(
            e.utt,
            "missing-audio",
            f"disc {e.disc.replace('_', '-', 1).replace('_', '.')} holding {e.rel} "
            f"(listed in the index) not found; {LAYOUT_HELP}",
            e.index,
            e.line,
        )
        return None
    path = resolve_ci(disc, e.rel)
    if path is None or not path.is_file():
        bad.report(
            e.utt,
            "missing-audio",
            f"audio file {disc / e.rel} listed in the index does not exist",
            e.index,
            e.line,
        )
        return None
    return path


def _prepare_set(
    entries: List[IndexEntry], discs: Mapping[str, Path], dots: DotTranscripts, bad: BadUtts
) -> Tuple[Dict[str, str], Dict[str, str], Dict[str, str], Path]:
    """wav.scp, text and utt2spk of one subset (bad ones left out), and its first audio file."""
    wav: Dict[str, str] = {}
    text: Dict[str, str] = {}
    utt2spk: Dict[str, str] = {}
    first_audio = Path()
    for e in sorted(entries, key=lambda x: c_sort_key(x.utt)):
        audio = _audio(discs, e, bad)
        if audio is None:
            continue
        found = dots.get(e.utt)
        if found is None:
            bad.report(
                e.utt,
                "no-transcript",
                "no transcript for this utterance in any .dot file of the corpus",
                e.index,
                e.line,
            )
            continue
        raw, dot_path, dot_line = found
        words = normalize_transcript(raw)
        if not words:
            bad.report(
                e.utt,
                "empty-transcript",
                "transcript is empty after normalisation",
                dot_path,
                dot_line,
            )
            continue
        if not wav:
            first_audio = audio
        wav[e.utt] = sph2pipe_entry(audio)
        text[e.utt] = " ".join(words)
        utt2spk[e.utt] = e.utt[:3]
    return wav, text, utt2spk, first_audio


def _write_lms(out_dir: Path, discs: Mapping[str, Path]) -> Tuple[Dict[str, str], List[str]]:
    """Locate the LMs, write ``local/lm/lm_paths.txt``; returns (name → path, notes)."""
    lms = {k: str(v.absolute()) for k, v in find_lms(discs).items()}
    notes = []
    missing = [k for k in LM_FILES if k not in lms]
    if missing:
        notes.append(
            "distributed LMs not found (expected under "
            f"wsj1/doc/lng_modl/base_lm): {' '.join(LM_FILES[k] for k in missing)}"
        )
    if lms:
        write_map(out_dir / "local" / "lm" / "lm_paths.txt", lms)
        kinds = sorted({compression(Path(p)) for p in lms.values()})
        notes.append(
            f"LMs left compressed ({'/'.join(kinds)}; read with 'gzip -dc'): bg=bcb20onp "
            "(bigram, 20k open vocab, non-verbalized punct.), tg=tcb20onp (trigram, same "
            "vocab; skip the text before its \\data\\ line), bg_5k=bcb05onp, tg_5k=tcb05cnp "
            "(5k closed vocab, also with a preamble). 'tgpr' is not distributed: Kaldi prunes "
            "tg (prune-lm --threshold=1e-7) to make it"
        )
    return lms, notes


def prepare(
    corpus_root: Optional[Path],
    out_dir: Path,
    *,
    lexicon: Optional[Path] = None,
    keep_stress: bool = True,
    skip_bad: bool = False,
    wsj0: Optional[Path] = None,
    wsj1: Optional[Path] = None,
    train_set: str = "si284",
    dev_set: str = "dev93",
    test_set: str = "eval92",
    full_lexicon: bool = True,
    **kwargs: Any,
) -> Dict[str, Any]:
    """Prepare WSJ data dirs, lexicon and LM paths under ``out_dir`` (= ``data/wsj``).

    Args:
        corpus_root: directory holding the CD directories (``11-13.1``, ``13-34.1`` ...), at
            most three levels down. Ignored when both ``wsj0`` and ``wsj1`` are given.
        out_dir: output directory.
        lexicon: a CMUdict text file; default Festival's CMU dictionary.
        keep_stress: keep vowel stress digits in the lexicon.
        skip_bad: skip utterances with missing audio or transcript (listed in
            ``out_dir/bad_utts.txt``) instead of raising.
        wsj0: root of LDC93S6B (holds ``11-*`` discs).
        wsj1: root of LDC94S13B (holds ``13-*`` discs).
        train_set: ``si284`` or ``si84``.
        dev_set: ``dev93`` (20k, 503 utts) or ``dev93_5k``.
        test_set: ``eval92`` (20k NVP, 333 utts), ``eval92_5k``, ``eval93`` or ``eval93_5k``.
        full_lexicon: put the whole dictionary into lexicon.txt (the default), so that the
            decoding vocabulary (the LM's words that have a pronunciation) does not depend on
            which words the dev/test transcripts happen to hold; ``False`` keeps only the
            transcript words (smaller lang dir, for training-only use).
        **kwargs: options of other corpora; ignored (named in the notes).

    Returns:
        ``{"sets": {"train": n, "dev": n, "test": n}, "sample_rate": 16000, "notes": [...],
        "subsets": {...}, "bad_utts": n, "lexicon": path, "oov_words": n,
        "lms": {"bg": path, "tg": path, ...}, "lm_paths": path or None}``.

    Raises:
        DataError: corpus not found or not in the expected layout; an utterance whose audio
            or transcript is missing (unless ``skip_bad``).
    """
    out = Path(out_dir)
    roots = [Path(p) for p in (wsj0, wsj1) if p is not None]
    if len(roots) < 2 and corpus_root is not None:
        roots.append(Path(corpus_root))  # where the distribution(s) not given are looked for
    if not roots:
        raise DataError(f"no WSJ corpus directory given; {LAYOUT_HELP}")
    for r in roots:
        if not r.is_dir():
            raise DataError(f"WSJ corpus directory not found; {LAYOUT_HELP}", r)
    discs = find_discs(roots)
    if not discs:
        raise DataError(
            f"no WSJ CD directories (named like 11-13.1) found under "
            f"{', '.join(map(str, roots))}; {LAYOUT_HELP}"
        )
    subsets = {"train": train_set, "dev": dev_set, "test": test_set}
    for subset in subsets.values():
        if subset not in SUBSETS:
            raise DataError(f"unknown WSJ subset '{subset}' (known: {', '.join(SUBSETS)})")
    entries = {name: subset_entries(discs, subset) for name, subset in subsets.items()}

    notes = [f"{name} = {subset}" for name, subset in subsets.items()]
    if kwargs:
        notes.append(f"options ignored by the WSJ preparer: {', '.join(sorted(kwargs))}")
    out.mkdir(parents=True, exist_ok=True)
    dots = DotTranscripts(discs)
    bad = BadUtts(skip_bad)
    counts: Dict[str, int] = {}
    words: Set[str] = set()
    sample_audio: List[Path] = []
    for name, ents in entries.items():
        wav, text, utt2spk, audio = _prepare_set(ents, discs, dots, bad)
        counts[name] = write_set(out / name, wav, text, utt2spk)
        words.update(w for t in text.values() for w in t.split())
        sample_audio.append(audio)
    n_bad = bad.write(out)
    if n_bad:
        notes.append(f"{n_bad} bad utterances skipped, listed in {out / 'bad_utts.txt'}")
    note = shorten_note(sample_audio)
    if note:
        notes.append(note)

    lex, oov = build_lexicon(
        words, load_dictionary(lexicon, keep_stress), BASE_SPECIALS, full=full_lexicon
    )
    lex_path = write_dict(out, lex)
    if oov:
        notes.append(oov_note(oov))
    lms, lm_notes = _write_lms(out, discs)
    notes.extend(lm_notes)
    return {
        "corpus": "wsj",
        "sets": counts,
        "subsets": subsets,
        "sample_rate": SAMPLE_RATE,
        "notes": notes,
        "bad_utts": n_bad,
        "lexicon": str(lex_path),
        "oov_words": len(oov),
        "lms": lms,
        "lm_paths": str(out / "local" / "lm" / "lm_paths.txt") if lms else None,
    }
