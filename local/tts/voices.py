"""The speakers of the ``tts`` corpus: TTS voices with their own pitch and speaking rate.

Three engines give acoustically different speakers: espeak-ng (formant synthesis, voice
variants ``+m1``..``+f5`` with pitch/rate), flite (diphone/cluster-unit voices) and festival
(diphone voices). A speaker is a fixed (engine, voice, pitch, rate) tuple; its id is
``<engine4><NN>`` (``espk03``, ``flit01``, ``fest02``), all the same length so utterance ids
sort consistently with speaker ids.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List

import numpy as np

from pipeline.data.audio import read_wav_bytes, write_wav

ESPEAK_LANGS = [
    "en-us",
    "en",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-029",
    "en-us-nyc",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
]
ESPEAK_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5"]
# espeak-ng's named voice variants (its !v directory), for extra training speakers; robotic,
# demonic and announcer variants left out. Names are case-sensitive file names.
ESPEAK_NAMED_VARIANTS = [
    "adam",
    "Alex",
    "Alicia",
    "Andrea",
    "Andy",
    "Annie",
    "AnxiousAndy",
    "antonio",
    "aunty",
    "belinda",
    "benjamin",
    "boris",
    "caleb",
    "david",
    "Denis",
    "Diogo",
    "ed",
    "edward",
    "edward2",
    "Gene",
    "Gene2",
    "grandpa",
    "gustave",
    "Henrique",
    "Hugo",
    "iven",
    "iven2",
    "iven3",
    "iven4",
    "Jacky",
    "john",
    "kaukovalta",
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "Lee",
    "linda",
    "marcelo",
    "Marco",
    "Mario",
    "max",
    "Michael",
    "michel",
    "miguel",
    "Mike",
    "Mr",
    "Nguyen",
    "pablo",
    "paul",
    "pedro",
    "quincy",
    "rob",
    "robert",
    "steph",
    "steph2",
    "steph3",
    "Storm",
    "Tweaky",
    "whisperf",
    "zac",
]
FLITE_VOICES = ["awb", "rms", "slt", "kal16"]
FESTIVAL_VOICES = ["kal_diphone", "ked_diphone"]
ENGINE_BINARIES = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "text2wave"}


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker.

    Attributes:
        id: speaker id (``espk03``).
        engine: ``espeak-ng``, ``flite`` or ``festival``.
        voice: the engine's voice name (``en-gb+f2``, ``slt``, ``kal_diphone``).
        pitch: espeak pitch 0–99, or a relative F0 factor for flite.
        rate: speaking-rate factor (1.0 = the engine's default).
    """

    id: str
    engine: str
    voice: str
    pitch: float
    rate: float


def make_speakers(seed: int, n_espeak: int = 18) -> List[Speaker]:
    """The speaker set, deterministic from ``seed``: espeak-ng, flite and festival voices.

    See :func:`make_extra_speakers` for more voices (training only)."""
    rng = random.Random(seed)
    combos = [(lang, var) for lang in ESPEAK_LANGS for var in ESPEAK_VARIANTS]
    rng.shuffle(combos)
    speakers = []
    for i, (lang, var) in enumerate(combos[:n_espeak], 1):
        speakers.append(
            Speaker(
                f"espk{i:02d}",
                "espeak-ng",
                f"{lang}+{var}",
                pitch=rng.randint(25, 75),
                rate=round(rng.uniform(0.85, 1.15), 2),
            )
        )
    for i, v in enumerate(FLITE_VOICES, 1):
        speakers.append(
            Speaker(
                f"flit{i:02d}",
                "flite",
                v,
                pitch=round(rng.uniform(0.9, 1.1), 2),
                rate=round(rng.uniform(0.9, 1.1), 2),
            )
        )
    for i, v in enumerate(FESTIVAL_VOICES, 1):
        speakers.append(
            Speaker(f"fest{i:02d}", "festival", v, pitch=1.0, rate=round(rng.uniform(0.9, 1.1), 2))
        )
    return speakers


