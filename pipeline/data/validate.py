"""Validation of a Kaldi data dir (in the spirit of Kaldi's validate_data_dir.sh).

Every problem raises :class:`DataError` naming the file, the line and the id, so a user can
open the file at that line and fix it.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from pipeline.data.datadir import c_sort_key, read_kv
from pipeline.errors import DataError

PathLike = Union[str, Path]
AUDIO_SUFFIXES = (".wav", ".sph", ".wv1", ".wv2", ".flac")


def _check_sorted_unique(path: Path, items: List[Tuple[str, str]]) -> None:
    prev: Optional[str] = None
    seen = set()
    for n, (k, _) in enumerate(items, 1):
        if k in seen:
            raise DataError(f"duplicate id '{k}'", path, n, utt=k)
        seen.add(k)
        if prev is not None and c_sort_key(k) < c_sort_key(prev):
            raise DataError(
                f"not sorted: '{k}' comes after '{prev}' (sort with LC_ALL=C sort)", path, n, utt=k
            )
        prev = k


def _load(path: Path, allow_empty: bool = False) -> Dict[str, str]:
    items = read_kv(path, allow_empty_value=allow_empty)
    _check_sorted_unique(path, items)
    return dict(items)


def _same_keys(a_path: Path, a: Dict[str, str], b_path: Path, b: Dict[str, str]) -> None:
    for k in a:
        if k not in b:
            raise DataError(f"'{k}' is in {a_path.name} but not in {b_path.name}", a_path, utt=k)
    for k in b:
        if k not in a:
            raise DataError(f"'{k}' is in {b_path.name} but not in {a_path.name}", b_path, utt=k)


def audio_paths(entry: str) -> List[str]:
    """The audio files a wav.scp entry reads (the path itself, or audio-looking args of a pipe)."""
    entry = entry.strip()
    if not entry.endswith("|"):
        return [entry]
    try:
        toks = shlex.split(entry[:-1])
    except ValueError:
        return []
    return [t for t in toks if t.lower().endswith(AUDIO_SUFFIXES) and "/" in t]


def validate_data_dir(
    data_dir: PathLike,
    need_feats: bool = False,
    check_audio: bool = True,
    need_text: bool = True,
    allow_empty_text: bool = False,
) -> Dict[str, int]:
    """Check a data dir against the Kaldi contract.

    Checks: required files exist; each is sorted in C order with unique ids; utt2spk, text,
    segments/wav.scp, feats.scp, utt2num_frames, text_number cover the same utterances;
    spk2utt is the inverse of utt2spk; every utterance id starts with its speaker id; no empty
    transcript; audio files named by wav.scp exist; cmvn.scp covers the speakers.

    Args:
        data_dir: the directory.
        need_feats: also require ``feats.scp`` and ``cmvn.scp``.
        check_audio: check that audio files exist.
        need_text: require ``text``.
        allow_empty_text: accept empty transcripts (``prep --skip-bad`` drops them next).

    Returns:
        counts: ``{"utts": .., "speakers": .., "recordings": ..}``.

    Raises:
        DataError: the first problem found.
    """
    d = Path(data_dir)
    if not d.is_dir():
        raise DataError("data directory not found", d)
    required = ["utt2spk", "spk2utt", "wav.scp"] + (["text"] if need_text else [])
    if need_feats:
        required += ["feats.scp", "cmvn.scp"]
    for name in required:
        if not (d / name).is_file():
            raise DataError(f"required file {name} missing", d / name)

    utt2spk = _load(d / "utt2spk")
    if not utt2spk:
        raise DataError("no utterances", d / "utt2spk")
    for n, (utt, spk) in enumerate(utt2spk.items(), 1):
        if len(spk.split()) != 1:
            raise DataError(f"'{utt}' must map to exactly one speaker", d / "utt2spk", n, utt=utt)
        if not utt.startswith(spk):
            raise DataError(
                f"utterance id '{utt}' does not start with its speaker id '{spk}' "
                "(Kaldi needs speaker-prefixed ids so that sorting agrees)",
                d / "utt2spk",
                n,
                utt=utt,
            )

    spk2utt = _load(d / "spk2utt")
    inverse: Dict[str, List[str]] = {}
    for utt, spk in utt2spk.items():
        inverse.setdefault(spk, []).append(utt)
    for n, (spk, utts) in enumerate(spk2utt.items(), 1):
        if spk not in inverse:
            raise DataError(f"speaker '{spk}' has no utterance in utt2spk", d / "spk2utt", n)
        if sorted(utts.split(), key=c_sort_key) != sorted(inverse[spk], key=c_sort_key):
            raise DataError(
                f"speaker '{spk}' lists other utterances than utt2spk gives it",
                d / "spk2utt",
                n,
            )
    for spk in inverse:
        if spk not in spk2utt:
            raise DataError(f"speaker '{spk}' of utt2spk missing", d / "spk2utt")

    if need_text or (d / "text").is_file():
        text = _load(d / "text", allow_empty=True)
        for n, (utt, words) in enumerate(text.items(), 1):
            if not words.strip() and not allow_empty_text:
                raise DataError("empty transcript", d / "text", n, utt=utt)
        _same_keys(d / "utt2spk", utt2spk, d / "text", text)

    wav = _load(d / "wav.scp")
    if (d / "segments").is_file():
        segments = _load(d / "segments")
        _same_keys(d / "utt2spk", utt2spk, d / "segments", segments)
        for n, (utt, seg) in enumerate(segments.items(), 1):
            f = seg.split()
            try:
                ok = len(f) == 3 and 0 <= float(f[1]) < float(f[2])
            except ValueError:
                ok = False
            if not ok:
                raise DataError(
                    "segment must be '<recording> <start> <end>' with start < end",
                    d / "segments",
                    n,
                    utt=utt,
                )
            if f[0] not in wav:
                raise DataError(f"recording '{f[0]}' not in wav.scp", d / "segments", n, utt=utt)
    else:
        _same_keys(d / "utt2spk", utt2spk, d / "wav.scp", wav)
    if check_audio:
        for n, (rec, entry) in enumerate(wav.items(), 1):
            for p in audio_paths(entry):
                if not Path(p).is_file():
                    raise DataError(f"audio file {p} does not exist", d / "wav.scp", n, utt=rec)

    for name in ("feats.scp", "utt2num_frames", "text_number"):
        if (d / name).is_file():
            m = _load(d / name, allow_empty=(name == "text_number"))
            _same_keys(d / "utt2spk", utt2spk, d / name, m)
            if name == "feats.scp":
                for n, (utt, ref) in enumerate(m.items(), 1):
                    ark = ref.rsplit(":", 1)[0]
                    if not Path(ark).is_file():
                        raise DataError(
                            f"feature archive {ark} does not exist", d / name, n, utt=utt
                        )
    if (d / "cmvn.scp").is_file():
        cmvn = _load(d / "cmvn.scp")
        _same_keys(d / "spk2utt", spk2utt, d / "cmvn.scp", cmvn)

    return {"utts": len(utt2spk), "speakers": len(spk2utt), "recordings": len(wav)}


def unusable_utterances(data_dir: PathLike) -> Dict[str, str]:
    """Utterances ``prep --skip-bad`` leaves out before anything is computed: an empty
    transcript, or audio that does not exist (id → the reason, for ``bad_utts.txt``)."""
    d = Path(data_dir)
    bad: Dict[str, str] = {}
    if (d / "text").is_file():
        for utt, words in _load(d / "text", allow_empty=True).items():
            if not words.strip():
                bad[utt] = "empty transcript"
    wav = _load(d / "wav.scp")
    missing = {
        rec: p for rec, entry in wav.items() for p in audio_paths(entry) if not Path(p).is_file()
    }
    if missing:
        if (d / "segments").is_file():
            for utt, seg in _load(d / "segments").items():
                rec = seg.split()[0]
                if rec in missing:
                    bad.setdefault(utt, f"audio file {missing[rec]} does not exist")
        else:
            for rec, p in missing.items():
                bad.setdefault(rec, f"audio file {p} does not exist")
    return bad
