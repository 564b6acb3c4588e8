"""Sentences for the ``tts`` corpus, taken from the ``fortunes`` databases.

Fortune cookies are split into sentences and normalised the way read-speech corpora are
transcribed: upper-case words, no punctuation. A sentence is kept only when every word has a
pronunciation in the lexicon and it has no digits (numbers would need verbalising), so
transcripts and labels never disagree.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Container, Iterator, List, Union

FORTUNES_DIR = Path("/usr/share/games/fortunes")
_SPLIT = re.compile(r"(?<=[.!?;:])\s+")
_NONWORD = re.compile(r"[^A-Z' ]+")


def fortune_texts(root: Union[str, Path] = FORTUNES_DIR) -> Iterator[str]:
    """Yield every fortune (the text between ``%`` lines) of every database under ``root``.

    Files are read in sorted order; the offensive (``off/``) databases are not read.
    """
    root = Path(root)
    files = sorted(
        p for p in root.iterdir() if p.is_file() and p.suffix == "" and not p.name.startswith(".")
    )
    for path in files:
        raw = path.read_text(encoding="utf-8", errors="replace")
        for chunk in raw.split("\n%\n"):
            chunk = chunk.strip().strip("%").strip()
            if chunk:
                yield chunk


def normalise(sentence: str) -> List[str]:
    """Upper-case words of a sentence; hyphens split words, other punctuation is dropped."""
    s = sentence.upper().replace("-", " ").replace("`", "'")
    s = _NONWORD.sub(" ", s)
    words = []
    for w in s.split():
        w = w.strip("'")
        if w:
            words.append(w)
    return words


def sentence_pool(
    lexicon: Container[str],
    min_words: int = 4,
    max_words: int = 16,
    root: Union[str, Path] = FORTUNES_DIR,
) -> List[str]:
    """All distinct usable sentences, in a fixed order (sorted), as space-joined upper-case words.

    Args:
        lexicon: words that have a pronunciation.
        min_words, max_words: kept sentence lengths.
        root: the fortunes directory.
    """
    if not Path(root).is_dir():
        raise FileNotFoundError(f"{root}: fortunes databases not found (install Debian 'fortunes')")
    pool = set()
    for text in fortune_texts(root):
        # attribution lines ("-- Mark Twain") and quoted dialogue markers are not sentences
        body = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
        body = " ".join(body.split())
        for sent in _SPLIT.split(body):
            if re.search(r"\d", sent):
                continue
            words = normalise(sent)
            if min_words <= len(words) <= max_words and all(w in lexicon for w in words):
                pool.add(" ".join(words))
    return sorted(pool)
