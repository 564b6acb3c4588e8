"""CTC-CRF cost against a training step.

Side by side in one run, median of repeats, B = 32 utterances of T = 300 frames after
sub-sampling (900 input frames): den forward+backward, the whole CTC-CRF loss (den + CTC
numerator), torch ``ctc_loss``, and a forward+backward of the 640-wide retrain network
(all-kernel-5 TDNN of the WSJ space); each den graph with the smoothed and the Kaldi-style
unsmoothed phone LM, each through the pure-torch and the fused den forward-backward. Two den graphs: the ``tts`` one (phone 4-gram on the
phones of the tts sentence pool, 41 units) and one of WSJ size (72 units, 4-gram on synthetic
phone sentences: 5000 random "words" drawn Zipf-like). Run: ``.venv/bin/python bench/ctc_crf.py``.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import median_time, write_table  # noqa: E402

B, T_OUT, LABELS, REPEATS = 32, 300, 60, 5


def tts_sequences():
    from local.tts.sentences import sentence_pool
    from pipeline.lang.lexicon import read_festival_cmudict, units_from_lexicon

    lex = read_festival_cmudict()
    pool = sentence_pool(lex)
    phones = units_from_lexicon({w: lex[w][:1] for s in pool for w in s.split()})
    ids = {p: i for i, p in enumerate(phones, 1)}
    return len(phones) + 1, [[ids[p] for w in s.split() for p in lex[w][0]] for s in pool]


def wsj_size_sequences(num_units: int = 72, n_words: int = 5000, n_sents: int = 20000):
    rng = random.Random(0)
    words = [
        [rng.randrange(1, num_units) for _ in range(rng.randint(2, 8))] for _ in range(n_words)
    ]
    weights = [1.0 / (r + 1) for r in range(n_words)]
    seqs = []
    for _ in range(n_sents):
        seqs.append([p for w in rng.choices(words, weights, k=rng.randint(5, 20)) for p in w])
    return num_units, seqs


def model(num_units: int):
    from torch import nn

    from pipeline.nas.ops import SUBSAMPLING_OP, make_op

    ops = [
        "tdnn_k5_d1",
        "tdnn_k5_d2",
        "tdnn_k5_d1",
        SUBSAMPLING_OP,
        "tdnn_k5_d2",
        "tdnn_k5_d1",
        "tdnn_k5_d2",
    ]
    layers, dim = [], 120
    for op in ops:
        layers.append(make_op(op, dim, 640))
        dim = 640
    net = nn.Sequential(*layers, nn.Linear(640, num_units))
    return net, sum(p.numel() for p in net.parameters())


def measure(graph_name: str, lm_type: str, impl: str, device: str) -> dict:
    """Time one row in this process: den fwd+bwd and CTC-CRF fwd+bwd (impl ``none``: the
    network step and torch ctc_loss instead). Returns milliseconds and graph sizes."""
    import torch

    from pipeline.lang.den_graph import compose_den_fst, den_graph_from_fst
    from pipeline.lang.phone_lm import estimate_phone_lm, lm_to_fst
    from pipeline.lang.phone_lm_unsmoothed import estimate_unsmoothed_phone_lm
    from pipeline.loss.ctc_crf import CtcCrfLoss

    torch.manual_seed(0)
    dev = torch.device(device)
    K, seqs = tts_sequences() if graph_name == "tts" else wsj_size_sequences()
    lengths = torch.full((B,), T_OUT, dtype=torch.long, device=dev)
    labels = torch.randint(1, K, (B, LABELS), device=dev)
    label_lengths = torch.full((B,), LABELS, dtype=torch.long, device=dev)
    logits = torch.randn(B, T_OUT, K, device=dev)

    def timed(f):
        def run():
            f()
            if dev.type == "cuda":
                torch.cuda.synchronize()

        run()  # warm-up (CUDA kernels, allocator, graph caches)
        return median_time(run, REPEATS) * 1e3

    if impl == "none":
        net, params = model(K)
        net = net.to(dev)
        x = torch.randn(B, 3 * T_OUT, 120, device=dev)

        def step():
            net.zero_grad()
            net(x).log_softmax(-1).sum().backward()

        def ctc():
            lp = logits.clone().requires_grad_(True)
            torch.nn.functional.ctc_loss(
                lp.log_softmax(-1).transpose(0, 1),
                labels,
                lengths,
                label_lengths,
                zero_infinity=True,
            ).backward()

        return {"step": timed(step), "ctc": timed(ctc), "params": params}
    lm = (
        estimate_phone_lm(seqs, K, order=4, max_extra_states=1000)
        if lm_type == "witten_bell"
        else estimate_unsmoothed_phone_lm(seqs, K, order=4, max_extra_states=1000)
    )
    graph = den_graph_from_fst(compose_den_fst(K, lm_to_fst(lm)), K)
    loss_fn = CtcCrfLoss(graph, lamb=0.01, implementation=impl).to(dev)
    if loss_fn.implementation != impl:
        raise SystemExit("the fused extension is not built: run 'make install'")

    def den():
        lp = logits.clone().requires_grad_(True)
        loss_fn.den_logz(lp.log_softmax(-1), lengths).sum().backward()

    def ctc_crf():
        lp = logits.clone().requires_grad_(True)
        loss_fn(lp.log_softmax(-1), lengths, labels, label_lengths).loss.backward()

    return {
        "den": timed(den),
        "ctc_crf": timed(ctc_crf),
        "K": K,
        "states": graph.num_states,
        "arcs": graph.num_arcs,
    }


def main(device: str = "cpu") -> None:
    import json
    import subprocess

    import torch

    def row(*args: str) -> dict:
        # One process per row: measured in one process, a row run after a larger graph's
        # rows was up to 2x slower (allocator and page state), whichever implementation.
        out = subprocess.run(
            [sys.executable, __file__, "--device", device, "--row", *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return json.loads(out.strip().splitlines()[-1])

    rows, notes = [], []
    for name in ("tts", "WSJ size"):
        net = row(name, "-", "none")
        notes.append(
            f"{name}: network {net['params'] / 1e6:.2f} M parameters, fwd+bwd "
            f"{net['step']:.0f} ms; torch ctc_loss fwd+bwd {net['ctc']:.0f} ms"
        )
        base = None
        for lm_type in ("witten_bell", "kaldi"):
            for impl in ("torch", "fused"):
                r = row(name, lm_type, impl)
                base = base or r["den"]
                share = r["ctc_crf"] / (net["step"] + r["ctc_crf"])
                rows.append(
                    (
                        name,
                        lm_type,
                        impl,
                        r["K"],
                        r["states"],
                        r["arcs"],
                        f"{r['den']:.0f}",
                        f"{base / r['den']:.1f}x",
                        f"{r['ctc_crf']:.0f}",
                        f"{100 * share:.1f} %",
                    )
                )
    gpu = device.startswith("cuda")
    write_table(
        "ctc_crf_gpu" if gpu else "ctc_crf",
        f"CTC-CRF loss vs a retrain step ({torch.cuda.get_device_name(0) if gpu else 'CPU'})",
        [
            "den graph",
            "den LM",
            "den fwd-bwd",
            "K",
            "den states",
            "den arcs",
            "den fwd+bwd ms",
            "den speed-up",
            "CTC-CRF fwd+bwd ms",
            "CTC-CRF share of step",
        ],
        rows,
        [
            f"B = {B}, T = {T_OUT} frames after 3x sub-sampling, {LABELS} labels, float32, median "
            f"of {REPEATS} after a warm-up, {torch.get_num_threads()} threads; each row measured "
            "in a fresh process, all in one run."
        ]
        + notes
        + [
            "den LM: `witten_bell` = smoothed phone 4-gram (every phone from every state); `kaldi` "
            "= unsmoothed, Kaldi's chain-est-phone-lm rules (the default of `stnas prep`).",
            "den fwd-bwd: `torch` = the pure-torch reference (`DenLogZ`, sparse products); `fused` "
            "= the C++ extension (`pipeline/loss/csrc`). Speed-up relative to the first row of "
            "the same den graph.",
            "CTC-CRF share = CTC-CRF / (network + CTC-CRF). Targets: ≤ 5 % of a WSJ-size step on "
            "CPU and on GPU, ≤ 2 % on tts (CPU).",
            (
                "Measured on the GPU (CUDA synchronised around every timing)."
                if gpu
                else "CPU run; `bench/gpu_check.sh` measures the GPU table when a GPU is lent."
            ),
        ],
    )


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--row", nargs=3, metavar=("GRAPH", "LM", "IMPL"), help=argparse.SUPPRESS
    )  # one row, in this process (used by main)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(measure(*args.row, args.device)))
    else:
        main(args.device)
