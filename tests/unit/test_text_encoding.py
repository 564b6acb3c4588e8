"""A Latin-1 byte in a user's text file is an error naming the file, the line and the byte
offset, and saying how to convert the file; never a bare UnicodeDecodeError."""

import re

import pytest

from pipeline.config import read_yaml_mapping
from pipeline.data.datadir import read_map
from pipeline.data.validate import validate_data_dir
from pipeline.errors import DataError, StnasError
from pipeline.lang.arpa import read_arpa
from pipeline.lang.graphs import read_arpa_vocabulary
from pipeline.lang.lexicon import read_lexicon
from pipeline.textfile import read_text, text_lines

# line 3 holds "CAFÉ" in Latin-1: É is the single byte 0xc9
LINES = [b"spk1-u1 HELLO\n", b"spk1-u2 GOOD DAY\n", b"spk1-u3 A CAF\xc9 NOIR\n"]
OFFSET = len(LINES[0]) + len(LINES[1]) + len(b"spk1-u3 A CAF")


def _check(err: StnasError, path, line: int = 3, offset: int = OFFSET) -> None:
    msg = str(err)
    assert msg.startswith(f"{path}:{line}: "), msg
    assert f"byte 0xc9 at byte offset {offset} " in msg, msg
    assert "iconv -f latin1 -t utf-8" in msg and "not UTF-8" in msg, msg


def test_data_dir_files(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text("spk1-u1 a.wav\nspk1-u2 b.wav\nspk1-u3 c.wav\n")
    (d / "spk2utt").write_text("spk1 spk1-u1 spk1-u2 spk1-u3\n")
    (d / "utt2spk").write_text("spk1-u1 spk1\nspk1-u2 spk1\nspk1-u3 spk1\n")
    (d / "text").write_bytes(b"".join(LINES))
    with pytest.raises(DataError) as e:
        validate_data_dir(d, check_audio=False)
    _check(e.value, d / "text")
    (d / "text").write_text("spk1-u1 HELLO\nspk1-u2 GOOD DAY\nspk1-u3 A CAFE\n")
    bad = b"spk1-u1 spk1\nspk1-u2 spk1\nspk1-u3 spk\xe91\n"
    (d / "utt2spk").write_bytes(bad)
    with pytest.raises(DataError) as e:
        validate_data_dir(d, check_audio=False)
    at = f"byte 0xe9 at byte offset {bad.index(0xE9)} "
    assert str(e.value).startswith(f"{d / 'utt2spk'}:3: {at}")
    (d / "utt2spk").write_text("spk1-u1 spk1\nspk1-u2 spk1\nspk1-u3 spk1\n")
    (d / "wav.scp").write_text("rec1 a.wav\n")
    bad = b"spk1-u1 rec1 0 1\nspk1-u2 rec1 1 2\nspk1-u3 rec\xff 2 3\n"
    (d / "segments").write_bytes(bad)
    at = f"segments:3: byte 0xff at byte offset {bad.index(0xFF)} .*iconv"
    with pytest.raises(DataError, match=at):
        validate_data_dir(d, check_audio=False)


def test_lexicon_arpa_and_yaml(tmp_path):
    lex = tmp_path / "lexicon.txt"
    bad = b"HELLO HH AH L OW\nA AH\nCAF\xc9 K AE F EY\n"
    lex.write_bytes(bad)
    with pytest.raises(DataError) as e:
        read_lexicon(lex)
    _check(e.value, lex, offset=bad.index(0xC9))
    arpa = tmp_path / "lm.arpa"
    bad = (
        b"\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\t<s>\t-0.5\n-1.0\tCAF\xc9\t-0.5\n-1.0\t</s>\n"
        b"\n\\end\\\n"
    )
    arpa.write_bytes(bad)
    for read in (lambda: read_arpa_vocabulary(arpa), lambda: read_arpa(arpa, 3)):
        with pytest.raises(DataError) as e:
            read()
        _check(e.value, arpa, line=6, offset=bad.index(0xC9))
    conf = tmp_path / "retrain.yaml"
    conf.write_bytes(b"lr: 0.002\n# r\xe9glage\nmax_epochs: 3\n")
    with pytest.raises(DataError, match=re.escape(f"{conf}:2: byte 0xe9 at byte offset 13 ")):
        read_yaml_mapping(conf)


def test_the_offset_counts_from_the_start_of_a_large_file(tmp_path):
    """Past the first buffer of a text-mode read (8 KiB), the offset is still the file's."""
    p = tmp_path / "text"
    head = b"".join(b"spk1-u%05d HELLO WORLD AGAIN\n" % i for i in range(2000))
    p.write_bytes(head + b"spk1-u99999 NA\xc9VE\n")
    with pytest.raises(DataError) as e:
        read_map(p)
    _check(e.value, p, line=2001, offset=len(head) + len(b"spk1-u99999 NA"))
    with pytest.raises(DataError):
        read_text(p)
    # the lines before the bad one are read as they are
    lines = text_lines(tmp_path / "text")
    assert next(lines) == "spk1-u00000 HELLO WORLD AGAIN\n"


def test_utf8_text_reads_as_before(tmp_path):
    p = tmp_path / "text"
    p.write_bytes("spk1-u1 CAFÉ\r\nspk1-u2 NAÏVE\n".encode("utf-8"))
    assert read_map(p) == {"spk1-u1": "CAFÉ", "spk1-u2": "NAÏVE"}
    assert read_text(p) == "spk1-u1 CAFÉ\nspk1-u2 NAÏVE\n"  # universal newlines, as open()
