"""``stnas prep --corpus kaldi`` on data as users bring it: 8 kHz, mixed rates, words outside
the dictionary, their own LM, and every shipped conf/* prep config."""

import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipeline.data.audio import write_wav
from pipeline.data.datadir import read_map
from pipeline.data.fbank import FbankExtractor
from pipeline.lang.lexicon import read_lexicon
from pipeline.lang.lm_data import word_lm_arpa
from pipeline.stages.prep_lang import unpronounced_lm_words
from steps_py.cli import cli
from tests.conftest import make_kaldi_corpus, tone

REPO = Path(__file__).resolve().parents[2]


def run(*args):
    return CliRunner().invoke(cli, ["prep", *map(str, args)], catch_exceptions=False)


def _prep(root, out, *extra):
    return run("--corpus", "kaldi", "--corpus-root", root, "--data-dir", out, *extra)


def _sha(paths):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_8k_recordings_get_the_8k_config(tmp_path):
    root = make_kaldi_corpus(tmp_path / "corpus", rate=8000)
    r = _prep(root, tmp_path / "data", "--no-speed-perturb")
    assert r.exit_code == 0, r.output
    d = tmp_path / "data"
    assert FbankExtractor(d / "conf" / "fbank.conf").sample_rate == 8000
    rates = json.loads((d / ".done" / "rates").read_text())
    assert rates["rate"] == 8000 and rates["recordings"] == {"8000": 18}
    assert rates["fbank_conf"].endswith("conf/fbank_8k.conf")
    assert len(read_map(d / "test" / "feats.scp")) == 6
    assert "fbank_8k.conf" in (d / "log" / "prep.log").read_text()


def test_mixed_rates_are_refused_then_resampled_in_the_feature_pipeline(tmp_path):
    root = make_kaldi_corpus(tmp_path / "corpus")
    for utt in ("devspk1-002", "trainspk0-001"):
        write_wav(str(root / "wav" / f"{utt}.wav"), 8000, tone(1.2, 8000))
    before = _sha(sorted((root / "wav").iterdir()))
    out = tmp_path / "data"
    r = _prep(root, out, "--no-speed-perturb")
    assert r.exit_code == 1
    assert re.search(
        r"16000 Hz: 16 recordings, 8000 Hz: 2 recordings \(train/trainspk0-001, "
        r"dev/devspk1-002\).*--resample 16000",
        r.output,
    ), r.output
    assert not (out / "train" / "feats.scp").exists()

    r = _prep(root, out, "--no-speed-perturb", "--resample", "16000")
    assert r.exit_code == 0, r.output
    assert FbankExtractor(out / "conf" / "fbank.conf").sample_rate == 16000
    assert json.loads((out / ".done" / "rates").read_text())["resampled"] == 2
    frames = {u: int(n) for u, n in read_map(out / "dev" / "utt2num_frames").items()}
    assert abs(frames["devspk1-002"] - 118) <= 2  # 1.2 s at 10 ms, as at 16 kHz
    assert _sha(sorted((root / "wav").iterdir())) == before  # the user's files are untouched
    assert yaml.safe_load((out / "config.yaml").read_text())["resample"] == 16000


CONFS = sorted(p.parent.name for p in (REPO / "conf").glob("*/prep.yaml"))


@pytest.mark.parametrize("conf", CONFS)
def test_every_prep_config_works_with_own_data_or_names_conf_small(tmp_path, conf):
    root = make_kaldi_corpus(tmp_path / "corpus", n_utt=2)
    r = _prep(root, tmp_path / "data", "--config", REPO / "conf" / conf / "prep.yaml")
    options = yaml.safe_load((REPO / "conf" / conf / "prep.yaml").read_text()) or {}
    if "corpus_opt" in options:  # options of its own corpus
        assert r.exit_code == 1 and "conf/small/prep.yaml" in r.output, r.output
        assert not (tmp_path / "data" / "train").exists()
    else:
        assert r.exit_code == 0, r.output
        assert (tmp_path / "data" / ".done" / "stage").exists()
    assert "small" in CONFS


