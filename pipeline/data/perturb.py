"""3-way speed perturbation (Kaldi's ``perturb_data_dir_speed_3way.sh``).

Each copy changes speed and pitch by a factor through sox's ``speed`` effect (resampled back to
the original rate). Utterance, speaker and recording ids of a copy get the prefix ``sp<f>-``;
segment times are divided by the factor. ``wav.scp`` entries become pipes, so no audio is
written: features read the perturbed audio straight from sox.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Sequence, Union

from pipeline.data.datadir import combine_data_dirs, read_kv, read_map, write_data_dir, write_map
from pipeline.errors import DataError

PathLike = Union[str, Path]


def _fmt(f: float) -> str:
    return f"{f:g}"


def sox_speed_entry(entry: str, factor: float) -> str:
    """The wav.scp entry that plays ``entry`` at ``factor`` × speed (a sox pipe)."""
    entry = entry.strip()
    if entry.endswith("|"):
        return f"{entry} sox -R -t wav - -t wav - speed {_fmt(factor)} |"
    return f"sox -R -t wav {shlex.quote(entry)} -t wav - speed {_fmt(factor)} |"


def speed_perturb_copy(src: PathLike, dst: PathLike, factor: float) -> Path:
    """Write the ``factor`` copy of data dir ``src`` to ``dst`` (ids prefixed ``sp<f>-``)."""
    src, dst = Path(src), Path(dst)
    p = f"sp{_fmt(factor)}-"
    wav = {p + k: sox_speed_entry(v, factor) for k, v in read_kv(src / "wav.scp")}
    text = {p + k: v for k, v in read_kv(src / "text")}
    utt2spk = {p + k: p + v for k, v in read_kv(src / "utt2spk")}
    segments = None
    if (src / "segments").is_file():
        segments = {}
        for n, (utt, seg) in enumerate(read_kv(src / "segments"), 1):
            try:
                rec, start, end = seg.split()
                segments[p + utt] = (
                    f"{p}{rec} {float(start) / factor:.3f} {float(end) / factor:.3f}"
                )
            except ValueError:
                raise DataError("bad segment line", src / "segments", n, utt=utt) from None
    write_data_dir(dst, wav, text, utt2spk, segments)
    write_map(dst / "utt2uniq", {p + k: k for k in read_map(src / "utt2spk")})
    return dst


def original_copy(src: PathLike, dst: PathLike) -> Path:
    """``src`` as it is, with ``utt2uniq`` mapping every utterance to itself (the part of a
    combined training set that holds the originals)."""
    src, dst = Path(src), Path(dst)
    write_data_dir(
        dst,
        read_map(src / "wav.scp"),
        read_map(src / "text"),
        read_map(src / "utt2spk"),
        read_map(src / "segments") if (src / "segments").is_file() else None,
    )
    write_map(dst / "utt2uniq", {k: k for k in read_map(src / "utt2spk")})
    return dst


def speed_perturb_data_dir(
    src: PathLike, dst: PathLike, factors: Sequence[float] = (0.9, 1.0, 1.1)
) -> Path:
    """Combine the speed-perturbed copies of ``src`` into ``dst``.

    The factor-1.0 copy keeps the original ids. ``utt2uniq`` maps every copy to its original
    utterance, so a held-out split can keep all copies of a recording on one side.
    """
    src, dst = Path(src), Path(dst)
    parts = []
    for f in factors:
        part = dst.parent / f".{dst.name}_sp{_fmt(f)}"
        if f == 1.0:
            original_copy(src, part)
        else:
            speed_perturb_copy(src, part, f)
        parts.append(part)
    combine_data_dirs(dst, parts)
    for part in parts:
        for fpath in part.iterdir():
            fpath.unlink()
        part.rmdir()
    return dst
