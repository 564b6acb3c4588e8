"""Augmented copies (noise, reverb, telephone): ids, draws, and what each does to the audio."""

import re

import numpy as np
import pytest

from pipeline.data.audio import read_audio
from pipeline.data.augment import (
    KINDS,
    PREFIX,
    augment_data_dir,
    augment_training_set,
    parse_kinds,
)
from pipeline.data.datadir import read_map
from pipeline.data.noise import SNR_DB, make_noise_sources
from pipeline.data.perturb import speed_perturb_data_dir
from pipeline.data.validate import validate_data_dir
from pipeline.errors import StnasError
from tests.conftest import make_kaldi_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_kaldi_corpus(tmp_path_factory.mktemp("aug"), n_spk=3, n_utt=4)


def _band_power(x, rate, lo, hi):
    x = x.astype(np.float64) * np.hanning(x.size)  # no leakage from the cut ends
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1.0 / rate)
    return spec[(f >= lo) & (f < hi)].sum()


def test_parse_kinds():
    assert parse_kinds("telephone,noise") == ["noise", "telephone"]
    assert parse_kinds("none") == [] and parse_kinds(None) == [] and parse_kinds("") == []
    with pytest.raises(StnasError, match="unknown augmentation babble"):
        parse_kinds("noise,babble")


def test_noise_sources_level_and_colour(corpus, tmp_path):
    sources = make_noise_sources(corpus / "train", tmp_path, 16000, seed=3)
    assert {c for c, _ in sources.values()} == set(SNR_DB)
    assert {"white", "pink", "brown", "hum", "babble1"} <= set(sources)
    spectra = {}
    for name, (_, path) in sources.items():
        rate, x = read_audio(path)
        assert rate == 16000 and x.size == 30 * 16000
        assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(3000, rel=0.02)
        spectra[name] = _band_power(x, rate, 0, 500) / _band_power(x, rate, 500, 8000)
    # 1/f**a: the low band's share grows with the exponent
    assert spectra["white"] < spectra["pink"] < spectra["brown"]


def test_copies_ids_draws_and_determinism(corpus, tmp_path):
    counts = augment_data_dir(
        corpus / "train", tmp_path / "a", KINDS, seed=5, noise_dir=tmp_path / "noise", fraction=0.5
    )
    train = read_map(corpus / "train" / "utt2spk")
    assert counts == {k: 6 for k in KINDS}  # half of 12 recordings each
    chosen = {}
    for kind in KINDS:
        d = tmp_path / "a" / f".aug_{kind}"
        p = PREFIX[kind]
        validate_data_dir(d)
        u2s = read_map(d / "utt2spk")
        assert all(
            u.startswith(p) and s.startswith(p) and train[u[len(p) :]] == s[len(p) :]
            for u, s in u2s.items()
        )
        assert read_map(d / "utt2uniq") == {u: u[len(p) :] for u in u2s}
        assert set(read_map(d / "reco2augment")) == set(read_map(d / "wav.scp"))
        chosen[kind] = {u[len(p) :] for u in u2s}
    assert len({frozenset(c) for c in chosen.values()}) > 1  # each kind draws its own subset
    # the same seed makes the same copies; another seed other ones
    augment_data_dir(
        corpus / "train",
        tmp_path / "b",
        KINDS,
        seed=5,
        noise_dir=tmp_path / "noise_b",
        fraction=0.5,
    )
    augment_data_dir(
        corpus / "train",
        tmp_path / "c",
        KINDS,
        seed=6,
        noise_dir=tmp_path / "noise_c",
        fraction=0.5,
    )
    for kind in KINDS:
        a, b, c = ((tmp_path / x / f".aug_{kind}" / "reco2augment").read_text() for x in "abc")
        assert a == b and a != c
    with pytest.raises(StnasError, match="fraction"):
        augment_data_dir(corpus / "train", tmp_path / "d", KINDS, 5, tmp_path / "n", fraction=0)
    with pytest.raises(StnasError, match="mono"):
        augment_data_dir(corpus / "train", tmp_path / "d", KINDS, 5, tmp_path / "n", channel=1)


def test_audio_of_each_kind(corpus, tmp_path):
    augment_data_dir(corpus / "train", tmp_path, KINDS, seed=2, noise_dir=tmp_path / "noise")
    clean_wav = read_map(corpus / "train" / "wav.scp")
    snr_errors = []
    for kind in KINDS:
        d = tmp_path / f".aug_{kind}"
        p = PREFIX[kind]
        info = read_map(d / "reco2augment")
        for rec, entry in sorted(read_map(d / "wav.scp").items()):
            rate, y = read_audio(entry, rec)
            _, x = read_audio(clean_wav[rec[len(p) :]])
            x, y = x.astype(np.float64), y.astype(np.float64)
            assert rate == 16000 and abs(y.size - x.size) <= 16  # same length, same rate
            if kind == "noise":
                # y = 0.5 x + 0.5 g n: the added part has the drawn SNR against the speech
                added = y - 0.5 * x
                snr = 10 * np.log10(np.mean((0.5 * x) ** 2) / np.mean(added**2))
                drawn = float(re.search(r"snr=([-\d.]+)dB", info[rec]).group(1))
                snr_errors.append(abs(snr - drawn))
                lo, hi = SNR_DB[{"mu": "music", "ba": "babble"}.get(info[rec][:2], "noise")]
                assert lo <= drawn <= hi
            elif kind == "reverb":
                # the dry signal stays (strong correlation), the room adds a tail
                corr = np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y))
                assert 0.3 < corr < 0.999
            else:
                # μ-law at 8 kHz: the tone's broadband noise above 4 kHz is gone
                hi_before = _band_power(x, rate, 4200, 8000) / _band_power(x, rate, 0, 8000)
                hi_after = _band_power(y, rate, 4200, 8000) / _band_power(y, rate, 0, 8000)
                assert hi_after < 0.05 * hi_before
    # the added noise is the drawn SNR within quantisation and the trimmed excerpt's level
    assert np.median(snr_errors) < 0.5 and max(snr_errors) < 3.0


def test_training_set_combines_and_maps_originals(corpus, tmp_path):
    speed_perturb_data_dir(corpus / "train", tmp_path / "train_sp")
    counts = augment_training_set(
        tmp_path / "train_sp",
        corpus / "train",
        tmp_path / "train_sp_aug",
        ["noise", "telephone"],
        seed=1,
        noise_dir=tmp_path / "noise",
        fraction=0.25,
    )
    d = tmp_path / "train_sp_aug"
    validate_data_dir(d)
    u2s = read_map(d / "utt2spk")
    assert counts["utts"] == len(u2s) == 36 + 3 + 3
    train = set(read_map(corpus / "train" / "utt2spk"))
    assert set(read_map(d / "utt2uniq").values()) == train
    assert not list(tmp_path.glob(".train_sp_aug_parts"))  # work dirs removed
    # without speed perturbation the originals map to themselves
    augment_training_set(
        corpus / "train",
        corpus / "train",
        tmp_path / "train_aug",
        ["reverb"],
        seed=1,
        noise_dir=tmp_path / "noise",
    )
    uniq = read_map(tmp_path / "train_aug" / "utt2uniq")
    assert len(uniq) == 24 and all(uniq[u] == u for u in train)
