"""Wall time, peak memory and throughput of warmup, search and retrain on a fixed tts size.

Prepares ``data/bench_tts`` (``--hours``, once), then runs each stage in a fresh process with
the configs of ``--config-dir`` (default ``conf/debug``) and reports wall time, peak RSS,
epochs, seconds per epoch, training throughput (median frames/s of the logged steps) and
(warmup + search) / retrain — the paper reports the whole 3-stage run under 3× a single
training (Table 4); our target is warmup + search ≤ 1.5× retrain.

Run: ``.venv/bin/python bench/stages.py [--hours 0.05] [--config-dir conf/debug] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pipeline.threads import disable_dynamic_threads  # noqa: E402

disable_dynamic_threads()  # before torch loads, as the stnas command does

STAGES = ("warmup", "search", "retrain")


def run_one(stage: str, data: str, exp: str, config_dir: str, device: str) -> dict:
    from pipeline.stages.train import run_training
    from pipeline.train.config import load_config

    cfg = load_config(
        stage,
        Path(config_dir) / f"{stage}.yaml",
        ["progress=false"],
        data_dir=data,
        exp_dir=exp,
        device=device,
    )
    t = time.perf_counter()
    summary = run_training(cfg, force=True)
    wall = time.perf_counter() - t
    rows = [json.loads(x) for x in (Path(exp) / stage / "metrics.jsonl").read_text().splitlines()]
    fps = [r["frames_per_s"] for r in rows if r.get("kind") == "train"]
    return {
        "stage": stage,
        "wall_s": wall,
        "epochs": summary["epochs"],
        "steps": summary["steps"],
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "frames_per_s": statistics.median(fps) if fps else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=0.05)
    parser.add_argument("--config-dir", default=str(REPO / "conf" / "debug"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--exp", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.data, args.exp, args.config_dir, args.device)))
        return
    from bench.common import write_table
    from pipeline.stages.prep import PrepConfig, run_prep

    data = REPO / "data" / f"bench_tts_{args.hours:g}h"
    run_prep(PrepConfig(corpus="tts", data_dir=str(data), hours=args.hours, nj=2), progress=False)
    exp = REPO / "exp" / "bench_stages"
    res = {}
    for stage in STAGES:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                stage,
                "--data",
                str(data),
                "--exp",
                str(exp),
                "--config-dir",
                args.config_dir,
                "--device",
                args.device,
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=REPO,
        ).stdout
        res[stage] = json.loads(out.strip().splitlines()[-1])
        print(stage, res[stage], flush=True)
    rows = [
        (
            s,
            f"{r['wall_s']:.1f}",
            r["epochs"],
            f"{r['wall_s'] / max(r['epochs'], 1):.1f}",
            f"{r['peak_mb']:.0f}",
            f"{r['frames_per_s']:.0f}",
        )
        for s, r in res.items()
    ]
    ratio = (res["warmup"]["wall_s"] + res["search"]["wall_s"]) / res["retrain"]["wall_s"]
    utts = sum(1 for _ in open(data / "train_sp" / "text"))
    write_table(
        "stages" + ("_gpu" if args.device.startswith("cuda") else ""),
        f"Training stages on tts ({args.device})",
        ["stage", "wall s", "epochs", "s / epoch", "peak RSS MiB", "train frames/s"],
        rows,
        [
            f"tts corpus, {args.hours:g} h before 3-way speed perturbation ({utts} training "
            f"utterances); configs {Path(args.config_dir).relative_to(REPO)}; each stage in a "
            "fresh process; wall time includes start-up, the held-out evaluations and plots.",
            f"(warmup + search) / retrain = {ratio:.2f} (target <= 1.5; the paper: whole 3-stage "
            "run < 3x a single training).",
            "frames/s counts input frames (10 ms) of the training batches, median of logged steps.",
        ],
    )


if __name__ == "__main__":
    main()
