"""The troubleshooting table, docs/troubleshooting.md, row by row, against what the code prints.

Every row's quoted message is either triggered here (cheaply, through the real code path) and
checked piece by piece (the text between its placeholders, in order), or named with the test
that triggers it (those need a trained model), or is not feasible without a GPU.
"""

import errno
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.errors import StnasError
from steps_py.cli import cli
from tests.conftest import make_kaldi_corpus, tone

REPO = Path(__file__).resolve().parents[2]
TROUBLESHOOTING = REPO / "docs" / "troubleshooting.md"
PLACEHOLDERS = (
    r"\b(?:FILE|LINE|UTT|DIR|STAGE|N|M|KEY|VALUE|MODEL|K|J|REC|REASON|MOUNT|"
    r"COMMAND|X|T|Ts|Xs)\b"
)


def table_rows():
    text = TROUBLESHOOTING.read_text().split("# Troubleshooting", 1)[1]
    rows = []
    for line in text.splitlines():
        if line.startswith("| `"):
            first = line.split(" | ")[0]
            rows.append((first, re.findall(r"`([^`]+)`", first)))
    return rows


def pieces(pattern: str):
    parts = re.split(PLACEHOLDERS + r"|\.\.\.", pattern)
    return [p.strip(" :;,") for p in parts if p and len(p.strip(" :;,()")) >= 4]


def cli_out(*args, env=None):
    r = CliRunner().invoke(cli, [str(a) for a in args], env=env)
    assert r.exit_code != 0, r.output
    return r.output


def err(fn):
    try:
        fn()
    except StnasError as e:
        return str(e)
    raise AssertionError("no error")


# --- triggers: table fragment → function(tmp_path) returning what the user sees -----------


def _tts_missing(tmp):
    empty = tmp / "bin"
    empty.mkdir()
    return cli_out("prep", "--corpus", "tts", "--data-dir", tmp / "d", env={"PATH": str(empty)})


def _shorten(tmp):
    from pipeline.data.audio import read_audio
    from tests.unit.test_fbank_audio import sphere_bytes

    p = tmp / "s.wv1"
    p.write_bytes(sphere_bytes(np.zeros(10), 16000, coding="pcm,embedded-shorten-v2.00"))
    old = os.environ["PATH"]
    os.environ["PATH"] = str(tmp)
    try:
        return err(lambda: read_audio(f"sph2pipe -f wav -p {p} |", "w1"))
    finally:
        os.environ["PATH"] = old


def _ldc(tmp):
    (tmp / "ldc").mkdir()
    return cli_out(
        "prep", "--corpus", "wsj", "--corpus-root", tmp / "ldc", "--data-dir", tmp / "w"
    ) + cli_out("prep", "--corpus", "swbd", "--corpus-root", tmp / "ldc", "--data-dir", tmp / "s")


def _corpus_opt(tmp):
    return cli_out("prep", "--corpus", "tts", "--data-dir", tmp / "d", "--corpus-opt", "x=1")


def _kaldi(tmp, mutate=None, *extra):
    root = make_kaldi_corpus(tmp / "corpus")
    if mutate:
        mutate(root)
    return root, [
        "prep",
        "--corpus",
        "kaldi",
        "--corpus-root",
        root,
        "--data-dir",
        tmp / "data",
        "--no-speed-perturb",
        *extra,
    ]


def _other_options(tmp):
    root, args = _kaldi(tmp)
    assert CliRunner().invoke(cli, [str(a) for a in args]).exit_code == 0
    return cli_out(*[a for a in args if a != "--no-speed-perturb"])


def _unsorted(tmp):
    def swap(root):
        p = root / "train" / "wav.scp"
        lines = p.read_text().splitlines(keepends=True)
        p.write_text("".join([lines[1], lines[0]] + lines[2:]))

    return cli_out(*_kaldi(tmp, swap)[1])


