"""Data augmentation for robustness: noisy, reverberant and telephone-band copies of a data dir.

What Kaldi recipes do with ``augment_data_dir.py`` (MUSAN noise, music and babble at sampled
SNRs) and ``reverberate_data_dir.py`` (room impulse responses), done with sox pipes in
``wav.scp`` so no audio is written per utterance:

``noise``
    one noise source per recording, added at an SNR drawn per recording. The sources are
    generated once into ``<data>/local/noise/`` (no corpus download): white, pink and brown
    noise and mains hum at 0-15 dB, synthetic music (random notes with harmonics) at 5-15 dB,
    and babble (5 training speakers talking at once) at 13-20 dB, as MUSAN is used in Kaldi.
``reverb``
    sox's ``reverb`` (a Freeverb room) with reverberance, HF damping, room scale and
    pre-delay drawn per recording; the dry signal stays in the mix, as the direct path of a
    real room does.
``telephone``
    the recording band-limited (300-3400 Hz, edges drawn per recording), μ-law coded at
    8 kHz, and resampled back to the original rate.

Utterance, speaker and recording ids of a copy get the kind's prefix (``noise-``,
``reverb-``, ``tel-``) as speed perturbation's ``sp0.9-`` does; ``utt2uniq`` maps each copy to
its original, so a held-out split keeps every copy of a recording on one side, and the den LM
(which leaves out prefixed copies) sees each transcript once. What each copy got (source, SNR,
room) is written to ``reco2augment``. Every draw comes from the seed and the recording id, so a
rerun makes the same copies. Only training sets are augmented (prep never passes dev/test).
"""

from __future__ import annotations

import math
import random
import shlex
import shutil
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from tqdm import tqdm

from pipeline.data.audio import read_audio
from pipeline.data.datadir import combine_data_dirs, read_map, write_data_dir, write_map
from pipeline.data.noise import SNR_DB, SOURCE_SECONDS, make_noise_sources
from pipeline.data.perturb import original_copy
from pipeline.errors import DataError, StnasError
from pipeline.progress import on_terminal

PathLike = Union[str, Path]
KINDS = ("noise", "reverb", "telephone")
PREFIX = {"noise": "noise-", "reverb": "reverb-", "telephone": "tel-"}
# noise source category → SNR range in dB (Kaldi's MUSAN settings: noise 0-15, music 5-15,
# babble 13-20)


def parse_kinds(spec: Union[str, Sequence[str], None]) -> List[str]:
    """``"noise,reverb"`` or a list → the kinds in canonical order (empty: none).

    Raises:
        StnasError: an unknown kind.
    """
    if spec is None:
        return []
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    items = [s.strip() for s in items if s and s.strip()]
    if items == ["none"]:
        return []
    bad = sorted(set(items) - set(KINDS))
    if bad:
        raise StnasError(
            f"unknown augmentation {', '.join(bad)} (choose from "
            f"{', '.join(KINDS)}, comma-separated, or none)"
        )
    return [k for k in KINDS if k in items]


def _rng(seed: int, *keys: str) -> random.Random:
    """A generator that depends only on the seed and the keys (not on order or process)."""
    return random.Random(zlib.crc32("\0".join((str(seed),) + keys).encode("utf-8")))


# --- sox pipes -------------------------------------------------------------------------------


def _source_cmd(entry: str) -> str:
    """A shell command that writes ``entry``'s audio as wav to stdout."""
    entry = entry.strip()
    if entry.endswith("|"):
        return entry[:-1].strip()
    return f"sox -V1 {shlex.quote(entry)} -t wav -"


def noise_entry(entry: str, source: str, gain: float, offset: float, duration: float) -> str:
    """``entry`` mixed with ``source`` × ``gain`` from ``offset`` s (looped to cover it)."""
    repeats = max(0, math.ceil((offset + duration) / SOURCE_SECONDS) - 1)
    noise = (
        f"sox -V1 {shlex.quote(source)} -p repeat {repeats} trim {offset:.3f} {duration + 0.05:.3f}"
    )
    # both halved: head-room against clipping; the level goes with CMVN anyway
    return (
        f"{_source_cmd(entry)} | sox -V1 -m -v 0.5 -t wav - -v {0.5 * gain:.6g} "
        f"{shlex.quote('|' + noise)} -t wav -b 16 - trim 0 {duration:.4f} |"
    )


