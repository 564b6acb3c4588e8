"""Readers of user input never crash: random bytes, and valid files with bytes flipped, inserted,
deleted or cut off, are either read or refused with the project's own error (StnasError and
its subclasses) -- never a UnicodeDecodeError, KeyError, ZeroDivisionError, ...

Property-based (hypothesis); example counts stay small so that CI stays fast.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable, List, Tuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import read_yaml_mapping
from pipeline.data.audio import read_audio, read_wav_bytes, wav_bytes
from pipeline.data.datadir import read_map
from pipeline.data.fbank import read_kaldi_conf
from pipeline.data.validate import validate_data_dir
from pipeline.decode.package import DecodingSpec, FeatureSpec, read_arch
from pipeline.errors import StnasError
from pipeline.lang.arpa import read_arpa
from pipeline.lang.graphs import read_arpa_vocabulary
from pipeline.lang.lexicon import read_lexicon, read_symbol_table
from pipeline.manifest import read_manifest
from pipeline.nas.arch import Arch
from tests.unit.test_fbank_audio import sphere_bytes

REPO = Path(__file__).resolve().parents[2]
FUZZ = settings(
    max_examples=int(os.environ.get("STNAS_FUZZ_EXAMPLES", 50)),  # more: a longer hunt
    deadline=None,  # the CPUs are shared with training runs: no per-example time limit
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
Edit = Tuple[int, str, int]


def _apply(seed: bytes, edits: List[Edit]) -> bytes:
    data = bytearray(seed)
    for pos, kind, value in edits:
        i = pos % (len(data) + 1)
        if kind == "set" and i < len(data):
            data[i] = value
        elif kind == "insert":
            data[i:i] = bytes([value])
        elif kind == "delete":
            del data[i : i + 1 + value % 8]
        elif kind == "cut":
            del data[i:]
    return bytes(data)


def inputs(seed: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, or ``seed`` with a few edits (the interesting cases are near-valid)."""
    edit = st.tuples(
        st.integers(0, 1 << 16),
        st.sampled_from(["set", "insert", "delete", "cut"]),
        st.integers(0, 255),
    )
    mutated = st.lists(edit, min_size=1, max_size=6).map(lambda e: _apply(seed, e))
    return st.one_of(st.binary(max_size=600), mutated, st.just(seed))


def reads_or_refuses(read: Callable[[], object]) -> None:
    try:
        read()
    except StnasError:
        pass


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- seeds: small valid files of each kind ------------------------------------------------
WAV = wav_bytes(8000, (1000 * np.sin(np.arange(400) / 5.0)).astype(np.float32))
SPHERE = sphere_bytes(np.arange(300, dtype=np.int16), 8000)
TEXT = b"spk1-u1 HELLO WORLD\nspk1-u2 GOOD MORNING\nspk2-u1 A TEST\n"
UTT2SPK = b"spk1-u1 spk1\nspk1-u2 spk1\nspk2-u1 spk2\n"
SEGMENTS = b"spk1-u1 rec1 0.0 1.5\nspk1-u2 rec1 1.5 3.0\nspk2-u1 rec2 0.0 2.0\n"
LEXICON = b"HELLO HH AH L OW\nWORLD W ER L D\nA AH\nA EY\n"
UNITS = b"<blk> 0\nAH 1\nD 2\nER 3\n"
ARPA = (
    b"\n\\data\\\nngram 1=4\nngram 2=2\n\n\\1-grams:\n-0.5\t<s>\t-0.3\n-0.6\t1\t-0.2\n"
    b"-0.7\t2\t-0.2\n-0.4\t</s>\n\n\\2-grams:\n-0.2\t<s> 1\n-0.3\t1 2\n\n\\end\\\n"
)
YAML = (REPO / "conf" / "debug" / "retrain.yaml").read_bytes()
ARCH = (REPO / "conf" / "arch" / "tdnn_d_tiny.json").read_bytes()
FBANK = (REPO / "conf" / "fbank.conf").read_bytes()
MANIFEST = json.dumps(
    {
        "format": "stnas-model-package",
        "version": 1,
        "files": {"units.txt": {"sha256": "ab" * 32, "bytes": 23}},
    }
).encode()
FEATURES = json.dumps(FeatureSpec("fbank.conf", 16000, 120).to_dict()).encode()
DECODING = json.dumps(DecodingSpec("tg", 0.5, 0.0, "dev").to_dict()).encode()


