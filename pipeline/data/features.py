"""Feature extraction for a data dir: fbank → per-speaker CMVN → Δ+ΔΔ, in parallel jobs.

As in the reference recipe, the stored features are the network inputs: 40 log mel fbank,
normalised per speaker (Kaldi ``apply-cmvn --norm-vars=true``), then ``add-deltas`` (order 2,
window 2) → 120 dims. ``cmvn.scp`` keeps the per-speaker stats of the raw fbank, so the
normalisation can be checked or redone. Jobs split the data by speaker (CMVN needs a whole
speaker) and each writes its own ``ark``/``scp``; the merged ``feats.scp``, ``cmvn.scp`` and
``utt2num_frames`` are written only when every job succeeded.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from pipeline.children import die_with_parent
from pipeline.data.cmvn import apply_cmvn, cmvn_stats
from pipeline.data.datadir import drop_utterances, read_map, write_map
from pipeline.data.deltas import add_deltas
from pipeline.data.fbank import FbankExtractor
from pipeline.data.rates import read_resampled
from pipeline.errors import DataError
from pipeline.progress import on_terminal

PathLike = Union[str, Path]


@dataclass
class FeatureJob:
    """One parallel job: a list of speakers and where to write."""

    index: int
    speakers: List[Tuple[str, List[str]]]  # (speaker, its utterances)
    ark: str
    scp: str
    cmvn_ark: str
    cmvn_scp: str


@dataclass
class FeatureResult:
    """What a job produced: frames per utterance and the utterances it could not read."""

    num_frames: Dict[str, int] = field(default_factory=dict)
    bad: List[Tuple[str, str]] = field(default_factory=list)


MAX_OVERSHOOT = 0.5  # s: a segment may end this far after its recording (Kaldi's default)


class _AudioSource:
    """Reads an utterance's samples, cutting ``segments`` out of cached recordings.

    A segment that ends after its recording is cut at the recording's end when it overshoots
    by at most ``max_overshoot`` seconds, and is an error beyond that (Kaldi's
    ``extract-segments --max-overshoot``).
    """

    def __init__(
        self,
        wav_scp: Dict[str, str],
        segments: Optional[Dict[str, str]],
        channel: Optional[int] = None,
        max_overshoot: float = MAX_OVERSHOOT,
        resample: Optional[int] = None,
    ) -> None:
        self.wav_scp, self.segments = wav_scp, segments
        self.channel, self.max_overshoot = channel, max_overshoot
        self.resample = resample
        self._rec: Optional[str] = None
        self._audio: Tuple[int, np.ndarray] = (0, np.zeros(0, np.float32))

    def __call__(self, utt: str) -> Tuple[int, np.ndarray]:
        if self.segments is None:
            if utt not in self.wav_scp:
                raise DataError("not in wav.scp", utt=utt)
            return read_resampled(self.wav_scp[utt], utt, self.resample, self.channel)
        rec, start, end = self.segments[utt].split()
        if rec != self._rec:
            self._audio = read_resampled(self.wav_scp[rec], rec, self.resample, self.channel)
            self._rec = rec
        rate, x = self._audio
        a, b = int(round(float(start) * rate)), int(round(float(end) * rate))
        length = len(x) / rate
        if a >= len(x):
            raise DataError(
                f"segment starts at {start}s after the end of recording {rec} ({length:.2f}s)",
                utt=utt,
            )
        if float(end) > length + self.max_overshoot:
            raise DataError(
                f"segment ends at {end}s, {float(end) - length:.2f}s after the end "
                f"of recording {rec} ({length:.2f}s; at most {self.max_overshoot}s "
                "is cut silently)",
                utt=utt,
            )
        return rate, x[a : min(b, len(x))]


_progress = None  # set in worker processes: a shared counter of finished utterances


def _init_worker(counter, parent_pid: int) -> None:
    global _progress
    die_with_parent(parent_pid)
    _progress = counter


def _run_job(
    job: FeatureJob,
    wav_scp: Dict[str, str],
    segments: Optional[Dict[str, str]],
    conf: str,
    skip_bad: bool,
    order: int,
    window: int,
    channel: Optional[int] = None,
    resample: Optional[int] = None,
) -> FeatureResult:
    import kaldiio

    fbank = FbankExtractor(conf)
    source = _AudioSource(wav_scp, segments, channel, resample=resample)
    result = FeatureResult()
    with (
        kaldiio.WriteHelper(f"ark,scp:{job.ark},{job.scp}") as feats_out,
        kaldiio.WriteHelper(f"ark,scp:{job.cmvn_ark},{job.cmvn_scp}") as cmvn_out,
    ):
        for spk, utts in job.speakers:
            raw: Dict[str, np.ndarray] = {}
            for utt in utts:
                try:
                    rate, samples = source(utt)
                    raw[utt] = fbank(samples, rate, utt)
                except DataError as e:
                    if not skip_bad:
                        raise
                    result.bad.append((utt, str(e)))
                if _progress is not None:
                    with _progress.get_lock():
                        _progress.value += 1
            if not raw:
                continue
            stats = cmvn_stats(raw.values())
            cmvn_out(spk, stats)
            for utt, f in raw.items():
                feats_out(utt, add_deltas(apply_cmvn(f, stats), order, window))
                result.num_frames[utt] = f.shape[0]
    return result


def _split_speakers(spk2utt: Dict[str, List[str]], nj: int) -> List[List[Tuple[str, List[str]]]]:
    """Greedy balance of speakers over ``nj`` jobs by utterance count (deterministic)."""
    jobs: List[List[Tuple[str, List[str]]]] = [[] for _ in range(nj)]
    load = [0] * nj
    for spk, utts in sorted(spk2utt.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        j = load.index(min(load))
        jobs[j].append((spk, utts))
        load[j] += len(utts)
    for job in jobs:
        job.sort()
    return [job for job in jobs if job]


def make_features(
    data_dir: PathLike,
    feat_dir: PathLike,
    conf: PathLike,
    nj: int = 1,
    skip_bad: bool = False,
    delta_order: int = 2,
    delta_window: int = 2,
    progress: bool = True,
    channel: Optional[int] = None,
    keep_reference: bool = False,
    resample: Optional[int] = None,
) -> FeatureResult:
    """Compute ``feats.scp``, ``cmvn.scp`` and ``utt2num_frames`` for a data dir.

    Args:
        data_dir: Kaldi data dir with ``wav.scp``, ``utt2spk``, ``spk2utt`` (+ ``segments``).
        feat_dir: where the ``.ark`` archives go.
        conf: Kaldi fbank config.
        nj: parallel processes.
        skip_bad: skip unreadable utterances (listed in ``bad_utts.txt`` and removed from the
            data dir) instead of failing.
        delta_order, delta_window: ``add-deltas`` options.
        progress: show a progress bar.
        channel: 1-based channel of multi-channel audio; None: multi-channel audio is an error.
        keep_reference: a dev/test set: skipped utterances keep their transcripts in
            ``text.skipped`` and are scored as deletions.
        resample: resample recordings at another rate to this one with sox (never changing
            the files); None: a recording at another rate than the config's is an error.

    Returns:
        FeatureResult with frames per utterance and the skipped utterances.

    Raises:
        DataError: an utterance's audio is missing, corrupt or has the wrong sample rate
            (names the utterance), unless ``skip_bad``.
    """
    from tqdm import tqdm

    d, fd = Path(data_dir), Path(feat_dir).resolve()
    fd.mkdir(parents=True, exist_ok=True)
    FbankExtractor(conf)  # fail on a bad config before starting jobs
    wav_scp = read_map(d / "wav.scp")
    segments = read_map(d / "segments") if (d / "segments").is_file() else None
    spk2utt = {s: u.split() for s, u in read_map(d / "spk2utt").items()}
    total = sum(len(u) for u in spk2utt.values())
    name = d.name
    jobs = [
        FeatureJob(
            j,
            spks,
            str(fd / f"feats_{name}.{j + 1}.ark"),
            str(fd / f"feats_{name}.{j + 1}.scp"),
            str(fd / f"cmvn_{name}.{j + 1}.ark"),
            str(fd / f"cmvn_{name}.{j + 1}.scp"),
        )
        for j, spks in enumerate(_split_speakers(spk2utt, max(1, nj)))
    ]
    args = (wav_scp, segments, str(conf), skip_bad, delta_order, delta_window, channel, resample)
    bar = tqdm(
        total=total,
        desc=f"features {name}",
        unit="utt",
        disable=not (progress and on_terminal()),
        leave=False,
    )
    if len(jobs) == 1:
        results = [_run_job(jobs[0], *args)]
        bar.update(total)
    else:
        counter = mp.get_context("fork").Value("i", 0)
        with ProcessPoolExecutor(
            len(jobs),
            mp_context=mp.get_context("fork"),
            initializer=_init_worker,
            initargs=(counter, os.getpid()),
        ) as ex:
            futures = [ex.submit(_run_job, job, *args) for job in jobs]
            while not all(f.done() for f in futures):
                time.sleep(0.2)
                bar.update(counter.value - bar.n)
                for f in futures:  # fail fast: the first error stops the others
                    error = f.exception() if f.done() else None
                    if error is not None:
                        for g in futures:
                            g.cancel()
                        raise error
            results = [f.result() for f in futures]
            bar.update(total - bar.n)
    bar.close()

    merged = FeatureResult()
    feats, cmvn = {}, {}
    for job, r in zip(jobs, results):
        merged.num_frames.update(r.num_frames)
        merged.bad.extend(r.bad)
        feats.update(read_map(job.scp))
        cmvn.update(read_map(job.cmvn_scp))
    if merged.bad:
        drop_utterances(d, dict(merged.bad), keep_reference)
    write_map(d / "feats.scp", feats)
    write_map(d / "cmvn.scp", cmvn)
    write_map(d / "utt2num_frames", {u: str(n) for u, n in merged.num_frames.items()})
    return merged
