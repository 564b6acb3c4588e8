"""``RESULTS.md``: one table row per (corpus, set, architecture, LM) decode, kept up to date.

Rows live between two HTML-comment markers, so text written around the table by hand
survives. :func:`update_results` reads the existing rows, replaces the row with the same key
(or adds it) and rewrites the file atomically, sorted by corpus, architecture, LM and set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Tuple, Union

from pipeline.errors import DataError
from pipeline.io import atomic_write_text

PathLike = Union[str, Path]

BEGIN = "<!-- stnas:results:begin -->"
END = "<!-- stnas:results:end -->"
HEADER = (
    "corpus",
    "set",
    "arch",
    "params",
    "LM",
    "LM weight",
    "word penalty",
    "%WER",
    "95 % CI",
    "sub",
    "del",
    "ins",
    "words",
    "%OOV",
    "decode dir",
)
_OLD_HEADER_CELLS = 12  # tables written before the word penalty and OOV columns
_NO_CI_CELLS = 14  # tables written before the interval column


@dataclass
class ResultRow:
    """One decode's numbers.

    Attributes:
        corpus: ``tts``, ``wsj``, ``swbd``.
        set: the scored set (``test``, ``eval92``, ...).
        arch: the architecture's name (``st_nas``, ``darts``, ``tdnn_d``...).
        params: parameter count, as text (``11.9M``).
        lm: the LM name of ``lang_test_<lm>``.
        lm_weight, word_penalty: the decoding setting used (chosen on dev).
        wer: %WER; sub, dels, ins, words: the counts behind it.
        oov: %OOV, reference words the decoding graph cannot output (text, ``?`` unknown).
        ci: the WER's 95 % bootstrap interval over utterances (text, ``?`` unknown).
        decode_dir: where the scoring files are.
    """

    corpus: str
    set: str
    arch: str
    params: str
    lm: str
    lm_weight: float
    wer: float
    sub: int
    dels: int
    ins: int
    words: int
    decode_dir: str = ""
    word_penalty: float = 0.0
    oov: str = "?"
    ci: str = "?"

    @property
    def key(self) -> Tuple[str, str, str, str]:
        """Rows with the same (corpus, set, arch, LM) replace each other."""
        return (self.corpus, self.set, self.arch, self.lm)

    def cells(self) -> List[str]:
        """The row's table cells, in :data:`HEADER` order."""
        return [
            self.corpus,
            self.set,
            self.arch,
            self.params,
            self.lm,
            f"{self.lm_weight:g}",
            f"{self.word_penalty:g}",
            f"{self.wer:.2f}",
            self.ci,
            str(self.sub),
            str(self.dels),
            str(self.ins),
            str(self.words),
            self.oov,
            self.decode_dir,
        ]


def _format(rows: Iterable[ResultRow]) -> List[str]:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r.cells()) + " |")
    return lines


def _parse_row(cells: List[str], path: Path, line: int) -> ResultRow:
    if len(cells) == _OLD_HEADER_CELLS:  # no word penalty (0) and no OOV column
        cells = cells[:6] + ["0"] + cells[6:11] + ["?"] + cells[11:]
    if len(cells) == _NO_CI_CELLS:
        cells = cells[:8] + ["?"] + cells[8:]
    if len(cells) != len(HEADER):
        raise DataError(f"results row has {len(cells)} cells, expected {len(HEADER)}", path, line)
    keys = (
        "corpus",
        "set",
        "arch",
        "params",
        "lm",
        "lm_weight",
        "word_penalty",
        "wer",
        "ci",
        "sub",
        "dels",
        "ins",
        "words",
        "oov",
        "decode_dir",
    )
    try:
        values: Dict[str, object] = dict(zip(keys, cells))
        for k in ("lm_weight", "word_penalty", "wer"):
            values[k] = float(cells[keys.index(k)])
        for k in ("sub", "dels", "ins", "words"):
            values[k] = int(cells[keys.index(k)])
        return ResultRow(**values)  # type: ignore[arg-type]
    except ValueError as e:
        raise DataError(f"bad number in results row ({e})", path, line) from None


def read_results(path: PathLike) -> List[ResultRow]:
    """The rows of the managed table of ``RESULTS.md`` ([] when the file or table is absent)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows, inside = [], False
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() == BEGIN:
            inside = True
        elif line.strip() == END:
            inside = False
        elif inside and line.startswith("|") and not line.startswith("|---"):
            inner = line.strip()[1:-1].replace("\\|", "\0")  # escaped pipes stay in cells
            cells = [c.strip().replace("\0", "|") for c in inner.split("|")]
            if cells[:2] == list(HEADER[:2]):
                continue
            rows.append(_parse_row(cells, path, n))
    return rows


def update_results(
    path: PathLike, new_rows: Iterable[ResultRow], title: str = "# Results"
) -> List[ResultRow]:
    """Add or replace rows (by :attr:`ResultRow.key`) in ``RESULTS.md`` and rewrite it.

    Args:
        path: the results file (created with ``title`` when missing).
        new_rows: rows of this decode.
        title: heading of a new file.

    Returns:
        every row now in the table.
    """
    path = Path(path)
    by_key = {r.key: r for r in read_results(path)}
    for r in new_rows:
        by_key[r.key] = r
    rows = sorted(by_key.values(), key=lambda r: (r.corpus, r.arch, r.lm, r.set))
    table = [BEGIN] + _format(rows) + [END]
    if path.is_file():
        text = path.read_text(encoding="utf-8").splitlines()
        if BEGIN in (t.strip() for t in text):
            start = [t.strip() for t in text].index(BEGIN)
            end = [t.strip() for t in text].index(END, start)
            lines = text[:start] + table + text[end + 1 :]
        else:
            lines = text + [""] + table
    else:
        lines = [
            title,
            "",
            "%WER per decode; the LM weight is chosen on dev, never on test.",
            "",
        ] + table
    atomic_write_text(path, "\n".join(lines) + "\n")
    return rows


def row_dict(row: ResultRow) -> dict:
    """The row as a plain dict (for ``stage.json``)."""
    return asdict(row)
