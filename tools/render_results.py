#!/usr/bin/env python3
"""Fill the generated blocks of README.md and docs/*.md from the results files.

A generated block is a pair of marker comments; everything between them belongs to this
script and is rewritten from its source, so no result is ever copied by hand::

    <!-- render: results tts -->
    ...
    <!-- /render -->

What can follow ``render:``:

``results CORPUS``
    one row per architecture of that corpus, built from the rows ``stnas score`` writes
    between ``<!-- stnas:results:begin -->`` and ``<!-- stnas:results:end -->`` in
    RESULTS.md: parameters, %WER of every scored set, %OOV, the dev-chosen LM weight and
    word penalty.
``table FILE [N] [columns="A;B;..."]``
    the N-th markdown table (1-based, default 1) of FILE (a path from the repository root,
    e.g. ``bench/results/study.md``), as it is or reduced to the named columns.
``list FILE [N]``
    the N-th bullet list of FILE.

Usage::

    tools/render_results.py            # rewrite every file whose blocks are out of date
    tools/render_results.py --check    # exit 1 and print a diff when a file is out of date

Exit status: 0 when every file is (or now is) up to date, 1 when ``--check`` finds a
difference, 2 for a block that cannot be rendered (unknown kind, missing file or table).
"""

from __future__ import annotations

import argparse
import difflib
import re
import shlex
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
OPEN = re.compile(r"^<!-- render: (?P<spec>.*?) -->\s*$")
CLOSE = "<!-- /render -->"
RESULTS_BEGIN = "<!-- stnas:results:begin -->"
RESULTS_END = "<!-- stnas:results:end -->"
ARCH_LABELS = {
    "st": "ST-NAS searched, retrained with CTC-CRF",
    "tdnn_d": "TDNN-D (hand design), trained the same way",
}


class RenderError(Exception):
    """A block whose source cannot be read or does not hold what the block asks for."""


# --- reading markdown ---------------------------------------------------------------------


