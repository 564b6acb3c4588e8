"""Helpers shared by the LDC corpus preparers (``local/wsj``, ``local/swbd``).

They cover what both corpora need and the data-dir library does not: finding directories in
an unpacked LDC tree whatever its letter case, writing ``sph2pipe`` wav.scp entries, collecting
bad utterances (``skip_bad``), and turning a pronunciation dictionary into the corpus lexicon
``local/dict/lexicon.txt``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Pattern, Sequence, Tuple

from pipeline.data.datadir import c_sort_key, write_data_dir
from pipeline.data.validate import validate_data_dir
from pipeline.errors import DataError
from pipeline.io import atomic_write_text
from pipeline.lang.lexicon import (
    UNK,
    Lexicon,
    add_pron,
    read_cmudict,
    read_festival_cmudict,
    write_lexicon,
)

NOISE = "<NOISE>"
# Units of the non-speech entries every corpus lexicon carries (Kaldi's SPN / NSN phones).
BASE_SPECIALS: Dict[str, List[str]] = {UNK: ["SPN"], NOISE: ["NSN"]}


# ---------------------------------------------------------------------------------------------
# Finding things in an unpacked corpus


def find_dirs(roots: Sequence[Path], name: Pattern[str], max_depth: int) -> List[Path]:
    """Directories whose name matches ``name`` at most ``max_depth`` levels below a root.

    A root that itself matches is returned too. Symlinks are followed (corpora are often
    linked in). The result is sorted and free of duplicates; matching directories are not
    searched further.
    """
    found: List[Path] = []
    for root in roots:
        root = Path(root)
        if name.fullmatch(root.name):
            found.append(root)
            continue
        base_depth = len(root.parts)
        for here, dirs, _ in os.walk(root, followlinks=True):
            depth = len(Path(here).parts) - base_depth
            keep = []
            for d in sorted(dirs):
                if name.fullmatch(d):
                    found.append(Path(here) / d)
                elif depth + 1 < max_depth:
                    keep.append(d)
            dirs[:] = keep
    out: List[Path] = []
    for p in found:
        if p not in out:
            out.append(p)
    return sorted(out)


def find_files(root: Path, name: Pattern[str]) -> List[Path]:
    """All files below ``root`` (symlinks followed) whose name matches ``name``, sorted."""
    out = []
    for here, _, files in os.walk(root, followlinks=True):
        out.extend(Path(here) / f for f in files if name.fullmatch(f))
    return sorted(out)


def resolve_ci(base: Path, rel: str) -> Optional[Path]:
    """``base / rel`` if it exists, else the same path matched case-insensitively, else None.

    LDC discs were copied with upper-case names on some sites (WSJ1 disc 13-16.1), while the
    index files spell paths in lower case.
    """
    exact = base / rel
    if exact.exists():
        return exact
    here = base
    for part in Path(rel).parts:
        try:
            names = os.listdir(here)
        except OSError:
            return None
        match = [n for n in names if n.lower() == part.lower()]
        if not match:
            return None
        here = here / sorted(match)[0]
    return here


def sph2pipe_entry(path: Path, channel: Optional[int] = None) -> str:
    """The wav.scp command Kaldi writes for a SPHERE file: ``sph2pipe -f wav -p [-c N] F |``."""
    chan = f"-c {channel} " if channel is not None else ""
    return f"sph2pipe -f wav -p {chan}{shlex.quote(os.path.abspath(path))} |"


def sphere_is_shortened(path: Path) -> bool:
    """Whether a SPHERE header declares shorten compression (decodable only by sph2pipe)."""
    with open(path, "rb") as f:
        head = f.read(1024)
    return b"shorten" in head.split(b"end_head")[0]


def shorten_note(paths: Iterable[Path]) -> Optional[str]:
    """A note when the corpus is shorten-compressed and ``sph2pipe`` is not on PATH."""
    for p in paths:
        if sphere_is_shortened(p):
            if shutil.which("sph2pipe") is None:
                return (
                    f"audio is shorten-compressed SPHERE (e.g. {p}) and sph2pipe is not on "
                    "PATH: install it (Kaldi tools/extras/install_sph2pipe.sh) before "
                    "feature extraction"
                )
            return None
    return None


# ---------------------------------------------------------------------------------------------
# Bad utterances


class BadUtts:
    """Collects utterances that cannot be prepared; raises instead unless ``skip`` is set.

    Args:
        skip: record and skip bad utterances (``skip_bad``) rather than raising.
    """

    def __init__(self, skip: bool) -> None:
        self.skip = skip
        self.items: Dict[str, str] = {}

    def report(
        self,
        utt: str,
        reason: str,
        message: str,
        path: Optional[Path] = None,
        line: Optional[int] = None,
    ) -> None:
        """Record ``utt`` as bad for ``reason`` (one token), or raise a DataError saying why."""
        if not self.skip:
            raise DataError(
                f"{message} (pass skip_bad=True to skip and list such utterances in bad_utts.txt)",
                path,
                line,
                utt=utt,
            )
        self.items.setdefault(utt, reason)

    def write(self, out_dir: Path) -> int:
        """Write ``out_dir/bad_utts.txt`` (``id reason`` lines, C order); remove a stale one."""
        target = Path(out_dir) / "bad_utts.txt"
        if self.items:
            lines = [f"{u} {self.items[u]}\n" for u in sorted(self.items, key=c_sort_key)]
            atomic_write_text(target, "".join(lines))
        elif target.exists():
            target.unlink()
        return len(self.items)


# ---------------------------------------------------------------------------------------------
# Writing data dirs


def write_set(
    data_dir: Path,
    wav_scp: Mapping[str, str],
    text: Mapping[str, str],
    utt2spk: Mapping[str, str],
    segments: Optional[Mapping[str, str]] = None,
) -> int:
    """Write one sorted Kaldi data dir and validate it; returns its number of utterances."""
    if not text:
        raise DataError("no utterances left for this set", data_dir)
    write_data_dir(data_dir, wav_scp, text, utt2spk, segments)
    return validate_data_dir(data_dir)["utts"]


# ---------------------------------------------------------------------------------------------
# Lexicon

# Verbalized-punctuation words whose dictionary spelling is the plain word.
_PUNCT_WORDS = {"-DASH": "DASH", "-HYPHEN": "HYPHEN"}
_EDGE_PUNCT = "\"',.;:!?(){}&%/"
# Final phones that take -S / -IH Z in a possessive (otherwise -Z).
_VOICELESS = {"P", "T", "K", "F", "TH"}
_SIBILANTS = {"S", "Z", "SH", "ZH", "CH", "JH"}


def load_dictionary(lexicon: Optional[Path], keep_stress: bool) -> Lexicon:
    """The pronunciation dictionary: a CMUdict text file, or Festival's CMU dictionary."""
    if lexicon is not None:
        return read_cmudict(lexicon, keep_stress=keep_stress)
    return read_festival_cmudict(keep_stress=keep_stress)


