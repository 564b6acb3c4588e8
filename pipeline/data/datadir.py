"""Kaldi data directories: the contract between stages.

A data dir holds ``wav.scp`` (recording → path or ``cmd |``), ``text`` (utt → words),
``utt2spk``, ``spk2utt``, optionally ``segments`` (utt → recording start end, seconds),
``feats.scp``, ``cmvn.scp``, ``utt2num_frames``, ``text_number``. Every file is sorted by its
first field in C (byte) order, as ``LC_ALL=C sort`` does, with one entry per key.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

from pipeline.errors import DataError
from pipeline.io import atomic_write_text
from pipeline.textfile import read_text, text_lines

PathLike = Union[str, Path]

# Files keyed by utterance id; they are filtered together when utterances are removed.
UTT_FILES = (
    "text",
    "utt2spk",
    "feats.scp",
    "utt2num_frames",
    "text_number",
    "weight",
    "segments",
    "utt2dur",
    "utt2uniq",
)


def c_sort_key(key: str) -> bytes:
    """Sort key matching ``LC_ALL=C sort`` (byte order of the UTF-8 encoding)."""
    return key.encode("utf-8")


def read_kv(path: PathLike, allow_empty_value: bool = False) -> List[Tuple[str, str]]:
    """Read a Kaldi ``key value...`` file into (key, rest-of-line) pairs, in file order.

    Raises:
        DataError: a missing file, a byte that is not UTF-8, or a line without a key or
            (unless allowed) without a value.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    items: List[Tuple[str, str]] = []
    for n, line in enumerate(text_lines(path), 1):
        line = line.rstrip("\n")
        parts = line.strip().split(maxsplit=1)
        if not parts:
            raise DataError("empty line", path, n)
        key = parts[0]
        value = parts[1].strip() if len(parts) > 1 else ""
        if not value and not allow_empty_value:
            raise DataError(f"'{key}' has no value", path, n, utt=key)
        items.append((key, value))
    return items


def read_map(path: PathLike, allow_empty_value: bool = False) -> Dict[str, str]:
    """Read a Kaldi ``key value`` file into an ordered dict; duplicate keys are an error."""
    out: Dict[str, str] = {}
    for n, (k, v) in enumerate(read_kv(path, allow_empty_value), 1):
        if k in out:
            raise DataError(f"duplicate id '{k}'", path, n, utt=k)
        out[k] = v
    return out


def write_map(path: PathLike, items: Union[Mapping[str, str], Iterable[Tuple[str, str]]]) -> None:
    """Write ``key value`` lines sorted in C order, atomically."""
    pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
    pairs.sort(key=lambda kv: c_sort_key(kv[0]))
    atomic_write_text(path, "".join(f"{k} {v}\n" for k, v in pairs))


def spk2utt_from_utt2spk(utt2spk: Mapping[str, str]) -> Dict[str, List[str]]:
    """Invert utt2spk; utterances of each speaker in C order."""
    out: Dict[str, List[str]] = {}
    for utt in sorted(utt2spk, key=c_sort_key):
        out.setdefault(utt2spk[utt], []).append(utt)
    return out


def write_spk2utt(data_dir: PathLike) -> None:
    """(Re)write ``spk2utt`` from ``utt2spk``."""
    d = Path(data_dir)
    s2u = spk2utt_from_utt2spk(read_map(d / "utt2spk"))
    write_map(d / "spk2utt", {s: " ".join(u) for s, u in s2u.items()})


