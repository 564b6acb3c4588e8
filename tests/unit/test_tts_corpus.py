import numpy as np
import pytest

from local.tts.prepare import SECONDS_PER_UTT, SECONDS_PER_WORD, plan_utterances, split_speakers
from local.tts.sentences import normalise, sentence_pool
from local.tts.voices import make_speakers, synthesise
from pipeline.data.audio import read_audio
from pipeline.lang.lexicon import read_festival_cmudict
from tests.conftest import HAS_TTS


@pytest.fixture(scope="module")
def pool():
    return sentence_pool(read_festival_cmudict())


def test_normalise():
    assert normalise("Don't panic -- it's only a well-known \"test\"!") == \
        ["DON'T", "PANIC", "IT'S", "ONLY", "A", "WELL", "KNOWN", "TEST"]


def test_pool_is_in_lexicon_and_sorted(pool):
    lex = read_festival_cmudict()
    assert len(pool) > 5000 and pool == sorted(pool)
    for s in pool[:: max(1, len(pool) // 200)]:
        words = s.split()
        assert 4 <= len(words) <= 16 and all(w in lex for w in words) and s == s.upper()


def test_speakers_and_splits_are_disjoint_and_deterministic(pool):
    spk = make_speakers(7)
    assert len({s.id for s in spk}) >= 12 and len({len(s.id) for s in spk}) == 1
    assert {s.engine for s in spk} == {"espeak-ng", "flite", "festival"}
    assert make_speakers(7) == spk and make_speakers(8) != spk
    split = split_speakers(spk, 7)
    ids = {k: {s.id for s in v} for k, v in split.items()}
    assert not (ids["train"] & ids["dev"]) and not (ids["train"] & ids["test"]) and not (ids["dev"] & ids["test"])
    plan = plan_utterances(pool, split, hours=0.2, seed=7)
    assert plan == plan_utterances(pool, split, hours=0.2, seed=7)
    sents = {k: {t for _, _, t in v} for k, v in plan.items()}
    assert not (sents["train"] & sents["dev"]) and not (sents["train"] & sents["test"])
    assert not (sents["dev"] & sents["test"])
    for k, items in plan.items():
        assert {s.id for _, s, _ in items} == ids[k]  # every speaker used
        assert all(u.startswith(s.id + "-") for u, s, _ in items)
    est = sum(SECONDS_PER_UTT + SECONDS_PER_WORD * len(t.split()) for v in plan.values() for _, _, t in v)
    assert 0.2 * 3600 <= est <= 0.2 * 3600 + 60


@pytest.mark.skipif(not HAS_TTS, reason="TTS programs missing")
@pytest.mark.parametrize("index", [0, 18, 22])  # espeak-ng, flite, festival
def test_synthesis_is_16k_mono_and_deterministic(tmp_path, index):
    spk = make_speakers(3)[index]
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    dur = synthesise(spk, "THE QUICK BROWN FOX", a, 16000, seed=5)
    synthesise(spk, "THE QUICK BROWN FOX", b, 16000, seed=5)
    rate, x = read_audio(str(a))
    assert rate == 16000 and 0.8 < dur < 4.0 and len(x) == round(dur * 16000)
    np.testing.assert_array_equal(x, read_audio(str(b))[1])
    assert np.abs(x).max() > 1000  # speech, not just the noise floor
