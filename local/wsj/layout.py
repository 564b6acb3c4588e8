"""Where things are in the LDC distributions of WSJ (LDC93S6B "wsj0", LDC94S13B "wsj1").

Both are sets of CD directories named like ``11-13.1`` (wsj0, discs ``11-*``) and ``13-34.1``
(wsj1, discs ``13-*``), each holding ``wsj0/...`` or ``wsj1/...``. Index files (``*.ndx``) list
the audio of each official subset as ``<disc id>:<path on that disc>``, e.g.
``11_2_1:wsj0/si_tr_s/011/011c0201.wv1`` (disc ``11_2_1`` is directory ``11-2.1``). Audio is
NIST SPHERE in ``.wv1`` files (Sennheiser microphone channel); transcripts are ``.dot`` files,
one per speaker session (``011c0200.dot`` for the utterances ``011c02xx``), each line being
``<transcript> (<uttid>)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from local.ldc_common import find_dirs, find_files, resolve_ci
from pipeline.errors import DataError

LAYOUT_HELP = (
    "expected the LDC WSJ layout: a directory holding the CD directories of LDC93S6B (wsj0: "
    "11-1.1 ... 11-13.1, with 11-13.1/wsj0/doc/indices/) and LDC94S13B (wsj1: 13-1.1 ... "
    "13-34.1, with 13-34.1/wsj1/doc/indices/), or wsj0=PATH / wsj1=PATH pointing at the two "
    "distributions"
)
_DISC = re.compile(r"\d+-\d+\.\d+")
_NDX_LINE = re.compile(r"(\d+_\d+_\d+):\s*/?(\S+)")
_DOT_LINE = re.compile(r"(.*)\((\w+)\)\s*")


@dataclass(frozen=True)
class IndexSpec:
    """One index file: the disc holding it, its path on the disc, a disc-id fix if any."""

    disc: str
    path: str
    disc_fix: Optional[Tuple[str, str]] = None


_TR_S_WSJ0 = IndexSpec("11-13.1", "wsj0/doc/indices/train/tr_s_wv1.ndx")
_TR_S_WSJ1 = IndexSpec("13-34.1", "wsj1/doc/indices/si_tr_s.ndx")
# The Nov'93 eval indices name disc 13_32_1 for audio that is on 13_33_1 (fixed as Kaldi does).
_EVAL93_FIX = ("13_32_1", "13_33_1")

# Subset name → the index files listing its audio (the subsets of Kaldi's wsj_data_prep.sh).
SUBSETS: Dict[str, Tuple[IndexSpec, ...]] = {
    "si84": (_TR_S_WSJ0,),
    "si284": (_TR_S_WSJ0, _TR_S_WSJ1),
    "dev93": (IndexSpec("13-34.1", "wsj1/doc/indices/h1_p0.ndx"),),
    "dev93_5k": (IndexSpec("13-34.1", "wsj1/doc/indices/h2_p0.ndx"),),
    "eval92": (IndexSpec("11-13.1", "wsj0/doc/indices/test/nvp/si_et_20.ndx"),),
    "eval92_5k": (IndexSpec("11-13.1", "wsj0/doc/indices/test/nvp/si_et_05.ndx"),),
    "eval93": (IndexSpec("13-32.1", "wsj1/doc/indices/wsj1/eval/h1_p0.ndx", _EVAL93_FIX),),
    "eval93_5k": (IndexSpec("13-32.1", "wsj1/doc/indices/wsj1/eval/h2_p0.ndx", _EVAL93_FIX),),
}
# Kaldi leaves speaker 401 of wsj0 si_tr_s out of the training lists; so do we.
EXCLUDED_AUDIO = re.compile(r"wsj0/si_tr_s/401/", re.IGNORECASE)

# The distributed ARPA LMs (wsj1/doc/lng_modl/base_lm), named {b,t}cb{05,20}{o,c}{n,v}p:
# bigram/trigram, 5k/20k vocabulary, open (with <UNK>)/closed vocabulary,
# non-verbalized/verbalized punctuation. These are the ones Kaldi's WSJ recipe uses.
LM_FILES = {
    "bg": "bcb20onp.z",  # bigram, 20k open vocabulary, non-verbalized punctuation
    "tg": "tcb20onp.z",  # trigram, 20k open vocabulary, non-verbalized punctuation
    "bg_5k": "bcb05onp.z",  # bigram, 5k open vocabulary, non-verbalized punctuation
    "tg_5k": "tcb05cnp.z",  # trigram, 5k closed vocabulary, non-verbalized punctuation
}


@dataclass(frozen=True)
class IndexEntry:
    """One audio file of a subset: utterance id, disc id and path on the disc."""

    utt: str
    disc: str
    rel: str
    index: Path
    line: int


def find_discs(roots: Sequence[Path]) -> Dict[str, Path]:
    """Disc id (``11_13_1``) → CD directory, searching at most three levels below each root."""
    discs: Dict[str, Path] = {}
    for d in find_dirs(roots, _DISC, max_depth=3):
        discs.setdefault(d.name.replace("-", "_").replace(".", "_"), d)
    return discs


def disc_dir(discs: Dict[str, Path], disc_name: str) -> Path:
    """The directory of a disc named like ``11-13.1``; DataError when it is not there."""
    key = disc_name.replace("-", "_").replace(".", "_")
    if key not in discs:
        raise DataError(f"WSJ disc directory {disc_name} not found; {LAYOUT_HELP}")
    return discs[key]


def read_index(discs: Dict[str, Path], spec: IndexSpec) -> List[IndexEntry]:
    """Parse one ``.ndx`` file into entries (comments ``;`` skipped, ``.wv1`` added if absent)."""
    path = resolve_ci(disc_dir(discs, spec.disc), spec.path)
    if path is None or not path.is_file():
        raise DataError(f"WSJ index file {spec.disc}/{spec.path} not found; {LAYOUT_HELP}")
    out = []
    with open(path, encoding="latin-1") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith(";"):
                continue
            m = _NDX_LINE.fullmatch(line)
            if not m:
                raise DataError("expected '<disc id>:<path>' in WSJ index", path, n)
            disc, rel = m.groups()
            if spec.disc_fix and disc == spec.disc_fix[0]:
                disc = spec.disc_fix[1]
            if not Path(rel).suffix:
                rel += ".wv1"
            utt = Path(rel).stem.lower()
            out.append(IndexEntry(utt, disc, rel, path, n))
    return out


def subset_entries(discs: Dict[str, Path], subset: str) -> List[IndexEntry]:
    """Entries of a named subset (first occurrence of each utterance kept)."""
    if subset not in SUBSETS:
        raise DataError(f"unknown WSJ subset '{subset}' (known: {', '.join(SUBSETS)})")
    seen: Dict[str, IndexEntry] = {}
    for spec in SUBSETS[subset]:
        for e in read_index(discs, spec):
            if not EXCLUDED_AUDIO.search(e.rel):
                seen.setdefault(e.utt, e)
    return list(seen.values())


class DotTranscripts:
    """Transcripts of the ``.dot`` files found on all discs, read one session at a time.

    Args:
        discs: disc id → CD directory.
    """

    def __init__(self, discs: Dict[str, Path]) -> None:
        self._files: Dict[str, List[Path]] = {}
        dot = re.compile(r".+\.dot", re.IGNORECASE)
        for d in sorted(discs.values()):
            for p in find_files(d, dot):
                self._files.setdefault(p.stem[:6].lower(), []).append(p)
        self._cache: Dict[str, Dict[str, Tuple[str, Path, int]]] = {}

    def get(self, utt: str) -> Optional[Tuple[str, Path, int]]:
        """(raw transcript, dot file, line) of an utterance, or None when there is none."""
        session = utt[:6]
        if session not in self._cache:
            self._cache = {session: self._read(self._files.get(session, []))}
        return self._cache[session].get(utt)

    @staticmethod
    def _read(paths: List[Path]) -> Dict[str, Tuple[str, Path, int]]:
        trans: Dict[str, Tuple[str, Path, int]] = {}
        for p in paths:
            with open(p, encoding="latin-1") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    m = _DOT_LINE.fullmatch(line.rstrip("\n"))
                    if not m:
                        raise DataError("expected '<transcript> (<uttid>)' in WSJ .dot file", p, n)
                    trans.setdefault(m.group(2).lower(), (m.group(1).strip(), p, n))
        return trans


def find_lms(discs: Dict[str, Path]) -> Dict[str, Path]:
    """The distributed ARPA LMs (``LM_FILES`` names) found in any ``wsj1/doc/lng_modl/base_lm``."""
    found: Dict[str, Path] = {}
    for d in sorted(discs.values()):
        base = resolve_ci(d, "wsj1/doc/lng_modl/base_lm")
        if base is None or not base.is_dir():
            continue
        for name, fname in LM_FILES.items():
            p = resolve_ci(base, fname)
            if p is not None and p.is_file():
                found.setdefault(name, p)
    return found


def compression(path: Path) -> str:
    """How an LM file is compressed, from its magic bytes: gzip, compress (LZW) or none."""
    with open(path, "rb") as f:
        magic = f.read(2)
    return {b"\x1f\x8b": "gzip", b"\x1f\x9d": "compress"}.get(magic, "none")