def test_words_outside_the_dictionary_are_listed_and_pronounced(tmp_path):
    root = make_kaldi_corpus(tmp_path / "corpus")
    p = root / "train" / "text"
    p.write_text(p.read_text().replace("HELLO WORLD", "HELLO ZORBLAXIAN"))
    p = root / "test" / "text"
    p.write_text(p.read_text().replace("HELLO WORLD", "QUIXLORP WORLD"))
    out = tmp_path / "data"
    r = _prep(root, out, "--no-speed-perturb")
    assert r.exit_code == 0, r.output
    oov = (out / "local" / "oov.txt").read_text()
    assert re.search(r"^ZORBLAXIAN\t1\ttrain=1$", oov, re.M), oov
    assert re.search(r"^QUIXLORP\t1\ttest=1$", oov, re.M), oov
    assert "ZORBLAXIAN" not in read_lexicon(out / "lang" / "lexicon.txt")
    dropped = (out / "train" / "dropped_utts.txt").read_text()
    assert dropped.count("oov-word") == 1

    g2p = tmp_path / "g2p"
    r = _prep(root, g2p, "--no-speed-perturb", "--g2p", "espeak")
    assert r.exit_code == 0, r.output
    made: dict = {}
    for line in (g2p / "local" / "dict" / "lexicon_g2p.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):  # a commented header, then entries
            made.setdefault(line.split()[0], []).append(line.split()[1:])
    assert set(made) == {"ZORBLAXIAN"}  # train words only: test's OOV stays unknown
    lex = read_lexicon(g2p / "lang" / "lexicon.txt")
    assert lex["ZORBLAXIAN"] == made["ZORBLAXIAN"] and "QUIXLORP" not in lex
    assert "ZORBLAXIAN" in (g2p / "lang" / "words.txt").read_text()
    assert (
        not (g2p / "train" / "dropped_utts.txt").exists()
        or "oov-word" not in (g2p / "train" / "dropped_utts.txt").read_text()
    )

    # the user corrects the pronunciation: the next prep uses it, labels included
    edited = g2p / "local" / "dict" / "lexicon_g2p.txt"
    lines = [x for x in edited.read_text().splitlines() if not x.startswith("#")]
    edited.write_text("# checked by hand\nZORBLAXIAN Z AO R B L AE K S IY AH N\n")
    assert lines != ["ZORBLAXIAN Z AO R B L AE K S IY AH N"]
    before = (g2p / "train" / "text_number").read_text()
    r = _prep(root, g2p, "--no-speed-perturb", "--g2p", "espeak")
    assert r.exit_code == 0, r.output
    lex = read_lexicon(g2p / "lang" / "lexicon.txt")
    assert lex["ZORBLAXIAN"] == [["Z", "AO", "R", "B", "L", "AE", "K", "S", "IY", "AH", "N"]]
    assert (g2p / "train" / "text_number").read_text() != before


def test_own_arpa_lm_is_used_as_it_is(tmp_path):
    root = make_kaldi_corpus(tmp_path / "corpus", n_utt=2)
    bad = tmp_path / "bad.arpa"
    bad.write_text("HELLO WORLD\n")
    out = tmp_path / "data"
    r = _prep(root, out, "--no-speed-perturb", "--lm-arpa", bad)
    assert r.exit_code == 1 and "bad.arpa" in r.output and "ARPA" in r.output, r.output
    assert not (out / "train").exists()

    arpa = tmp_path / "mine.arpa"
    arpa.write_text(
        "\\data\\\nngram 1=5\n\n\\1-grams:\n-0.5\t</s>\n-99\t<s>\n-0.6\tHELLO\n-0.6\tWORLD\n"
        "-0.9\tFLIBBERTY\n\n\\end\\\n"
    )
    r = _prep(root, out, "--no-speed-perturb", "--lm-arpa", arpa)
    assert r.exit_code == 0, r.output
    used = word_lm_arpa(out, "tg")
    assert used == out / "local" / "lm" / "tg.arpa"
    assert used.read_text() == arpa.read_text()
    assert json.loads(used.with_suffix(".json").read_text())["file"] == "mine.arpa"
    assert unpronounced_lm_words(out) == ["FLIBBERTY"]  # warned: it can never be recognised
