"""Which training data makes the better demo model? Arms of prep options, measured on dev.

Each arm prepares its own data dir (``conf/tts/prep.yaml`` plus the arm's options), retrains
one architecture the same way (``conf/tts/retrain.yaml``, seed 1) and decodes dev (which
tunes the LM weight and penalty) and three corrupted copies of dev made by the augmentation code
with another seed, other noise excerpts and dev's own speakers as babble (``dev_noise``,
``dev_reverb``, ``dev_telephone``). Dev's speakers and sentences are the same in every arm as
long as the arms change only the training set. Nothing here touches test. Needs ``make demo``
first when ``--arch`` is the demo's.

    # does augmentation help? (bench/results/augment.md; `make bench` runs this one)
    python bench/train_data.py --name augment --arch exp/tts/st/search/arch.json \\
        --arm none='--augment none' --arm augmented='--augment noise,reverb,telephone'
    # do more training voices help? (bench/results/voices.md)
    python bench/train_data.py --name voices --arch exp/tts/st/search/arch.json \\
        --arm base= --arm voices40='--corpus-opt eval_share=0.15 --corpus-opt extra_train_voices=40'

Writes ``bench/results/<--name>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.data.augment import KINDS, PREFIX, augment_data_dir  # noqa: E402
from pipeline.data.datadir import read_map, write_map, write_spk2utt  # noqa: E402
from pipeline.data.features import make_features  # noqa: E402
from pipeline.data.layout import training_set_of  # noqa: E402

EVAL_SEED = 1001  # not the training copies' seed: other noise excerpts, SNRs and rooms
STNAS = [sys.executable, "-m", "steps_py"]


def sh(args, log: Path) -> None:
    with open(log, "a") as f:
        f.write(f"$ {' '.join(map(str, args))}\n")
        f.flush()
        r = subprocess.run([str(a) for a in args], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(map(str, args))}; see {log}")


def corrupted_dev(data: Path, kind: str, nj: int) -> str:
    """``<data>/dev_<kind>``: dev through one augmentation kind, with features."""
    name = f"dev_{kind}"
    out = data / name
    if (out / "feats.scp").is_file():
        return name
    work = data / f".{name}_work"
    shutil.rmtree(work, ignore_errors=True)
    augment_data_dir(data / "dev", work, [kind], EVAL_SEED, data / "local" / "noise_dev")
    shutil.rmtree(out, ignore_errors=True)
    (work / f".aug_{kind}").rename(out)
    work.rmdir()
    p = PREFIX[kind]
    # scored against dev's own transcripts under dev's ids: strip the prefix again
    for f in ("wav.scp", "text", "utt2spk", "utt2uniq", "reco2augment"):
        m = read_map(out / f)
        write_map(
            out / f, {k[len(p) :]: (v[len(p) :] if f == "utt2spk" else v) for k, v in m.items()}
        )
    (out / "utt2uniq").unlink()
    write_spk2utt(out)
    conf = yaml.safe_load((data / "config.yaml").read_text())
    make_features(
        out, data / "fbank", conf["fbank_conf"], nj=nj, progress=False, keep_reference=True
    )
    return name


def best_wer(decode_dir: Path) -> str:
    line = (decode_dir / "best_wer").read_text().splitlines()[0]
    return re.search(r"%WER ([\d.]+)", line).group(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", required=True, help="the architecture every arm retrains")
    ap.add_argument("--arm", action="append", required=True, metavar="NAME=PREP_OPTIONS")
    ap.add_argument("--name", default="train_data", help="results file name")
    ap.add_argument("--nj", type=int, default=2)
    a = ap.parse_args()
    arch = Path(a.arch).resolve()
    log = ROOT / "bench" / "results" / f"{a.name}.log"
    log.write_text("")
    sets = ["dev"] + [f"dev_{k}" for k in KINDS]
    rows, info = {}, {}
    for arm in a.arm:
        name, _, opts = arm.partition("=")
        data, exp = ROOT / "data" / f"tts_{name}", ROOT / "exp" / f"tts_{name}" / "st"
        sh(
            STNAS
            + [
                "prep",
                "--config",
                "conf/tts/prep.yaml",
                "--data-dir",
                data,
                "--nj",
                a.nj,
                *shlex.split(opts),
            ],
            log,
        )
        for k in KINDS:
            corrupted_dev(data, k, a.nj)
        sh(
            STNAS
            + [
                "retrain",
                "--config",
                "conf/tts/retrain.yaml",
                "--data-dir",
                data,
                "--exp-dir",
                exp,
                "--arch",
                arch,
            ],
            log,
        )
        model = exp / "retrain" / "avg.pt"
        sh(
            STNAS
            + [
                "decode",
                "--model",
                model,
                "--data-dir",
                data,
                "--sets",
                ",".join(sets),
                "--nj",
                a.nj,
            ],
            log,
        )
        sh(
            STNAS
            + [
                "score",
                "--model-dir",
                model.parent,
                "--data-dir",
                data,
                "--dev",
                "dev",
                "--test",
                ",".join(sets[1:]),
                "--results",
                "",
            ],
            log,
        )
        rows[name] = [best_wer(model.parent / f"decode_{s}_tg") for s in sets]
        train = data / training_set_of(data)
        spk = read_map(train / "spk2utt")
        info[name] = (
            opts or "(none)",
            len(read_map(train / "utt2spk")),
            len({s for s in spk if "-" not in s}),
        )
    sha = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in open("/proc/cpuinfo")
            if line.startswith("model name")
        ),
        platform.processor() or "CPU",
    )
    lines = [
        f"<!-- Written by bench/train_data.py --name {a.name}: commit {sha}, {cpu}, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}. One run per arm (one seed): "
        "the study in README puts the seed-to-seed spread of a test WER at 0.2-2.1 points. -->",
        "",
        f"# Training data arms on the tts demo (`{a.name}`)",
        "",
        f"Every arm retrains `{arch.name}` ({' '.join(json.loads(arch.read_text())['ops'])}) "
        "with `conf/tts/retrain.yaml` (seed 1) on its own data dir, prepared with "
        "`conf/tts/prep.yaml` and the arm's options. The LM weight and word penalty are chosen "
        "on clean dev; the corrupted copies of dev are decoded at that pair.",
        "",
        "| arm | prep options | training utterances | training speakers | "
        + " | ".join(f"{s} %WER" for s in sets)
        + " |",
        "|---|---|---:|---:|" + "---:|" * len(sets),
    ]
    for name, wers in rows.items():
        opts, utts, spks = info[name]
        lines.append(f"| {name} | `{opts}` | {utts} | {spks} | " + " | ".join(wers) + " |")
    lines.append("")
    out = ROOT / "bench" / "results" / f"{a.name}.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
