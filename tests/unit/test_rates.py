"""Sample rates: read from headers (wav, SPHERE, behind sph2pipe) or pipes, the fbank config
chosen by them, every refusal naming its option, and sox resampling that keeps the signal."""

import hashlib
import subprocess

import numpy as np
import pytest

from pipeline.data.audio import write_wav
from pipeline.data.fbank import FbankExtractor
from pipeline.data.rates import (
    CONF_DIR,
    choose_fbank_conf,
    read_resampled,
    recording_rate,
    resample,
    scan_rates,
)
from pipeline.errors import DataError
from tests.conftest import tone


def _sphere(path, rate, n=4000):
    head = (
        f"NIST_1A\n   1024\nsample_rate -i {rate}\nchannel_count -i 1\nsample_n_bytes -i 2\n"
        f"sample_count -i {n}\nsample_byte_format -s2 01\nsample_coding -s3 pcm\nend_head\n"
    ).encode()
    path.write_bytes(head + b" " * (1024 - len(head)) + np.zeros(n, "<i2").tobytes())


def test_rates_from_headers_and_pipes(tmp_path):
    write_wav(str(tmp_path / "a.wav"), 8000, tone(0.5, 8000))
    write_wav(str(tmp_path / "b.wav"), 16000, tone(0.5, 16000))
    _sphere(tmp_path / "c.sph", 8000)
    assert recording_rate(str(tmp_path / "a.wav")) == 8000
    assert recording_rate(str(tmp_path / "b.wav")) == 16000
    assert recording_rate(str(tmp_path / "c.sph")) == 8000
    assert recording_rate(f"sph2pipe -f wav -p {tmp_path / 'c.sph'} |") == 8000
    # a pipe is run: sox makes 22.05 kHz of the 16 kHz file
    assert recording_rate(f"sox {tmp_path / 'b.wav'} -t wav -r 22050 - |") == 22050
    with pytest.raises(DataError, match="r9.*not found"):
        recording_rate(str(tmp_path / "gone.wav"), "r9")

    d = tmp_path / "train"
    d.mkdir()
    (d / "wav.scp").write_text(
        f"a {tmp_path / 'a.wav'}\nb {tmp_path / 'b.wav'}\nc {tmp_path / 'c.sph'}\n"
    )
    assert scan_rates([d]) == {8000: ["train/a", "train/c"], 16000: ["train/b"]}


def test_the_config_follows_the_rate_and_refusals_name_the_fix():
    sixteen = {16000: ["train/a", "dev/b"]}
    eight = {8000: ["train/a", "dev/b", "test/c"]}
    c = choose_fbank_conf(sixteen, None, None)
    assert (c.rate, c.fbank_conf, c.resampled) == (16000, str(CONF_DIR / "fbank.conf"), 0)
    c = choose_fbank_conf(eight, None, None)
    assert (c.rate, c.fbank_conf) == (8000, str(CONF_DIR / "fbank_8k.conf"))
    assert FbankExtractor(c.fbank_conf).sample_rate == 8000

    mixed = {16000: ["train/a", "train/b", "dev/c"], 8000: ["test/d"]}
    with pytest.raises(DataError) as e:
        choose_fbank_conf(mixed, None, None)
    msg = str(e.value)
    assert "16000 Hz: 3 recordings" in msg and "8000 Hz: 1 recording (test/d)" in msg
    assert "--resample 16000" in msg
    c = choose_fbank_conf(mixed, None, 16000)
    assert (c.rate, c.resampled, c.fbank_conf) == (16000, 1, str(CONF_DIR / "fbank.conf"))
    c = choose_fbank_conf(mixed, None, 8000)
    assert (c.rate, c.resampled) == (8000, 3)

    with pytest.raises(DataError, match="fbank configs are made for.*--resample 16000"):
        choose_fbank_conf({44100: ["train/a"]}, None, None)
    assert choose_fbank_conf({44100: ["train/a"]}, None, 16000).resampled == 1
    with pytest.raises(DataError, match="is for 16000 Hz.*leave out --fbank-conf.*--resample"):
        choose_fbank_conf(eight, CONF_DIR / "fbank.conf", None)
    with pytest.raises(DataError, match="is for 8000 Hz.*--resample 16000 was given"):
        choose_fbank_conf(sixteen, CONF_DIR / "fbank_8k.conf", 16000)


def test_resampling_keeps_the_signal(tmp_path):
    t = np.arange(8000) / 8000.0
    x = 8000 * np.sin(2 * np.pi * 1000.0 * t)
    y = resample(x, 8000, 16000, "u1")
    assert abs(len(y) - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(y[1000:15000]))
    peak = np.argmax(spectrum) * 16000 / 14000
    assert abs(peak - 1000) < 5, peak
    assert 0.9 < np.std(y) / np.std(x) < 1.1
    assert resample(x, 8000, 8000, "u1") is x
    # repeatable: sox dithers its 16-bit output with a fixed seed (-R), so features made from
    # resampled audio are the same in every run
    noisy = x + np.random.default_rng(0).normal(0, 300, x.shape)
    assert np.array_equal(resample(noisy, 8000, 16000, "u1"), resample(noisy, 8000, 16000, "u1"))

    path = tmp_path / "a.wav"
    write_wav(str(path), 8000, x)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    rate, z = read_resampled(str(path), "u1", 16000)
    assert rate == 16000 and abs(len(z) - 16000) <= 2
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # the file is untouched
    assert read_resampled(str(path), "u1", None)[0] == 8000
    assert subprocess.run(["soxi", "-r", str(path)], capture_output=True, text=True).stdout == (
        "8000\n"
    )
