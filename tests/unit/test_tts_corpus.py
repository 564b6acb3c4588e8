import hashlib
import subprocess

import numpy as np
import pytest

from local.tts.prepare import (
    SECONDS_PER_UTT,
    SECONDS_PER_WORD,
    _drop_stale_voices,
    plan_utterances,
    split_speakers,
)
from local.tts.sentences import normalise, sentence_pool
from local.tts.voices import ESPEAK_NAMED_VARIANTS, make_extra_speakers, make_speakers, synthesise
from pipeline.data.audio import read_audio
from pipeline.lang.lexicon import read_festival_cmudict
from tests.conftest import HAS_TTS


@pytest.fixture(scope="module")
def pool():
    return sentence_pool(read_festival_cmudict())


def test_normalise():
    assert normalise("Don't panic -- it's only a well-known \"test\"!") == [
        "DON'T",
        "PANIC",
        "IT'S",
        "ONLY",
        "A",
        "WELL",
        "KNOWN",
        "TEST",
    ]


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
    assert (
        not (ids["train"] & ids["dev"])
        and not (ids["train"] & ids["test"])
        and not (ids["dev"] & ids["test"])
    )
    plan = plan_utterances(pool, split, hours=0.2, seed=7)
    assert plan == plan_utterances(pool, split, hours=0.2, seed=7)
    sents = {k: {t for _, _, t in v} for k, v in plan.items()}
    assert not (sents["train"] & sents["dev"]) and not (sents["train"] & sents["test"])
    assert not (sents["dev"] & sents["test"])
    for k, items in plan.items():
        assert {s.id for _, s, _ in items} == ids[k]  # every speaker used
        assert all(u.startswith(s.id + "-") for u, s, _ in items)
    est = sum(
        SECONDS_PER_UTT + SECONDS_PER_WORD * len(t.split()) for v in plan.values() for _, _, t in v
    )
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


def test_extra_training_voices_leave_dev_and_test_alone(pool):
    base = make_speakers(7)
    extra = make_extra_speakers(7, 40, first_id=19)
    assert extra == make_extra_speakers(7, 40, first_id=19) and make_speakers(7) == base
    assert [s.id for s in extra] == [f"espk{i:02d}" for i in range(19, 59)]
    assert len({s.voice.split("+")[1] for s in extra}) == 40  # no variant twice before all used
    assert not {s.id for s in extra} & {s.id for s in base}
    with pytest.raises(ValueError, match="at most"):
        make_extra_speakers(7, 90, first_id=19)
    split = split_speakers(base, 7)
    more = dict(split, train=sorted(split["train"] + extra, key=lambda s: s.id))
    plan, plan_more = (plan_utterances(pool, sp, hours=0.2, seed=7) for sp in (split, more))
    for k in ("dev", "test"):  # same ids, speakers and sentences
        assert plan[k] == plan_more[k]
    assert [t for _, _, t in plan["train"]] == [t for _, _, t in plan_more["train"]]
    assert {s.id for _, s, _ in plan_more["train"]} == {s.id for s in more["train"]}


@pytest.mark.skipif(not HAS_TTS, reason="TTS programs missing")
def test_every_espeak_voice_is_one_espeak_knows():
    """espeak-ng falls back to its default voice, silently, for a name it does not know (it did
    for 'en-gb+m5'); every speaker must sound different from that and from each other."""

    def raw(voice):
        out = subprocess.run(
            ["espeak-ng", "-v", voice, "-p", "50", "-s", "160", "--stdout", "the quick brown fox"],
            capture_output=True,
            check=True,
        ).stdout
        return hashlib.md5(out).hexdigest()

    fallback = raw("no-such-voice")
    voices = [
        s.voice
        for s in make_speakers(1) + make_extra_speakers(1, len(ESPEAK_NAMED_VARIANTS), 19)
        if s.engine == "espeak-ng"
    ]
    digests = {v: raw(v) for v in voices}
    assert fallback not in digests.values()
    assert len(set(digests.values())) == len(voices)


def test_wavs_of_a_changed_voice_are_not_reused(tmp_path):
    a, b = make_speakers(1)[:2]
    for spk in (a, b):
        (tmp_path / spk.id).mkdir()
        (tmp_path / spk.id / "x.wav").write_bytes(b"old")
    settings = {"sample_rate": 16000, "noise_snr_db": 0.0, "seed": 1}
    _drop_stale_voices(tmp_path, [a, b], settings)  # no record: whatever made them is unknown
    assert not (tmp_path / a.id).exists() and not (tmp_path / b.id).exists()
    for spk in (a, b):
        (tmp_path / spk.id).mkdir()
    _drop_stale_voices(tmp_path, [a, b], settings)  # recorded and unchanged: kept
    assert (tmp_path / a.id).is_dir() and (tmp_path / b.id).is_dir()
    changed = type(a)(a.id, a.engine, a.voice + "x", a.pitch, a.rate)
    _drop_stale_voices(tmp_path, [changed, b], settings)
    assert not (tmp_path / a.id).exists() and (tmp_path / b.id).is_dir()
    _drop_stale_voices(tmp_path, [changed, b], {**settings, "seed": 2})
    assert not (tmp_path / b.id).exists()


def test_demo_size_dev_and_test_have_power_and_no_lm_overlap(pool):
    """At conf/tts/prep.yaml's size, dev and test hold >= 6,000 words each, and the LM text
    (pool without dev/test sentences and near-copies) shares no sentence with them."""
    import yaml

    from pipeline.lang.lm_data import exclude_eval_text

    conf = yaml.safe_load(open("conf/tts/prep.yaml"))
    share = conf["corpus_opt"]["eval_share"]
    plan = plan_utterances(
        pool,
        split_speakers(make_speakers(1), 1),
        hours=conf["hours"],
        seed=1,
        shares=(1 - 2 * share, share, share),
    )
    words = {k: sum(len(s.split()) for _, _, s in v) for k, v in plan.items()}
    assert words["dev"] >= 6000 and words["test"] >= 6000, words
    held = [s.split() for k in ("dev", "test") for _, _, s in plan[k]]
    kept, counts = exclude_eval_text([s.split() for s in pool], held)
    kept_set = {" ".join(s) for s in kept}
    assert not kept_set & {" ".join(h) for h in held}
    assert counts["identical"] >= len({" ".join(h) for h in held})
    train = {s for _, _, s in plan["train"]}
    assert not train & {" ".join(h) for h in held}
    # no kept sentence contains a dev/test sentence or is contained in one (>= 4 words)
    held_text = [" " + " ".join(h) + " " for h in held if len(h) >= 4]
    for s in list(kept_set)[::25]:
        padded = " " + s + " "
        assert not any(h in padded or (len(s.split()) >= 4 and padded in h) for h in held_text)