def reverb_entry(
    entry: str, reverberance: float, damping: float, room: float, pre_delay: float
) -> str:
    """``entry`` through sox's ``reverb`` room (dry signal kept), mono."""
    return (
        f"{_source_cmd(entry)} | sox -V1 -t wav - -t wav -b 16 - gain -3 reverb "
        f"{reverberance:.0f} {damping:.0f} {room:.0f} 100 {pre_delay:.0f} channels 1 |"
    )


def telephone_entry(entry: str, rate: int, low: float, high: float) -> str:
    """``entry`` band-limited to ``low``-``high`` Hz, μ-law at 8 kHz, back at ``rate``."""
    return (
        f"{_source_cmd(entry)} | sox -V1 -t wav - -t wav -r 8000 -e u-law - "
        f"sinc {low:.0f}-{high:.0f} | sox -V1 -t wav - -t wav -r {rate} -e signed -b 16 - |"
    )


# --- data dirs -------------------------------------------------------------------------------


def _recording_stats(
    wav: Dict[str, str], nj: int, progress: bool
) -> Dict[str, Tuple[int, int, float]]:
    """rec → (rate, samples, mean power) of every recording (read once, ``nj`` at a time)."""

    def one(rec: str) -> Tuple[str, Tuple[int, int, float]]:
        rate, x = read_audio(wav[rec], rec)
        x = x.astype(np.float64)
        return rec, (rate, int(x.size), float(np.mean(x**2)) if x.size else 0.0)

    recs = sorted(wav)
    out = {}
    with (
        ThreadPoolExecutor(max(1, nj)) as pool,
        tqdm(
            total=len(recs),
            desc="augment: reading levels",
            unit="rec",
            disable=not (progress and on_terminal()),
            leave=False,
        ) as bar,
    ):
        for rec, stats in pool.map(one, recs):
            out[rec] = stats
            bar.update()
    return out


