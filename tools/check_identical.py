#!/usr/bin/env python3
"""Run the debug recipe at one or more commits and compare what it produced, bit for bit.

Each commit is checked out into a temporary clone that uses this checkout's ``.venv`` (its
own sources first on ``PYTHONPATH``, its own C++ extension built), then runs
``./run.sh --corpus tts --conf conf/debug`` into its own ``data/``, ``exp/`` and results file.
The digest of a run is:

* ``arch.json``: sha256 of its JSON with ``provenance`` left out (that block names the commit,
  the exp dir and the time, which differ by construction);
* ``avg.pt`` and the baseline's ``avg.pt``: sha256 of every tensor of the weights, key by key
  in sorted order (the file's own bytes hold the zip's random temporary name);
* the WER table: the rows ``stnas score`` wrote between the results markers.

Usage: tools/check_identical.py [--keep] [--out FILE] [--save JSON] [--against JSON] REV [REV ...]
  e.g. tools/check_identical.py f790bee HEAD       # before/after a refactor
       tools/check_identical.py --save /tmp/base.json f790bee   # once, before the change
       tools/check_identical.py --against /tmp/base.json HEAD   # after it
Exit status 0 when every digest is the same for every REV, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent


def weights_digest(path: Path) -> str:
    """sha256 over the model tensors of a checkpoint (sorted keys, raw bytes)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)  # never runs code
    h = hashlib.sha256()
    for key in sorted(state["model"]):
        t = state["model"][key].contiguous()
        h.update(f"{key} {t.dtype} {tuple(t.shape)}\n".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def arch_digest(path: Path) -> str:
    info = json.loads(path.read_text())
    info.pop("provenance", None)
    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()


def wer_table(results: Path) -> List[str]:
    rows, inside = [], False
    for line in results.read_text().splitlines():
        if "stnas:results:begin" in line:
            inside = True
        elif "stnas:results:end" in line:
            inside = False
        elif inside and line.startswith("| tts"):
            rows.append(line)
    return rows


def run_at(rev: str, work: Path) -> Dict[str, object]:
    clone = work / rev.replace("/", "_")
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", rev], check=True)
    sha = subprocess.run(
        ["git", "-C", str(clone), "rev-parse", "--short", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (clone / ".venv").symlink_to(ROOT / ".venv")
    for name in ("fbank.conf", "fbank_8k.conf"):
        if (ROOT / "conf" / name).is_file() and not (clone / "conf" / name).is_file():
            shutil.copy(ROOT / "conf" / name, clone / "conf" / name)
    env = {**os.environ, "PYTHONPATH": str(clone)}
    py = str(ROOT / ".venv" / "bin" / "python")
    subprocess.run([py, "-m", "pipeline.loss.den_fb_ext"], cwd=clone, env=env, check=True)
    log = clone / "run.log"
    with open(log, "w") as f:
        rc = subprocess.run(
            [
                "bash",
                "run.sh",
                "--corpus",
                "tts",
                "--conf",
                "conf/debug",
                "--results",
                "RESULTS.debug.md",
            ],
            cwd=clone,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
        ).returncode
    if rc != 0:
        sys.exit(f"{rev}: run.sh failed (exit {rc}); see {log}")
    exp = clone / "exp" / "tts"
    return {
        "rev": rev,
        "commit": sha,
        "arch.json": arch_digest(exp / "st" / "search" / "arch.json"),
        "avg.pt": weights_digest(exp / "st" / "retrain" / "avg.pt"),
        "tdnn_d avg.pt": weights_digest(exp / "st_tdnn_d" / "retrain" / "avg.pt"),
        "wer": wer_table(clone / "RESULTS.debug.md"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("revs", nargs="+")
    ap.add_argument("--out", type=Path, help="also write the report here")
    ap.add_argument("--keep", action="store_true", help="keep the clones")
    ap.add_argument("--save", type=Path, help="write the digests as JSON")
    ap.add_argument("--against", type=Path, help="digests of earlier runs (--save) to compare")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stnas-identical-"))
    try:
        runs = [run_at(rev, work) for rev in args.revs]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.save:
        args.save.write_text(json.dumps(runs, indent=1) + "\n")
    if args.against:
        runs = json.loads(args.against.read_text()) + runs
    lines = ["# Debug recipe, bit for bit", ""]
    for r in runs:
        lines += [
            f"## {r['rev']} ({r['commit']})",
            "",
            f"- arch.json (without provenance): `{r['arch.json']}`",
            f"- retrain/avg.pt weights: `{r['avg.pt']}`",
            f"- tdnn_d retrain/avg.pt weights: `{r['tdnn_d avg.pt']}`",
            "- WER table:",
            "",
            *r["wer"],
            "",
        ]
    keys = ("arch.json", "avg.pt", "tdnn_d avg.pt", "wer")
    same = all(r[k] == runs[0][k] for r in runs for k in keys)
    lines.append(
        "identical: "
        + (
            "yes"
            if same
            else "NO: " + ", ".join(k for k in keys if any(r[k] != runs[0][k] for r in runs))
        )
    )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
