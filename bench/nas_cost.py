"""Memory and time of a NAS step against training a single derived model (paper Table 1, §4.4).

Each configuration runs in a fresh process (so peak RSS belongs to it alone) on the same
batch in the WSJ space (width 640, K = 72) with the CTC loss, as in warm-up and search:

* ``single``: the derived all-k5 model (11.9 M parameters), Adam step;
* ``st_weight``: ST-NAS weight step, one sampled path of the supernet, Adam step;
* ``st_arch``: ST-NAS arch step (weights frozen, every candidate runs, Eq. 10), Adam on α;
* ``darts``: DARTS weight step (softmax mixture, every op in the graph);
* ``snas``: SNAS weight step (Gumbel-softmax mixture).

Before the first step every op gets its Adam state (the steady state of a search), through
an optimiser step on zero gradients, so nothing but the measured step ever held activations.
Memory is reported twice: the peak of the whole process (weights, optimiser state,
activations, the Python runtime) and the *step memory* = peak minus the resident size just
before the first step (activations, gradients and temporaries only). On a GPU the same with
``torch.cuda.max_memory_allocated``.

The default batch is the paper's per-GPU one: search batch 64 on 4 GPUs = 16 utterances of
about 850 frames (the WSJ mean length, paper §4.4).

Run: ``.venv/bin/python bench/nas_cost.py [--device cuda] [--batch 16 --frames 850]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.threads import disable_dynamic_threads  # noqa: E402

disable_dynamic_threads()  # before torch loads, as the stnas command does


CONFIGS = ("single", "st_weight", "st_arch", "darts", "snas")
K = 72


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(config: str, device: str, batch: int, frames: int, repeats: int) -> dict:
    """Time ``config`` in this process; returns seconds and memory in MiB."""
    import torch
    import torch.nn.functional as F

    from pipeline.nas.arch import Arch
    from pipeline.nas.space import load_space
    from pipeline.nas.supernet import ArchWeights, Supernet
    from pipeline.nas.supernet import Path as NetPath
    from pipeline.search.strategies import StrategyConfig, make_strategy

    torch.manual_seed(0)
    dev = torch.device(device)
    space = load_space("wsj")
    x = torch.randn(batch, frames, space.input_dim, device=dev)
    lengths = torch.full((batch,), frames, dtype=torch.long, device=dev)
    labels = torch.randint(1, K, (batch, frames // 6), device=dev)
    label_lengths = torch.full((batch,), frames // 6, dtype=torch.long, device=dev)

    def ctc(out):
        log_probs, out_lengths = out
        return F.ctc_loss(
            log_probs.transpose(0, 1), labels, out_lengths, label_lengths, zero_infinity=True
        )

    all_k5 = ["tdnn_k5_d1", "tdnn_k5_d2"] * 3
    if config == "single":
        net = Arch.from_space(space, all_k5).build(K).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step():
            opt.zero_grad(set_to_none=True)
            ctc(net(x, lengths)).backward()
            opt.step()
    else:
        net = Supernet(space, K).to(dev)
        arch = ArchWeights(space).to(dev)
        name = {"st_weight": "st", "st_arch": "st"}.get(config, config)
        strategy = make_strategy(name, net, arch, StrategyConfig(seed=0))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def weight_step(choice):
            opt.zero_grad(set_to_none=True)
            ctc(net(x, lengths, choice)).backward()
            opt.step()

        path = NetPath(tuple(space.index_of(all_k5)))
        if config == "st_weight":

            def step():
                weight_step(path)  # the same path as ``single``: same work, fair timing
        elif config == "st_arch":

            def step():
                strategy.arch_step(lambda choice: ctc(net(x, lengths, choice)))
        else:

            def step():
                weight_step(strategy.weight_choice())

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for p in net.parameters():  # Adam state for every op, without running the network
        p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad(set_to_none=True)
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = _rss_mb()
    step()  # the first step sets the peak; later ones are timed
    sync()
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else _peak_rss_mb()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    times.sort()
    return {
        "config": config,
        "seconds": times[len(times) // 2],
        "peak_mb": peak,
        "step_mb": peak - base,
        "params": sum(p.numel() for p in net.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=850)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.device, args.batch, args.frames, args.repeats)))
        return
    from bench.common import write_table

    results = {}
    for config in CONFIGS:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                config,
                "--device",
                args.device,
                "--batch",
                str(args.batch),
                "--frames",
                str(args.frames),
                "--repeats",
                str(args.repeats),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[config] = json.loads(out.strip().splitlines()[-1])
        print(config, results[config], flush=True)
    ref = results["single"]
    rows = []
    for config in CONFIGS:
        r = results[config]
        rows.append(
            (
                config,
                f"{r['params'] / 1e6:.1f} M",
                f"{r['seconds']:.2f}",
                f"{r['seconds'] / ref['seconds']:.2f}x",
                f"{r['peak_mb']:.0f}",
                f"{r['peak_mb'] / ref['peak_mb']:.2f}x",
                f"{r['step_mb']:.0f}",
                f"{r['step_mb'] / ref['step_mb']:.2f}x",
            )
        )
    where = (
        "GPU, torch.cuda.max_memory_allocated"
        if args.device.startswith("cuda")
        else "CPU, peak RSS"
    )
    write_table(
        "nas_cost" + ("_gpu" if args.device.startswith("cuda") else ""),
        f"Cost of a NAS step vs a single-model step ({where})",
        [
            "step",
            "parameters held",
            "seconds",
            "time ratio",
            "peak MiB",
            "peak ratio",
            "step MiB",
            "step-memory ratio",
        ],
        rows,
        [
            f"WSJ space (4 candidates x 6 blocks, width 640), K = {K}, CTC loss, batch "
            f"{args.batch} x {args.frames} frames, median of {args.repeats}, each row in a fresh "
            "process.",
            "single = the derived all-k5 network; st_weight runs that same path in the supernet.",
            "peak = whole process (weights + Adam state of every op + activations + runtime); "
            "step memory = peak minus the resident size before the first timed step.",
            "Targets: st_weight <= 1.15x single in memory and time; st_arch <= 1.6x memory; "
            "DARTS/SNAS expected about N = 4x.",
        ],
    )


if __name__ == "__main__":
    main()
