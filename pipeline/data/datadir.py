"""Kaldi data directories: the contract between stages.

A data dir holds ``wav.scp`` (recording → path or ``cmd |``), ``text`` (utt → words),
``utt2spk``, ``spk2utt``, optionally ``segments`` (utt → recording start end, seconds),
``feats.scp``, ``cmvn.scp``, ``utt2num_frames``, ``text_number``. Every file is sorted by its
first field in C (byte) order, as ``LC_ALL=C sort`` does, with one entry per key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

from pipeline.errors import DataError
from pipeline.stage import atomic_write_text

PathLike = Union[str, Path]

# Files keyed by utterance id; they are filtered together when utterances are removed.
UTT_FILES = (
    "text", "utt2spk", "feats.scp", "utt2num_frames", "text_number", "weight",
    "segments", "utt2dur", "utt2uniq",
)


def c_sort_key(key: str) -> bytes:
    """Sort key matching ``LC_ALL=C sort`` (byte order of the UTF-8 encoding)."""
    return key.encode("utf-8")


def read_kv(path: PathLike, allow_empty_value: bool = False) -> List[Tuple[str, str]]:
    """Read a Kaldi ``key value...`` file into (key, rest-of-line) pairs, in file order.

    Raises:
        DataError: a missing file, or a line without a key or (unless allowed) without a value.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    items: List[Tuple[str, str]] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
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
            items = [(k, v) for k, v in read_kv(src / name, allow_empty_value=True) if k in keep_set]
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


def drop_utterances(data_dir: PathLike, bad: Mapping[str, str],
                    keep_reference: bool = False) -> None:
    """Remove ``bad`` utterances (id → reason) from a data dir, in place: appended to
    ``bad_utts.txt`` with their reason; with ``keep_reference`` (a dev or test set) their
    non-empty transcripts go to ``text.skipped``, so that scoring counts them as deletions
    (:func:`read_reference`) instead of forgetting them."""
    d = Path(data_dir)
    if not bad:
        return
    old = read_map(d / "bad_utts.txt", allow_empty_value=True) \
        if (d / "bad_utts.txt").is_file() else {}
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