def make_extra_speakers(seed: int, n: int, first_id: int) -> List[Speaker]:
    """``n`` more espeak-ng speakers with named voice variants (``en-us+Alex``, ``en+klatt``,
    ...), ids from ``espk<first_id>`` on, for the training set only.

    Drawn with their own generator, so :func:`make_speakers` gives the same speakers whatever
    ``n`` is.

    Raises:
        ValueError: more than the variants × accents there are, or ids past ``espk99``.
    """
    rng = random.Random(seed * 7919 + 13)
    combos = [(lang, var) for var in ESPEAK_NAMED_VARIANTS for lang in ESPEAK_LANGS]
    rng.shuffle(combos)
    # every variant once before any is used twice
    seen, order, rest = set(), [], []
    for lang, var in combos:
        (rest if var in seen else order).append((lang, var))
        seen.add(var)
    combos = order + rest
    if n > len(combos) or first_id + n - 1 > 99:
        raise ValueError(f"at most {min(len(combos), 100 - first_id)} extra voices, asked {n}")
    return [
        Speaker(
            f"espk{first_id + i:02d}",
            "espeak-ng",
            f"{lang}+{var}",
            pitch=rng.randint(25, 75),
            rate=round(rng.uniform(0.85, 1.15), 2),
        )
        for i, (lang, var) in enumerate(combos[:n])
    ]


def check_engines() -> List[str]:
    """Names of the TTS programs that are missing from PATH (empty when all are there)."""
    return [b for b in ENGINE_BINARIES.values() if shutil.which(b) is None]


def _engine_command(spk: Speaker, text: str, out_wav: str, text_file: str) -> List[str]:
    words = text.lower()  # upper case would be spelled out as acronyms
    if spk.engine == "espeak-ng":
        return [
            "espeak-ng",
            "-v",
            spk.voice,
            "-p",
            str(int(spk.pitch)),
            "-s",
            str(int(160 * spk.rate)),
            "-w",
            out_wav,
            words,
        ]
    if spk.engine == "flite":
        return [
            "flite",
            "-voice",
            spk.voice,
            "--setf",
            f"duration_stretch={1.0 / spk.rate:.3f}",
            "--setf",
            f"int_f0_target_mean={int(100 * spk.pitch) if spk.voice != 'slt' else int(170 * spk.pitch)}",
            "-t",
            words,
            "-o",
            out_wav,
        ]
    if spk.engine == "festival":
        Path(text_file).write_text(words + "\n")
        return [
            "text2wave",
            "-eval",
            f"(voice_{spk.voice})",
            "-eval",
            f"(Parameter.set 'Duration_Stretch {1.0 / spk.rate:.3f})",
            "-o",
            out_wav,
            text_file,
        ]
    raise ValueError(f"unknown engine {spk.engine}")


def synthesise(
    spk: Speaker, text: str, out_path: Path, rate: int, seed: int, noise_snr_db: float = 0.0
) -> float:
    """Speak ``text`` as ``spk`` into a 16-bit mono wav at ``rate`` Hz; returns its duration (s).

    The waveform gets 0.1 s of silence on each side and a seeded noise floor (about −70 dB of
    full scale, so features never see digital silence); ``noise_snr_db`` > 0 adds white noise at
    that SNR instead. The file appears atomically (written to a temporary, then renamed).
    """
    with tempfile.TemporaryDirectory(prefix="stnas-tts-") as tmp:
        raw = str(Path(tmp) / "raw.wav")
        cmd = _engine_command(spk, text, raw, str(Path(tmp) / "text.txt"))
        proc = subprocess.run(cmd, capture_output=True)
        if proc.returncode != 0 or not Path(raw).is_file():
            raise RuntimeError(
                f"{spk.engine} failed for speaker {spk.id}: "
                f"{proc.stderr.decode(errors='replace').strip()[-300:]}"
            )
        conv = subprocess.run(
            [
                "sox",
                "-R",
                raw,
                "-t",
                "wav",
                "-r",
                str(rate),
                "-c",
                "1",
                "-b",
                "16",
                "-",
                "pad",
                "0.1",
                "0.1",
            ],
            capture_output=True,
        )
        if conv.returncode != 0:
            raise RuntimeError(f"sox failed on {spk.engine} output: {conv.stderr.decode()[-300:]}")
    _, x = read_wav_bytes(conv.stdout, str(out_path), check_length=False)  # a pipe
    rng = np.random.default_rng(seed)
    if noise_snr_db > 0:
        power = float(np.mean(x.astype(np.float64) ** 2)) or 1.0
        sigma = np.sqrt(power / 10 ** (noise_snr_db / 10))
    else:
        sigma = 10.0  # ≈ −70 dBFS
    x = x + rng.normal(0.0, sigma, size=x.shape)
    tmp_path = out_path.with_name(out_path.name + ".tmp")
    write_wav(str(tmp_path), rate, x)
    tmp_path.replace(out_path)
    return len(x) / rate
