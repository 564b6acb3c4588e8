"""Pronunciation lexicons, the unit inventory (``units.txt``) and the word list (``words.txt``).

Lexicon files use Kaldi's ``lexicon.txt`` format: ``WORD PH1 PH2 ...``, one pronunciation per
line, a word may have several. Units are the phones of the lexicon; id 0 is the CTC blank
``<blk>``, phones follow in C order from 1.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Union

from pipeline.data.datadir import c_sort_key
from pipeline.errors import DataError
from pipeline.io import atomic_write_text
from pipeline.textfile import text_lines

PathLike = Union[str, Path]
Lexicon = Dict[str, List[List[str]]]

BLANK = "<blk>"
UNK = "<UNK>"
FESTIVAL_CMUDICT = "/usr/share/festival/dicts/cmu/cmudict-0.4.out"
VOWELS = {
    "AA",
    "AE",
    "AH",
    "AO",
    "AW",
    "AX",
    "AY",
    "EH",
    "ER",
    "EY",
    "IH",
    "IY",
    "OW",
    "OY",
    "UH",
    "UW",
}

_FEST_LINE = re.compile(r'^\("([^"]+)"\s+\S+\s+\((.*)\)\)\s*$')
_FEST_SYL = re.compile(r"\(\(([^()]*)\)\s+(\d)\)")


def add_pron(lex: Lexicon, word: str, pron: Sequence[str]) -> None:
    """Add a pronunciation unless the word already has it."""
    prons = lex.setdefault(word, [])
    if list(pron) not in prons:
        prons.append(list(pron))


def read_festival_cmudict(path: PathLike = FESTIVAL_CMUDICT, keep_stress: bool = False) -> Lexicon:
    """Read Festival's compiled CMU dictionary (Debian ``festlex-cmu``).

    Lines look like ``("abate" v (((ax) 0) ((b ey t) 1)))``: syllables with a stress flag.

    Args:
        path: the ``cmudict-0.4.out`` file.
        keep_stress: append the syllable stress to vowels (``EY1``) instead of dropping it.

    Returns:
        upper-case word → list of upper-case phone sequences (all part-of-speech variants).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("CMU lexicon not found (install the Debian package festlex-cmu)", path)
    lex: Lexicon = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            m = _FEST_LINE.match(line.strip())
            if not m:
                continue
            word = m.group(1).upper()
            pron: List[str] = []
            for phones, stress in _FEST_SYL.findall(m.group(2)):
                for p in phones.split():
                    p = p.upper()
                    if keep_stress and p in VOWELS:
                        p += stress
                    pron.append(p)
            if pron:
                add_pron(lex, word, pron)
    return lex


def read_cmudict(path: PathLike, keep_stress: bool = False) -> Lexicon:
    """Read a CMUdict text file (``WORD  AH0 B ...``, variants as ``WORD(2)``, ``;;;`` comments)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("CMU dictionary not found", path)
    lex: Lexicon = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            if not line.strip() or line.startswith(";;;"):
                continue
            parts = line.split()
            word = re.sub(r"\(\d+\)$", "", parts[0]).upper()
            pron = [p if keep_stress else re.sub(r"\d$", "", p) for p in parts[1:]]
            if pron:
                add_pron(lex, word, pron)
    return lex


def read_lexicon(path: PathLike) -> Lexicon:
    """Read a Kaldi ``lexicon.txt`` (``WORD PH1 PH2 ...``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("lexicon not found", path)
    lex: Lexicon = {}
    for n, line in enumerate(text_lines(path), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise DataError(f"word '{parts[0]}' has no pronunciation", path, n)
        add_pron(lex, parts[0], parts[1:])
    return lex


def write_lexicon(path: PathLike, lex: Mapping[str, List[List[str]]]) -> None:
    """Write ``lexicon.txt`` sorted by word (C order), pronunciations in their order."""
    lines = []
    for word in sorted(lex, key=c_sort_key):
        for pron in lex[word]:
            lines.append(f"{word} {' '.join(pron)}\n")
    atomic_write_text(path, "".join(lines))


def units_from_lexicon(lex: Mapping[str, List[List[str]]]) -> List[str]:
    """The phone inventory of a lexicon, in C order (without the blank)."""
    phones = {p for prons in lex.values() for pron in prons for p in pron}
    return sorted(phones, key=c_sort_key)


def write_units(path: PathLike, phones: Iterable[str]) -> None:
    """Write ``units.txt``: ``<blk> 0`` then the phones numbered from 1."""
    lines = [f"{BLANK} 0\n"] + [f"{p} {i}\n" for i, p in enumerate(phones, 1)]
    atomic_write_text(path, "".join(lines))


def read_symbol_table(path: PathLike) -> Dict[str, int]:
    """Read a ``symbol id`` table (``units.txt``, ``words.txt``); ids must be unique integers."""
    path = Path(path)
    if not path.is_file():
        raise DataError("symbol table not found", path)
    table: Dict[str, int] = {}
    seen = set()
    for n, line in enumerate(text_lines(path), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataError("expected '<symbol> <integer id>'", path, n)
        sym, idx = parts[0], int(parts[1])
        if sym in table or idx in seen:
            raise DataError(f"duplicate symbol or id '{line.strip()}'", path, n)
        table[sym] = idx
        seen.add(idx)
    return table


def write_words(path: PathLike, words: Iterable[str]) -> None:
    """Write ``words.txt``: ``<eps> 0``, the words in C order, then ``#0 <s> </s>``."""
    ws = sorted(set(words) - {"<eps>", "#0", "<s>", "</s>"}, key=c_sort_key)
    syms = ["<eps>"] + ws + ["#0", "<s>", "</s>"]
    atomic_write_text(path, "".join(f"{s} {i}\n" for i, s in enumerate(syms)))
