"""Normalisation of WSJ ``.dot`` transcripts into word sequences for ``text``.

The ``.dot`` files hold the detailed orthographic transcription, with markup for what the
speaker actually did. We follow the behaviour of Kaldi's ``normalize_transcript.pl`` and go a
little further where markup would otherwise leave words no dictionary has:

=========================  ===============================================  ==================
markup                     meaning                                          becomes
=========================  ===============================================  ==================
``[loud_breath]``          noise                                            ``<NOISE>``
``[<door_slam]``           noise overlapping the previous word              removed
``[door_slam>]``           noise overlapping the next word                  removed
``[phone_ring/]`` / ``[/phone_ring]``  start / end of a long noise          removed
``~``                      utterance truncated                              removed
``.``                      pause                                            removed
``<word>``                 word said but "verbally deleted" (still spoken)  ``WORD``
``*word*``                 mispronounced word                               ``WORD``
``!word``                  emphasised word                                  ``WORD``
``wo:rd``                  lengthened sound                                 ``WORD``
``revo(lutionary)-``       partial word, bracketed part not spoken          ``REVO-``
``(re)volution``           partial word at its start                        ``-VOLUTION``
``I\\.`` ``\\'s``          backslash quoting                                backslash removed
``--DASH``                 verbalized punctuation                           ``-DASH``
``%PERCENT`` ``.POINT``    Nov'93 number words                              ``PERCENT`` ``POINT``
=========================  ===============================================  ==================

Everything is upper-cased (the CMU dictionary's case). Other verbalized-punctuation words
(``,COMMA``, ``"QUOTE``, ``(PAREN``) are kept as they are, as in Kaldi; the lexicon builder
finds their plain-word pronunciation. Partial words stay in the text as fragments ending or
starting with ``-``; they have no pronunciation and become ``<UNK>`` in the labels step.
"""

from __future__ import annotations

import re
from typing import List

from local.ldc_common import NOISE, fragment

_DROP = [
    re.compile(r"\[<[\w-]+\]"),  # [<door_slam]
    re.compile(r"\[[\w-]+>\]"),  # [door_slam>]
    re.compile(r"\[[\w-]+/\]"),  # [phone_ring/]
    re.compile(r"\[/[\w-]+\]"),  # [/phone_ring]
]
_NOISE = re.compile(r"\[[\w-]+\]")
_ANGLE = re.compile(r"<([^<>]+)>")
_STAR = re.compile(r"\*([^*]+)\*")
_LENGTHENED = re.compile(r"(?<=[A-Z']):")
_PARTIAL = re.compile(r"([A-Z'.]*)\(([A-Z'.]+)\)([A-Z'.]*)-?")
_RENAME = {"%PERCENT": "PERCENT", ".POINT": "POINT", "--DASH": "-DASH"}


def _unwrap(w: str) -> str:
    """Remove the spoken-word markup (``<>``, ``**``, ``!``, ``:``) until none is left."""
    while True:
        prev = w
        m = _ANGLE.fullmatch(w) or _STAR.fullmatch(w)
        if m:
            w = m.group(1)
        if w.startswith("!") and len(w) > 1 and w != "!EXCLAMATION-POINT":
            w = w[1:]
        w = _LENGTHENED.sub("", w)
        if w == prev:
            return w


def _partial(w: str) -> str:
    """Partial word: ``REVO(LUTIONARY)-`` → ``REVO-``, ``(RE)VOLUTION`` → ``-VOLUTION``."""
    m = _PARTIAL.fullmatch(w)
    if not m:
        return w
    return fragment(m.group(1) or "", m.group(3) or "")


def normalize_word(token: str) -> str:
    """One ``.dot`` token → its ``text`` word (``""`` when the token is dropped)."""
    w = token.upper().replace("\\", "")
    w = _RENAME.get(w, w)
    if w in ("~", ".", "") or any(p.fullmatch(w) for p in _DROP):
        return ""
    if _NOISE.fullmatch(w):
        return NOISE
    return _partial(_unwrap(w))


def normalize_transcript(line: str) -> List[str]:
    """A ``.dot`` transcript (without its ``(uttid)``) → the list of normalised words."""
    words = (normalize_word(t) for t in line.split())
    return [w for w in words if w]
