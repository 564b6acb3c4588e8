"""Kaldi data dirs ``train/``, ``dev/``, ``test/`` from audio files and transcripts as users
have them (``stnas data from-files``), ready for ``stnas prep --corpus kaldi``.

Two layouts are understood:

* **LibriSpeech style**: a folder tree holding ``*.trans.txt`` files of ``UTTID WORDS...``
  lines, the audio ``UTTID.flac`` (or ``UTTID.wav``) next to each; the speaker is the first
  ``-``-separated field of ``UTTID`` (LibriSpeech ids are ``SPEAKER-CHAPTER-NNNN``; an id
  without ``-`` is its own speaker).
* **A table**: a ``.csv`` or ``.tsv`` file whose header names the columns ``path``, ``text``
  and optionally ``speaker`` (other columns are ignored); relative paths are relative to the
  table's folder. Without a ``speaker`` column, each file's parent folder name is its speaker.

Utterance ids are ``<speaker>-<file stem>`` (the stem alone when it is the speaker or starts with
``<speaker>-``), whitespace in either replaced by ``_``, so that utt2spk and spk2utt sort alike.
Transcripts are upper-cased, punctuation (but apostrophes inside words) becomes a space and
whitespace is collapsed. ``.wav`` files of 16-bit PCM are named by absolute path in wav.scp;
other audio becomes a ``sox -R PATH -t wav -b 16 - |`` pipe (``-R``: any dither is repeatable).
The user's audio is never rewritten.
Speakers are split between the sets (no speaker in two sets) so that each set's share of the
utterances comes near the share asked for.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shlex
import shutil
import unicodedata
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from pipeline.data.datadir import c_sort_key, write_data_dir
from pipeline.data.validate import validate_data_dir
from pipeline.errors import DataError
from pipeline.io import atomic_write_text
from pipeline.textfile import not_utf8_error, text_lines

PathLike = Union[str, Path]
SETS = ("train", "dev", "test")
DEFAULT_SPLIT = "train=0.8,dev=0.1,test=0.1"
LAYOUTS = (
    "a folder tree of LibriSpeech-style '*.trans.txt' files (lines 'UTTID WORDS...') with "
    "UTTID.flac or UTTID.wav next to them, or --transcripts FILE.csv / FILE.tsv with a header "
    "naming the columns path, text and optionally speaker"
)


@dataclass
class Utterance:
    """One audio file with its transcript; ``src``/``line`` say where it was listed."""

    utt: str
    spk: str
    audio: Path
    text: str
    src: Path
    line: int


def normalize_transcript(text: str) -> str:
    """Upper case, punctuation and symbols → space except apostrophes inside words (``’``
    counts as ``'``), whitespace collapsed: ``"Hello, world! Don't"`` → ``"HELLO WORLD DON'T"``."""
    text = text.replace("\u2019", "'")
    kept = "".join(" " if c != "'" and unicodedata.category(c)[0] in "PS" else c for c in text)
    words = (w.strip("'") for w in kept.upper().split())
    return " ".join(w for w in words if w)


def parse_split(spec: Union[str, Mapping[str, float]]) -> Dict[str, float]:
    """``"train=0.8,dev=0.1,test=0.1"`` (or a mapping) → shares of train, dev, test (a set
    not named gets 0).

    Raises:
        DataError: an unknown or repeated set, a share that is not a number in [0, 1], or
            shares that do not sum to 1 (within 1e-6).
    """
    parts = spec.split(",") if isinstance(spec, str) else [f"{k}={v}" for k, v in spec.items()]
    shares = {s: 0.0 for s in SETS}
    seen = set()
    for part in parts:
        name, eq, value = (x.strip() for x in part.partition("="))
        if not eq or name not in SETS or name in seen:
            how = f"SET=SHARE items, each SET one of {', '.join(SETS)} once, e.g. {DEFAULT_SPLIT}"
            raise DataError(f"split: bad item '{part.strip()}'; give {how}")
        seen.add(name)
        try:
            shares[name] = float(value)
        except ValueError:
            shares[name] = -1.0
        if not 0.0 <= shares[name] <= 1.0:
            raise DataError(f"split: share of {name} must be a number from 0 to 1, got '{value}'")
    if abs(sum(shares.values()) - 1.0) > 1e-6:
        raise DataError(f"split: shares must sum to 1, these sum to {sum(shares.values()):g}")
    return shares


def _clean(s: str) -> str:
    return "_".join(s.split())


class _Collector:
    """Gathers utterances, refusing duplicate ids, audio listed twice and missing audio."""

    def __init__(self) -> None:
        self.utts: Dict[str, Utterance] = {}
        self.audio_seen: Dict[Path, Utterance] = {}

    def add(self, spk: str, audio: Path, words: str, src: Path, line: int) -> None:
        spk = _clean(spk)
        stem = _clean(audio.name[: -len(audio.suffix)] if audio.suffix else audio.name)
        utt = stem if stem == spk or stem.startswith(spk + "-") else f"{spk}-{stem}"
        text = normalize_transcript(words)
        if not text:
            raise DataError(f"empty transcript for {audio.name}", src, line, utt=utt)
        if not audio.is_file():
            raise DataError(f"audio file {audio} does not exist", src, line, utt=utt)
        real, first = audio.resolve(), self.utts.get(utt)
        if first is not None:
            why = f"duplicate utterance id '{utt}' (also at {first.src}:{first.line})"
            raise DataError(why, src, line, utt=utt)
        other = self.audio_seen.get(real)
        if other is not None:
            why = f"audio file {audio} is listed twice (also at {other.src}:{other.line})"
            raise DataError(why, src, line, utt=utt)
        u = Utterance(utt, spk, Path(os.path.abspath(audio)), text, src, line)
        self.utts[utt] = u
        self.audio_seen[real] = u


def read_librispeech(audio_dir: PathLike) -> List[Utterance]:
    """Utterances of every ``*.trans.txt`` under ``audio_dir`` (none found: an empty list).

    Raises:
        DataError: missing audio, an empty transcript, a duplicate id or audio file.
    """
    col = _Collector()
    for trans in sorted(Path(audio_dir).rglob("*.trans.txt"), key=lambda p: c_sort_key(str(p))):
        for n, raw in enumerate(text_lines(trans), 1):
            parts = raw.strip().split(maxsplit=1)
            if not parts:
                continue
            found = [trans.parent / f"{parts[0]}{x}" for x in (".wav", ".flac")]
            audio = next((a for a in found if a.is_file()), None)
            if audio is None:
                why = f"no audio {parts[0]}.flac or {parts[0]}.wav next to this file"
                raise DataError(why, trans, n, utt=parts[0])
            words = parts[1] if len(parts) > 1 else ""
            col.add(parts[0].split("-")[0], audio, words, trans, n)
    return list(col.utts.values())


def read_table(table: PathLike) -> List[Utterance]:
    """Utterances listed by a ``.csv`` or ``.tsv`` file with the columns ``path``, ``text``
    and optionally ``speaker`` (named in the header; without it, each file's parent folder
    name is its speaker). Relative paths are relative to the table's folder.

    Raises:
        DataError: another extension, a header without path or text, a row with missing or
            extra fields, missing audio, an empty transcript, a duplicate id or audio file.
    """
    table = Path(table)
    delim = {".csv": ",", ".tsv": "\t"}.get(table.suffix.lower())
    if delim is None:
        raise DataError(f"transcripts must be a .csv or .tsv file; understood: {LAYOUTS}", table)
    if not table.is_file():
        raise DataError("transcripts file not found", table)
    col = _Collector()
    try:
        with open(table, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delim)
            header = [h.strip().lower() for h in next(reader, [])]
            missing = [c for c in ("path", "text") if c not in header]
            if missing:
                why = f"missing: {', '.join(missing)}; found: {', '.join(header) or 'nothing'}"
                raise DataError(
                    f"the header must name path, text (speaker: optional); {why}", table, 1
                )
            idx = {c: header.index(c) for c in ("path", "text", "speaker") if c in header}
            for row in reader:
                n = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    why = f"{len(row)} fields where the header has {len(header)}"
                    raise DataError(f"{why} (quote fields that hold the delimiter)", table, n)
                cells = {c: row[i].strip() for c, i in idx.items()}
                empty = [c for c, v in cells.items() if not v and c != "text"]
                if empty:
                    raise DataError(f"empty {', '.join(empty)} field", table, n)
                audio = Path(cells["path"]).expanduser()
                audio = audio if audio.is_absolute() else table.parent / audio
                spk = cells.get("speaker") or Path(os.path.abspath(audio)).parent.name
                col.add(spk, audio, cells["text"], table, n)
    except UnicodeDecodeError:
        raise not_utf8_error(table) from None
    except csv.Error as e:
        raise DataError(f"not a readable table: {e}", table) from None
    return list(col.utts.values())


def check_sort_order(utts: List[Utterance]) -> None:
    """Kaldi's rule: utt2spk sorted by utterance is also sorted by speaker (``sort -k2``).

    Raises:
        DataError: two speakers whose ids make the orders disagree (e.g. ``A`` and ``A-1``).
    """
    by_utt = sorted(utts, key=lambda u: c_sort_key(u.utt))
    by_spk = sorted(utts, key=lambda u: (c_sort_key(u.spk), c_sort_key(u.utt)))
    for a, b in zip(by_utt, by_spk):
        if a is not b:
            why = f"speakers '{a.spk}' and '{b.spk}' sort otherwise than their utterance ids"
            raise DataError(f"{why}; rename one (e.g. 'A' and 'A-1' do this)", a.src, a.line)


def split_speakers(
    counts: Mapping[str, int], shares: Mapping[str, float], seed: int = 1
) -> Dict[str, List[str]]:
    """Assign speakers (with their utterance ``counts``) to sets: shuffled with ``seed``, each
    goes to the set furthest below its share of the utterances, ties to the first set named;
    each set with a share > 0 gets at least one speaker. Deterministic for a seed.

    Returns:
        set → its speakers in C order (sets with share 0 are left out).

    Raises:
        DataError: fewer speakers than sets with a share > 0.
    """
    names = [s for s, share in shares.items() if share > 0]
    if len(counts) < len(names):
        why = f"{len(counts)} speaker(s) for {len(names)} sets ({', '.join(names)})"
        raise DataError(
            f"{why}: each set needs a speaker of its own; give a speaker column (or one "
            "folder per speaker) or a split with fewer sets"
        )
    speakers = sorted(counts, key=c_sort_key)
    random.Random(seed).shuffle(speakers)
    total = sum(counts.values())
    got = {s: 0 for s in names}
    out: Dict[str, List[str]] = {s: [] for s in names}
    for i, spk in enumerate(speakers):
        empty = [s for s in names if not out[s]]
        pool = empty if len(speakers) - i <= len(empty) else names
        best = max(pool, key=lambda s: (shares[s] * total - got[s], -names.index(s)))
        out[best].append(spk)
        got[best] += counts[spk]
    return {s: sorted(v, key=c_sort_key) for s, v in out.items()}


def _header_info(path: Path) -> Tuple[Optional[float], bool]:
    """(duration in seconds or None, whether wav.scp can name the file itself: 16-bit PCM wav)."""
    try:
        if path.suffix.lower() == ".wav":
            with wave.open(str(path), "rb") as w:
                ok = w.getsampwidth() == 2 and not any(c.isspace() for c in str(path))
                return w.getnframes() / w.getframerate(), ok
        if path.suffix.lower() == ".flac":
            with open(path, "rb") as f:
                head = f.read(26)
            if head[:4] == b"fLaC" and len(head) == 26:
                v = int.from_bytes(head[18:26], "big")
                rate, frames = v >> 44, v & ((1 << 36) - 1)
                return (frames / rate if rate and frames else None), False
    except (OSError, EOFError, wave.Error, ZeroDivisionError):
        pass
    return None, False


def from_files(
    audio_dir: PathLike,
    out_dir: PathLike,
    transcripts: Optional[PathLike] = None,
    split: Union[str, Mapping[str, float]] = DEFAULT_SPLIT,
    seed: int = 1,
    force: bool = False,
) -> Dict[str, Any]:
    """Write sorted, validated Kaldi data dirs ``out_dir/{train,dev,test}`` and
    ``out_dir/from_files.json`` (the inputs and the split) from one of the layouts above.

    Args:
        audio_dir: the audio folder (searched for ``*.trans.txt`` unless ``transcripts``).
        out_dir: where the data dirs go; must be empty or absent unless ``force``.
        transcripts: a ``.csv``/``.tsv`` table (the table layout).
        split: shares of the utterances per set, e.g. ``train=0.8,dev=0.1,test=0.1``; a set
            with share 0 is not written.
        seed: seed of the speaker shuffle.
        force: write into a non-empty ``out_dir``, replacing its train/, dev/, test/.

    Returns:
        ``{"out_dir", "layout", "sets": {set: {"speakers", "utterances", "hours"}}}``; hours
        is None where a file's header gives no duration (only wav and flac headers are read).

    Raises:
        DataError: an unknown layout, bad shares, too few speakers, an existing output, or
            a problem in the input (naming the file and line).
    """
    audio_dir, out = Path(audio_dir), Path(out_dir)
    shares = parse_split(split)
    if not audio_dir.is_dir():
        raise DataError("audio folder not found", audio_dir)
    if out.exists() and not out.is_dir():
        raise DataError("output exists and is not a directory", out)
    if out.is_dir() and any(out.iterdir()) and not force:
        raise DataError("output directory is not empty; use --force to overwrite it", out)
    if transcripts is not None:
        layout, utts = "table", read_table(transcripts)
    else:
        layout, utts = "librispeech", read_librispeech(audio_dir)
        if not utts:
            raise DataError(f"no *.trans.txt file found here; understood: {LAYOUTS}", audio_dir)
    check_sort_order(utts)
    counts: Dict[str, int] = {}
    for u in utts:
        counts[u.spk] = counts.get(u.spk, 0) + 1
    assignment = split_speakers(counts, shares, seed)
    for s in [s for s in SETS if (out / s).exists()]:
        target = (out / s).resolve()
        for u in utts:
            if target in u.audio.resolve().parents or target in u.src.resolve().parents:
                raise DataError(f"the output {out / s} holds input files; choose another", u.src)
    infos = {u.utt: _header_info(u.audio) for u in utts}
    set_of = {spk: s for s, spks in assignment.items() for spk in spks}
    for s in SETS:
        if (out / s).is_dir():
            shutil.rmtree(out / s)
    summary: Dict[str, Dict[str, object]] = {}
    for s in assignment:
        mine = [u for u in utts if set_of[u.spk] == s]
        pipe = "sox -R {} -t wav -b 16 - |"
        wav = {u.utt: pipe.format(shlex.quote(str(u.audio))) for u in mine}
        wav.update({u.utt: str(u.audio) for u in mine if infos[u.utt][1]})
        write_data_dir(out / s, wav, {u.utt: u.text for u in mine}, {u.utt: u.spk for u in mine})
        validate_data_dir(out / s, check_audio=True)
        secs = [infos[u.utt][0] for u in mine]
        hours = None if None in secs else round(sum(x or 0.0 for x in secs) / 3600, 6)
        summary[s] = {"speakers": len(assignment[s]), "utterances": len(mine), "hours": hours}
    table = str(Path(transcripts).absolute()) if transcripts is not None else None
    record: Dict[str, object] = dict(
        audio_dir=str(audio_dir.absolute()), transcripts=table, layout=layout
    )
    record.update(split=shares, seed=seed, sets=summary, speakers=assignment)
    atomic_write_text(out / "from_files.json", json.dumps(record, indent=1) + "\n")
    return {"out_dir": str(out), "layout": layout, "sets": summary}
