"""The word LM of a data dir: the text it is estimated on, what is kept out of it, when to rebuild.

Dev and test must never reach the decoder through the LM or its vocabulary. For a corpus
without an LM of its own, :func:`word_lm_arpa` estimates an interpolated modified Kneser-Ney
n-gram (:mod:`pipeline.lang.word_lm`) on

1. ``local/lm/text`` when prep wrote one (``tts``: the fortunes sentence pool), else
2. the ``train`` transcripts (Switchboard, ``--corpus kaldi``), as Kaldi's Switchboard recipe
   does for its ``sw1_tg``,

after removing every sentence that is a dev or test sentence, or contains one, or is contained
in one (:func:`exclude_eval_text`: "THE SYSTEM IS GOING TO CRASH" goes when test has "AND THE
SYSTEM IS GOING TO CRASH"). Containment counts only for word sequences of at least
``min_words`` (4) words, so that common short phrases ("YEAH", "I KNOW") stay in the text.
The decoding vocabulary is this LM's (:func:`pipeline.lang.graphs.build_lang_test`), so a word
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
from typing import Dict, Iterable, List, Sequence, Set, Tuple

from pipeline.data.datadir import read_map
from pipeline.errors import DataError
from pipeline.stage import atomic_write_text

log = logging.getLogger(__name__)
EVAL_SETS = ("dev", "test")
# 2: modified-KN n4 counts exactly 4; near-copies of dev/test sentences removed
LM_BUILD_VERSION = 2
Words = Tuple[str, ...]


def _spans(words: Words, min_len: int) -> Iterable[Words]:
    """Every contiguous word sequence of ``words`` with at least ``min_len`` words."""
    n = len(words)
    for i in range(n):
        for j in range(i + min_len, n + 1):
            yield words[i:j]


def exclude_eval_text(sentences: Sequence[Sequence[str]], held: Iterable[Sequence[str]],
                      min_words: int = 4) -> Tuple[List[List[str]], Dict[str, int]]:
    """LM text without the dev/test sentences and their near-copies.

    Args:
        sentences: the candidate LM text, one word list per sentence.
        held: the dev/test transcripts.
        min_words: containment (either way) counts only for sequences this long or longer;
            an identical sentence is removed whatever its length.

    Returns:
        (kept sentences, counts ``{"identical", "contains", "contained", "kept"}``).
    """
    held_set: Set[Words] = {tuple(h) for h in held if h}
    held_long = {h for h in held_set if len(h) >= min_words}
    held_parts: Set[Words] = set()
    for h in held_long:
        held_parts.update(_spans(h, min_words))
    longest = max((len(h) for h in held_long), default=0)
    kept: List[List[str]] = []
    counts = {"identical": 0, "contains": 0, "contained": 0}
    for s in sentences:
        t = tuple(s)
        if t in held_set:
            counts["identical"] += 1
        elif len(t) >= min_words and t in held_parts:
            counts["contained"] += 1
        elif any(p in held_long for p in _spans(t, min_words) if len(p) <= longest):
            counts["contains"] += 1
        else:
            kept.append(list(s))
    counts["kept"] = len(kept)
    return kept, counts


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
        lines = lm_text.read_text(encoding="utf-8").splitlines()
        return str(lm_text), [line.split() for line in lines if line.strip()]
    corpus = _corpus_name(data_dir)
    if corpus == "tts":  # prepared before prep wrote local/lm/text: the same pool
        from local.tts.sentences import sentence_pool
        from pipeline.lang.lexicon import read_festival_cmudict

        return "fortunes", [s.split() for s in sentence_pool(read_festival_cmudict())]
    train_text = data_dir / "train" / "text"
    if not train_text.is_file():
        raise DataError("no text to estimate a word LM from: write one sentence per line to "
                        f"{lm_text}, or put an ARPA file at {data_dir / 'local' / 'lm'}",
                        train_text)
    return str(train_text), [v.split() for v in
                             read_map(train_text, allow_empty_value=True).values()]


def _corpus_name(data_dir: Path) -> str:
    cfg = data_dir / "config.yaml"
    if not cfg.is_file():
        return data_dir.name
    import yaml

    return str((yaml.safe_load(cfg.read_text()) or {}).get("corpus", data_dir.name))


def word_lm_arpa(data_dir: Path, lm: str, order: int = 3) -> Path:
    """The ARPA file of LM ``lm`` for ``data_dir``, estimated (again) when needed.

    A corpus LM listed by prep (``local/lm/lm_paths.txt``) is returned as it is; an ARPA file
    at ``local/lm/<lm>.arpa`` without a ``<lm>.json`` record is the user's own and is used as
    it is (with a warning: nothing shows what it excludes). Otherwise see the module docstring.

    Raises:
        DataError: an unknown or compressed corpus LM, or no text left to estimate one.
    """
    listed = data_dir / "local" / "lm" / "lm_paths.txt"
    if listed.is_file():
        paths = read_map(listed)
        if lm not in paths:
            raise DataError(f"LM '{lm}' not available (have: {', '.join(paths)})", listed)
        if paths[lm].endswith(".gz"):
            raise DataError(f"{paths[lm]} is gzip-compressed: gunzip it and point "
                            f"local/lm/lm_paths.txt at the plain ARPA file", listed)
        return Path(paths[lm])
    arpa = data_dir / "local" / "lm" / f"{lm}.arpa"
    record = arpa.with_suffix(".json")
    if arpa.is_file() and not record.is_file():
        log.warning("%s has no record of its training text (%s): used as it is; make sure it "
                    "saw no dev/test sentence", arpa, record.name)
        return arpa
    held = eval_transcripts(data_dir)
    source, text = lm_training_text(data_dir)
    wanted = {"version": LM_BUILD_VERSION, "source": source, "order": order,
              "excluded_eval_sha256": text_sha256(held)}
    if arpa.is_file():
        old = json.loads(record.read_text(encoding="utf-8"))
        changed = [k for k, v in wanted.items() if old.get(k) != v]
        if not changed:
            return arpa
        log.info("word LM %s is estimated again (%s changed)", arpa, ", ".join(changed))
    from pipeline.lang.lexicon import read_symbol_table
    from pipeline.lang.word_lm import estimate_word_lm, perplexity, write_arpa

    t0 = time.perf_counter()
    kept, removed = exclude_eval_text([s for s in text if s], held)
    if not kept:
        raise DataError(f"no sentences left to estimate word LM '{lm}' from {source}", arpa)
    words_txt = data_dir / "lang" / "words.txt"
    unk = "<UNK>" if words_txt.is_file() and "<UNK>" in read_symbol_table(words_txt) \
        else "<unk>"
    model = estimate_word_lm(kept, order=order, unk=unk)
    write_arpa(model, arpa)
    dev_text = data_dir / "dev" / "text"
    dev = [t.split() for t in read_map(dev_text).values()] if dev_text.is_file() else []
    ppl = perplexity(model, dev).summary() if dev else {}
    atomic_write_text(record, json.dumps(
        {**wanted, "sentences": len(kept), "removed": removed, "eval_sentences": len(held),
         "vocabulary": len(model.words), "dev": ppl,
         "seconds": round(time.perf_counter() - t0, 2)}, indent=2) + "\n")
    log.info("word LM %s: %d sentences of %s (%d dev/test sentences and near-copies removed), "
             "dev perplexity %s", arpa, len(kept), source,
             removed["identical"] + removed["contains"] + removed["contained"],
             ppl.get("perplexity"))
    return arpa