@FUZZ
@given(inputs(WAV))
def test_wav_reader(scratch, data):
    path = _write(scratch / "x.wav", data)
    reads_or_refuses(lambda: read_audio(str(path), "utt"))
    reads_or_refuses(lambda: read_wav_bytes(data, "cmd |", check_length=False))


@FUZZ
@given(inputs(SPHERE))
def test_sphere_reader(scratch, data):
    path = _write(scratch / "x.sph", data)
    reads_or_refuses(lambda: read_audio(str(path), "utt"))
    reads_or_refuses(lambda: read_audio(f"sph2pipe -f wav -p -c 1 {path} |", "utt"))


@FUZZ
@given(st.sampled_from([TEXT, UTT2SPK, SEGMENTS]).flatmap(inputs))
def test_kaldi_key_value_files(scratch, data):
    path = _write(scratch / "text", data)
    reads_or_refuses(lambda: read_map(path))
    reads_or_refuses(lambda: read_map(path, allow_empty_value=True))


@FUZZ
@pytest.mark.parametrize(
    "name, seed", [("text", TEXT), ("utt2spk", UTT2SPK), ("segments", SEGMENTS)]
)
@given(data=st.data())
def test_data_dir_validation(scratch, name, seed, data):
    d = scratch / f"dir_{name}"
    d.mkdir(exist_ok=True)
    files = {
        "text": TEXT,
        "utt2spk": UTT2SPK,
        "spk2utt": b"spk1 spk1-u1 spk1-u2\nspk2 spk2-u1\n",
        "segments": SEGMENTS,
        "wav.scp": b"rec1 /dev/null\nrec2 sox x.wav -t wav - |\n",
    }
    for f, content in files.items():
        (d / f).write_bytes(content)
    _write(d / name, data.draw(inputs(seed)))
    reads_or_refuses(lambda: validate_data_dir(d, check_audio=False))


@FUZZ
@given(inputs(LEXICON))
def test_lexicon_reader(scratch, data):
    path = _write(scratch / "lexicon.txt", data)
    reads_or_refuses(lambda: read_lexicon(path))


@FUZZ
@given(inputs(UNITS))
def test_symbol_table_reader(scratch, data):
    path = _write(scratch / "units.txt", data)
    reads_or_refuses(lambda: read_symbol_table(path))


@FUZZ
@given(inputs(ARPA))
def test_arpa_readers(scratch, data):
    path = _write(scratch / "lm.arpa", data)
    reads_or_refuses(lambda: read_arpa(path, num_units=3))
    reads_or_refuses(lambda: read_arpa_vocabulary(path))


@FUZZ
@given(inputs(YAML))
def test_yaml_config_reader(scratch, data):
    path = _write(scratch / "conf.yaml", data)
    reads_or_refuses(lambda: read_yaml_mapping(path))


@FUZZ
@given(inputs(FBANK))
def test_fbank_config_reader(scratch, data):
    path = _write(scratch / "fbank.conf", data)
    reads_or_refuses(lambda: read_kaldi_conf(path))


@FUZZ
@given(inputs(ARCH))
def test_arch_json_reader_of_a_package(scratch, data):
    path = _write(scratch / "arch.json", data)
    reads_or_refuses(lambda: read_arch(path))


@FUZZ
@given(inputs(ARCH))
def test_arch_json_reader(scratch, data):
    path = _write(scratch / "arch.json", data)
    reads_or_refuses(lambda: Arch.from_json(path))


@FUZZ
@given(inputs(MANIFEST))
def test_package_manifest_reader(scratch, data):
    _write(scratch / "manifest.json", data)
    reads_or_refuses(lambda: read_manifest(scratch, "stnas-model-package", 1))


@FUZZ
@given(
    st.sampled_from([(FEATURES, FeatureSpec), (DECODING, DecodingSpec)]).flatmap(
        lambda pair: inputs(pair[0]).map(lambda b: (b, pair[1]))
    )
)
def test_package_descriptions(scratch, case):
    data, kind = case
    path = _write(scratch / "spec.json", data)
    reads_or_refuses(lambda: kind.from_file(path))


def test_the_fuzzer_would_see_a_crash(scratch):
    """A reader that lets a foreign exception through fails the property (so the tests above
    can fail)."""

    @FUZZ
    @given(inputs(TEXT))
    def crashing(data):
        reads_or_refuses(lambda: data.decode("utf-8"))

    with pytest.raises(UnicodeDecodeError):
        crashing()
