import subprocess

import numpy as np
import pytest

from pipeline.data.audio import read_audio, read_sphere, read_wav_bytes, write_wav
from pipeline.data.fbank import FbankExtractor, read_kaldi_conf
from pipeline.errors import DataError
from tests.conftest import tone

CONF = "conf/fbank.conf"


def mel(f):
    return 1127.0 * np.log(1 + f / 700.0)


def test_conf_parsing_and_unknown_option(tmp_path):
    opts = read_kaldi_conf(CONF)
    assert opts["num-mel-bins"] == "40" and opts["sample-frequency"] == "16000"
    bad = tmp_path / "fbank.conf"
    bad.write_text("--num-mel-bins=40\n--bogus-option=1\n")
    with pytest.raises(DataError, match=r"fbank.conf:2.*--bogus-option"):
        read_kaldi_conf(bad)


def test_frame_count_and_tone_peak():
    fb = FbankExtractor(CONF)
    assert fb.dim == 40 and fb.sample_rate == 16000
    x = tone(1.0, freq=1000.0)
    feats = fb(x, 16000)
    assert feats.shape == (1 + (16000 - 400) // 160, 40)
    # the bin whose mel centre is nearest 1 kHz carries the most energy (20 Hz .. 8 kHz, 40 bins)
    lo, hi = mel(20.0), mel(8000.0)
    centres = lo + (np.arange(40) + 1) * (hi - lo) / 41
    assert int(np.argmax(feats.mean(0))) == int(np.argmin(abs(centres - mel(1000.0))))
    # log energies: doubling the amplitude adds log(4) to every bin (no dither, no energy floor hit)
    np.testing.assert_allclose(fb(2 * x, 16000) - feats, np.log(4.0), atol=1e-3)


def test_wrong_sample_rate_is_named():
    fb = FbankExtractor(CONF)
    with pytest.raises(DataError, match=r"utt7.*8000 Hz.*16000"):
        fb(tone(0.5, 8000), 8000, "utt7")


def test_wav_roundtrip_and_pipe(tmp_path):
    x = np.round(tone(0.3))
    p = tmp_path / "a.wav"
    write_wav(str(p), 16000, x)
    rate, y = read_audio(str(p))
    assert rate == 16000
    np.testing.assert_array_equal(y, x)
    rate, z = read_audio(f"cat {p} |")
    np.testing.assert_array_equal(z, x)


def test_missing_corrupt_and_failing_audio(tmp_path):
    with pytest.raises(DataError, match=r"u1.*not found"):
        read_audio(str(tmp_path / "nope.wav"), "u1")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF garbage that is not a wav")
    with pytest.raises(DataError, match=r"u2.*corrupt"):
        read_audio(str(bad), "u2")
    with pytest.raises(DataError, match=r"u3.*command failed"):
        read_audio("false |", "u3")


def sphere_bytes(samples, rate, nchan=1, coding="pcm", byte_format="01"):
    fields = [
        f"sample_rate -i {rate}",
        f"channel_count -i {nchan}",
        "sample_n_bytes -i 2",
        f"sample_coding -s{len(coding)} {coding}",
        f"sample_byte_format -s2 {byte_format}",
        f"sample_count -i {len(samples) // nchan}",
        "end_head",
    ]
    head = ("NIST_1A\n   1024\n" + "\n".join(fields) + "\n").encode()
    head += b" " * (1024 - len(head))
    dtype = "<i2" if byte_format == "01" else ">i2"
    return head + np.asarray(samples, dtype=dtype).tobytes()


def test_sphere_pcm_channels_and_sph2pipe_entry(tmp_path):
    left = np.arange(100, dtype=np.int16)
    right = -np.arange(100, dtype=np.int16)
    inter = np.stack([left, right], 1).reshape(-1)
    p = tmp_path / "x.sph"
    p.write_bytes(sphere_bytes(inter, 8000, nchan=2, byte_format="10"))
    rate, a = read_sphere(str(p), channel=2)
    assert rate == 8000
    np.testing.assert_array_equal(a, right)
    rate, b = read_audio(f"sph2pipe -f wav -p -c 1 {p} |")
    np.testing.assert_array_equal(b, left)


def test_shortened_sphere_without_sph2pipe_explains(tmp_path, monkeypatch):
    p = tmp_path / "s.wv1"
    p.write_bytes(sphere_bytes(np.zeros(10), 16000, coding="pcm,embedded-shorten-v2.00"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no sph2pipe anywhere
    with pytest.raises(DataError, match=r"shorten.*sph2pipe"):
        read_audio(f"sph2pipe -f wav -p {p} |", "w1")


def test_ulaw_decoding_matches_sox(tmp_path):
    x = np.round(tone(0.1, 8000))
    src = tmp_path / "lin.wav"
    write_wav(str(src), 8000, x)
    ul = tmp_path / "u.raw"
    subprocess.run(["sox", str(src), "-t", "raw", "-e", "u-law", "-b", "8", str(ul)], check=True)
    p = tmp_path / "u.sph"
    codes = np.frombuffer(ul.read_bytes(), dtype=np.uint8)
    head = (
        "NIST_1A\n   1024\nsample_rate -i 8000\nchannel_count -i 1\nsample_n_bytes -i 1\n"
        "sample_coding -s4 ulaw\nend_head\n"
    ).encode()
    p.write_bytes(head + b" " * (1024 - len(head)) + codes.tobytes())
    ref = subprocess.run(
        [
            "sox",
            "-t",
            "raw",
            "-r",
            "8000",
            "-e",
            "u-law",
            "-b",
            "8",
            str(ul),
            "-t",
            "wav",
            "-e",
            "signed",
            "-b",
            "16",
            "-",
        ],
        capture_output=True,
        check=True,
    )
    _, want = read_wav_bytes(ref.stdout, "ref")
    _, got = read_sphere(str(p))
    np.testing.assert_array_equal(got, want)
