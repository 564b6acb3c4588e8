"""Audio checks that tell the truth: truncated files, several channels, segments past the end
of their recording, and why a header is corrupt."""

import io
import wave

import numpy as np
import pytest

from pipeline.data.audio import read_audio, read_sphere, read_wav_bytes, write_wav
from pipeline.data.features import _AudioSource
from pipeline.errors import DataError
from tests.conftest import tone


def _wav(tmp_path, name, samples, rate=16000, nchan=1):
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(nchan)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, "<i2").tobytes())
    p = tmp_path / name
    p.write_bytes(buf.getvalue())
    return p


def test_truncated_wav_is_refused_with_the_counts(tmp_path):
    p = _wav(tmp_path, "cut.wav", (tone(1.0) * 0.5).astype(np.int16))
    blob = p.read_bytes()
    p.write_bytes(blob[: 44 + 2 * 8000])  # half of the data the header declares
    with pytest.raises(
        DataError,
        match=r"u1.*truncated wav: the header declares 16000 "
        r"samples per channel, the file holds 8000",
    ):
        read_audio(str(p), "u1")
    # the output of a pipe cannot know its length: not checked there
    rate, x = read_wav_bytes(p.read_bytes(), "cmd |", check_length=False)
    assert rate == 16000 and len(x) == 8000


def test_truncated_sphere_is_refused(tmp_path):
    from tests.unit.test_fbank_audio import sphere_bytes

    p = tmp_path / "cut.sph"
    p.write_bytes(sphere_bytes(np.arange(200, dtype=np.int16), 8000)[: 1024 + 2 * 120])
    with pytest.raises(
        DataError,
        match="truncated: the header declares 200 samples per channel, the file holds 120",
    ):
        read_sphere(str(p))


def test_stereo_needs_a_channel_and_the_channel_is_taken(tmp_path):
    left, right = np.arange(400, dtype=np.int16), -np.arange(400, dtype=np.int16)
    p = _wav(tmp_path, "st.wav", np.stack([left, right], 1).reshape(-1), nchan=2)
    with pytest.raises(
        DataError,
        match=r"u9.*has 2 channels: choose one with "
        r"'stnas prep --channel N'",
    ):
        read_audio(str(p), "u9")
    np.testing.assert_array_equal(read_audio(str(p), "u9", channel=2)[1], right)
    np.testing.assert_array_equal(read_audio(str(p), "u9", channel=1)[1], left)
    with pytest.raises(DataError, match="channel 3 requested but the file has 2"):
        read_audio(str(p), "u9", channel=3)
    from tests.unit.test_fbank_audio import sphere_bytes

    s = tmp_path / "st.sph"
    s.write_bytes(sphere_bytes(np.stack([left, right], 1).reshape(-1), 8000, nchan=2))
    with pytest.raises(DataError, match="has 2 channels"):
        read_audio(str(s), "u8")
    assert read_audio(f"sph2pipe -f wav -p -c 2 {s} |", "u8")[1][5] == -5  # -c chooses


def test_segment_overshoot_beyond_tolerance_is_an_error(tmp_path):
    p = tmp_path / "rec.wav"
    write_wav(str(p), 16000, tone(2.0))
    source = _AudioSource(
        {"rec": str(p)}, {"ok": "rec 1.0 2.3", "far": "rec 1.0 2.8", "late": "rec 2.5 3.0"}
    )
    rate, x = source("ok")  # 0.3 s past the end: cut there, as Kaldi does
    assert len(x) == 16000
    with pytest.raises(
        DataError,
        match=r"far.*segment ends at 2.8s, 0.80s after the end of "
        r"recording rec \(2.00s; at most 0.5s",
    ):
        source("far")
    with pytest.raises(DataError, match=r"late.*starts at 2.5s after the end"):
        source("late")


@pytest.mark.parametrize(
    "blob, reason",
    [
        (b"", "not a RIFF/WAVE file: it starts with b''"),
        (b"OggS\x00\x02" + b"\x00" * 40, "not a RIFF/WAVE file: it starts with b'OggS"),
        (
            b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00",
            "the header ends before its chunks do (22 bytes in all)",
        ),
        (b"RIFF\x24\x00\x00\x00WAVE", "fmt chunk and/or data chunk missing"),
    ],
)
def test_corrupt_header_says_why(tmp_path, blob, reason):
    p = tmp_path / "bad.wav"
    p.write_bytes(blob)
    with pytest.raises(DataError) as e:
        read_audio(str(p), "u5")
    assert f"corrupt wav header ({reason}" in str(e.value) and "u5" in str(e.value)
