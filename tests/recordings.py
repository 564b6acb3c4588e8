"""Folders of recordings as users bring them, for the own-data tests: a spoken-digits and
commands set read by several espeak-ng voices (every prompt read by every speaker, as in a
prompted corpus), and the real read speech of Debian's pocketsphinx-testdata."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path
from typing import List, Tuple

from bench.real_speech import utterances  # the recordings and their transcripts

PROMPTS = [
    "one two three",
    "four five six",
    "seven eight nine",
    "zero one",
    "two four six eight",
    "three five seven nine",
    "turn left",
    "turn right",
    "go forward",
    "stop now",
    "six one two",
    "nine zero zero",
]
VOICES = ["en-us+m1", "en-us+f2", "en-us+m3", "en-us+f4", "en+m2", "en+f3", "en-us+m5", "en+m4"]


def spoken_prompts(folder: Path, rate: int = 8000, voices: List[str] = VOICES) -> Path:
    """``folder/<speaker>/<n>.wav`` at ``rate`` Hz and ``folder/transcripts.csv`` (path, text,
    speaker): every prompt read by every voice. Returns the CSV."""
    rows = []
    for k, voice in enumerate(voices):
        spk = f"spk{k + 1:02d}"
        (folder / spk).mkdir(parents=True, exist_ok=True)
        for n, text in enumerate(PROMPTS):
            wav = folder / spk / f"{n:02d}.wav"
            raw = wav.with_suffix(".raw.wav")
            speed = str(140 + 7 * k)
            subprocess.run(
                ["espeak-ng", "-v", voice, "-s", speed, "-w", str(raw), text], check=True
            )
            subprocess.run(
                ["sox", "-R", str(raw), "-r", str(rate), "-b", "16", "-c", "1", str(wav)],
                check=True,
            )
            raw.unlink()
            # punctuation and case as people type them; from-files normalises them
            rows.append((f"{spk}/{n:02d}.wav", text.capitalize() + ".", spk))
    return _write_table(folder / "transcripts.csv", rows)


def pocketsphinx_folder(folder: Path, rate: int = 16000) -> Path:
    """The pocketsphinx recordings (resampled with sox when ``rate`` is not 16 kHz) and a
    ``transcripts.csv`` with each recording its own speaker, so that any split is possible.
    Returns the CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for utt, _, wav, text in utterances():
        dst = folder / f"{utt}.wav"
        subprocess.run(["sox", "-R", str(wav), "-r", str(rate), str(dst)], check=True)
        rows.append((dst.name, text, utt))
    return _write_table(folder / "transcripts.csv", rows)


def _write_table(table: Path, rows: List[Tuple[str, str, str]]) -> Path:
    """``table``: a CSV of (path, text, speaker) rows under its header."""
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "text", "speaker"])
        w.writerows(rows)
    return table