def write_data_dir(
    data_dir: PathLike,
    wav_scp: Mapping[str, str],
    text: Mapping[str, str],
    utt2spk: Mapping[str, str],
    segments: Optional[Mapping[str, str]] = None,
) -> Path:
    """Write the basic files of a data dir (sorted), creating the directory."""
    d = Path(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    write_map(d / "wav.scp", wav_scp)
    write_map(d / "text", text)
    write_map(d / "utt2spk", utt2spk)
    if segments is not None:
        write_map(d / "segments", segments)
    write_spk2utt(d)
    return d


def utterance_ids(data_dir: PathLike) -> List[str]:
    """Utterance ids of a data dir (from ``utt2spk``), in file order."""
    return [k for k, _ in read_kv(Path(data_dir) / "utt2spk")]


def subset_data_dir(src: PathLike, dst: PathLike, keep: Iterable[str]) -> Path:
    """Copy a data dir keeping only utterances in ``keep`` (and the speakers/recordings they use).

    ``src`` and ``dst`` may be the same directory (filter in place).
    """
    src, dst = Path(src), Path(dst)
    keep_set: Set[str] = set(keep)
    dst.mkdir(parents=True, exist_ok=True)
    used_recs: Optional[Set[str]] = None
    for name in UTT_FILES:
        if (src / name).is_file():
            items = [
                (k, v) for k, v in read_kv(src / name, allow_empty_value=True) if k in keep_set
            ]
            if name == "segments":
                used_recs = {v.split()[0] for _, v in items}
            write_map(dst / name, items)
    if (src / "wav.scp").is_file():
        wav = read_kv(src / "wav.scp")
        if used_recs is None:
            used_recs = keep_set
        write_map(dst / "wav.scp", [(k, v) for k, v in wav if k in used_recs])
    write_spk2utt(dst)
    if (src / "cmvn.scp").is_file():
        spks = set(read_map(dst / "spk2utt"))
        write_map(dst / "cmvn.scp", [(k, v) for k, v in read_kv(src / "cmvn.scp") if k in spks])
    return dst


def combine_data_dirs(dst: PathLike, srcs: Sequence[PathLike]) -> Path:
    """Concatenate data dirs with disjoint ids into ``dst`` (Kaldi's combine_data.sh)."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    names = ("wav.scp",) + UTT_FILES
    for name in names:
        present = [Path(s) / name for s in srcs if (Path(s) / name).is_file()]
        if not present:
            continue
        if len(present) != len(srcs):
            raise DataError(f"only some of the combined dirs have {name}", present[0])
        merged: Dict[str, str] = {}
        for p in present:
            for n, (k, v) in enumerate(read_kv(p, allow_empty_value=True), 1):
                if k in merged:
                    raise DataError(f"id '{k}' occurs in more than one combined dir", p, n, utt=k)
                merged[k] = v
        write_map(dst / name, merged)
    write_spk2utt(dst)
    return dst


SKIPPED_TEXT = "text.skipped"  # transcripts of dev/test utterances prep --skip-bad left out


def drop_utterances(
    data_dir: PathLike, bad: Mapping[str, str], keep_reference: bool = False
) -> None:
    """Remove ``bad`` utterances (id → reason) from a data dir, in place: appended to
    ``bad_utts.txt`` with their reason; with ``keep_reference`` (a dev or test set) their
    non-empty transcripts go to ``text.skipped``, so that scoring counts them as deletions
    (:func:`read_reference`) instead of forgetting them."""
    d = Path(data_dir)
    if not bad:
        return
    old = (
        read_map(d / "bad_utts.txt", allow_empty_value=True)
        if (d / "bad_utts.txt").is_file()
        else {}
    )
    write_map(d / "bad_utts.txt", sorted({**old, **bad}.items(), key=lambda kv: c_sort_key(kv[0])))
    if keep_reference and (d / "text").is_file():
        text = read_map(d / "text", allow_empty_value=True)
        skipped = read_map(d / SKIPPED_TEXT) if (d / SKIPPED_TEXT).is_file() else {}
        skipped.update({u: text[u] for u in bad if text.get(u, "").strip()})
        write_map(d / SKIPPED_TEXT, sorted(skipped.items(), key=lambda kv: c_sort_key(kv[0])))
    keep = [u for u in utterance_ids(d) if u not in bad]
    subset_data_dir(d, d, keep)


def read_reference(set_dir: PathLike) -> Dict[str, str]:
    """What a set is scored against: ``text`` plus the transcripts of the utterances prep
    left out (``text.skipped``), which have no hypothesis and so count as deletions."""
    d = Path(set_dir)
    ref = read_map(d / "text", allow_empty_value=True)
    if (d / SKIPPED_TEXT).is_file():
        ref.update(read_map(d / SKIPPED_TEXT))
    return dict(sorted(ref.items(), key=lambda kv: c_sort_key(kv[0])))


def fix_data_dir(data_dir: PathLike) -> Dict[str, int]:
    """Kaldi's ``fix_data_dir.sh``: sort every file in C order and keep only the utterances
    that every per-utterance file has (and the recordings and speakers they use); spk2utt is
    made again. The files as they were go to ``.backup/``.

    Returns:
        ``{"kept": .., "removed": ..}`` utterances.
    """
    d = Path(data_dir)
    if not (d / "utt2spk").is_file():
        raise DataError("required file utt2spk missing", d / "utt2spk")
    backup = d / ".backup"
    backup.mkdir(exist_ok=True)
    for p in d.iterdir():
        if p.is_file():
            shutil.copy2(p, backup / p.name)
    maps = {
        name: dict(read_kv(d / name, allow_empty_value=True))
        for name in UTT_FILES
        if (d / name).is_file()
    }
    wav = dict(read_kv(d / "wav.scp")) if (d / "wav.scp").is_file() else None
    keep: Set[str] = set(maps["utt2spk"])
    for m in maps.values():
        keep &= set(m)
    if "segments" in maps and wav is not None:
        keep = {u for u in keep if maps["segments"][u].split()[0] in wav}
    elif wav is not None:
        keep &= set(wav)
    before = len(maps["utt2spk"])
    subset_data_dir(d, d, keep)
    return {"kept": len(keep), "removed": before - len(keep)}


def copy_data_dir(
    src: PathLike,
    dst: PathLike,
    utt_prefix: str = "",
    utt_suffix: str = "",
    spk_prefix: str = "",
    spk_suffix: str = "",
) -> Path:
    """Kaldi's ``copy_data_dir.sh``: a copy with utterance and speaker ids renamed
    (``<prefix>id<suffix>``); recording ids are kept when there are ``segments``, and follow
    the utterance ids when ``wav.scp`` is per utterance."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)

    def utt(u: str) -> str:
        return f"{utt_prefix}{u}{utt_suffix}"

    def spk(s: str) -> str:
        return f"{spk_prefix}{s}{spk_suffix}"

    segments = (src / "segments").is_file()
    for name in UTT_FILES:
        if not (src / name).is_file():
            continue
        items = read_kv(src / name, allow_empty_value=True)
        if name == "utt2spk":
            items = [(k, spk(v)) for k, v in items]
        write_map(dst / name, [(utt(k), v) for k, v in items])
    if (src / "wav.scp").is_file():
        wav = read_kv(src / "wav.scp")
        write_map(dst / "wav.scp", wav if segments else [(utt(k), v) for k, v in wav])
    if (src / "cmvn.scp").is_file():
        write_map(dst / "cmvn.scp", [(spk(k), v) for k, v in read_kv(src / "cmvn.scp")])
    for name in ("reco2file_and_channel", "stm", "glm"):
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
    write_spk2utt(dst)
    return dst


def subset_by(
    data_dir: PathLike,
    dst: PathLike,
    utt_list: Optional[PathLike] = None,
    spk_list: Optional[PathLike] = None,
    first: Optional[int] = None,
    last: Optional[int] = None,
    num: Optional[int] = None,
) -> Path:
    """Kaldi's ``subset_data_dir.sh``: the utterances of a list, of listed speakers, the
    first or last N, or N spread evenly over the dir (the default)."""
    d = Path(data_dir)
    utts = utterance_ids(d)
    if utt_list is not None:
        wanted = {line.split()[0] for line in read_text(utt_list).splitlines() if line.strip()}
        keep = [u for u in utts if u in wanted]
    elif spk_list is not None:
        spks = {line.split()[0] for line in read_text(spk_list).splitlines() if line.strip()}
        u2s = read_map(d / "utt2spk")
        keep = [u for u in utts if u2s[u] in spks]
    elif first is not None:
        keep = utts[:first]
    elif last is not None:
        keep = utts[-last:] if last else []
    elif num is not None:
        if num >= len(utts):
            keep = utts
        else:
            keep = [utts[(i * len(utts)) // num] for i in range(num)]
    else:
        raise ValueError("give utt_list, spk_list, first, last or num")
    return subset_data_dir(d, dst, keep)
