"""Speed and WER of WFST decoding on dev with the demo's trained model, by search setting.

Needs ``make demo`` first (``data/tts`` and ``exp/tts/st/retrain/avg.pt``; other paths with
``--data`` / ``--model``). The network forward runs once; only the search is timed (process
CPU time, one process, so the real-time factor is per core). Rows, all in one run:

* the search as it was before beams were in unscaled units (beam 17 in the scaled search at
  every LM weight), for reference;
* one ``FasterDecoder`` search per setting ("redecode") at several beams and ``max_active``;
* the sweep read from one lattice per utterance and penalty ("lattice").

Run: ``.venv/bin/python bench/decode.py``; writes ``bench/results/decode.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pipeline.threads import disable_dynamic_threads  # noqa: E402

disable_dynamic_threads()  # before torch loads, as the stnas command does

WEIGHTS = [0.3, 0.5, 0.7, 1.0, 1.5, 2.0]
PENALTIES = [0.0, 0.5, 1.0]


def main(data: Path, model: Path) -> None:
    import kaldialign

    from bench.common import write_table
    from pipeline.decode.decoder import Decoder, DecoderConfig
    from pipeline.decode.defaults import OUTPUT_FRAME_SHIFT_S
    from pipeline.decode.run import model_logprobs
    from pipeline.decode.sweep import decode_set
    from pipeline.stages.graphs import lang_test_dir

    lang = lang_test_dir(data, "tg")
    for need in (model, lang / "TLG.fst", data / "dev" / "text"):
        if not need.exists():
            raise SystemExit(f"{need} is missing: run 'make demo' first (or pass --data/--model)")
    mats = list(model_logprobs(model, data / "dev" / "feats.scp"))
    audio = sum(len(m) for _, m in mats) * OUTPUT_FRAME_SHIFT_S
    ref = {}
    for line in open(data / "dev" / "text", encoding="utf-8"):
        parts = line.split()
        if parts:
            ref[parts[0]] = parts[1:]
    words = sum(len(ref[u]) for u, _ in mats)

    def wer(hyps) -> float:
        errors = sum(kaldialign.edit_distance(ref[u], h)["total"] for u, h in hyps.items())
        return 100.0 * errors / words

    def timed(decoder, settings, method):
        t = time.process_time()
        res = decode_set(decoder, mats, settings, method)
        return time.process_time() - t, {s: wer(h) for s, h in res.hyps.items()}

    sweep = [(w, p) for w in WEIGHTS for p in PENALTIES]
    at_p0 = [(w, 0.0) for w in WEIGHTS]
    rows = []

    def add(label, config, method, settings, before=False):
        dec = Decoder.from_lang_test(lang, config)
        for p in PENALTIES:  # compose TLG o P once, outside the timings (as each worker does)
            dec.graph_for(p)
        if before:  # beam 17 in the scaled search at every weight: beam 17 w in unscaled units
            seconds, wers, base = 0.0, {}, config.beam
            for w, p in settings:
                dec.config.beam = base * w
                s, r = timed(dec, [(w, p)], method)
                seconds += s
                wers.update(r)
        else:
            seconds, wers = timed(dec, settings, method)
        best = min(wers, key=wers.get)
        rows.append(
            (
                label,
                method,
                f"{len(settings)}",
                f"{seconds / audio:.4f}",
                f"{seconds / audio / len(settings):.4f}",
                f"{wers.get((1.0, 0.0), float('nan')):.2f}",
                f"{wers[best]:.2f} at {best[0]:g}/{best[1]:g}",
            )
        )

    add("before: beam 17 in scaled units", DecoderConfig(beam=17.0), "redecode", at_p0, before=True)
    add("beam 17, max_active 7000", DecoderConfig(beam=17.0), "redecode", at_p0)
    add("beam 17, max_active 1000", DecoderConfig(beam=17.0, max_active=1000), "redecode", at_p0)
    add("beam 12, max_active 7000", DecoderConfig(beam=12.0), "redecode", at_p0)
    add("beam 12, max_active 7000", DecoderConfig(beam=12.0), "redecode", sweep)
    for beam, lattice_beam in ((17.0, 8.0), (12.0, 6.0)):
        cfg = DecoderConfig(beam=beam, lattice_beam=lattice_beam)
        add(f"beam {beam:g}, lattice beam {lattice_beam:g}", cfg, "lattice", at_p0)
        add(f"beam {beam:g}, lattice beam {lattice_beam:g}", cfg, "lattice", sweep)
    write_table(
        "decode",
        "Decoding speed and WER on dev, demo model (CPU, one process)",
        [
            "search",
            "method",
            "settings",
            "RTF",
            "RTF per setting",
            "%WER at 1/0",
            "best %WER (weight/penalty)",
        ],
        rows,
        [
            f"{len(mats)} dev utterances, {audio:.1f} s of audio, {words} words; model {model}; "
            f"graph {lang / 'TLG.fst'}.",
            "RTF = search CPU seconds / audio seconds, per core (one process; the network forward "
            "and the one-off composition TLG o P per penalty excluded). Settings: 6 LM weights "
            "(0.3-2.0) at penalty 0, or all 18 pairs with penalties 0, 0.5, 1.0 (the dev tuning "
            "sweep of `stnas decode`).",
            "redecode: one FasterDecoder search per setting. lattice: one LatticeSimpleDecoder "
            "lattice per utterance and penalty, every LM weight read from it (shortest path).",
            "Beams are in unscaled units (acoustic cost + LM weight x graph cost) except in the "
            "'before' row, which keeps beam 17 in the scaled search at every weight (the old "
            "behaviour, for reference).",
            "Targets: one search RTF <= 0.02; the whole sweep RTF <= 0.05; WER within 0.2 absolute "
            "of the beam-17 result.",
        ],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "tts")
    parser.add_argument(
        "--model", type=Path, default=REPO / "exp" / "tts" / "st" / "retrain" / "avg.pt"
    )
    args = parser.parse_args()
    main(args.data, args.model)