def _is_fragment(word: str) -> bool:
    return len(word) > 1 and (word.startswith("-") or word.endswith("-"))


def _possessive(pron: List[str]) -> List[str]:
    """``X`` → ``X's`` by the regular English rule (``-IH Z`` / ``-S`` / ``-Z``)."""
    last = re.sub(r"\d$", "", pron[-1])
    if last in _SIBILANTS:
        stressed = any(p[-1].isdigit() for p in pron)
        return pron + ["IH0" if stressed else "IH", "Z"]
    return pron + ["S" if last in _VOICELESS else "Z"]


def lookup(word: str, dictionary: Lexicon) -> Optional[List[List[str]]]:
    """Pronunciations of a transcript word, trying spellings the dictionary may use instead.

    In order: the word itself; a verbalized-punctuation word as its plain word (``-DASH``);
    without apostrophes (Festival's dictionary spells ``DON'T`` as ``DONT``); without edge
    punctuation (``,COMMA``, ``I.``); a possessive ``X'S`` of a known ``X`` (Festival's
    dictionary has none) by the regular rule; a hyphen/underscore compound whose parts are all
    known (first pronunciation of each part). Partial words (``TH-``, ``-CAUSE``) are never guessed.
    """
    if word in dictionary:
        return dictionary[word]
    if word in _PUNCT_WORDS:
        return dictionary.get(_PUNCT_WORDS[word])
    if _is_fragment(word):
        return None
    bare = word.strip(_EDGE_PUNCT)
    for cand in (word.replace("'", ""), bare, bare.replace("'", "")):
        if cand and cand in dictionary:
            return dictionary[cand]
    if bare.endswith("'S") and bare[:-2] in dictionary:
        return [_possessive(pron) for pron in dictionary[bare[:-2]]]
    parts = [p for p in re.split(r"[-_]", bare.replace("'", "")) if p]
    if len(parts) > 1 and all(p in dictionary for p in parts):
        return [[ph for p in parts for ph in dictionary[p][0]]]
    return None


def build_lexicon(
    words: Iterable[str], dictionary: Lexicon, specials: Mapping[str, List[str]], full: bool = False
) -> Tuple[Lexicon, List[str]]:
    """The corpus lexicon: pronunciations of the transcript words plus the special entries.

    Args:
        words: the words of all transcripts.
        dictionary: the pronunciation dictionary (upper-case words).
        specials: non-speech entries (``<UNK> SPN`` ...), one pronunciation each.
        full: also include every dictionary word (so words of an external LM are covered).

    Returns:
        (lexicon, sorted list of transcript words without a pronunciation).
    """
    lex: Lexicon = {}
    if full:
        for w, prons in dictionary.items():
            for pron in prons:
                add_pron(lex, w, pron)
    oov = []
    for w in sorted(set(words), key=c_sort_key):
        if w in specials or w in lex:
            continue
        prons = lookup(w, dictionary)
        if prons is None:
            oov.append(w)
            continue
        for pron in prons:
            add_pron(lex, w, pron)
    for w, pron in specials.items():
        lex[w] = [list(pron)]
    return lex, oov


def write_dict(out_dir: Path, lex: Lexicon) -> Path:
    """Write ``out_dir/local/dict/lexicon.txt``; returns its path."""
    path = Path(out_dir) / "local" / "dict" / "lexicon.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_lexicon(path, lex)
    return path


def oov_note(oov: Sequence[str], show: int = 10) -> str:
    """A note listing transcript words the dictionary does not cover."""
    head = " ".join(oov[:show]) + (" ..." if len(oov) > show else "")
    return (
        f"{len(oov)} transcript word types have no pronunciation (left as they are; the "
        f"labels step maps them to {UNK}): {head}"
    )


def fragment(before: str, after: str, trail: str = "") -> str:
    """A partial word with its missing side marked by ``-``: ``TH-``, ``-CAUSE``, ``A-B``.

    Args:
        before: the spoken part before the unspoken one (may be empty).
        after: the spoken part after it (may be empty).
        trail: text kept after ``after`` (SWBD's trailing markup).
    """
    if before and after:
        return f"{before}-{after}{trail}"
    if before:
        return f"{before}-"
    if after:
        return f"-{after}"
    return ""
