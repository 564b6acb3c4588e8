"""Sample rates: what the recordings of a data dir are, which fbank config fits them, and
resampling in the feature pipeline.

``stnas prep`` reads every recording's rate (:func:`scan_rates`; a wav or SPHERE file by its
header, a pipe by running it) and chooses the features with :func:`choose_fbank_conf`:

* one rate and no ``--fbank-conf``: the config made for it (:data:`FBANK_FOR_RATE`: 16 kHz
  ``conf/fbank.conf``, 8 kHz ``conf/fbank_8k.conf``);
* ``--resample RATE``: every recording at another rate is resampled with sox as its features
  are computed (the user's files are never rewritten), and the config is the one for RATE;
* anything else (mixed rates, a rate no config is made for, a ``--fbank-conf`` for another
  rate) is refused with the counts per rate and the option that fixes it.
"""

from __future__ import annotations

import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from pipeline.data.audio import parse_sph2pipe, read_audio, read_wav_bytes, wav_bytes
from pipeline.data.datadir import read_map
from pipeline.data.fbank import FbankExtractor
from pipeline.errors import DataError

PathLike = Union[str, Path]
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
FBANK_FOR_RATE = {16000: "fbank.conf", 8000: "fbank_8k.conf"}


def _sphere_rate(path: str) -> Optional[int]:
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head.startswith(b"NIST_1A"):
        return None
    for line in head.decode("ascii", "replace").split("\n")[2:]:
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0] == "sample_rate" and parts[2].strip().isdigit():
            return int(parts[2].strip())
        if line.startswith("end_head"):
            break
    return None


def recording_rate(entry: str, rec: str = "") -> int:
    """The sample rate of one ``wav.scp`` entry: a wav or SPHERE file (also behind
    ``sph2pipe``) by its header, anything else by reading it.

    Raises:
        DataError: the audio is missing or unreadable (names ``rec``).
    """
    entry = entry.strip()
    path: Optional[str] = None
    if entry.endswith("|"):
        head, _, rest = entry[:-1].partition("|")
        sph = parse_sph2pipe(head)
        if sph is not None and not rest.strip():
            path = sph[0]
    else:
        path = entry
    if path is not None and Path(path).is_file():
        try:
            rate = _sphere_rate(path)
            if rate is None:
                with wave.open(path, "rb") as w:
                    rate = w.getframerate()
            if rate > 0:
                return rate
        except (wave.Error, EOFError, OSError, ValueError):
            pass  # read_audio says what is wrong with it
    return read_audio(entry, rec)[0]


def scan_rates(data_dirs: Iterable[PathLike], skip_bad: bool = False) -> Dict[int, List[str]]:
    """Sample rate → the recordings (``<dir name>/<recording id>``) at that rate, for every
    ``wav.scp`` entry of ``data_dirs``; with ``skip_bad`` an unreadable one is left out (the
    feature step lists it)."""
    out: Dict[int, List[str]] = {}
    for d in data_dirs:
        for rec, entry in read_map(Path(d) / "wav.scp").items():
            try:
                rate = recording_rate(entry, rec)
            except DataError:
                if not skip_bad:
                    raise
                continue
            out.setdefault(rate, []).append(f"{Path(d).name}/{rec}")
    return out


def _counts(rates: Dict[int, List[str]]) -> str:
    """``16000 Hz: 17 recordings, 8000 Hz: 1 (dev/b-002)``: counts, most common first, with
    the recordings at the other rates named (up to 3 each)."""
    order = sorted(rates, key=lambda r: (-len(rates[r]), r))
    parts = []
    for i, r in enumerate(order):
        recs = rates[r]
        part = f"{r} Hz: {len(recs)} recording{'s' * (len(recs) != 1)}"
        if i or len(order) == 1:
            part += f" ({', '.join(recs[:3])}{', ...' if len(recs) > 3 else ''})"
        parts.append(part)
    return ", ".join(parts)


