"""Decoding a set of utterances at several settings, with the real-time factor measured."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

from pipeline.decode.decoder import Decoder, SettingKey, as_setting
from pipeline.decode.defaults import OUTPUT_FRAME_SHIFT_S
from pipeline.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class RtfMeter:
    """Real-time factor: decoding seconds / audio seconds.

    Attributes:
        frame_shift_s: audio seconds per log-prob frame (10 ms x the network's subsampling).
    """

    frame_shift_s: float = OUTPUT_FRAME_SHIFT_S
    seconds: float = 0.0
    frames: int = 0
    utterances: int = 0

    def add(self, num_frames: int, seconds: float) -> None:
        """Account one utterance of ``num_frames`` frames decoded in ``seconds``."""
        self.frames += int(num_frames)
        self.seconds += float(seconds)
        self.utterances += 1

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio decoded so far."""
        return self.frames * self.frame_shift_s

    @property
    def rtf(self) -> float:
        """Decoding time over audio time (< 1: faster than real time); nan before any audio."""
        return self.seconds / self.audio_seconds if self.frames else float("nan")

    def summary(self) -> Dict[str, float]:
        """JSON-friendly numbers for logs and ``stage.json``."""
        return {
            "rtf": round(self.rtf, 5),
            "decode_seconds": round(self.seconds, 3),
            "audio_seconds": round(self.audio_seconds, 3),
            "utterances": self.utterances,
        }


@dataclass
class SweepResult:
    """Hypotheses of a whole set for every LM weight, with speed.

    Attributes:
        hyps: setting (LM weight or ``(lm_weight, word_penalty)``) -> utterance id -> words.
        rtf: decoding speed.
        not_final: utterances whose search reached no final state.
    """

    hyps: Dict[SettingKey, Dict[str, List[str]]]
    rtf: RtfMeter
    not_final: List[str] = field(default_factory=list)
    tokens: int = 0  # tokens the searches created, over all utterances
    max_frame_tokens: int = 0  # the most tokens active in one frame


def decode_set(
    decoder: Decoder,
    utts: Iterable[Tuple[str, np.ndarray]],
    settings: Sequence[SettingKey],
    frame_shift_s: float = OUTPUT_FRAME_SHIFT_S,
) -> SweepResult:
    """Decode every utterance and read its best path for each decoding setting.

    Args:
        decoder: the decoder (graph + search options).
        utts: ``(utt id, (T, K) float32 log-probs)`` pairs, e.g. from ``kaldiio``.
        settings: LM weights or ``(lm_weight, word_penalty)`` pairs.
        frame_shift_s: audio seconds per log-prob frame, for the real-time factor.

    Returns:
        hypotheses per LM weight and utterance, the real-time factor of the whole set.
    """
    result = SweepResult({s: {} for s in settings}, RtfMeter(frame_shift_s))
    # one setting (a set decoded at the pair dev chose): searched at its own weight
    reference = (
        as_setting(settings[0])
        if len(settings) == 1
        else (1.0 / decoder.config.acoustic_scale, 0.0)
    )
    for utt, logprobs in utts:
        t0 = time.thread_time()  # CPU seconds of this thread: the search's own
        try:
            hyps, stats = decoder.decode(logprobs, settings, *reference)
        except DataError as e:
            raise DataError(str(e), utt=utt) from None
        result.rtf.add(len(logprobs), time.thread_time() - t0)
        result.tokens += stats["tokens"]
        result.max_frame_tokens = max(result.max_frame_tokens, stats["max_frame_tokens"])
        for w, h in hyps.items():
            result.hyps[w][utt] = h.words
        if not all(h.reached_final for h in hyps.values()):
            result.not_final.append(utt)
    if result.not_final:
        log.warning(
            "%d utterances reached no final state (partial paths kept), e.g. %s",
            len(result.not_final),
            result.not_final[0],
        )
    log.info("decoded %d utterances, RTF %.4f", result.rtf.utterances, result.rtf.rtf)
    return result
