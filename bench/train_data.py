"""Which training data makes the better demo model? Arms of prep options, measured on dev.

Each arm prepares its own data dir (``conf/tts/prep.yaml`` plus the arm's options), retrains
one architecture the same way (``conf/tts/retrain.yaml``, seed 1) and decodes dev (which
tunes the LM weight and penalty) and dev's corrupted copies (``dev_noise``, ``dev_reverb``,
``dev_telephone``, as in ``bench/augment.py``). Dev's speakers and sentences are the same in
every arm as long as the arms change only the training set. Nothing here touches test.

    python bench/train_data.py --arch exp/tts/st/search/arch.json \\
        --arm base= --arm voices40='--corpus-opt eval_share=0.15 --corpus-opt extra_train_voices=40'

Writes ``bench/results/<--name>.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.augment import STNAS, best_wer, corrupted_dev, sh  # noqa: E402
from pipeline.data.augment import KINDS  # noqa: E402
from pipeline.data.datadir import read_map  # noqa: E402
from pipeline.data.prepare import training_set_of  # noqa: E402


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
        sh(STNAS + ["prep", "--config", "conf/tts/prep.yaml", "--data-dir", data, "--nj", a.nj,
                    *shlex.split(opts)], log)
        for k in KINDS:
            corrupted_dev(data, k, a.nj)
        sh(STNAS + ["retrain", "--config", "conf/tts/retrain.yaml", "--data-dir", data,
                    "--exp-dir", exp, "--arch", arch], log)
        model = exp / "retrain" / "avg.pt"
        sh(STNAS + ["decode", "--model", model, "--data-dir", data, "--sets", ",".join(sets),
                    "--nj", a.nj], log)
        sh(STNAS + ["score", "--model-dir", model.parent, "--data-dir", data, "--dev", "dev",
                    "--test", ",".join(sets[1:]), "--results", ""], log)
        rows[name] = [best_wer(model.parent / f"decode_{s}_tg") for s in sets]
        train = data / training_set_of(data)
        spk = read_map(train / "spk2utt")
        info[name] = (opts or "(none)", len(read_map(train / "utt2spk")),
                      len({s for s in spk if "-" not in s}))
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, cwd=ROOT).stdout.strip()
    lines = [
        f"<!-- Written by bench/train_data.py --name {a.name}: commit {sha}, "
        f"{platform.processor() or 'CPU'}, {time.strftime('%Y-%m-%d')}. One run per arm "
        "(one seed). -->",
        "",
        f"# Training data arms on the tts demo (`{a.name}`)",
        "",
        f"Every arm retrains `{arch.name}` ({' '.join(json.loads(arch.read_text())['ops'])}) "
        "with `conf/tts/retrain.yaml` (seed 1) on its own data dir, prepared with "
        "`conf/tts/prep.yaml` and the arm's options. The LM weight and word penalty are chosen "
        "on clean dev; the corrupted copies of dev are decoded at that pair.",
        "",
        "| arm | prep options | training utterances | training speakers | "
        + " | ".join(f"{s} %WER" for s in sets) + " |",
        "|---|---|---:|---:|" + "---:|" * len(sets),
    ]
    for name, wers in rows.items():
        opts, utts, spks = info[name]
        lines.append(f"| {name} | `{opts}` | {utts} | {spks} | "
                     + " | ".join(wers) + " |")
    lines.append("")
    out = ROOT / "bench" / "results" / f"{a.name}.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
