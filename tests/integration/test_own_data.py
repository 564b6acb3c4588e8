"""Own data as users bring it: README's walkthrough run as it stands on a folder of 8 kHz spoken
digits and commands (every prompt read by every speaker), and real recorded speech
(pocketsphinx-testdata, at 16 kHz and at 8 kHz) through from-files, prep and transcribe with the
model that walkthrough trained."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.data.datadir import read_map
from pipeline.data.fbank import FbankExtractor
from steps_py.cli import cli
from tests.recordings import PROMPTS, VOICES, pocketsphinx_folder, spoken_prompts

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def readme_commands():
    """The commands of README's own-data block, as a user copies them."""
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- own-data:begin -->", 1)[1].split("<!-- own-data:end -->", 1)[0]
    return [line for line in block.split("```")[1].splitlines() if line.strip()]


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    for name in ("run.sh", "path.sh", "cmd.sh", "conf", "kaldi_scripts"):
        (root / name).symlink_to(REPO / name)  # a recipe dir, as a user's checkout has
    spoken_prompts(root / "my_recordings", rate=8000, voices=VOICES[:6])
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    outs = []
    for command in readme_commands():
        r = subprocess.run(
            command, shell=True, cwd=root, env=env, capture_output=True, text=True, timeout=2400
        )
        assert r.returncode == 0, f"{command}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        outs.append(r.stdout)
    return root, outs


def test_readme_walkthrough_goes_from_a_folder_to_a_wer_table(walkthrough):
    root, outs = walkthrough
    assert len(outs) == 2
    dirs = root / "data" / "mine"
    speakers = {s: set(read_map(dirs / s / "utt2spk").values()) for s in ("train", "dev", "test")}
    assert not (speakers["train"] & speakers["dev"]) and not (speakers["dev"] & speakers["test"])
    assert sum(map(len, speakers.values())) == 6
    text = read_map(dirs / "dev" / "text")
    assert set(text.values()) <= {p.upper() for p in PROMPTS}  # "Turn left." → TURN LEFT

    data = root / "data" / "kaldi"
    assert FbankExtractor(data / "conf" / "fbank.conf").sample_rate == 8000  # no flag needed
    lm = json.loads((data / "local" / "lm" / "tg.json").read_text())
    # a prompted task: every dev/test sentence is a training sentence, and all are kept
    assert lm["filter"] == "none" and lm["removed"]["kept"] == lm["sentences"] > 0
    train = set(read_map(data / "train" / "text").values())
    assert set(read_map(data / "dev" / "text").values()) <= train

    results = (root / "exp" / "kaldi" / "RESULTS.md").read_text()
    rows = [line for line in results.splitlines() if line.startswith("| kaldi |")]
    assert len(rows) == 4, results  # searched net and TDNN-D, dev and test
    wers = [float(x) for x in re.findall(r"\| (\d+\.\d+) \| \[", "\n".join(rows))]
    assert len(wers) == 4 and all(0.0 <= w <= 200.0 for w in wers), rows
    printed = [line for line in outs[1].splitlines() if line.startswith("| kaldi |")]
    assert printed == rows  # run.sh ends with the table
    assert not (root / "RESULTS.md").exists()  # the repository's table is not touched


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("rate", [16000, 8000])
def test_real_speech_through_from_files_prep_and_transcribe(
    walkthrough, tmp_path, rate, monkeypatch
):
    root, _ = walkthrough
    table = pocketsphinx_folder(tmp_path / "recordings", rate)
    dirs, data = tmp_path / "dirs", tmp_path / "data"
    r = _invoke(
        "data",
        "from-files",
        table.parent,
        dirs,
        "--transcripts",
        table,
        "--split",
        "train=0.6,dev=0.2,test=0.2",
    )
    assert r.exit_code == 0, r.output
    r = _invoke(
        "prep",
        "--corpus",
        "kaldi",
        "--corpus-root",
        dirs,
        "--data-dir",
        data,
        "--config",
        REPO / "conf" / "small" / "prep.yaml",
    )
    assert r.exit_code == 0, r.output
    assert FbankExtractor(data / "conf" / "fbank.conf").sample_rate == rate
    oov = (data / "local" / "oov.txt").read_text()
    assert oov.startswith("#")  # listed with counts, whatever the split left in train

    # the walkthrough's model is an 8 kHz model: 16 kHz audio needs --resample, named.
    # Run from the recipe dir, as the user would: the model's data dir is recorded from there.
    monkeypatch.chdir(root)
    model = root / "exp" / "kaldi" / "st" / "retrain" / "avg.pt"
    wav_scp = dirs / "test" / "wav.scp"
    out = tmp_path / "out"
    r = _invoke("transcribe", "--model", model, wav_scp, "--out-dir", out)
    if rate != 8000:
        assert r.exit_code == 1 and "--resample" in r.output and "16000 Hz" in r.output, r.output
        assert not (out / "text").exists()
        r = _invoke("transcribe", "--model", model, wav_scp, "--out-dir", out, "--resample")
    assert r.exit_code == 0, r.output
    hyp = read_map(out / "text", allow_empty_value=True)
    assert sorted(hyp) == sorted(read_map(wav_scp))
    for line in (out / "ctm").read_text().splitlines():
        utt, channel, start, dur, word = line.split()
        assert utt in hyp and channel == "1" and float(start) >= 0 and float(dur) > 0
        assert word in hyp[utt].split()