@dataclass
class RateChoice:
    """The features' rate and config, and how many recordings are resampled to it."""

    rate: int
    fbank_conf: str
    resampled: int
    how: str  # for the log: why this config

    def summary(self) -> Dict[str, object]:
        return {"rate": self.rate, "fbank_conf": self.fbank_conf, "resampled": self.resampled}


def choose_fbank_conf(
    rates: Dict[int, List[str]], fbank_conf: Optional[PathLike], resample: Optional[int]
) -> RateChoice:
    """The fbank config for recordings at ``rates`` (module docstring).

    Args:
        rates: from :func:`scan_rates`.
        fbank_conf: the config the user gave, or None to choose by rate.
        resample: ``--resample RATE``, or None.

    Raises:
        DataError: mixed rates without ``--resample``, a rate without a config of its own, or
            a config for another rate; the message names the option that fixes it.
    """
    if not rates:
        raise DataError("no recordings to read a sample rate from")
    given = FbankExtractor(fbank_conf).sample_rate if fbank_conf is not None else None
    if resample is not None:
        target = resample
    elif len(rates) > 1:
        common = max(rates, key=lambda r: len(rates[r]))
        raise DataError(
            f"recordings at different sample rates ({_counts(rates)}): give --resample RATE "
            f"(e.g. --resample {given or common}) to resample them with sox as features are "
            "made; the files themselves are not changed"
        )
    else:
        target = next(iter(rates))
    if given is not None and given != target:
        raise DataError(
            f"{fbank_conf} is for {given} Hz, but the recordings are at {_counts(rates)}"
            + ("" if resample is None else f" and --resample {resample} was given")
            + f": leave out --fbank-conf to use the config made for {target} Hz"
            + (f", or give --resample {given}" if resample is None else "")
        )
    if fbank_conf is not None:
        conf, how = str(Path(fbank_conf).resolve()), "as given"
    elif target in FBANK_FOR_RATE:
        conf = str(CONF_DIR / FBANK_FOR_RATE[target])
        how = f"chosen for {target} Hz recordings"
    else:
        made = ", ".join(f"{r} Hz" for r in sorted(FBANK_FOR_RATE))
        raise DataError(
            f"recordings at {_counts(rates)}: fbank configs are made for {made}; give "
            f"--resample 16000 (or 8000 for telephone speech), or --fbank-conf FILE with "
            f"--sample-frequency={target}"
        )
    resampled = sum(len(v) for r, v in rates.items() if r != target)
    if resampled:
        how += f"; {resampled} recording(s) resampled to {target} Hz with sox"
    return RateChoice(target, conf, resampled, how)


def resample(samples: np.ndarray, rate: int, target: int, what: str) -> np.ndarray:
    """``samples`` (int16 range) at ``rate`` resampled to ``target`` with sox (its default,
    high-quality rate effect).

    Raises:
        DataError: sox failed (names ``what``).
    """
    if rate == target:
        return samples
    proc = subprocess.run(
        ["sox", "-R", "-t", "wav", "-", "-t", "wav", "-r", str(target), "-"],
        input=wav_bytes(rate, samples),
        capture_output=True,
    )
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip()[-200:]
        raise DataError(f"sox could not resample {rate} → {target} Hz: {msg}", utt=what or None)
    return read_wav_bytes(proc.stdout, f"sox resampling of {what}", check_length=False)[1]


def rate_counts(rates: Dict[int, List[str]]) -> Dict[str, int]:
    """``{"16000": n, ...}``: recordings per rate, for summaries."""
    return {str(r): len(recs) for r, recs in sorted(rates.items())}


def read_resampled(
    entry: str, utt: str, target: Optional[int], channel: Optional[int] = None
) -> Tuple[int, np.ndarray]:
    """:func:`pipeline.data.audio.read_audio`, resampled to ``target`` Hz when that is given."""
    rate, x = read_audio(entry, utt, channel)
    if target is None or rate == target:
        return rate, x
    return target, resample(x, rate, target, utt)
