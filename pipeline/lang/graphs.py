"""The decoding graph ``TLG = T o det(L o G)`` (EESEN/CAT style, Kaldi's fstext operations).

* **L** (:func:`build_lexicon_fst`): one loop state (start and final); each pronunciation is a
  chain ``phone:word, phone:eps, ...`` back to it. Input labels are unit ids (``units.txt``:
  ``<blk> 0``, phones ``1..K-1``) and the disambiguation symbols ``#0..#m`` (ids ``K..K+m``);
  output labels are word ids (``words.txt``). As Kaldi's ``add_lex_disambig.pl`` does, a
  pronunciation that is also another word's (homophones) or a proper prefix of another one
  gets ``#1, #2, ...`` appended, so ``L o G`` is determinizable; a self-loop ``#0:#0`` on the
  loop state lets G's backoff symbol through.
* **G** (:func:`build_grammar_fst`): the ARPA word LM through ``kaldilm.arpa2fst`` with
  ``#0`` on the input of backoff arcs and ``<s>``/``</s>`` as epsilons.
* **LG** (:func:`build_lg`): ``determinize_star(L o G)`` in the log semiring, encoded
  minimisation, input-label sort (Kaldi's ``mkgraph.sh`` minus weight pushing).
* **TLG** (:func:`build_tlg`): the decode-form token FST (:mod:`pipeline.lang.token_fst`,
  input ``unit + 1``, output phone ids, ``eps:#k`` self-loops on every state) composed with LG.
  Its inputs are T's inputs, so every disambiguation symbol of LG is matched by an epsilon:
  TLG's input side holds only tokens ``1..K`` and epsilon -- the removal of disambiguation
  symbols that Kaldi does with ``fstrmsymbols`` happens inside the composition, as in EESEN.

:func:`write_lang_test` writes ``TLG.fst`` into ``lang_test_<lm>``; the graphs stage
(:mod:`pipeline.stages.graphs`) runs it once and again only when its inputs change. **The decoding vocabulary is the
LM's**: L holds every pronunciation of every lexicon word that is a unigram of the ARPA LM
(``lang_test_<lm>/lexicon.txt``, read back by :func:`decoding_vocabulary` to measure OOV
rates); a lexicon word the LM does not know cannot be output, and an LM word without a
pronunciation cannot either (both counted in ``graph_info.json``). ``words.txt`` is the lang
dir's table with the LM's other words appended, so that every n-gram reaches G.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Sequence, Set, Tuple, Union

import kaldifst

from pipeline.data.datadir import c_sort_key
from pipeline.errors import DataError, StnasError
from pipeline.io import atomic_path, atomic_write_text
from pipeline.lang.lexicon import Lexicon, read_lexicon, read_symbol_table, write_lexicon
from pipeline.lang.token_fst import build_token_fst
from pipeline.textfile import text_lines

PathLike = Union[str, Path]
log = logging.getLogger(__name__)

GRAPH_VERSION = 4  # bump when the construction changes, so that old graphs are rebuilt
# 2: the decoding vocabulary is the LM's (L holds only lexicon words the LM knows)
# 3: inputs recorded by content fingerprint (4: by the stage runner)
WORD_DISAMBIG = "#0"


def fst_size(fst: kaldifst.StdFst) -> Dict[str, int]:
    """``{"states": S, "arcs": E}`` of an FST."""
    states = fst.num_states
    return {"states": states, "arcs": sum(fst.num_arcs(s) for s in range(states))}


def add_disambig(prons: Sequence[Tuple[str, List[int]]]) -> Tuple[List[Tuple[str, List[int]]], int]:
    """Mark homophones and prefix pronunciations with disambiguation numbers.

    Args:
        prons: ``(word, phone ids)`` pairs, one per pronunciation.

    Returns:
        the pairs again, in order, where a pronunciation that needs ``#k`` (k >= 1) has the
        negative number ``-k`` appended to its ids, and the largest k used (0 when none).
    """
    count = Counter(tuple(p) for _, p in prons)
    prefixes = {tuple(p[:i]) for _, p in prons for i in range(1, len(p))}
    last: Dict[Tuple[int, ...], int] = {}
    out, top = [], 0
    for word, p in prons:
        key = tuple(p)
        if count[key] > 1 or key in prefixes:
            last[key] = last.get(key, 0) + 1
            top = max(top, last[key])
            out.append((word, list(p) + [-last[key]]))
        else:
            out.append((word, list(p)))
    return out, top


def build_lexicon_fst(
    lexicon: Lexicon,
    units: Mapping[str, int],
    words: Mapping[str, int],
    source: PathLike = "lexicon",
) -> Tuple[kaldifst.StdVectorFst, List[int]]:
    """L with disambiguation symbols (see the module docstring).

    Args:
        lexicon: word -> pronunciations (phone symbols of ``units``).
        units: ``units.txt`` (``<blk>`` 0, phones ``1..K-1``).
        words: ``words.txt``; must hold every lexicon word and ``#0``.
        source: the lexicon's file name, for error messages.

    Returns:
        L (output-label sorted, ready for composition with G) and the input ids of
        ``#0, #1, ..., #m`` (``K..K+m``).

    Raises:
        DataError: a phone missing from ``units.txt`` or a word missing from ``words.txt``.
    """
    num_units = max(units.values()) + 1
    if WORD_DISAMBIG not in words:
        raise DataError(f"words table lacks the disambiguation symbol {WORD_DISAMBIG}")
    prons: List[Tuple[str, List[int]]] = []
    for word in sorted(lexicon, key=c_sort_key):
        if word not in words:
            raise DataError(f"lexicon word '{word}' is not in words.txt", source)
        for pron in lexicon[word]:
            missing = [p for p in pron if p not in units or units[p] == 0]
            if missing:
                raise DataError(f"word '{word}': phones {missing} are not units", source)
            prons.append((word, [units[p] for p in pron]))
    marked, top = add_disambig(prons)
    disambig_ids = [num_units + k for k in range(top + 1)]

    fst = kaldifst.StdVectorFst()
    loop = fst.add_state()
    fst.start = loop
    fst.set_final(loop, 0.0)
    for word, seq in marked:
        labels = [num_units - s if s < 0 else s for s in seq]  # -k -> id of #k
        src = loop
        for i, ilabel in enumerate(labels):
            dst = loop if i == len(labels) - 1 else fst.add_state()
            fst.add_arc(src, kaldifst.StdArc(ilabel, words[word] if i == 0 else 0, 0.0, dst))
            src = dst
    fst.add_arc(loop, kaldifst.StdArc(disambig_ids[0], words[WORD_DISAMBIG], 0.0, loop))
    kaldifst.arcsort(fst, sort_type="olabel")
    return fst, disambig_ids


@contextlib.contextmanager
def _logged_stderr(what: str) -> Iterator[None]:
    """Route the C++ library's stderr chatter into this module's log: errors as errors,
    warnings folded into one INFO line with their count (each at debug level).

    File descriptor 2 is swapped for the duration, so other threads' stderr is caught too.
    """
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            warnings = []
            for line in tmp.read().decode("utf-8", "replace").splitlines():
                if line.startswith(("[E]", "ERROR")):
                    log.error("%s: %s", what, line)
                elif line.startswith(("[W]", "WARNING")):
                    warnings.append(line)
                    log.debug("%s: %s", what, line)
                elif line.strip():
                    log.debug("%s: %s", what, line)
            if warnings:  # one line, not one per skipped n-gram (all of them at -vv)
                log.info(
                    "%s: %d warning(s), e.g. %s (all of them with stnas -vv)",
                    what,
                    len(warnings),
                    warnings[0].strip()[-160:],
                )


def build_grammar_fst(arpa: PathLike, words_txt: PathLike) -> kaldifst.StdVectorFst:
    """G from an ARPA LM by ``kaldilm.arpa2fst`` (``#0`` on backoff arcs, ilabel-sorted).

    N-grams holding words missing from ``words_txt`` are skipped (logged as warnings).
    """
    import kaldilm

    arpa = Path(arpa)
    if not arpa.is_file():
        raise DataError("ARPA LM not found", arpa)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "G.fst"
        try:
            with _logged_stderr("arpa2fst"):
                kaldilm.arpa2fst(
                    str(arpa),
                    str(out),
                    disambig_symbol=WORD_DISAMBIG,
                    read_symbol_table=str(words_txt),
                )
        except RuntimeError as e:
            raise DataError(f"arpa2fst failed: {e}", arpa) from None
        g = kaldifst.StdVectorFst.read(str(out))
    if g is None or g.num_states == 0:
        raise DataError("G is empty (no n-gram of the ARPA file is in words.txt?)", arpa)
    return g


def build_lg(
    lexicon_fst: kaldifst.StdVectorFst, grammar_fst: kaldifst.StdVectorFst
) -> kaldifst.StdVectorFst:
    """``LG = minimize_encoded(determinize_star(L o G))``, input-label sorted."""
    lg = kaldifst.StdVectorFst(kaldifst.compose(lexicon_fst, grammar_fst))
    if lg.num_states == 0:
        raise StnasError("L o G is empty: no lexicon word can be read by the LM")
    if kaldifst.determinize_star(lg, use_log=True):
        raise StnasError("determinize_star(L o G) stopped early (max states reached)")
    kaldifst.minimize_encoded(lg)
    kaldifst.arcsort(lg, sort_type="ilabel")
    return lg


def build_tlg(
    lg: kaldifst.StdVectorFst, num_units: int, disambig_ids: Sequence[int]
) -> kaldifst.StdVectorFst:
    """``TLG = T(decode form, with disambiguation loops) o LG``, input-label sorted.

    Args:
        lg: LG over phone ids ``1..K-1`` and ``disambig_ids`` (input) and word ids (output).
        num_units: K, units including blank.
        disambig_ids: the ids of ``#0..#m`` on LG's input side.

    Returns:
        TLG with inputs ``0..K`` (token = unit + 1, blank = 1; 0 = epsilon) and word outputs.
    """
    token_fst = build_token_fst(num_units, "decode", disambig_ids)
    tlg = kaldifst.StdVectorFst(kaldifst.compose(token_fst, lg))
    if tlg.num_states == 0:
        raise StnasError("T o LG is empty")
    kaldifst.arcsort(tlg, sort_type="ilabel")
    return tlg


def _words_with_specials(words: Dict[str, int], more: Sequence[str] = ()) -> Dict[str, int]:
    """``words.txt`` plus the words ``more`` and ``#0``, ``<s>``, ``</s>`` when missing (new
    ids after the largest, so the ids of ``words`` do not change)."""
    out = dict(words)
    for sym in (*more, WORD_DISAMBIG, "<s>", "</s>"):
        if sym not in out:
            out[sym] = max(out.values()) + 1
    return out


def _write_table(path: PathLike, table: Mapping[str, int]) -> None:
    atomic_write_text(
        path, "".join(f"{s} {i}\n" for s, i in sorted(table.items(), key=lambda e: e[1]))
    )


def read_arpa_vocabulary(arpa: PathLike) -> Set[str]:
    """The words of an ARPA LM's unigram section (without ``<s>`` and ``</s>``).

    Raises:
        DataError: no ``\\1-grams:`` section, or a byte that is not UTF-8.
    """
    arpa = Path(arpa)
    if not arpa.is_file():
        raise DataError("ARPA LM not found", arpa)
    words: Set[str] = set()
    inside = False
    for line in text_lines(arpa):
        line = line.strip()
        if line == "\\1-grams:":
            inside = True
        elif inside and (line.startswith("\\") or not line and words):
            break
        elif inside and line:
            parts = line.split()
            if len(parts) >= 2:
                words.add(parts[1])
    if not inside:
        raise DataError("not an ARPA LM (no \\1-grams: section)", arpa)
    return words - {"<s>", "</s>"}


def decoding_lexicon(
    lexicon: Lexicon, lm_words: Set[str], units: Mapping[str, int]
) -> Tuple[Lexicon, Dict[str, object]]:
    """The lexicon of L: every pronunciation of every lexicon word that the LM knows.

    Pronunciations with a phone that is not a unit are left out (a word left with none is
    not decodable). Returns the lexicon and counts for ``graph_info.json``.
    """
    out: Lexicon = {}
    bad_prons = 0
    for word, prons in lexicon.items():
        if word not in lm_words:
            continue
        ok = [p for p in prons if all(units.get(ph, 0) > 0 for ph in p)]
        bad_prons += len(prons) - len(ok)
        if ok:
            out[word] = ok
    no_pron = sorted(lm_words - set(out), key=c_sort_key)
    return out, {
        "vocabulary": len(out),
        "pronunciations": sum(len(p) for p in out.values()),
        "lm_words": len(lm_words),
        "lm_words_without_pronunciation": len(no_pron),
        "lm_words_without_pronunciation_examples": no_pron[:20],
        "lexicon_words_not_in_lm": sum(1 for w in lexicon if w not in lm_words),
        "pronunciations_with_unknown_units": bad_prons,
    }


def decoding_vocabulary(lang_test: PathLike) -> Set[str]:
    """The words a ``lang_test_<lm>`` graph can output (its ``lexicon.txt``)."""
    return set(read_lexicon(Path(lang_test) / "lexicon.txt"))


def write_lang_test(lang_dir: PathLike, arpa: PathLike, out_dir: PathLike) -> Dict[str, object]:
    """Build ``out_dir/TLG.fst`` (+ ``words.txt``) from a lang dir and an ARPA LM (the body of
    the graphs stage, :func:`pipeline.stages.graphs.build_lang_test`, which builds it once).

    Args:
        lang_dir: holds ``lexicon.txt``, ``units.txt``, ``words.txt`` (prep's ``lang``).
        arpa: the word LM.
        out_dir: e.g. ``data/<c>/lang_test_<lm>``; also receives ``units_disambig.txt``
            (units plus ``#0..#m``, Kaldi's ``phones.txt`` with disambiguation symbols),
            ``graph_info.json`` (sizes, build seconds).

    Returns:
        the graph info: ``{"L"|"G"|"LG"|"TLG": {"states", "arcs"}, "seconds": {...}, ...}``.
    """
    lang_dir, out_dir = Path(lang_dir), Path(out_dir)
    inputs = [lang_dir / "lexicon.txt", lang_dir / "units.txt", lang_dir / "words.txt", Path(arpa)]
    for p in inputs:
        if not p.is_file():
            raise DataError("missing input of the decoding graph", p)
    tlg_path, info_path = out_dir / "TLG.fst", out_dir / "graph_info.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    units = read_symbol_table(lang_dir / "units.txt")
    if units.get("<blk>") != 0 or sorted(units.values()) != list(range(len(units))):
        raise DataError(
            "units.txt must be '<blk> 0' then phones numbered 1..K-1", lang_dir / "units.txt"
        )
    lm_words = read_arpa_vocabulary(arpa)
    lexicon, vocab_info = decoding_lexicon(read_lexicon(lang_dir / "lexicon.txt"), lm_words, units)
    if not lexicon:
        raise DataError("no lexicon word is in the LM: nothing could be decoded", arpa)
    write_lexicon(out_dir / "lexicon.txt", lexicon)
    words = _words_with_specials(
        read_symbol_table(lang_dir / "words.txt"), sorted(lm_words, key=c_sort_key)
    )
    _write_table(out_dir / "words.txt", words)

    sizes: Dict[str, Dict[str, int]] = {}
    seconds: Dict[str, float] = {}
    t0 = time.perf_counter()
    lex_fst, disambig_ids = build_lexicon_fst(lexicon, units, words, out_dir / "lexicon.txt")
    seconds["L"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    g = build_grammar_fst(arpa, out_dir / "words.txt")
    seconds["G"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lg = build_lg(lex_fst, g)
    seconds["LG"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tlg = build_tlg(lg, len(units), disambig_ids)
    seconds["TLG"] = time.perf_counter() - t0
    for name, fst in (("L", lex_fst), ("G", g), ("LG", lg), ("TLG", tlg)):
        sizes[name] = fst_size(fst)
        log.info(
            "%s: %d states, %d arcs, built in %.2f s",
            name,
            sizes[name]["states"],
            sizes[name]["arcs"],
            seconds[name],
        )

    with atomic_path(tlg_path) as tmp:
        if not tlg.write(str(tmp)):
            raise OSError(f"could not write {tlg_path}")
    disambig = {f"#{k}": i for k, i in enumerate(disambig_ids)}
    _write_table(out_dir / "units_disambig.txt", {**units, **disambig})
    info = {
        **sizes,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "num_units": len(units),
        "disambig_ids": disambig_ids,
        "lm": str(arpa),
        **vocab_info,
    }
    atomic_write_text(info_path, json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info
