"""``stnas prep`` through click's CliRunner: the acceptance checks of the prep stage."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.data.audio import write_wav
from pipeline.data.datadir import read_map
from pipeline.data.validate import validate_data_dir
from steps_py.cli import cli
from tests.conftest import make_kaldi_corpus, tone


def run(*args):
    return CliRunner().invoke(cli, ["prep", *map(str, args)], catch_exceptions=False)


HEAVY = ("torch", "numpy", "kaldiio", "kaldifst", "kaldi_decoder", "scipy", "matplotlib")


def test_help_loads_no_heavy_library():
    """stnas --help, and every command's --help, answer without importing torch, numpy or
    the Kaldi bindings: those imports stay inside the commands' functions."""
    script = f"""
import sys
import click
from click.testing import CliRunner
from steps_py.cli import cli

def helps(group, path):
    yield path + ["--help"]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from helps(command, path + [name])
        else:
            yield path + [name, "--help"]

for args in helps(cli, []):
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0 and "Usage: " in r.output, (args, r.output)
    print(" ".join(args))
print("loaded:" + "".join(" " + m for m in {HEAVY!r} if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    shown = out.stdout.splitlines()
    # the root, every stage command and the show subcommands were asked
    assert {"--help", "prep --help", "decode --help", "show --help", "show times --help"} <= set(
        shown
    ), shown
    assert shown[-1] == "loaded:", shown[-1]


def test_tts_prep_acceptance(tts_data):
    d = tts_data
    for s in ("train_sp", "dev", "test"):
        counts = validate_data_dir(d / s, need_feats=True)
        assert counts["utts"] > 0
        feats = kaldiio.load_scp(str(d / s / "feats.scp"))
        frames = read_map(d / s / "utt2num_frames")
        labels = read_map(d / s / "text_number", allow_empty_value=True)
        for utt in list(feats)[:5]:
            m = feats[utt]
            assert m.shape == (int(frames[utt]), 120) and np.isfinite(m).all()
            assert all(1 <= int(x) < 41 for x in labels[utt].split())
    units = (d / "lang" / "units.txt").read_text().splitlines()
    assert units[0] == "<blk> 0" and len(units) == 41
    # speakers are disjoint across sets; train_sp holds the 3 speeds of every train utterance
    spk = {s: set(read_map(d / s / "spk2utt")) for s in ("train", "dev", "test")}
    assert not (spk["train"] & spk["dev"]) and not (spk["train"] & spk["test"])
    assert len(spk["train"] | spk["dev"] | spk["test"]) >= 12
    train = set(read_map(d / "train" / "utt2spk"))
    sp = set(read_map(d / "train_sp" / "utt2spk"))
    assert sp == train | {f"sp0.9-{u}" for u in train} | {f"sp1.1-{u}" for u in train}
    # den graph and path weights (CTC-CRF): LM on the unperturbed copies only
    den = json.loads((d / "den" / "den_info.json").read_text())
    labelled = read_map(d / "train_sp" / "text_number")
    assert den["train_utterances"] == sum(not u.startswith(("sp0.9-", "sp1.1-")) for u in labelled)
    # Kaldi's rule (its exact state target is tested in test_phone_lm_unsmoothed.py): no
    # state below the bigram, pruned 3-phone histories, a den graph
    assert den["lm_states_by_history_length"]["0"] == 0 and den["den_states"] > 0
    assert 0 < den["lm_states_by_history_length"]["3"] < den["lm_states"]
    assert (d / "den" / "den.fst").is_file() and den["lm_type"] == "kaldi"
    assert 0 <= den["dev_share_possible"] <= 1  # unsmoothed: unseen 4-grams have probability 0
    assert den["den_arcs"] < den["den_states"] * 41 / 3  # far from every unit everywhere
    for s in ("train_sp", "dev", "test"):
        w = read_map(d / s / "weight")
        assert set(w) == set(read_map(d / s / "utt2spk")) and all(float(v) < 0 for v in w.values())
        if s == "train_sp":  # the LM saw every training transcript
            assert all(np.isfinite(float(v)) for v in w.values())
    info = json.loads((d / "stage.json").read_text())
    assert info["seed"] == 1 and "git_sha" in info and info["summary"]["units"] == 41


def test_per_speaker_cmvn_stats(tts_data):
    d = tts_data / "dev"
    cmvn = kaldiio.load_scp(str(d / "cmvn.scp"))
    feats = kaldiio.load_scp(str(d / "feats.scp"))
    frames = read_map(d / "utt2num_frames")
    for spk, utts in read_map(d / "spk2utt").items():
        utts = utts.split()
        stats = cmvn[spk]
        assert stats.shape == (2, 41) and stats[0, 40] == sum(int(frames[u]) for u in utts)
        normed = np.concatenate([feats[u][:, :40] for u in utts]).astype(np.float64)
        np.testing.assert_allclose(normed.mean(0), 0, atol=1e-4)
        np.testing.assert_allclose(normed.std(0), 1, atol=1e-3)


def test_rerun_resumes_and_refuses_changed_options(tts_data, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(tts_data, d)
    before = (d / "stage.json").read_text()
    r = run("--corpus", "tts", "--data-dir", d, "--hours", 0.05, "--nj", 2)
    assert r.exit_code == 0 and "nothing to do" in r.output
    assert (d / "stage.json").read_text() == before  # a no-op rerun keeps the real run's record
    r = run("--corpus", "tts", "--data-dir", d, "--hours", 0.1)
    assert r.exit_code == 1 and "hours: 0.05 → 0.1" in r.output and "--force" in r.output
    # an unfinished sub-stage is redone, the rest kept
    (d / ".done" / "labels_dev").unlink()
    mtime = (d / "train_sp" / "text_number").stat().st_mtime
    r = run("--corpus", "tts", "--data-dir", d, "--hours", 0.05)
    assert r.exit_code == 0 and "nothing to do" not in r.output
    assert (d / ".done" / "labels_dev").exists()
    assert (d / "train_sp" / "text_number").stat().st_mtime == mtime
    # a data dir prepared before the lexicon held the whole dictionary must be redone
    import yaml

    cfg = yaml.safe_load((d / "config.yaml").read_text())
    del cfg["prep_version"]
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = run("--corpus", "tts", "--data-dir", d, "--hours", 0.05)
    assert r.exit_code == 1 and "prep_version: None → 2" in r.output


def _kaldi_case(tmp_path, mutate):
    root = make_kaldi_corpus(tmp_path / "corpus")
    mutate(root)
    out = tmp_path / "data"
    return (
        root,
        out,
        run("--corpus", "kaldi", "--corpus-root", root, "--data-dir", out, "--no-speed-perturb"),
    )


def _corrupt(root):
    (root / "wav" / "trainspk0-001.wav").write_bytes(b"RIFF\x00\x00not really a wav file")


def _resample(root):
    write_wav(str(root / "wav" / "devspk1-002.wav"), 8000, tone(1.0, 8000))


def _swap_lines(name):
    def f(root):
        p = root / "train" / name
        lines = p.read_text().splitlines(keepends=True)
        p.write_text("".join([lines[1], lines[0]] + lines[2:]))

    return f


def _dup(root):
    p = root / "test" / "text"
    lines = p.read_text().splitlines(keepends=True)
    p.write_text("".join(lines[:1] + lines))


def _speaker(root):
    p = root / "dev" / "utt2spk"
    p.write_text(p.read_text().replace("devspk0-001 devspk0", "devspk0-001 devspk1"))


def _missing(root):
    (root / "wav" / "testspk1-000.wav").unlink()


def _empty_text(root):
    p = root / "train" / "text"
    p.write_text(p.read_text().replace("trainspk1-000 GOOD MORNING TO YOU", "trainspk1-000"))


@pytest.mark.parametrize(
    "mutate,pattern",
    [
        (_corrupt, r"trainspk0-001.*corrupt"),
        (_resample, r"8000 Hz: 1 recording \(dev/devspk1-002\).*--resample"),
        (_swap_lines("wav.scp"), r"train/wav.scp:2.*not sorted"),
        (_dup, r"test/text:2.*duplicate id 'testspk0-000'"),
        (_speaker, r"dev/utt2spk:2.*does not start with its speaker id"),
        (_missing, r"testspk1-000.wav does not exist"),
        (_empty_text, r"train/text:4.*empty transcript"),
    ],
)
def test_bad_input_fails_clearly_and_marks_nothing_done(tmp_path, mutate, pattern):
    root, out, r = _kaldi_case(tmp_path, mutate)
    assert r.exit_code == 1
    assert "Error:" in r.output
    import re

    assert re.search(pattern, r.output), r.output
    assert not (out / ".done" / "stage").exists()
    assert not (out / ".done" / "validate").exists()


def test_skip_bad_lists_and_continues(tmp_path):
    root = make_kaldi_corpus(tmp_path / "corpus")
    _corrupt(root)
    out = tmp_path / "data"
    r = run(
        "--corpus",
        "kaldi",
        "--corpus-root",
        root,
        "--data-dir",
        out,
        "--no-speed-perturb",
        "--skip-bad",
    )
    assert r.exit_code == 0, r.output
    bad = (out / "train" / "bad_utts.txt").read_text()
    assert bad.startswith("trainspk0-001 ") and "corrupt" in bad
    assert "trainspk0-001" not in read_map(out / "train" / "utt2spk")
    validate_data_dir(out / "train", need_feats=True)
    assert (out / ".done" / "stage").exists()


def test_unknown_corpus_path(tmp_path):
    r = run("--corpus", "kaldi", "--corpus-root", tmp_path, "--data-dir", tmp_path / "o")
    assert r.exit_code == 1 and "expected a Kaldi data dir 'train/'" in r.output
    r = run("--corpus", "wsj", "--corpus-root", tmp_path / "nowhere")
    assert r.exit_code == 2 and "does not exist" in r.output


def test_config_file_sets_defaults_and_command_line_wins(tmp_path):
    root = make_kaldi_corpus(tmp_path / "corpus")
    conf = tmp_path / "prep.yaml"
    conf.write_text(f"corpus: kaldi\ncorpus_root: {root}\nnj: 2\nspeed_perturb: false\n")
    out = tmp_path / "data"
    r = run("--config", conf, "--data-dir", out, "--nj", 1)
    assert r.exit_code == 0, r.output
    import yaml

    used = yaml.safe_load((out / "config.yaml").read_text())
    assert used["corpus"] == "kaldi" and used["nj"] == 1 and used["speed_perturb"] is False
    assert not (out / "train_sp").exists() and (out / "train" / "feats.scp").exists()

    conf.write_text("hours: 1\nhour: 2\n")
    r = run("--config", conf, "--data-dir", tmp_path / "other")
    assert r.exit_code == 2 and str(conf) in r.output and "unknown key(s) hour" in r.output
    conf.write_text("corpus_opt: {eval_share: 0.7}\n")
    r = run("--config", conf, "--data-dir", tmp_path / "other")
    assert r.exit_code == 1 and "eval_share must be in (0, 0.5), got 0.7" in r.output
    assert not (tmp_path / "other" / ".done" / "stage").exists()


@pytest.mark.parametrize("corpus", ["tts", "debug", "wsj", "swbd"])
def test_shipped_prep_configs_parse(corpus):
    import importlib
    import inspect
    from pathlib import Path

    import yaml

    conf = Path(__file__).resolve().parents[2] / "conf" / corpus / "prep.yaml"
    r = run("--config", conf, "--help")
    assert r.exit_code == 0, r.output
    opts = (yaml.safe_load(conf.read_text()) or {}).get("corpus_opt", {})
    module = importlib.import_module(f"local.{'tts' if corpus == 'debug' else corpus}.prepare")
    params = inspect.signature(module.prepare).parameters
    assert all(params[k].kind is inspect.Parameter.KEYWORD_ONLY for k in opts)


def test_fbank_config_moved_with_the_same_content_is_no_change(tmp_path):
    """A moved checkout (the same fbank.conf at another path) keeps its prepared data; a
    changed config is refused, naming it."""
    root = make_kaldi_corpus(tmp_path / "corpus")
    out = tmp_path / "data"
    conf = tmp_path / "a" / "fbank.conf"
    conf.parent.mkdir()
    conf.write_text((Path(__file__).resolve().parents[2] / "conf" / "fbank.conf").read_text())
    base = ("--corpus", "kaldi", "--corpus-root", root, "--data-dir", out, "--no-speed-perturb")
    assert run(*base, "--fbank-conf", conf).exit_code == 0
    moved = tmp_path / "b" / "fbank.conf"
    moved.parent.mkdir()
    moved.write_text(conf.read_text())
    r = run(*base, "--fbank-conf", moved)
    assert r.exit_code == 0, r.output
    moved.write_text(conf.read_text() + "--dither=0.5\n")
    r = run(*base, "--fbank-conf", moved)
    assert r.exit_code == 1 and "prepared with other options (fbank_conf:" in r.output


def test_kaldi_corpus_without_spk2utt(tmp_path):
    """wav.scp, text and utt2spk suffice, as README says: spk2utt is made from utt2spk."""
    root = make_kaldi_corpus(tmp_path / "corpus")
    for s in ("train", "dev", "test"):
        (root / s / "spk2utt").unlink()
    out = tmp_path / "data"
    r = run("--corpus", "kaldi", "--corpus-root", root, "--data-dir", out, "--no-speed-perturb")
    assert r.exit_code == 0, r.output
    for s in ("train", "dev", "test"):
        validate_data_dir(out / s, need_feats=True)
    assert read_map(out / "train" / "spk2utt")["trainspk0"].split()[0] == "trainspk0-000"


def test_kaldi_prep_with_augmentation(tmp_path):
    root = make_kaldi_corpus(tmp_path / "corpus", n_spk=2, n_utt=3)
    out = tmp_path / "data"
    cfg = tmp_path / "prep.yaml"
    cfg.write_text("augment: [telephone, noise]\naugment_fraction: 0.5\n")
    r = run("--config", cfg, "--corpus", "kaldi", "--corpus-root", root, "--data-dir", out)
    assert r.exit_code == 0, r.output
    d = out / "train_sp_aug"
    assert "train_sp_aug" in r.output and not (out / "train_sp" / "feats.scp").exists()
    validate_data_dir(d, need_feats=True)
    train = set(read_map(out / "train" / "utt2spk"))
    u2s = read_map(d / "utt2spk")
    noise = {u for u in u2s if u.startswith("noise-")}
    tel = {u for u in u2s if u.startswith("tel-")}
    assert len(noise) == len(tel) == 3 and not any(u.startswith("reverb-") for u in u2s)
    assert len(u2s) == 3 * len(train) + 6
    assert set(read_map(d / "utt2uniq").values()) == train
    for s in ("dev", "test"):  # never augmented
        assert not any("-" in u.split("spk")[0] for u in read_map(out / s / "utt2spk"))
    den = json.loads((out / "den" / "den_info.json").read_text())
    assert den["train_utterances"] == len(train)  # each transcript once
    # the training stages find the augmented set on their own
    from pipeline.train.config import load_config

    assert load_config("warmup", data_dir=str(out)).train_set == "train_sp_aug"
    # adding augmentation to a finished dir needs --force
    r = run("--corpus", "kaldi", "--corpus-root", root, "--data-dir", out)
    assert r.exit_code == 1 and "augment: ['noise', 'telephone'] → []" in r.output
    r = run("--corpus", "kaldi", "--corpus-root", root, "--data-dir", out, "--augment", "echo")
    assert r.exit_code == 1 and "unknown augmentation echo" in r.output