def _empty_text(tmp):
    def blank(root):
        p = root / "train" / "text"
        p.write_text(p.read_text().replace("trainspk1-000 GOOD MORNING TO YOU", "trainspk1-000"))

    return cli_out(*_kaldi(tmp, blank)[1])


def _truncated(tmp):
    from pipeline.data.audio import read_audio, write_wav

    p = tmp / "cut.wav"
    write_wav(str(p), 16000, tone(1.0))
    p.write_bytes(p.read_bytes()[:2000])
    return err(lambda: read_audio(str(p), "u1"))


def _stereo(tmp):
    import io
    import wave

    from pipeline.data.audio import read_audio

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(800, "<i2").tobytes())
    (tmp / "st.wav").write_bytes(buf.getvalue())
    return err(lambda: read_audio(str(tmp / "st.wav"), "u2"))


def _overshoot(tmp):
    from pipeline.data.audio import write_wav
    from pipeline.data.features import _AudioSource

    write_wav(str(tmp / "rec.wav"), 16000, tone(1.0))
    return err(lambda: _AudioSource({"rec": str(tmp / "rec.wav")}, {"u": "rec 0.2 2.0"})("u"))


def _corrupt(tmp):
    from pipeline.data.audio import read_audio

    (tmp / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    return err(lambda: read_audio(str(tmp / "bad.wav"), "u3"))


def _locked(tmp):
    hold = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                f"import sys, time; sys.path.insert(0, {str(REPO)!r}); "
                f"from pipeline.locks import lock_dir; lock_dir({str(tmp / 'exp' / 'warmup')!r}); "
                "print('locked', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert hold.stdout.readline().strip() == "locked"
        return cli_out(
            "warmup",
            "--config",
            REPO / "conf/debug/warmup.yaml",
            "--data-dir",
            tmp / "data",
            "--exp-dir",
            tmp / "exp",
        )
    finally:
        hold.send_signal(signal.SIGKILL)
        hold.wait()


def _config(tmp):
    base = [
        "search",
        "--config",
        REPO / "conf/debug/search.yaml",
        "--data-dir",
        tmp / "d",
        "--exp-dir",
        tmp / "e",
        "--set",
    ]
    return cli_out(*base, "lr=-1") + cli_out(*base, "max_epochs=two")


def _no_space(tmp):
    import torch

    import pipeline.io as stage
    import pipeline.train.checkpoint as ck

    ck.save_checkpoint(tmp / "ckpt", 2, {"w": torch.ones(1)})
    mp = pytest.MonkeyPatch()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    mp.setattr(stage.tempfile, "mkstemp", full)
    try:
        return err(lambda: ck.save_checkpoint(tmp / "ckpt", 4, {"w": torch.ones(1)}))
    finally:
        mp.undo()


def _stage_refusals(tmp, tts_data):
    """A stage dir recorded with other options: finished → 'was built', interrupted → 'was
    started' (the real run_stage check, no training needed)."""
    from pipeline.io import input_fingerprints
    from pipeline.stages.record import StageDir
    from pipeline.stages.train import run_training, stage_inputs, stage_options
    from pipeline.train.config import load_config

    out = []
    for done in (True, False):
        exp = tmp / ("built" if done else "started")
        cfg = load_config(
            "warmup",
            REPO / "conf/debug/warmup.yaml",
            ["progress=false"],
            data_dir=str(tts_data),
            exp_dir=str(exp),
        )
        old = load_config(
            "warmup",
            REPO / "conf/debug/warmup.yaml",
            ["lr=0.003"],
            data_dir=str(tts_data),
            exp_dir=str(exp),
        )
        sd = StageDir(exp / "warmup")
        sd.record_inputs(input_fingerprints(stage_inputs(old)), stage_options(old))
        if done:
            sd.write_stage_json(
                "stnas warmup",
                1,
                fingerprints=input_fingerprints(stage_inputs(old)),
                options=stage_options(old),
            )
            sd.mark_done("stage")
        out.append(err(lambda cfg=cfg: run_training(cfg)))
    return "\n".join(out)


def _gzip_lm(tmp):
    from pipeline.lang.lm_data import word_lm_arpa

    (tmp / "local" / "lm").mkdir(parents=True)
    (tmp / "local" / "lm" / "lm_paths.txt").write_text("tg /corpus/tcb20onp.z.gz\n")
    return err(lambda: word_lm_arpa(tmp, "tg"))


def _no_sclite(tmp):
    from pipeline.decode import scoring, stm_scoring

    mp = pytest.MonkeyPatch()
    mp.setattr(scoring, "find_sclite", lambda: None)
    mp.setattr(stm_scoring, "find_sclite", lambda: None, raising=False)
    mp.setattr(stm_scoring.shutil, "which", lambda name: None, raising=False)
    mp.setattr(stm_scoring, "SCLITE_PATH", "/nonexistent", raising=False)
    try:
        a = err(lambda: scoring.run_sclite(tmp / "r.trn", tmp / "h.trn", tmp, "h"))
        b = err(stm_scoring.sctk_bin)
        return a + "\n" + b
    finally:
        mp.undo()


def _decoded_at(tmp):
    """dev decoded at two settings (1.5_0 better), test only at the other: score refuses;
    and a set decoded before its tuning set has no tuned.json."""
    from pipeline.decode.run import read_tuned
    from pipeline.stages.score import run_score

    data, model_dir = tmp / "data", tmp / "m" / "retrain"
    for name, text in (("dev", "u1 A B\n"), ("test", "t1 A\n")):
        (data / name).mkdir(parents=True)
        (data / name / "text").write_text(text)
    (tmp / "lang_test").mkdir()
    (tmp / "lang_test" / "lexicon.txt").write_text("A a\nB b\n")
    for name, hyps in (
        ("dev", {"1.5_0": "u1 A B\n", "1_0.5": "u1 A\n"}),
        ("test", {"1_0.5": "t1 A\n"}),
    ):
        d = model_dir / f"decode_{name}_tg"
        (d / "hyp").mkdir(parents=True)
        (d / ".done").mkdir()
        (d / ".done" / "stage").write_text("{}")
        (d / "decode_info.json").write_text(f'{{"lang_test": "{tmp / "lang_test"}"}}')
        for setting, text in hyps.items():
            (d / "hyp" / f"{setting}.txt").write_text(text)
    a = err(lambda: run_score(model_dir, data, "tg", "dev", ["test"], None, "", False))
    b = err(lambda: read_tuned(model_dir / "decode_test_tg"))
    return a + "\n" + b


def _units(tmp, tts_data):
    import torch

    from pipeline.decode.run import DecodeConfig
    from pipeline.nas.arch import Arch
    from pipeline.stages.decode import run_decode

    arch = Arch.from_json(REPO / "conf" / "arch" / "tdnn_d_tiny.json")
    k = sum(1 for _ in open(tts_data / "lang" / "units.txt")) + 3  # another corpus's units
    model = tmp / "other" / "retrain" / "best.pt"
    model.parent.mkdir(parents=True)
    torch.save(
        {
            "model": arch.build(k).state_dict(),
            "arch": arch.to_dict(),
            "num_units": k,
            "stage": "retrain",
        },
        model,
    )
    return err(
        lambda: run_decode(
            DecodeConfig(model=str(model), data_dir=str(tts_data), sets=["dev"], progress=False)
        )
    )


def _run_sh(tmp):
    out = subprocess.run(
        ["bash", str(REPO / "run.sh"), "--corpus", "kaldi", "--conf", "conf/kaldi"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 1
    return out.stderr


def _mixed_rates(tmp):
    from pipeline.data.rates import choose_fbank_conf

    return err(
        lambda: choose_fbank_conf({16000: ["train/a", "dev/b"], 8000: ["test/c"]}, None, None)
    )


def _conf_rate(tmp):
    from pipeline.data.rates import choose_fbank_conf

    return err(lambda: choose_fbank_conf({8000: ["train/a"]}, REPO / "conf" / "fbank.conf", None))


def _lm_filter(tmp):
    from pipeline.lang.lm_data import word_lm_arpa

    d = tmp / "digits"
    for name in ("train", "dev", "test"):
        (d / name).mkdir(parents=True)
        (d / name / "text").write_text(f"{name}1 ONE TWO\n")
    (d / "config.yaml").write_text("corpus: kaldi\nlm_text_filter: exact\n")
    return err(lambda: word_lm_arpa(d, "tg"))


def _g2p_phone(tmp):
    from pipeline.lang.g2p import g2p_lexicon

    (tmp / "lexicon_g2p.txt").write_text("ZORB Z AO Q B\n")
    return err(lambda: g2p_lexicon(tmp / "lexicon_g2p.txt", ["ZORB"], False))


TRIGGERS = {
    "different sample rates": _mixed_rates,
    "is for N Hz": _conf_rate,
    "no sentences left": _lm_filter,
    "is not a CMU phone": _g2p_phone,
    "TTS programs missing": _tts_missing,
    "is shorten-compressed": _shorten,
    "expected the LDC": _ldc,
    "--corpus-opt not understood": _corpus_opt,
    "was prepared with other options": _other_options,
    "not sorted": _unsorted,
    "during prep": _empty_text,
    "truncated wav": _truncated,
    "has 2 channels": _stereo,
    "segment ends at": _overshoot,
    "corrupt wav header": _corrupt,
    "is in use by": _locked,
    "config key": _config,
    "no space left": _no_space,
    "was built from other": "stage",
    "was started from other": "stage",
    "gzip-compressed": _gzip_lm,
    "sclite not found": _no_sclite,
    "no stage configs": _run_sh,
    "was decoded at": _decoded_at,
    "outputs K units": "units",
}
# rows whose messages need a trained model or a decode: the test that triggers each one, and
# what it asserts there
ELSEWHERE = {
    "already done and up to date": ("tests/integration/test_recipe.py", "already done"),
    "was decoded from other inputs": (
        "tests/integration/test_decode_score.py",
        "beam: 17.0 → 12.0",
    ),
    "non-finite loss": ("tests/integration/test_train_stages.py", "max_bad_batches=0"),
    "below the cheapest architecture": (
        "tests/unit/test_cost_budget.py",
        'match="below the cheapest architecture"',
    ),
}
INFEASIBLE = {"CUDA out of memory": "needs a GPU"}


def _key(cell, table):
    return next((k for k in table if k in cell), None)


def test_readme_links_the_table():
    assert "](docs/troubleshooting.md)" in (REPO / "README.md").read_text()


def test_every_row_is_triggered_or_accounted_for():
    rows = table_rows()
    assert len(rows) >= 20
    for cell, _ in rows:
        assert any(_key(cell, t) for t in (TRIGGERS, ELSEWHERE, INFEASIBLE)), cell


@pytest.mark.parametrize("key", sorted(TRIGGERS))
def test_row_message_is_what_the_code_prints(key, tmp_path, tts_data):
    patterns = next(p for cell, p in table_rows() if _key(cell, {key: 1}))
    fn = TRIGGERS[key]
    shown = (
        _stage_refusals(tmp_path, tts_data)
        if fn == "stage"
        else _units(tmp_path, tts_data)
        if fn == "units"
        else fn(tmp_path)
    )
    for pattern in patterns:
        if key == "during prep":  # FILE:LINE (UTT): ... — the shape itself
            assert re.search(r"\S+/text:\d+ \(utterance \S+\): empty transcript", shown)
            continue
        rest = shown
        for piece in pieces(pattern):
            assert piece in rest, f"table piece {piece!r} of {pattern!r} not in:\n{shown}"
            rest = rest[rest.index(piece) + len(piece) :]


@pytest.mark.parametrize("key", sorted(ELSEWHERE))
def test_rows_triggered_by_other_tests(key):
    path, asserted = ELSEWHERE[key]
    assert asserted in (REPO / path).read_text(), (path, asserted)
