"""ARPA files of n-gram LMs: writing (phone and word LMs) and reading a phone LM back.

Values are natural logs inside the project and log10 in the file; ``-inf`` is written as
``-99``, the ARPA convention for probability 0.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from pipeline.errors import DataError
from pipeline.io import atomic_write_text
from pipeline.lang.phone_lm import BOS, EOS, History, PhoneLm
from pipeline.textfile import text_lines

PathLike = Union[str, Path]
_LN10 = math.log(10.0)
ARPA_ZERO = -99.0  # log10 value that ARPA files use for probability 0


def _arpa_word(token: int, names: Optional[Mapping[int, str]]) -> str:
    if token == BOS:
        return "<s>"
    if token == EOS:
        return "</s>"
    return names[token] if names else str(token)


def write_arpa_entries(
    path: PathLike,
    entries: Mapping[int, Sequence[Tuple[str, float, Optional[float]]]],
    digits: int = 7,
) -> None:
    """Write an ARPA file atomically from ``order -> [(n-gram text, ln p, ln backoff)]`` rows,
    already in the order they are to appear; values are converted to log10 (``-inf`` is
    written as ``-99``, the ARPA convention for probability 0)."""
    lines = ["", "\\data\\"] + [f"ngram {n}={len(entries[n])}" for n in sorted(entries)]
    for n in sorted(entries):
        lines += ["", f"\\{n}-grams:"]
        for text, lp, bow in entries[n]:
            line = f"{max(lp / _LN10, ARPA_ZERO):.{digits}f}\t{text}"
            if bow is not None:
                line += f"\t{max(bow / _LN10, ARPA_ZERO):.{digits}f}"
            lines.append(line)
    lines += ["", "\\end\\", ""]
    atomic_write_text(path, "\n".join(lines))


def write_arpa(lm: PhoneLm, path: PathLike, unit_names: Optional[Mapping[int, str]] = None) -> None:
    """Write the LM as an ARPA file (log10), atomically.

    Args:
        lm: the model.
        path: output file, e.g. ``data/<c>/den/phone_lm.arpa``.
        unit_names: unit id -> symbol (from ``units.txt``); phone ids are written when None.
    """
    rows: Dict[History, float] = {(BOS,): -math.inf}
    for h, listed in lm.prob.items():
        for w, lp in listed.items():
            rows[h + (w,)] = lp
    # An unsmoothed LM lists no unigrams and may have states whose own n-gram has probability
    # 0: ARPA needs a line for each (probability 0) to carry the state's backoff weight.
    for ngram in list(lm.backoff) + [(w,) for w in lm.vocab]:
        if ngram and ngram not in rows:
            rows[ngram] = -math.inf
    by_order: Dict[int, List[Tuple[History, float, Optional[float]]]] = defaultdict(list)
    for ngram, lp in rows.items():
        by_order[len(ngram)].append((ngram, lp, lm.backoff.get(ngram)))
    entries = {
        n: [
            (" ".join(_arpa_word(t, unit_names) for t in ngram), lp, bow)
            for ngram, lp, bow in sorted(rows, key=lambda e: e[0])
        ]
        for n, rows in by_order.items()
    }
    write_arpa_entries(path, entries, digits=8)


def read_arpa(
    path: PathLike, num_units: int, symbol_ids: Optional[Mapping[str, int]] = None
) -> PhoneLm:
    """Read an ARPA phone LM (as written by :func:`write_arpa`) back into a :class:`PhoneLm`.

    Args:
        path: the ARPA file.
        num_units: K, units including blank.
        symbol_ids: symbol -> unit id (``units.txt``); words are phone ids when None.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("ARPA file not found", path)
    lm = PhoneLm(1, num_units, {}, {})
    order = 0
    for n, line in enumerate(text_lines(path), 1):
        line = line.strip()
        if line.startswith("\\") and line.endswith("-grams:"):
            head = line[1:].split("-")[0]
            if not head.isdigit() or int(head) < 1:
                raise DataError(f"bad section header '{line}' (expected \\N-grams:)", path, n)
            order = int(head)
            lm.order = max(lm.order, order)
            continue
        if not line or line.startswith("\\") or order == 0:
            continue
        parts = line.split()
        if len(parts) not in (order + 1, order + 2):
            raise DataError(f"expected {order} words in a {order}-gram line", path, n)
        try:
            ids = tuple(
                BOS
                if w == "<s>"
                else EOS
                if w == "</s>"
                else (symbol_ids[w] if symbol_ids else int(w))
                for w in parts[1 : order + 1]
            )
            lp, bow = (
                _from_log10(parts[0]),
                (_from_log10(parts[-1]) if len(parts) == order + 2 else None),
            )
        except (KeyError, ValueError) as e:
            raise DataError(f"bad ARPA entry ({e})", path, n) from None
        if ids != (BOS,):
            lm.prob.setdefault(ids[:-1], {})[ids[-1]] = lp
        if bow is not None:
            lm.backoff[ids] = bow
    missing = [w for w in lm.vocab if w not in lm.prob.get((), {})]
    if missing:
        raise DataError(f"unigrams missing for tokens {missing[:5]}", path)
    if any(b == -math.inf for b in lm.backoff.values()):
        # unsmoothed (states never back off): the probability-0 lines only carried backoffs
        lm.smoothed = False
        lm.prob = {
            h: kept
            for h, listed in lm.prob.items()
            if (kept := {w: lp for w, lp in listed.items() if lp > -math.inf})
        }
    else:
        lm.backoff.setdefault((), 0.0)
    return lm


def _from_log10(text: str) -> float:
    value = float(text)
    return -math.inf if value <= ARPA_ZERO else value * _LN10