def split_row(line: str) -> List[str]:
    """The cells of a markdown table row (``\\|`` inside a cell is kept as is)."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [c.strip() for c in re.split(r"(?<!\\)\|", body)]


def join_row(cells: Sequence[str]) -> str:
    if cells and all(re.fullmatch(r":?-+:?", c) for c in cells):  # the alignment row
        return "|" + "|".join(cells) + "|"
    return "| " + " | ".join(cells) + " |"


def runs(lines: Sequence[str], starts: Tuple[str, ...]) -> List[List[str]]:
    """Maximal runs of consecutive lines that start with one of ``starts``."""
    found: List[List[str]] = []
    current: List[str] = []
    for line in lines:
        if line.startswith(starts):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    if current:
        found.append(current)
    return found


def read_source(root: Path, name: str) -> List[str]:
    path = root / name
    if not path.is_file():
        raise RenderError(f"no file {name}")
    return path.read_text().splitlines()


def nth(blocks: List[List[str]], n: int, what: str, name: str) -> List[str]:
    if not 1 <= n <= len(blocks):
        raise RenderError(f"{name} has {len(blocks)} {what}(s), not {n}")
    return blocks[n - 1]


# --- the kinds of block -------------------------------------------------------------------


def render_table(root: Path, name: str, n: int = 1, columns: Optional[str] = None) -> List[str]:
    table = nth(runs(read_source(root, name), ("|",)), n, "table", name)
    if columns is None:
        return list(table)
    header = split_row(table[0])
    wanted = [c.strip() for c in columns.split(";")]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise RenderError(
            f"table {n} of {name} has no column {missing[0]!r} (it has: {'; '.join(header)})"
        )
    idx = [header.index(c) for c in wanted]
    out = []
    for line in table:
        cells = split_row(line)
        if len(cells) != len(header):
            raise RenderError(
                f"table {n} of {name}: a row has {len(cells)} cells, the header {len(header)}"
            )
        out.append(join_row([cells[i] for i in idx]))
    return out


def render_list(root: Path, name: str, n: int = 1) -> List[str]:
    return list(nth(runs(read_source(root, name), ("* ", "- ")), n, "list", name))


def results_rows(root: Path) -> List[Dict[str, str]]:
    """The rows between the results markers of RESULTS.md, as dicts keyed by header."""
    lines = read_source(root, "RESULTS.md")
    try:
        begin, end = lines.index(RESULTS_BEGIN), lines.index(RESULTS_END)
    except ValueError:
        raise RenderError("RESULTS.md has no results markers") from None
    table = [line for line in lines[begin + 1 : end] if line.startswith("|")]
    if len(table) < 2:
        return []
    header = split_row(table[0])
    rows = []
    for line in table[2:]:
        cells = split_row(line)
        if len(cells) != len(header):
            raise RenderError(
                f"RESULTS.md: a results row has {len(cells)} cells, the header {len(header)}"
            )
        rows.append(dict(zip(header, cells)))
    return rows


def render_results(root: Path, corpus: str) -> List[str]:
    rows = [r for r in results_rows(root) if r.get("corpus") == corpus]
    if not rows:
        raise RenderError(f"RESULTS.md has no rows for corpus {corpus!r}")
    sets: List[str] = []
    models: Dict[Tuple[str, str], List[Dict[str, str]]] = {}
    for r in rows:
        if r["set"] not in sets:
            sets.append(r["set"])
        models.setdefault((r["arch"], r["LM"]), []).append(r)
    several_lms = len({lm for _, lm in models}) > 1
    header = (
        [f"`{corpus}`", "params"]
        + [f"{s} %WER [95 % CI]" for s in sets]
        + ["%OOV " + " / ".join(sets), "LM weight, word penalty"]
    )
    out = [join_row(header), "|" + "---|" * len(header)]
    for (arch, lm), group in models.items():
        by_set = {r["set"]: r for r in group}
        label = ARCH_LABELS.get(arch, f"`{arch}`") + (f", LM `{lm}`" if several_lms else "")
        wer = [
            (
                by_set[s]["%WER"]
                + (
                    f" {by_set[s]['95 % CI']}"
                    if by_set[s].get("95 % CI", "?") not in ("?", "")
                    else ""
                )
            )
            if s in by_set
            else "–"
            for s in sets
        ]
        oov = " / ".join(by_set[s].get("%OOV", "?") if s in by_set else "–" for s in sets)
        pairs = []
        for r in group:
            pair = f"{r['LM weight']}, {r['word penalty']}"
            if pair not in pairs:
                pairs.append(pair)
        params = " / ".join(sorted({r["params"] for r in group}))
        out.append(join_row([label, params] + wer + [oov, "; ".join(pairs)]))
    return out


def render_block(root: Path, spec: str) -> List[str]:
    """The lines a block with this spec holds (without the markers and blank lines)."""
    words = shlex.split(spec)
    opts = dict(w.split("=", 1) for w in words if "=" in w)
    args = [w for w in words if "=" not in w]
    kind, args = (args[0], args[1:]) if args else ("", [])
    try:
        if kind == "results" and len(args) == 1 and not opts:
            return render_results(root, args[0])
        if kind == "table" and 1 <= len(args) <= 2 and set(opts) <= {"columns"}:
            return render_table(
                root, args[0], int(args[1]) if len(args) == 2 else 1, opts.get("columns")
            )
        if kind == "list" and 1 <= len(args) <= 2 and not opts:
            return render_list(root, args[0], int(args[1]) if len(args) == 2 else 1)
    except ValueError as e:
        raise RenderError(f"bad number in {spec!r}: {e}") from None
    raise RenderError(
        f"not understood: {spec!r} (results CORPUS | table FILE [N] "
        f'[columns="A;B"] | list FILE [N])'
    )


# --- files --------------------------------------------------------------------------------


def render_text(root: Path, text: str, name: str) -> str:
    """``text`` with every generated block filled from its source."""
    lines = text.splitlines()
    out: List[str] = []
    i = 0
    while i < len(lines):
        m = OPEN.match(lines[i])
        out.append(lines[i])
        i += 1
        if not m:
            if lines[i - 1].strip() == CLOSE:
                raise RenderError(f"{name}:{i}: {CLOSE} without an opening marker")
            continue
        start = i
        while i < len(lines) and lines[i].strip() != CLOSE:
            if OPEN.match(lines[i]):
                raise RenderError(f"{name}:{i + 1}: a block opened inside the one at line {start}")
            i += 1
        if i == len(lines):
            raise RenderError(f"{name}:{start}: block {m['spec']!r} is never closed")
        try:
            body = render_block(root, m["spec"])
        except RenderError as e:
            raise RenderError(f"{name}:{start}: {e}") from None
        out += [""] + body + ["", lines[i]]
        i += 1
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def pages(root: Path) -> List[Path]:
    """README.md and docs/*.md: the pages that may hold generated blocks."""
    found = [root / "README.md"] if (root / "README.md").is_file() else []
    return found + sorted((root / "docs").glob("*.md"))


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a diff when a file is out of date",
    )
    ap.add_argument(
        "--root",
        type=Path,
        default=ROOT,
        help="the repository root (default: the one holding this script)",
    )
    a = ap.parse_args(argv)
    stale = 0
    for path in pages(a.root):
        name = str(path.relative_to(a.root))
        old = path.read_text()
        try:
            new = render_text(a.root, old, name)
        except RenderError as e:
            print(f"render_results: {e}", file=sys.stderr)
            return 2
        if new == old:
            continue
        stale += 1
        if a.check:
            sys.stdout.writelines(
                difflib.unified_diff(
                    old.splitlines(True), new.splitlines(True), name, f"{name} (rendered)"
                )
            )
        else:
            path.write_text(new)
            print(f"render_results: rewrote {name}")
    if a.check and stale:
        print(
            f"render_results: {stale} file(s) differ from their sources; "
            "run tools/render_results.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
