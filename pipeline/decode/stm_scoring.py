"""Scoring against an ``stm`` with a ``glm`` (NIST Hub5 style, e.g. Switchboard eval2000).

A test set whose data dir holds ``stm`` and ``glm`` (``local/swbd`` writes them) is scored the
way Kaldi's Switchboard recipe does it with ``hubscr.pl``:

1. The hypotheses become a ``ctm`` in recording time (``segments`` and
   ``reco2file_and_channel``). Non-speech words (``[NOISE]``, ``[LAUGHTER]``,
   ``[VOCALIZED-NOISE]``, any ``[...]``) and ``<UNK>`` are left out, as Kaldi's
   ``score_sclite.sh`` does. The decoder gives no word times, so the words of an utterance
   share its segment evenly; sclite uses times only to put ctm words into stm segments, and
   every segment here is one utterance, so the counts do not depend on them.
2. Both files go through ``csrfilt.sh -i stm|ctm -t ref|hyp -dh glm`` (the GLM's spelling
   rules and contractions, e.g. ``I'M`` ↔ ``{I'M / I AM}``).
3. ``sclite -r stm.filt stm -h ctm.filt ctm -F -D``: fragments and optionally deletable words
   (``(%HESITATION)``) scored as NIST does.

The same is repeated on subsets named by recording prefix (:data:`STM_SUBSETS`: eval2000's
Switchboard ``sw*`` and CallHome ``en*`` halves) when the stm has more than one of them.
There is no Python fallback: GLM rules need sctk (Debian ``sctk``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from pipeline.data.datadir import read_map
from pipeline.decode.scoring import SCLITE_PATH, WerResult, run_sclite
from pipeline.errors import DataError, StnasError
from pipeline.io import atomic_write_text

PathLike = Union[str, Path]
Text = Mapping[str, Union[str, Sequence[str]]]

# subset name -> recording-name prefix (lower case) in the stm.
STM_SUBSETS: Dict[str, str] = {"swbd": "sw", "callhm": "en"}
_NOT_SCORED = re.compile(r"^\[.*\]$|^<unk>$", re.IGNORECASE)


def has_stm(set_dir: PathLike) -> bool:
    """True when ``set_dir`` holds ``stm`` and ``glm`` (score with :func:`score_stm`)."""
    return (Path(set_dir) / "stm").is_file() and (Path(set_dir) / "glm").is_file()


def sctk_bin() -> Path:
    """The directory holding ``sclite``, ``csrfilt.sh`` and ``rfilter1``."""
    for candidate in (shutil.which("csrfilt.sh"), SCLITE_PATH):
        if (
            candidate
            and (Path(candidate).parent / "csrfilt.sh").is_file()
            and (Path(candidate).parent / "rfilter1").is_file()
        ):
            return Path(candidate).parent
    raise StnasError(
        "scoring against stm/glm needs sctk's sclite, csrfilt.sh and rfilter1 "
        "(install the Debian package sctk)"
    )


def hyp_to_ctm(hyp: Text, set_dir: PathLike) -> List[Tuple[str, str, float, float, str]]:
    """``(file, channel, start, duration, word)`` rows, sorted by file, channel and time.

    Raises:
        DataError: an utterance with no line in ``segments``, or a recording with none in
            ``reco2file_and_channel``.
    """
    set_dir = Path(set_dir)
    segments = read_map(set_dir / "segments")
    reco = read_map(set_dir / "reco2file_and_channel")
    rows = []
    for utt in sorted(hyp):
        text = hyp[utt]
        words = text.split() if isinstance(text, str) else list(text)
        words = [w for w in words if not _NOT_SCORED.match(w)]
        if not words:
            continue
        if utt not in segments:
            raise DataError("utterance has no segment", set_dir / "segments", utt=utt)
        rec, start, end = segments[utt].split()
        if rec not in reco:
            raise DataError(
                f"recording {rec} is not listed", set_dir / "reco2file_and_channel", utt=utt
            )
        file, channel = reco[rec].split()
        t0, step = float(start), (float(end) - float(start)) / len(words)
        rows += [(file, channel, t0 + i * step, step, w) for i, w in enumerate(words)]
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return rows


def _stm_lines(stm: Path) -> Tuple[List[str], List[str]]:
    """The stm's ``;;`` header lines and its segment lines sorted as the ctm is (file,
    channel, start time), which sclite needs (``hubscr.pl`` sorts them the same way)."""
    header, body = [], []
    for n, line in enumerate(stm.read_text(encoding="latin-1").splitlines(), 1):
        if line.startswith(";;") or not line.strip():
            header.append(line)
            continue
        fields = line.split()
        try:
            key = (fields[0], fields[1], float(fields[3]))
        except (IndexError, ValueError):
            raise DataError("expected 'file channel speaker start end ...'", stm, n) from None
        body.append((key, line))
    return header, [line for _, line in sorted(body, key=lambda kv: kv[0])]


def _csrfilt(bin_dir: Path, fmt: str, purpose: str, glm: Path, src: Path, dst: Path) -> None:
    with open(src, "rb") as fin:
        proc = subprocess.run(
            [str(bin_dir / "csrfilt.sh"), "-i", fmt, "-t", purpose, "-dh", str(glm)],
            stdin=fin,
            capture_output=True,
            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "LC_ALL": "C"},
        )
    if proc.returncode != 0 or (src.stat().st_size and not proc.stdout):
        raise StnasError(
            f"csrfilt.sh failed on {src} with {glm} (exit {proc.returncode}): "
            + proc.stderr.decode(errors="replace").strip()[-300:]
        )
    dst.write_bytes(proc.stdout)


def score_stm(
    hyp: Text, set_dir: PathLike, scoring_dir: PathLike, name: str
) -> Dict[str, WerResult]:
    """Score ``hyp`` against ``set_dir/stm`` after ``set_dir/glm`` filtering.

    Args:
        hyp: utt -> hypothesis words (utterances of ``set_dir``).
        set_dir: the data dir (``stm``, ``glm``, ``segments``, ``reco2file_and_channel``).
        scoring_dir: where ``<name>.ctm``, ``stm``, the ``.filt`` files and the sclite
            reports (``<name>[.<subset>].{sys,dtl,pra}``) go.
        name: root name, e.g. ``hyp_0.8``.

    Returns:
        ``{"": whole set, "<subset>": ...}`` (subsets only when the stm has several).
    """
    set_dir, scoring_dir = Path(set_dir), Path(scoring_dir)
    if not has_stm(set_dir):
        raise DataError("no stm and glm to score against", set_dir)
    bin_dir = sctk_bin()
    scoring_dir.mkdir(parents=True, exist_ok=True)
    ctm_rows = hyp_to_ctm(hyp, set_dir)
    header, body = _stm_lines(set_dir / "stm")
    if not body:
        raise DataError("the stm has no segments", set_dir / "stm")
    files = {line.split()[0].lower() for line in body}
    parts: Dict[str, Optional[str]] = {"": None}
    present = [s for s, prefix in STM_SUBSETS.items() if any(f.startswith(prefix) for f in files)]
    if len(present) > 1:
        parts.update({s: STM_SUBSETS[s] for s in present})
    glm = set_dir / "glm"
    out: Dict[str, WerResult] = {}
    for sub, prefix in parts.items():
        tag = f"{name}.{sub}" if sub else name
        stm_part = [ln for ln in body if prefix is None or ln.split()[0].lower().startswith(prefix)]
        ctm_part = [r for r in ctm_rows if prefix is None or r[0].lower().startswith(prefix)]
        stm_path, ctm_path = scoring_dir / f"{tag}.stm", scoring_dir / f"{tag}.ctm"
        atomic_write_text(stm_path, "\n".join(header + stm_part) + "\n")
        atomic_write_text(
            ctm_path, "".join(f"{f} {c} {t:.3f} {d:.3f} {w} 1.0\n" for f, c, t, d, w in ctm_part)
        )
        _csrfilt(bin_dir, "stm", "ref", glm, stm_path, scoring_dir / f"{tag}.stm.filt")
        _csrfilt(bin_dir, "ctm", "hyp", glm, ctm_path, scoring_dir / f"{tag}.ctm.filt")
        out[sub] = run_sclite(
            scoring_dir / f"{tag}.stm.filt",
            scoring_dir / f"{tag}.ctm.filt",
            scoring_dir,
            tag,
            [str(bin_dir / "sclite")],
            ("stm", "ctm"),
        )
    return out
