"""Does training-set augmentation help the demo? Measured on dev, clean and corrupted.

Needs a finished ``make demo`` (``data/tts`` and ``exp/tts/st``). The demo's searched
architecture is retrained the same way (``conf/tts/retrain.yaml``, same seed) on a data dir
prepared with ``--augment``; both models decode dev (which tunes the LM weight and penalty) and
three corrupted copies of dev made by the same code with another seed, other noise sources
and dev's own speakers as babble (``dev_noise``, ``dev_reverb``, ``dev_telephone``). Nothing here
touches test.

    python bench/augment.py [--kinds noise,reverb,telephone] [--fraction 1.0] [--nj 2]

Writes ``bench/results/augment.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
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
        write_map(out / f, {k[len(p):]: (v[len(p):] if f == "utt2spk" else v)
                            for k, v in m.items()})
    (out / "utt2uniq").unlink()
    write_spk2utt(out)
    conf = yaml.safe_load((data / "config.yaml").read_text())
    make_features(out, data / "fbank", conf["fbank_conf"], nj=nj, progress=False,
                  keep_reference=True)
    return name


def best_wer(decode_dir: Path) -> str:
    line = (decode_dir / "best_wer").read_text().splitlines()[0]
    return re.search(r"%WER ([\d.]+)", line).group(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/tts")
    ap.add_argument("--exp", default="exp/tts/st")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--fraction", type=float, default=1.0)
    ap.add_argument("--nj", type=int, default=2)
    ap.add_argument("--out", default="bench/results/augment.md")
    a = ap.parse_args()
    data, exp = ROOT / a.data, ROOT / a.exp
    arch = exp / "search" / "arch.json"
    base_model = exp / "retrain" / "avg.pt"
    for p in (data / "config.yaml", arch, base_model):
        if not p.is_file():
            sys.exit(f"{p} missing: run 'make demo' first")
    aug_data = data.parent / f"{data.name}_aug"
    aug_exp = exp.parent.parent / f"{exp.parent.name}_aug" / exp.name
    log = ROOT / "bench" / "results" / "augment.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    if not (aug_data / "wav").exists() and (data / "wav").is_dir():  # same corpus, not resynthesised
        aug_data.mkdir(parents=True, exist_ok=True)
        shutil.copytree(data / "wav", aug_data / "wav", copy_function=os.link)
    sh(STNAS + ["prep", "--config", "conf/tts/prep.yaml", "--data-dir", aug_data,
                "--augment", a.kinds, "--augment-fraction", a.fraction, "--nj", a.nj], log)
    sets = ["dev"] + [corrupted_dev(data, k, a.nj) for k in KINDS]
    for k in KINDS:
        corrupted_dev(aug_data, k, a.nj)
    sh(STNAS + ["retrain", "--config", "conf/tts/retrain.yaml", "--data-dir", aug_data,
                "--exp-dir", aug_exp, "--arch", arch], log)
    rows = {}
    for name, d, model in (("no augmentation (the demo's model)", data, base_model),
                           (f"--augment {a.kinds}", aug_data, aug_exp / "retrain" / "avg.pt")):
        sh(STNAS + ["decode", "--model", model, "--data-dir", d, "--sets", ",".join(sets),
                    "--nj", a.nj], log)
        sh(STNAS + ["score", "--model-dir", model.parent, "--data-dir", d, "--dev", "dev",
                    "--test", ",".join(sets[1:]), "--results", ""], log)
        rows[name] = [best_wer(model.parent / f"decode_{s}_tg") for s in sets]
    train_utts = {n: len(read_map(d / t / "utt2spk")) for n, d, t in
                  (("base", data, "train_sp"), ("aug", aug_data, "train_sp_aug"))}
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, cwd=ROOT).stdout.strip()
    lines = [
        "<!-- Written by bench/augment.py: the demo's searched architecture retrained with and",
        f"     without augmented training copies; commit {sha}, {platform.processor() or 'CPU'},",
        f"     {time.strftime('%Y-%m-%d')}. One run of each (one seed); see the notes. -->",
        "",
        "# Augmentation on the tts demo: dev, clean and corrupted",
        "",
        f"Architecture `{arch.relative_to(ROOT)}` retrained with `conf/tts/retrain.yaml` (seed "
        f"1) on `train_sp` ({train_utts['base']} utterances) and on `train_sp_aug` "
        f"({train_utts['aug']}: `--augment {a.kinds} --augment-fraction {a.fraction:g}`). "
        "The LM weight and word penalty are chosen on clean dev; the corrupted copies are "
        f"decoded at that pair. They are dev through the same augmentation code with seed "
        f"{EVAL_SEED} (other noise excerpts, SNRs, rooms and bands; babble from dev's own "
        "speakers).",
        "",
        "| training set | " + " | ".join(f"{s} %WER" for s in sets) + " |",
        "|---|" + "---:|" * len(sets),
    ]
    for name, wers in rows.items():
        lines.append(f"| {name} | " + " | ".join(wers) + " |")
    walls = [json.loads((e / "retrain" / "stage.json").read_text())["wall_time_s"]
             for e in (exp, aug_exp)]
    lines += ["", f"Retrain wall time (from each `stage.json`, 2 threads): {walls[0]:.0f} s "
              f"without, {walls[1]:.0f} s with augmentation (twice the training audio). "
              "Which of the two runs shared the CPUs with other work is not recorded, so only "
              "the WERs are to be compared.", ""]
    (ROOT / a.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
