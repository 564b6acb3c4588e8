"""The word LM of a data dir: the text it is estimated on, what is kept out of it, when to rebuild.

Dev and test must never reach the decoder through the LM or its vocabulary. For a corpus
without an LM of its own, :func:`word_lm_arpa` estimates an interpolated modified Kneser-Ney
n-gram (:mod:`pipeline.lang.word_lm`) on

1. ``local/lm/text`` when prep wrote one (``tts`` always does: the fortunes sentence pool),
   else
2. the ``train`` transcripts (Switchboard, ``--corpus kaldi``), as Kaldi's Switchboard recipe
   does for its ``sw1_tg``.

A text pool apart from the transcripts (1.) is filtered (prep's ``lm_text_filter: auto`` is
``near`` there): every sentence that is a dev or test sentence, or a near-copy of one
(:func:`exclude_eval_text`), is removed: it contains one or is contained in one ("THE SYSTEM
IS GOING TO CRASH" goes when test has "AND THE SYSTEM IS GOING TO CRASH"), or it differs from
one by at most a quarter of that sentence's words (word edit distance: "YOUR MILEAGE MAY VARY"
for "YOUR OWN MILEAGE MAY VARY"). Near-copies count only for dev/test sentences of at least
``min_words`` (4) words, so that common short phrases ("YEAH", "I KNOW") stay in the text.
Train transcripts (2.) are kept as they are (``auto`` is ``none`` there): on digits, commands
or prompts read by many speakers every sentence recurs, and removing them would remove the
task; ``lm_text_filter: exact | near`` filters them too, and a filter that leaves nothing is an
error naming the option. An LM the user gives (``stnas prep --lm-arpa``) is used as it is.
The decoding vocabulary is this LM's (:func:`pipeline.lang.graphs.write_lang_test`), so a word
that occurs only in dev/test can never be recognised.

The estimate is kept as ``local/lm/<lm>.arpa`` with ``<lm>.json`` recording its source, the
sentences removed and a sha256 of the dev/test transcripts it excludes; it is estimated again
when that hash, the source, the order or :data:`LM_BUILD_VERSION` changes. Corpus LMs listed by
prep (``local/lm/lm_paths.txt``, WSJ's official LMs) are used as they are.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import kaldialign

from pipeline.data.datadir import read_map
from pipeline.data.layout import corpus_of, prep_option
from pipeline.errors import DataError
from pipeline.io import atomic_write_text
from pipeline.lang.lexicon import read_symbol_table
from pipeline.lang.word_lm import estimate_word_lm, perplexity, write_arpa
from pipeline.textfile import read_text

log = logging.getLogger(__name__)
EVAL_SETS = ("dev", "test")
# 2: modified-KN n4 counts exactly 4; near-copies of dev/test sentences removed
# 3: near-copies include sentences within a quarter of the words' edit distance
LM_BUILD_VERSION = 3
FILTERS = ("none", "exact", "near")
_BEFORE = {"filter": "near"}  # what an LM recorded before the option was made with
GIVEN_ARPA = "--lm-arpa"  # tg.json "source" of an LM the user gave (used as it is)
LM_ORDERS = {"ug": 1, "bg": 2, "tg": 3, "fg": 4}  # an LM's order by its name (else 3)
_MAX_POSTINGS = 50  # word bigrams in more dev/test sentences than this do not propose pairs
Words = Tuple[str, ...]


def _spans(words: Words, min_len: int) -> Iterable[Words]:
    """Every contiguous word sequence of ``words`` with at least ``min_len`` words."""
    n = len(words)
    for i in range(n):
        for j in range(i + min_len, n + 1):
            yield words[i:j]


def exclude_eval_text(
    sentences: Sequence[Sequence[str]],
    held: Iterable[Sequence[str]],
    min_words: int = 4,
    mode: str = "near",
) -> Tuple[List[List[str]], Dict[str, int]]:
    """LM text without the dev/test sentences and their near-copies (module docstring).

    Args:
        sentences: the candidate LM text, one word list per sentence.
        held: the dev/test transcripts.
        min_words: near-copies (containment either way, small edit distance) count only for
            sequences this long or longer; an identical sentence is removed whatever its length.
        mode: ``near`` (identical sentences and near-copies), ``exact`` (identical ones only)
            or ``none`` (nothing is removed).

    Returns:
        (kept sentences, counts ``{"identical", "contains", "contained", "similar", "kept"}``).
    """
    if mode not in FILTERS:
        raise ValueError(f"unknown LM text filter {mode!r} (choose from {', '.join(FILTERS)})")
    held_set: Set[Words] = {tuple(h) for h in held if h} if mode != "none" else set()
    held_long = {h for h in held_set if len(h) >= min_words} if mode == "near" else set()
    held_parts: Set[Words] = set()
    by_head: Dict[Words, List[Words]] = {}  # first min_words words -> dev/test sentences
    by_bigram: Dict[Words, List[Words]] = {}
    for h in held_long:
        held_parts.update(_spans(h, min_words))
        by_head.setdefault(h[:min_words], []).append(h)
        for bigram in set(zip(h, h[1:])):
            by_bigram.setdefault(bigram, []).append(h)
    kept: List[List[str]] = []
    counts = {"identical": 0, "contains": 0, "contained": 0, "similar": 0}
    for s in sentences:
        t = tuple(s)
        if t in held_set:
            counts["identical"] += 1
        elif mode != "near":
            kept.append(list(s))
        elif len(t) >= min_words and t in held_parts:
            counts["contained"] += 1
        elif _contains(t, by_head, min_words):
            counts["contains"] += 1
        elif _similar(t, by_bigram):
            counts["similar"] += 1
        else:
            kept.append(list(s))
    counts["kept"] = len(kept)
    return kept, counts


def _contains(t: Words, by_head: Dict[Words, List[Words]], min_words: int) -> bool:
    """Whether a dev/test sentence (indexed by its first words) occurs inside ``t``."""
    for i in range(len(t) - min_words + 1):
        for h in by_head.get(t[i : i + min_words], ()):
            if t[i : i + len(h)] == h:
                return True
    return False


def _similar(t: Words, by_bigram: Dict[Words, List[Words]]) -> bool:
    """Whether ``t`` is within ``len(h) // 4`` word edits of a dev/test sentence ``h``.

    Only sentences sharing enough of ``t``'s less common word bigrams are compared: ``d``
    edits leave at least ``len(h) - 1 - 2d`` of ``h``'s bigrams in place.
    """
    shared: Dict[Words, int] = {}
    for bigram in set(zip(t, t[1:])):
        posting = by_bigram.get(bigram, ())
        if len(posting) <= _MAX_POSTINGS:
            for h in posting:
                shared[h] = shared.get(h, 0) + 1
    for h, n in shared.items():
        budget = len(h) // 4
        if (
            budget
            and n >= len(h) - 1 - 2 * budget
            and abs(len(h) - len(t)) <= budget
            and kaldialign.edit_distance(list(h), list(t))["total"] <= budget
        ):
            return True
    return False


def eval_transcripts(data_dir: Path) -> List[List[str]]:
    """Every dev and test transcript of ``data_dir`` (word lists, file order)."""
    out: List[List[str]] = []
    for name in EVAL_SETS:
        text = data_dir / name / "text"
        if text.is_file():
            out += [v.split() for v in read_map(text, allow_empty_value=True).values()]
    return out


def text_sha256(sentences: Iterable[Sequence[str]]) -> str:
    """sha256 of a set of sentences (order and duplicates do not matter)."""
    lines = sorted({" ".join(s) for s in sentences})
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def lm_training_text(data_dir: Path) -> Tuple[str, List[List[str]]]:
    """(source name, sentences) the word LM of ``data_dir`` is estimated on (module docstring).

    Raises:
        DataError: neither ``local/lm/text`` nor ``train/text`` exists.
    """
    lm_text = data_dir / "local" / "lm" / "text"
    if lm_text.is_file():
        lines = read_text(lm_text).splitlines()
        return str(lm_text), [line.split() for line in lines if line.strip()]
    if corpus_of(data_dir) == "tts":
        raise DataError(
            "missing: this tts data dir was prepared by an older stnas; prepare it "
            "again with 'stnas prep --force'",
            lm_text,
        )
    train_text = data_dir / "train" / "text"
    if not train_text.is_file():
        raise DataError(
            "no text to estimate a word LM from: write one sentence per line to "
            f"{lm_text}, or put an ARPA file at {data_dir / 'local' / 'lm'}",
            train_text,
        )
    return str(train_text), [
        v.split() for v in read_map(train_text, allow_empty_value=True).values()
    ]


def text_filter(data_dir: Path, source: str) -> str:
    """The dev/test filter for the LM text of ``data_dir`` (prep's ``lm_text_filter``): ``auto``
    is ``near`` for a text pool apart from the transcripts (``local/lm/text``) and ``none`` for
    the train transcripts, as Kaldi recipes estimate them."""
    mode = str(prep_option(data_dir, "lm_text_filter", "auto"))
    if mode == "auto":
        return "near" if Path(source).parent.name == "lm" else "none"
    return mode


def word_lm_arpa(data_dir: Path, lm: str, order: Optional[int] = None) -> Path:
    """The ARPA file of LM ``lm`` for ``data_dir``, estimated (again) when needed.

    A corpus LM listed by prep (``local/lm/lm_paths.txt``) is returned as it is, and so is an
    LM the user gave (``stnas prep --lm-arpa``) or put at ``local/lm/<lm>.arpa`` without a
    ``<lm>.json`` record (with a warning: nothing shows what it excludes). Otherwise see the
    module docstring; ``order`` defaults by the name (:data:`LM_ORDERS`: ug 1, bg 2, tg 3, fg 4).

    Raises:
        DataError: an unknown or compressed corpus LM, or no text left to estimate one.
    """
    order = order or LM_ORDERS.get(lm, 3)
    listed = data_dir / "local" / "lm" / "lm_paths.txt"
    if listed.is_file():
        paths = read_map(listed)
        if lm not in paths:
            raise DataError(f"LM '{lm}' not available (have: {', '.join(paths)})", listed)
        if paths[lm].endswith(".gz"):
            raise DataError(
                f"{paths[lm]} is gzip-compressed: gunzip it and point "
                f"local/lm/lm_paths.txt at the plain ARPA file",
                listed,
            )
        return Path(paths[lm])
    arpa = data_dir / "local" / "lm" / f"{lm}.arpa"
    record = arpa.with_suffix(".json")
    if arpa.is_file() and not record.is_file():
        log.warning(
            "%s has no record of its training text (%s): used as it is; make sure it "
            "saw no dev/test sentence",
            arpa,
            record.name,
        )
        return arpa
    if arpa.is_file() and json.loads(read_text(record)).get("source") == GIVEN_ARPA:
        return arpa
    held = eval_transcripts(data_dir)
    source, text = lm_training_text(data_dir)
    mode = text_filter(data_dir, source)
    wanted = {
        "version": LM_BUILD_VERSION,
        "source": source,
        "order": order,
        "filter": mode,
        "excluded_eval_sha256": text_sha256(held) if mode != "none" else None,
    }
    if arpa.is_file():
        old = json.loads(read_text(record))
        changed = [k for k, v in wanted.items() if old.get(k, _BEFORE.get(k)) != v]
        if not changed:
            return arpa
        log.info("word LM %s is estimated again (%s changed)", arpa, ", ".join(changed))
    t0 = time.perf_counter()
    kept, removed = exclude_eval_text([s for s in text if s], held, mode=mode)
    if not kept:
        raise DataError(
            f"no sentences left to estimate word LM '{lm}' from {source}: lm_text_filter "
            f"'{mode}' removed all {len(text)} as dev/test sentences"
            + (" or near-copies of them" if mode == "near" else "")
            + ". On transcripts where sentences recur (digits, commands, read prompts) prepare "
            "with --lm-text-filter none (or exact), or give your own LM with --lm-arpa FILE",
            arpa,
        )
    words_txt = data_dir / "lang" / "words.txt"
    unk = "<UNK>" if words_txt.is_file() and "<UNK>" in read_symbol_table(words_txt) else "<unk>"
    model = estimate_word_lm(kept, order=order, unk=unk)
    write_arpa(model, arpa)
    dev_text = data_dir / "dev" / "text"
    dev = [t.split() for t in read_map(dev_text).values()] if dev_text.is_file() else []
    ppl = perplexity(model, dev).summary() if dev else {}
    atomic_write_text(
        record,
        json.dumps(
            {
                **wanted,
                "sentences": len(kept),
                "removed": removed,
                "eval_sentences": len(held),
                "vocabulary": len(model.words),
                "dev": ppl,
                "seconds": round(time.perf_counter() - t0, 2),
            },
            indent=2,
        )
        + "\n",
    )
    log.info(
        "word LM %s: %d sentences of %s (lm_text_filter %s: %d dev/test sentences%s removed), "
        "dev perplexity %s",
        arpa,
        len(kept),
        source,
        mode,
        len(text) - len(kept),
        " and near-copies" if mode == "near" else "",
        ppl.get("perplexity"),
    )
    return arpa
