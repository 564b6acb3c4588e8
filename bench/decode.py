"""Speed and WER of decoding on dev with the demo's trained model: the project's lattice decoder
against the two Kaldi decoders it replaced, and the beams of the default chosen by measurement.

Needs ``make demo`` first (``data/tts`` and ``exp/tts/st/retrain/avg.pt``; other paths with
``--data`` / ``--model``). The network forward runs once; only the search is timed (process
CPU time, one process: the real-time factor is per core). Rows, all in one run:

* Kaldi's ``LatticeSimpleDecoder`` (through ``kaldi_decoder``): one lattice per utterance and
  word penalty (TLG composed with a penalty loop per penalty), every LM weight read from it;
* Kaldi's ``FasterDecoder``: one search per setting;
* the project's lattice decoder: one lattice per utterance, every setting read from it, at
  several beams and ``max_active`` and a very wide reference; and one search at one setting
  (what ``stnas transcribe`` and the test set's decode do).

The default beams are the cheapest whose best dev %WER is within 0.1 of the wide reference.
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
# (beam, lattice beam, max_active) of the project's decoder; the first is the wide reference
CONFIGS = [
    (30.0, 16.0, 100000),
    (17.0, 8.0, 7000),
    (14.0, 6.0, 3000),
    (12.0, 6.0, 2000),
    (10.0, 5.0, 1000),
    (8.0, 4.0, 500),
]


def kaldi_sweeps(lang: Path, mats, sweep, beam: float, lattice_beam: float):
    """The two Kaldi searches this project decoded with before: (name, seconds, hyps) rows."""
    import kaldi_decoder
    import kaldifst

    from pipeline.lang.lexicon import read_symbol_table

    tlg = kaldifst.StdVectorFst.read(str(lang / "TLG.fst"))
    word_ids = sorted(read_symbol_table(lang / "words.txt").values())
    graphs = {}
    for p in PENALTIES:  # TLG o P per penalty, composed once outside the timings
        pen = kaldifst.StdVectorFst()
        s = pen.add_state()
        pen.start = s
        pen.set_final(s, 0.0)
        for w in word_ids:
            if w > 0:
                pen.add_arc(s, kaldifst.StdArc(w, w, float(p), s))
        kaldifst.arcsort(pen, sort_type="ilabel")
        g = kaldifst.StdVectorFst(kaldifst.compose(tlg, pen))
        kaldifst.arcsort(g, sort_type="ilabel")
        graphs[p] = g
    lattice = {s: {} for s in sweep}
    t = time.process_time()
    for utt, x in mats:
        for p in PENALTIES:
            cfg = kaldi_decoder.LatticeSimpleDecoderConfig(beam=beam, lattice_beam=lattice_beam)
            dec = kaldi_decoder.LatticeSimpleDecoder(graphs[p], cfg)
            dec.decode(kaldi_decoder.DecodableCtc(x))
            ok, lat = dec.get_raw_lattice()
            for w in WEIGHTS:
                scaled = type(lat)(lat)
                kaldifst.scale_lattice(kaldifst.lattice_scale(lmwt=1.0, acwt=1.0 / w), scaled)
                _, _, words, _ = kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(scaled))
                lattice[(w, p)][utt] = list(words)
    lattice_s = time.process_time() - t
    faster = {s: {} for s in sweep}
    t = time.process_time()
    for utt, x in mats:
        for w, p in sweep:
            opts = kaldi_decoder.FasterDecoderOptions(beam=beam / w, max_active=7000)
            dec = kaldi_decoder.FasterDecoder(graphs[p], opts)
            dec.decode(kaldi_decoder.DecodableCtc(x / w))
            ok, lat = dec.get_best_path()
            faster[(w, p)][utt] = list(kaldifst.get_linear_symbol_sequence(lat)[2]) if ok else []
    faster_s = time.process_time() - t
    return [
        ("Kaldi LatticeSimpleDecoder, one lattice per penalty", lattice_s, lattice),
        ("Kaldi FasterDecoder, one search per setting", faster_s, faster),
    ]


def main(data: Path, model: Path) -> None:
    import kaldialign

    from bench.common import write_table
    from pipeline.decode.decoder import Decoder, DecoderConfig
    from pipeline.decode.defaults import OUTPUT_FRAME_SHIFT_S
    from pipeline.decode.run import model_logprobs
    from pipeline.lang.lexicon import read_symbol_table
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
    id2word = {i: w for w, i in read_symbol_table(lang / "words.txt").items()}

    def wer(hyps) -> float:
        errors = sum(kaldialign.edit_distance(ref[u], h)["total"] for u, h in hyps.items())
        return 100.0 * errors / words

    sweep = [(w, p) for w in WEIGHTS for p in PENALTIES]
    rows, best_of = [], {}

    def add(label, seconds, settings, wers, tokens=""):
        best = min(wers, key=wers.get)
        rows.append(
            (
                label,
                f"{len(settings)}",
                f"{seconds / audio:.4f}",
                tokens,
                f"{wers.get((1.0, 0.0), float('nan')):.2f}",
                f"{wers[best]:.2f} at {best[0]:g}/{best[1]:g}",
            )
        )
        return wers[best]

    for name, seconds, hyps in kaldi_sweeps(lang, mats, sweep, 17.0, 8.0):
        wers = {
            s: wer({u: [id2word.get(i, "") for i in h] for u, h in hs.items()})
            for s, hs in hyps.items()
        }
        best_of[name] = add(f"{name} (beam 17, lattice beam 8)", seconds, sweep, wers)
    for beam, lattice_beam, max_active in CONFIGS:
        cfg = DecoderConfig(beam=beam, lattice_beam=lattice_beam, max_active=max_active)
        decoder = Decoder.from_lang_test(lang, cfg)
        hyps = {s: {} for s in sweep}
        tokens = 0
        t = time.process_time()
        for utt, x in mats:
            found, stats = decoder.decode(x, sweep, 1.0)
            tokens += stats["tokens"]
            for s, h in found.items():
                hyps[s][utt] = h.words
        seconds = time.process_time() - t
        frames = sum(len(m) for _, m in mats)
        label = (
            f"stnas lattice decoder, beam {beam:g}, lattice beam {lattice_beam:g}, "
            f"max_active {max_active}"
        )
        best_of[(beam, lattice_beam, max_active)] = add(
            label, seconds, sweep, {s: wer(h) for s, h in hyps.items()}, f"{tokens / frames:.0f}"
        )
    reference = best_of[CONFIGS[0]]
    chosen = min(
        (c for c in CONFIGS[1:] if best_of[c] <= reference + 0.1),
        key=lambda c: (c[0], c[2]),
        default=CONFIGS[1],
    )
    cfg = DecoderConfig(beam=chosen[0], lattice_beam=chosen[1], max_active=chosen[2])
    decoder = Decoder.from_lang_test(lang, cfg)
    one = {}
    t = time.process_time()
    for utt, x in mats:
        one[utt] = decoder.best_path(x, 1.0, 0.5).words
    seconds = time.process_time() - t
    rows.append(
        (
            f"stnas lattice decoder, one setting (1/0.5), beams as chosen {chosen}",
            "1",
            f"{seconds / audio:.4f}",
            "",
            "",
            f"{wer(one):.2f} at 1/0.5",
        )
    )
    write_table(
        "decode",
        "Decoding speed and WER on dev, demo model (CPU, one process)",
        [
            "search",
            "settings",
            "RTF",
            "tokens per frame",
            "%WER at 1/0",
            "best %WER (weight/penalty)",
        ],
        rows,
        [
            f"{len(mats)} dev utterances, {audio:.1f} s of audio, {words} words; model {model}; "
            f"graph {lang / 'TLG.fst'}.",
            "RTF = search CPU seconds / audio seconds, per core (one process; the network "
            "forward and Kaldi's one-off TLG o P composition per penalty excluded). Settings: "
            "6 LM weights (0.3-2.0) x word penalties 0, 0.5, 1.0: the dev tuning sweep of "
            "`stnas decode`. Beams are in unscaled units (acoustic cost + LM weight x graph "
            "cost); the project's decoder searches at LM weight 1 and reads every setting from "
            "the lattice.",
            f"Default chosen by this run: the cheapest configuration whose best dev %WER is "
            f"within 0.1 of the wide reference ({reference:.2f}): beam {chosen[0]:g}, lattice "
            f"beam {chosen[1]:g}, max_active {chosen[2]}.",
            "Targets: the whole sweep RTF <= 0.02; one search RTF <= 0.01; best WER within 0.1 "
            "of the wide reference.",
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
