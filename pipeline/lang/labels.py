"""Transcripts → unit-id label sequences (``text_number``), with the OOV and too-short policy.

Policy (documented in the README):

* A word missing from the lexicon is an OOV. If the lexicon has ``<UNK>`` (WSJ, SWBD:
  ``<UNK> SPN``), the OOV takes its pronunciation; otherwise it has no units.
* Training sets: an utterance with an OOV that cannot be mapped, or too short for CTC after the
  network's sub-sampling (``frames // subsampling < labels + repeats``), is removed and listed with
  its reason in ``dropped_utts.txt``.
* Evaluation sets (dev, test) keep every utterance, so WER is computed on the whole set; their
  ``text_number`` leaves unmappable OOVs out (``text`` is never changed).
* The first pronunciation of a word is used.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Union

from pipeline.data.datadir import read_map, subset_data_dir, write_map
from pipeline.errors import DataError
from pipeline.io import atomic_write_text
from pipeline.lang.lexicon import UNK, Lexicon

PathLike = Union[str, Path]


def ctc_min_frames(labels: Sequence[int]) -> int:
    """Fewest output frames CTC needs for ``labels``: one per label plus a blank per repeat."""
    repeats = sum(1 for a, b in zip(labels, labels[1:]) if a == b)
    return len(labels) + repeats


@dataclass
class LabelReport:
    """What label making did to a set."""

    utts: int = 0
    words: int = 0
    oov_words: int = 0
    oov_types: Counter = field(default_factory=Counter)
    dropped: Dict[str, str] = field(default_factory=dict)

    def summary(self) -> Dict[str, object]:
        """A JSON-friendly summary (top OOV words included)."""
        return {
            "utts": self.utts,
            "words": self.words,
            "oov_words": self.oov_words,
            "oov_rate": round(self.oov_words / max(1, self.words), 5),
            "top_oov": self.oov_types.most_common(10),
            "dropped": len(self.dropped),
        }


def words_to_units(
    words: Sequence[str], lexicon: Lexicon, units: Mapping[str, int], report: LabelReport
) -> List[int]:
    """Unit ids of a word sequence (first pronunciation; OOV policy above)."""
    out: List[int] = []
    for w in words:
        report.words += 1
        prons = lexicon.get(w)
        if prons is None:
            report.oov_words += 1
            report.oov_types[w] += 1
            prons = lexicon.get(UNK)
            if prons is None:
                continue
        for p in prons[0]:
            if p not in units:
                raise DataError(f"phone '{p}' of word '{w}' is not in units.txt")
            out.append(units[p])
    return out


def make_labels(
    data_dir: PathLike,
    lexicon: Lexicon,
    units: Mapping[str, int],
    training: bool,
    subsampling: int = 3,
) -> LabelReport:
    """Write ``text_number`` for a data dir and apply the OOV / too-short policy.

    Args:
        data_dir: data dir with ``text`` (and ``utt2num_frames`` to check lengths).
        lexicon: word → pronunciations.
        units: ``units.txt`` mapping (blank is 0 and never appears in labels).
        training: apply the training-set policy (drop unusable utterances).
        subsampling: frame-rate reduction of the network (3: one output per 3 frames).

    Returns:
        LabelReport with counts and dropped utterances (also in ``dropped_utts.txt``).
    """
    d = Path(data_dir)
    text = read_map(d / "text")
    frames = read_map(d / "utt2num_frames") if (d / "utt2num_frames").is_file() else {}
    report = LabelReport()
    labels: Dict[str, str] = {}
    for utt, words in text.items():
        report.utts += 1
        before = report.oov_words
        ids = words_to_units(words.split(), lexicon, units, report)
        if training:
            if report.oov_words > before and UNK not in lexicon:
                report.dropped[utt] = "oov-word"
                continue
            if not ids:
                report.dropped[utt] = "no-labels"
                continue
            if utt in frames and int(frames[utt]) // subsampling < ctc_min_frames(ids):
                report.dropped[utt] = (
                    f"too-short ({frames[utt]} frames // {subsampling} < "
                    f"{ctc_min_frames(ids)} labels+repeats)"
                )
                continue
        labels[utt] = " ".join(map(str, ids))
    if report.dropped:
        atomic_write_text(
            d / "dropped_utts.txt",
            "".join(f"{u} {why}\n" for u, why in sorted(report.dropped.items())),
        )
        subset_data_dir(d, d, labels.keys())
    write_map(d / "text_number", labels.items())
    return report
