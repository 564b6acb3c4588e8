"""Training data: utterances of a Kaldi data dir, held-out split, frame-bounded batches.

Features come from ``feats.scp`` (120-dim, per-speaker CMVN already applied by ``prep``),
labels from ``text_number``, and the path weight ``ln p_LM(labels)`` of the den graph's phone LM
from ``weight`` (0 when prep wrote none), which turns the CTC-CRF objective into a true
``-log p(l|x)`` for reporting. Batches are length-bucketed: utterances sorted by length are cut
into batches whose *padded* size ``B * T_max`` stays under ``max_frames`` (and ``B`` under
``max_utts``), then the batch order is shuffled from ``(seed, epoch)``: the same seed gives the
same batches, which is what makes a resumed run continue exactly where it stopped.

Distributed: every rank builds the same batches and takes its share of the utterances *of each
batch* (``utts[rank::world]``), so the global batch is the one a single process would see.
"""

from __future__ import annotations

import math
import queue
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import kaldiio
import numpy as np
import torch
from torch import Tensor

from pipeline.data.datadir import read_kv, read_map
from pipeline.errors import DataError
from pipeline.train.distributed import DistInfo

PathLike = Union[str, Path]


@dataclass(frozen=True)
class Utterance:
    """One training utterance: id, ``feats.scp`` entry, frames, unit ids, recording id and
    the path weight ``ln p_LM(labels </s>)`` (0.0 unknown)."""

    utt: str
    feats: str
    num_frames: int
    labels: Tuple[int, ...]
    recording: str
    lm_logp: float = 0.0


def load_utterances(data_dir: PathLike) -> List[Utterance]:
    """Utterances of a data dir that have features and labels (C-sorted by id).

    Raises:
        DataError: a missing file, or a label line that is not integers.
    """
    d = Path(data_dir)
    for name in ("feats.scp", "text_number"):
        if not (d / name).is_file():
            raise DataError("missing (run 'stnas prep' first)", d / name)
    feats = read_map(d / "feats.scp")
    frames = (
        {u: int(n) for u, n in read_map(d / "utt2num_frames").items()}
        if (d / "utt2num_frames").is_file()
        else {}
    )
    uniq = read_map(d / "utt2uniq") if (d / "utt2uniq").is_file() else {}
    weights = read_map(d / "weight") if (d / "weight").is_file() else {}
    out = []
    for line_no, (utt, value) in enumerate(read_kv(d / "text_number", allow_empty_value=True), 1):
        if utt not in feats:
            continue  # dropped at feature extraction (bad audio)
        try:
            labels = tuple(int(x) for x in value.split())
        except ValueError:
            raise DataError("labels must be integers", d / "text_number", line_no, utt) from None
        n = frames.get(utt)
        if n is None:
            n = int(kaldiio.load_mat(feats[utt]).shape[0])
        try:
            lm_logp = float(weights.get(utt, 0.0))
        except ValueError:
            raise DataError("path weight is not a number", d / "weight", utt=utt) from None
        out.append(Utterance(utt, feats[utt], n, labels, uniq.get(utt, utt), lm_logp))
    if not out:
        raise DataError("no utterance has both features and labels", d)
    return out


