"""Real-time factor of the feature pipeline (fbank + CMVN + Δ+ΔΔ + ark/scp write).

Builds a fixed-size ``tts`` corpus once (cached under ``build/bench``), then times
``make_features`` on its training dir with one job, median of repeats, and each step on its own.
RTF here = audio seconds processed per CPU second (higher is better), i.e. per core.
Run: ``.venv/bin/python bench/prep.py``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import median_time, write_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "build" / "bench" / "tts_prep"
HOURS = 0.1
REPEATS = 5


def main() -> None:
    import kaldiio

    from local.tts.prepare import prepare
    from pipeline.data.audio import read_audio
    from pipeline.data.cmvn import apply_cmvn, cmvn_stats
    from pipeline.data.datadir import read_map
    from pipeline.data.deltas import add_deltas
    from pipeline.data.fbank import FbankExtractor
    from pipeline.data.features import make_features

    if not (CORPUS / "train" / "wav.scp").is_file():
        prepare(None, CORPUS, hours=HOURS, seed=1, nj=2, progress=False)
    train = CORPUS / "train"
    wav = read_map(train / "wav.scp")
    audio = {u: read_audio(e, u) for u, e in wav.items()}
    seconds = sum(len(x) / r for r, x in audio.values())
    conf = ROOT / "conf" / "fbank.conf"
    fb = FbankExtractor(conf)

    def full() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            import shutil

            d = Path(tmp) / "train"
            shutil.copytree(train, d)
            make_features(d, Path(tmp) / "fbank", conf, nj=1, progress=False)

    feats = {u: fb(x, r) for u, (r, x) in audio.items()}
    stats = cmvn_stats(feats.values())
    out = {u: add_deltas(apply_cmvn(f, stats)) for u, f in feats.items()}
    steps = [
        ("read wav", lambda: [read_audio(e, u) for u, e in wav.items()]),
        ("fbank (kaldi-native-fbank)", lambda: [fb(x, r) for r, x in audio.values()]),
        (
            "CMVN stats + apply",
            lambda: [apply_cmvn(f, stats) for f in feats.values()] and cmvn_stats(feats.values()),
        ),
        ("Δ+ΔΔ", lambda: [add_deltas(f) for f in feats.values()]),
        ("write ark/scp", lambda: kaldiio.save_ark(tempfile.mktemp(suffix=".ark"), out)),
        ("whole pipeline (make_features, 1 job)", full),
    ]
    rows = []
    for name, fn in steps:
        fn()  # warm caches
        cpu = median_time(fn, REPEATS, cpu=True)
        wall = median_time(fn, REPEATS)
        rows.append((name, f"{cpu * 1000:.1f}", f"{wall * 1000:.1f}", f"{seconds / cpu:.0f}×"))
    write_table(
        "prep",
        "Feature pipeline real-time factor",
        ["step", "CPU ms (median)", "wall ms (median)", "audio s per CPU s"],
        rows,
        [
            f"{len(audio)} utterances, {seconds:.1f} s of 16 kHz audio from the tts corpus "
            f"({HOURS} h plan, seed 1); {REPEATS} repeats, median.",
            "Target: whole pipeline ≥ 150× real time per core.",
            "The whole-pipeline row includes reading the wavs and copying the data dir.",
        ],
    )


if __name__ == "__main__":
    main()