def augment_data_dir(
    src: PathLike,
    dst: PathLike,
    kinds: Sequence[str],
    seed: int,
    noise_dir: PathLike,
    fraction: float = 1.0,
    nj: int = 1,
    progress: bool = True,
    channel: Optional[int] = None,
) -> Dict[str, int]:
    """Write the augmented copies of data dir ``src`` (one dir per kind under ``dst``).

    Args:
        src: a training data dir (``wav.scp text utt2spk [segments]``).
        dst: the parent of the copies: ``<dst>/.aug_<kind>`` dirs, to be combined by the caller
            (see :func:`augmented_copies`).
        kinds: a subset of :data:`KINDS`.
        seed: all draws (which recordings, sources, SNRs, rooms) follow from it.
        noise_dir: where the generated noise sources go.
        fraction: share of the recordings each kind copies (drawn per kind).
        channel: 1-based channel of multi-channel audio (must be None: copies are mono).

    Returns:
        kind → number of utterances in its copy.

    Raises:
        StnasError: an unknown kind, a fraction outside (0, 1], or ``channel`` set.
        DataError: unreadable audio (names the recording).
    """
    kinds = parse_kinds(list(kinds))
    if not 0.0 < fraction <= 1.0:
        raise StnasError(f"augment fraction must be in (0, 1], got {fraction}")
    if channel is not None:
        raise StnasError(
            "--augment needs mono audio: with --channel, make the wav.scp "
            "entries mono pipes (e.g. 'sox FILE -t wav - remix N |') instead"
        )
    src, dst = Path(src), Path(dst)
    wav = read_map(src / "wav.scp")
    text = read_map(src / "text")
    utt2spk = read_map(src / "utt2spk")
    segments = read_map(src / "segments") if (src / "segments").is_file() else None
    stats = _recording_stats(wav, nj, progress)
    rates = sorted({r for r, _, _ in stats.values()})
    sources = make_noise_sources(src, noise_dir, rates[0], seed) if "noise" in kinds else {}
    source_power = {}
    for name, (_, path) in sources.items():
        _, x = read_audio(path, name)
        source_power[name] = float(np.mean(x.astype(np.float64) ** 2))
    counts = {}
    for kind in kinds:
        rng = _rng(seed, "choose", kind)
        recs = sorted(wav)
        chosen = set(
            rng.sample(recs, max(1, round(fraction * len(recs)))) if fraction < 1.0 else recs
        )
        p = PREFIX[kind]
        new_wav, info = {}, {}
        for rec in sorted(chosen):
            rate, samples, power = stats[rec]
            r = _rng(seed, kind, rec)
            if kind == "noise":
                names = sorted(sources)
                name = names[r.randrange(len(names))]
                category, path = sources[name]
                snr = r.uniform(*SNR_DB[category])
                if rate != rates[0]:
                    raise DataError(
                        f"sample rate {rate} differs from the first recording's "
                        f"{rates[0]}; augment sets of one rate",
                        src / "wav.scp",
                        utt=rec,
                    )
                gain = (
                    math.sqrt(power / (source_power[name] * 10 ** (snr / 10.0)))
                    if power > 0
                    else 0.0
                )
                duration = samples / rate
                offset = r.uniform(0.0, SOURCE_SECONDS - 0.1)
                new_wav[p + rec] = noise_entry(wav[rec], path, gain, offset, duration)
                info[p + rec] = f"{name} snr={snr:.1f}dB"
            elif kind == "reverb":
                room = (r.uniform(30, 90), r.uniform(20, 80), r.uniform(30, 100), r.uniform(0, 20))
                new_wav[p + rec] = reverb_entry(wav[rec], *room)
                info[p + rec] = (
                    "reverb reverberance={:.0f} damping={:.0f} room={:.0f} "
                    "pre_delay={:.0f}ms".format(*room)
                )
            else:
                low, high = r.uniform(200, 400), r.uniform(3000, 3600)
                new_wav[p + rec] = telephone_entry(wav[rec], rate, low, high)
                info[p + rec] = f"telephone band={low:.0f}-{high:.0f}Hz"
        if segments is None:
            utts = sorted(chosen & set(text))
            new_segments = None
        else:
            utts = sorted(u for u, seg in segments.items() if seg.split()[0] in chosen)
            new_segments = {p + u: p + segments[u] for u in utts}
        part = dst / f".aug_{kind}"
        write_data_dir(
            part,
            new_wav,
            {p + u: text[u] for u in utts},
            {p + u: p + utt2spk[u] for u in utts},
            new_segments,
        )
        write_map(part / "utt2uniq", {p + u: u for u in utts})
        write_map(part / "reco2augment", info)
        counts[kind] = len(utts)
    return counts


def augmented_copies(dst: PathLike, kinds: Sequence[str]) -> List[Path]:
    """The per-kind dirs :func:`augment_data_dir` wrote under ``dst``."""
    return [Path(dst) / f".aug_{k}" for k in parse_kinds(list(kinds))]


def all_prefixes() -> Tuple[str, ...]:
    """Id prefixes of augmented copies (for sets that must see each recording once)."""
    return tuple(PREFIX[k] for k in KINDS)


def augment_training_set(
    base: PathLike,
    originals: PathLike,
    dst: PathLike,
    kinds: Sequence[str],
    seed: int,
    noise_dir: PathLike,
    fraction: float = 1.0,
    nj: int = 1,
    progress: bool = True,
    channel: Optional[int] = None,
) -> Dict[str, int]:
    """``dst`` = ``base`` (e.g. ``train_sp``) + augmented copies of ``originals`` (``train``).

    Returns:
        kind → utterances of its copy, and ``"utts"``: the total of ``dst``.
    """
    base, originals, dst = Path(base), Path(originals), Path(dst)
    work = dst.parent / f".{dst.name}_parts"
    shutil.rmtree(work, ignore_errors=True)  # left by an interrupted run
    counts = augment_data_dir(
        originals, work, kinds, seed, noise_dir, fraction, nj, progress, channel
    )
    # an unperturbed base has no utt2uniq yet: its utterances are their own originals
    first = base if (base / "utt2uniq").is_file() else original_copy(base, work / ".base")
    parts = augmented_copies(work, kinds)
    combine_data_dirs(dst, [first, *parts])
    info: Dict[str, str] = {}
    for part in parts:
        info.update(read_map(part / "reco2augment"))
    write_map(dst / "reco2augment", info)
    shutil.rmtree(work)
    counts["utts"] = len(read_map(dst / "utt2spk"))
    return counts
