"""Normalisation of Switchboard ms98 transcripts and of the eval2000 ``stm`` words.

ms98 words (``swb_ms98_transcriptions``), following what Kaldi's swbd1_data_prep.sh and
swbd1_map_words.pl do:

==============================  ========================================  =====================
markup                          meaning                                   becomes
==============================  ========================================  =====================
``[silence]``                   silence                                   removed
``<b_aside>`` ``<e_aside>``     start/end of talk to someone else         removed
``[noise]`` ``[laughter]``      non-speech (other ``[x]`` also noise)     ``[NOISE]`` ``[LAUGHTER]``
``[vocalized-noise]``           vocal non-speech                          ``[VOCALIZED-NOISE]``
``[laughter-yeah]``             word said laughing                        ``YEAH``
``[it'n/isn't]``                mispronunciation [said/meant]             ``IT'N`` (what was said)
``th[e]-`` ``ab[solute]``       partial word, bracketed part not spoken   ``TH-`` ``AB-``
``-[be]cause`` ``[be]cause``    partial word at its start                 ``-CAUSE``
``{yuppiedom}``                 coinage                                   ``YUPPIEDOM``
``them_1``                      pronunciation variant tag                 ``THEM``
==============================  ========================================  =====================

Everything is upper-cased (the CMU dictionary's case). Utterances left without words (only
silence) are dropped. In the lexicon the three noise words map to Kaldi's noise units
(``[LAUGHTER] LAU``, ``[NOISE] NSN``, ``[VOCALIZED-NOISE] SPN``); partial words have no
pronunciation and become ``<UNK>`` in the labels step. Kaldi's acronym mapping and its
``train_nodup`` down-sampling of frequent short utterances are not done.

stm words (eval2000, only for the ``text`` of the test set; scoring uses the stm itself):
``<B_ASIDE>``/``<E_ASIDE>`` removed, parentheses of optionally deletable or uncertain words
removed (``(%HESITATION)`` → ``%HESITATION``, ``((WELL))`` → ``WELL``, ``(( ))`` dropped),
braces unwrapped, upper-cased.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List

from local.ldc_common import BASE_SPECIALS, fragment

NOISE_WORDS = {
    "[noise]": "[NOISE]",
    "[laughter]": "[LAUGHTER]",
    "[vocalized-noise]": "[VOCALIZED-NOISE]",
}
# Lexicon entries of the non-speech words (Kaldi swbd's units).
SPECIALS: Dict[str, List[str]] = {
    **BASE_SPECIALS,
    "[LAUGHTER]": ["LAU"],
    "[NOISE]": ["NSN"],
    "[VOCALIZED-NOISE]": ["SPN"],
}
_DROP = {"[silence]", "<b_aside>", "<e_aside>"}
_LAUGH_WORD = re.compile(r"\[laughter-(.+)\](-?)")
_MISPRONOUNCED = re.compile(r"\[(.+)/.+\](-?)")
_PARTIAL = re.compile(r"-?([^\[\]]*)\[[^\[\]]+\]([^\[\]]*?)(-?)")
_OTHER_NOISE = re.compile(r"\[[^\[\]/]+\]")
_TAG = re.compile(r"_\d")


def _partial(w: str) -> str:
    """Partial words: keep the spoken part and mark the missing side with ``-``."""
    if "[" not in w:
        return w
    m = _PARTIAL.fullmatch(w)
    if m is None:  # malformed nesting: keep what precedes the first bracket
        return w.split("[", 1)[0].rstrip("-") + "-"
    return fragment(*m.groups())


def normalize_ms98_word(token: str) -> str:
    """One ms98 token → its ``text`` word (``""`` when dropped)."""
    w = token.lower()
    if w in _DROP:
        return ""
    if w in NOISE_WORDS:
        return NOISE_WORDS[w]
    m = _LAUGH_WORD.fullmatch(w)
    if m:
        w = m.group(1) + m.group(2)
    m = _MISPRONOUNCED.fullmatch(w)
    if m:
        w = m.group(1) + m.group(2)
    if _OTHER_NOISE.fullmatch(w) and w not in NOISE_WORDS:
        return "[NOISE]"
    w = _partial(w)
    if len(w) > 2 and w.startswith("{") and w.endswith("}"):
        w = w[1:-1]
    return _TAG.sub("", w).upper()


def normalize_ms98(words: Iterable[str]) -> List[str]:
    """The words of an ms98 transcript line → normalised words (possibly none)."""
    out = (normalize_ms98_word(t) for t in words)
    return [w for w in out if w]


def normalize_stm(words: Iterable[str]) -> List[str]:
    """The words of an eval2000 stm line → normalised words (possibly none)."""
    out = []
    for tok in words:
        w = tok.upper()
        if w in ("<B_ASIDE>", "<E_ASIDE>"):
            continue
        w = w.replace("(", "").replace(")", "")
        if len(w) > 2 and w.startswith("{") and w.endswith("}"):
            w = w[1:-1]
        if w:
            out.append(w)
    return out
