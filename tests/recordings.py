"""Folders of recordings as users bring them, for the own-data tests: a spoken-digits and
commands set read by several espeak-ng voices (every prompt read by every speaker, as in a
prompted corpus), and the real read speech of Debian's pocketsphinx-testdata."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path
from typing import List, Tuple

POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
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
    table = folder / "transcripts.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "text", "speaker"])
        w.writerows(rows)
    return table


def pocketsphinx_utterances() -> List[Tuple[Path, str]]:
    """(wav, transcript) of the transcribed 16 kHz recordings of pocketsphinx-testdata: five
    LibriVox sentences (one reader) and five card names (another)."""
    out = []
    for sub, listing in (("librivox", "transcription"), ("cards", "cards.transcription")):
        for line in (POCKETSPHINX / sub / listing).read_text().splitlines():
            words, _, utt = line.rpartition("(")
            text = " ".join(w for w in words.split() if w not in ("<s>", "</s>"))
            out.append((POCKETSPHINX / sub / f"{utt.strip(') ')}.wav", text))
    return out


def pocketsphinx_folder(folder: Path, rate: int = 16000) -> Path:
    """The pocketsphinx recordings (resampled with sox when ``rate`` is not 16 kHz) and a
    ``transcripts.csv`` with each recording its own speaker, so that any split is possible.
    Returns the CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for wav, text in pocketsphinx_utterances():
        dst = folder / f"{wav.parent.name}-{wav.stem}.wav"
        subprocess.run(["sox", "-R", str(wav), "-r", str(rate), str(dst)], check=True)
        rows.append((dst.name, text, dst.stem))
    table = folder / "transcripts.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "text", "speaker"])
        w.writerows(rows)
    return table
