"""Reading the text files a user hands over (Kaldi data dirs, lexicons, ARPA LMs, configs) as
UTF-8, with an error that says where a file is not.

A corpus prepared on another system often carries a Latin-1 or other 8-bit byte in a
transcript or a lexicon. Python's own error (``'utf-8' codec can't decode byte 0xe9 in
position 8191``) names neither the file nor the line, and its position counts from a buffer
of the file, not from its start. Readers here raise :class:`~pipeline.errors.DataError`
naming the file, the line, the byte offset from the start of the file, and how to convert it.
Line breaks are read as ``open(path, encoding="utf-8")`` reads them (universal newlines).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

from pipeline.errors import DataError

PathLike = Union[str, Path]


def not_utf8_error(path: PathLike) -> DataError:
    """The :class:`DataError` for the first byte of ``path`` that is not UTF-8.

    The file is scanned line by line in binary (memory bounded by the longest line). When
    no bad byte is found (the file changed meanwhile), the error still names the file.
    """
    offset = 0
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return DataError(
                    f"byte 0x{raw[e.start]:02x} at byte offset {offset + e.start} (byte "
                    f"{e.start + 1} of the line) is not UTF-8: {e.reason}. stnas reads "
                    "text files as UTF-8; convert this one, e.g. from Latin-1 with "
                    f"'iconv -f latin1 -t utf-8 {path} > {Path(path).name}.utf8' (name the "
                    "file's real encoding after -f), and put the result in its place",
                    path,
                    n,
                )
            offset += len(raw)
    return DataError("is not UTF-8 text (convert it with 'iconv -f latin1 -t utf-8')", path)


def text_lines(path: PathLike) -> Iterator[str]:
    """The lines of a UTF-8 text file, newlines kept, as iterating ``open(path,
    encoding="utf-8")`` gives them.

    Raises:
        DataError: a byte that is not UTF-8 (naming the file, line and byte offset).
        OSError: the file cannot be opened.
    """
    try:
        with open(path, encoding="utf-8") as f:
            yield from f
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None


def read_text(path: PathLike) -> str:
    """The whole of a UTF-8 text file (universal newlines, like ``Path.read_text``).

    Raises:
        DataError: a byte that is not UTF-8 (naming the file, line and byte offset).
        OSError: the file cannot be opened.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None