def split_held_out(
    utts: Sequence[Utterance], fraction: float, seed: int
) -> Tuple[List[Utterance], List[Utterance]]:
    """(train, held_out): ``fraction`` of the *recordings* held out, deterministically.

    Every speed-perturbed copy of a recording (same ``utt2uniq``) lands on the same side.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"held-out fraction must be in (0, 1), got {fraction}")
    recordings = sorted({u.recording for u in utts})
    random.Random(seed).shuffle(recordings)
    n_held = max(1, math.ceil(fraction * len(recordings)))
    if n_held >= len(recordings):
        raise DataError(f"only {len(recordings)} recordings: too few to hold out {fraction:.0%}")
    held = set(recordings[:n_held])
    return ([u for u in utts if u.recording not in held], [u for u in utts if u.recording in held])


def make_batches(
    utts: Sequence[Utterance],
    max_frames: int,
    max_utts: int,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    min_utts: int = 1,
) -> List[List[int]]:
    """Length-bucketed batches as index lists into ``utts``.

    Args:
        max_frames: bound on padded frames ``B * T_max`` per batch (one longer utterance
            still forms a batch of its own).
        max_utts: bound on ``B``.
        seed, epoch: the batch order (and tie order) is drawn from ``(seed, epoch)``.
        shuffle: shuffle batch order (False: shortest first, for evaluation).
        min_utts: batches smaller than this are merged into the previous one (so each of
            ``world`` ranks gets at least one utterance).
    """
    rng = random.Random(seed * 100003 + epoch)
    order = sorted(range(len(utts)), key=lambda i: (utts[i].num_frames, rng.random()))
    batches: List[List[int]] = []
    cur: List[int] = []
    for i in order:
        longest = utts[i].num_frames  # sorted: the newest is the longest
        if cur and ((len(cur) + 1) * longest > max_frames or len(cur) >= max_utts):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    merged: List[List[int]] = []
    for b in batches:
        if merged and len(b) < min_utts:
            merged[-1].extend(b)
        else:
            merged.append(b)
    if merged and len(merged[0]) < min_utts:
        raise DataError(f"fewer than {min_utts} utterances: cannot split batches over ranks")
    if shuffle:
        rng.shuffle(merged)
    return merged


class Batch(NamedTuple):
    """A padded batch.

    Attributes:
        feats: (B, T_max, D) float32, zero padded.
        lengths: (B,) int64 frames.
        labels: (B, L_max) int64 unit ids, zero padded.
        label_lengths: (B,) int64.
        utts: the B utterance ids.
        lm_logp: (B,) float64 path weights ``ln p_LM(labels </s>)`` (zeros when unknown).
    """

    feats: Tensor
    lengths: Tensor
    labels: Tensor
    label_lengths: Tensor
    utts: List[str]
    lm_logp: Optional[Tensor] = None

    def to(self, device: torch.device) -> "Batch":
        return Batch(
            self.feats.to(device, non_blocking=True),
            self.lengths.to(device),
            self.labels.to(device),
            self.label_lengths.to(device),
            self.utts,
            None if self.lm_logp is None else self.lm_logp.to(device),
        )


def collate(utts: Sequence[Utterance]) -> Batch:
    """Read features (kaldiio) and pad a batch; a feature/frame mismatch is a DataError."""
    mats = []
    for u in utts:
        try:
            m = kaldiio.load_mat(u.feats)
        except Exception as e:  # noqa: BLE001 - any reader failure is a data problem
            raise DataError(f"cannot read features '{u.feats}': {e}", utt=u.utt) from None
        mats.append(np.asarray(m, dtype=np.float32))
    t_max = max(m.shape[0] for m in mats)
    l_max = max((len(u.labels) for u in utts), default=0)
    feats = np.zeros((len(utts), t_max, mats[0].shape[1]), dtype=np.float32)
    labels = np.zeros((len(utts), max(l_max, 1)), dtype=np.int64)
    for b, (u, m) in enumerate(zip(utts, mats)):
        feats[b, : m.shape[0]] = m
        labels[b, : len(u.labels)] = u.labels
    return Batch(
        torch.from_numpy(feats),
        torch.tensor([m.shape[0] for m in mats]),
        torch.from_numpy(labels),
        torch.tensor([len(u.labels) for u in utts]),
        [u.utt for u in utts],
        torch.tensor([u.lm_logp for u in utts], dtype=torch.float64),
    )


class BatchStream:
    """Batches of one epoch from position ``start``, read ahead by a background thread.

    Args:
        utts: the utterances; batches: index lists (:func:`make_batches`).
        start: index of the first batch to yield (resume).
        rank, world: this process's share of every batch.
        prefetch: batches read ahead.
    """

    def __init__(
        self,
        utts: Sequence[Utterance],
        batches: Sequence[Sequence[int]],
        start: int = 0,
        rank: int = 0,
        world: int = 1,
        prefetch: int = 4,
    ) -> None:
        self.utts, self.batches, self.start = utts, batches, start
        self.rank, self.world = rank, world
        self._queue: "queue.Queue" = queue.Queue(maxsize=max(1, prefetch))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        for i in range(self.start, len(self.batches)):
            if self._stop.is_set():
                return
            share = [self.utts[j] for j in self.batches[i]][self.rank :: self.world]
            try:
                item: object = (i, collate(share))
            except Exception as e:  # noqa: BLE001 - re-raised in the consumer
                item = e
            self._queue.put(item)
            if isinstance(item, Exception):
                return
        self._queue.put(None)

    def __iter__(self) -> Iterator[Tuple[int, Batch]]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.05)


def summed_over(
    utts: Sequence[Utterance],
    max_frames: int,
    max_utts: int,
    seed: int,
    dist_info: DistInfo,
    total: torch.Tensor,
    fn: Callable[[Batch], torch.Tensor],
) -> torch.Tensor:
    """``total`` plus ``fn(batch)`` over this rank's share of ``utts`` in fixed batches (the
    same every call: evaluation), added in batch order."""
    batches = make_batches(
        utts, max_frames, max_utts, seed, 0, shuffle=False, min_utts=dist_info.world
    )
    stream = BatchStream(utts, batches, 0, dist_info.rank, dist_info.world)
    try:
        for _, batch in stream:
            total += fn(batch)
    finally:
        stream.close()
    return total


def held_out_cycle(
    utts: Sequence[Utterance],
    max_frames: int,
    max_utts: int,
    seed: int,
    position: int,
    rank: int = 0,
    world: int = 1,
) -> Iterator[Tuple[int, Batch]]:
    """Endless held-out batches for arch steps, from draw ``position`` on (paper §3.2).

    Yields (position, batch). Each pass over the held-out set has its own shuffled order; the
    number of batches per pass is fixed (cuts depend on the sorted lengths only).
    """
    n = len(make_batches(utts, max_frames, max_utts, seed, 0, min_utts=world))
    cached: Tuple[int, List[List[int]]] = (-1, [])
    while True:
        n_pass, index = divmod(position, n)
        if cached[0] != n_pass:
            cached = (
                n_pass,
                make_batches(utts, max_frames, max_utts, seed, n_pass, min_utts=world),
            )
        share = [utts[j] for j in cached[1][index]][rank::world]
        yield position, collate(share)
        position += 1
