"""Real-time factor of WFST decoding (and of building TLG) on the tts test set.

Uses the debug-size tts data of ``bench/stages.py`` (``data/bench_tts_0.05h``; prepared if
missing) and a model retrained there with ``conf/debug/retrain.yaml`` (trained if missing).
Times the search only (the network forward is excluded), single process, default beams
(17 / 8 / 7000), median of repeats: one search at LM weight 1.0 with ``FasterDecoder``, the
6-weight sweep by re-decoding, the sweep from one lattice per utterance, and the dev
tuning grid (6 weights x 3 word insertion penalties).

Run: ``.venv/bin/python bench/decode.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pipeline.threads import disable_dynamic_threads  # noqa: E402

disable_dynamic_threads()  # before torch loads, as the stnas command does

REPEATS = 3
WEIGHTS = [0.3, 0.5, 0.7, 1.0, 1.5, 2.0]
PENALTIES = [0.0, 0.5, 1.0]


def main() -> None:
    from bench.common import write_table
    from pipeline.data.prepare import PrepConfig, run_prep
    from pipeline.decode.decoder import Decoder, decode_set
    from pipeline.decode.run import lang_test_dir, model_logprobs
    from pipeline.lang.graphs import build_lang_test
    from pipeline.lang.lm_data import word_lm_arpa
    from pipeline.train.config import load_config
    from pipeline.train.stages import run_stage

    data = REPO / "data" / "bench_tts_0.05h"
    run_prep(PrepConfig(corpus="tts", data_dir=str(data), hours=0.05, nj=2), progress=False)
    exp = REPO / "exp" / "bench_decode"
    model = exp / "retrain" / "avg.pt"
    if not model.is_file():
        run_stage(load_config("retrain", REPO / "conf" / "debug" / "retrain.yaml",
                              ["progress=false"], data_dir=str(data), exp_dir=str(exp),
                              arch=str(REPO / "conf" / "arch" / "tdnn_d_tiny.json")), force=True)
    lang = lang_test_dir(data, "tg")
    arpa = word_lm_arpa(data, "tg")
    build = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        info = build_lang_test(data / "lang", arpa, lang, force=True)
        build.append(time.perf_counter() - t)
    mats = list(model_logprobs(model, data / "test" / "feats.scp"))
    audio = sum(len(m) for _, m in mats) * 0.03
    decoder = Decoder.from_lang_test(lang)
    rows = []
    for label, weights, method in (("one search (LM weight 1.0)", [1.0], "redecode"),
                                   ("6-weight sweep, one search each", WEIGHTS, "redecode"),
                                   ("6-weight sweep from one lattice", WEIGHTS, "lattice"),
                                   ("6 weights x 3 word penalties, one search each",
                                    [(w, p) for w in WEIGHTS for p in PENALTIES], "redecode")):
        times = []
        for _ in range(REPEATS):
            t = time.process_time()
            decode_set(decoder, mats, weights, method)
            times.append(time.process_time() - t)
        med = statistics.median(times)
        rows.append((label, f"{med:.2f}", f"{med / audio:.4f}"))
    rows.append(("build L, G, LG, TLG", f"{statistics.median(build):.2f}",
                 f"{statistics.median(build) / audio:.4f}"))
    write_table(
        "decode", "Decoding speed on the tts test set (CPU, one process)",
        ["work", "CPU s", "RTF per core"], rows,
        [f"{len(mats)} test utterances, {audio:.1f} s of audio; TLG {info['TLG']['states']} "
         f"states / {info['TLG']['arcs']} arcs (trigram on the fortunes pool minus dev/test "
         f"and their near-copies; {len(decoder.words)} words in G, the decoding vocabulary "
         f"its words with a pronunciation); debug-size model; beams 17 / 8 / 7000; median of "
         f"{REPEATS}; network forward excluded.",
         "Target: RTF <= 0.05 per core for one search on TLG."])


if __name__ == "__main__":
    main()
