"""Where things are in the LDC Switchboard and Hub5 eval2000 distributions, and their parsers.

* LDC97S62 (Switchboard-1 Release 2): ``swb1_d1 ... swb1_d4/data/sw0NNNN.sph``, two-channel
  8 kHz mu-law SPHERE (usually shorten-compressed), channel 1 = side A, 2 = side B.
* ms98 transcripts (ISIP, ``swb_ms98_transcriptions``): ``<nn>/<nnnn>/swNNNN{A,B}-ms98-a-
  trans.text``, lines ``swNNNNA-ms98-a-0001 <start s> <end s> word ...``.
* LDC2002S09 (Hub5 eval2000 speech): ``english/{en,sw}_NNNN.sph`` (+ ``hub5e_00.pem``).
* LDC2002T43 (its transcripts): ``[2000_hub5_eng_eval_tr/]reference/hub5e00.english.000405.
  stm`` and ``en20000405_hub5.glm``; stm lines ``file channel speaker start end [<label>]
  words``, ``;;`` comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from local.ldc_common import find_dirs, find_files
from pipeline.errors import DataError

LAYOUT_HELP = (
    "expected the LDC layouts below the corpus root (or given as swbd=, transcripts=, "
    "eval2000_audio=, eval2000_text=): Switchboard-1 LDC97S62 (swb1_d1 ... swb1_d4 with "
    "data/*.sph), the ms98 transcripts (swb_ms98_transcriptions/<nn>/<nnnn>/"
    "swNNNNA-ms98-a-trans.text), Hub5 eval2000 speech LDC2002S09 (english/*.sph) and its "
    "transcripts LDC2002T43 (reference/hub5e00.english.000405.stm and en20000405_hub5.glm)"
)
STM_NAME = "hub5e00.english.000405.stm"
GLM_NAME = "en20000405_hub5.glm"
_SPH = re.compile(r".+\.sph", re.IGNORECASE)
_TRANS_FILE = re.compile(r"sw\d{4}[AB]-ms98-a-trans\.text", re.IGNORECASE)
_TRANS_ID = re.compile(r"sw(\d{4})([AB])-ms98-a-\d+", re.IGNORECASE)
_CHANNELS = {"A": "A", "B": "B", "1": "A", "2": "B"}
SEARCH_DEPTH = 4


@dataclass(frozen=True)
class Segment:
    """One transcribed stretch of a conversation side (times in seconds)."""

    conv: str  # audio basename, e.g. sw02001 or en_4156
    side: str  # A or B
    start: float
    end: float
    words: List[str]
    path: Path
    line: int


def _one_dir(roots: Sequence[Path], name: str, what: str, has: Optional[re.Pattern] = None) -> Path:
    """The first directory called ``name`` (any case) holding a file matching ``has``."""
    for d in find_dirs(roots, re.compile(re.escape(name), re.IGNORECASE), SEARCH_DEPTH):
        if has is None or find_files(d, has):
            return d
    raise DataError(
        f"{what} not found (no '{name}' directory under "
        f"{', '.join(map(str, roots))}); {LAYOUT_HELP}"
    )


def swbd_audio(root: Path) -> Dict[str, Path]:
    """Conversation (``sw02001``) → its .sph file, from the ``swb1_d*`` disc directories."""
    discs = find_dirs([root], re.compile(r"swb1_d\d+", re.IGNORECASE), SEARCH_DEPTH)
    audio: Dict[str, Path] = {}
    for d in discs:
        for p in find_files(d, _SPH):
            audio.setdefault(p.stem.lower(), p)
    if not audio:
        raise DataError(f"no Switchboard audio (swb1_d*/data/*.sph) under {root}; {LAYOUT_HELP}")
    return audio


def ms98_files(root: Path) -> List[Path]:
    """The ``*-ms98-a-trans.text`` files of the ms98 transcripts below ``root``."""
    d = _one_dir([root], "swb_ms98_transcriptions", "Switchboard ms98 transcripts", _TRANS_FILE)
    return find_files(d, _TRANS_FILE)


def read_ms98(path: Path) -> Iterator[Segment]:
    """Segments of one ms98 ``trans.text`` file (words not yet normalised)."""
    with open(path, encoding="latin-1") as f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            m = _TRANS_ID.fullmatch(fields[0])
            try:
                start, end = float(fields[1]), float(fields[2])
            except (IndexError, ValueError):
                m = None
            if m is None:
                raise DataError("expected 'swNNNNA-ms98-a-NNNN <start> <end> words...'", path, n)
            yield Segment(f"sw0{m.group(1)}", m.group(2).upper(), start, end, fields[3:], path, n)


def eval2000_audio(root: Path) -> Dict[str, Path]:
    """eval2000 conversation (``en_4156``) → .sph file, from the ``english`` directory."""
    d = _one_dir([root], "english", "eval2000 speech (LDC2002S09)", _SPH)
    return {p.stem.lower(): p for p in find_files(d, _SPH)}


def eval2000_reference(root: Path) -> Tuple[Path, Path]:
    """(stm, glm) of LDC2002T43, preferring the names Kaldi's recipe uses."""
    stm_re = re.compile(r"hub5e00\.english.*\.stm", re.IGNORECASE)
    d = _one_dir([root], "reference", "eval2000 transcripts (LDC2002T43)", stm_re)
    stms = find_files(d, stm_re)
    glms = find_files(d, re.compile(r".+\.glm", re.IGNORECASE))
    if not glms:
        raise DataError(f"no .glm file next to the eval2000 stm in {d}; {LAYOUT_HELP}")
    stm = next((p for p in stms if p.name.lower() == STM_NAME), stms[0])
    glm = next((p for p in glms if p.name.lower() == GLM_NAME), glms[0])
    return stm, glm


def read_stm(path: Path) -> Iterator[Segment]:
    """Scored segments of an stm (``;;`` comments and IGNORE_TIME_SEGMENT lines skipped)."""
    with open(path, encoding="latin-1") as f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0].startswith(";;"):
                continue
            try:
                side = _CHANNELS[fields[1].upper()]
                start, end = float(fields[3]), float(fields[4])
            except (IndexError, KeyError, ValueError):
                raise DataError(
                    "expected 'file channel speaker start end [<label>] words'", path, n
                ) from None
            words = fields[5:]
            if words and words[0].startswith("<") and words[0].endswith(">"):
                words = words[1:]
            if any(w.upper().startswith("IGNORE_TIME_SEGMENT") for w in words):
                continue
            yield Segment(fields[0].lower(), side, start, end, words, path, n)


def kaldi_stm_bytes(path: Path) -> bytes:
    """The stm as Kaldi's eval2000 prep hands it to scoring: asides removed, '((' → '(' once."""
    lines = Path(path).read_bytes().splitlines(keepends=True)
    fixed = (re.sub(rb"<B_ASIDE>|<E_ASIDE>", b"", ln).replace(b"((", b"(", 1) for ln in lines)
    return b"".join(fixed)
