"""WFST decoding of network log-probabilities against TLG, every decoding setting from one
lattice per utterance.

A decodable is a (T, K) float32 matrix of log-probabilities, column 0 = blank; TLG input
label ``k + 1`` reads column ``k`` (the token ids of :mod:`pipeline.lang.token_fst`). Costs
follow Kaldi: an arc's graph cost is ``-ln`` of its LM / lexicon weight, a frame's acoustic
cost is ``-log-prob``.

The search is the project's own lattice decoder (``pipeline/decode/csrc/lattice_decoder.cpp``,
compiled into the C++ extension by ``make install``): token passing with Kaldi's
LatticeFasterDecoder pruning (beam, ``max_active``, ``min_active``, lattice beam, periodic
pruning of the token lattice, final costs). It decodes each utterance once, at a reference LM
weight ``1 / acoustic_scale``, into a lattice whose links keep graph cost, acoustic cost and
word apart; every setting ``(w, p)`` is then the best path through that lattice under
``graph cost + p * words + acoustic cost / w`` (Kaldi's ``lattice-scale
--inv-acoustic-scale=w | lattice-add-penalty --word-ins-penalty=p | lattice-best-path``), all
settings in one pass. :meth:`Decoder.best_path` decodes at one setting (its own weight as the
reference). A decoding *setting* is a pair ``(lm_weight, word_penalty)``; a bare number means
penalty 0.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np

from pipeline.decode import defaults
from pipeline.errors import DataError, StnasError
from pipeline.lang.lexicon import read_symbol_table
from pipeline.loss import den_fb_ext

PathLike = Union[str, Path]
Setting = Tuple[float, float]  # (LM weight, word insertion penalty)
SettingKey = Union[float, Setting]  # a setting as given: a bare LM weight (penalty 0) or a pair
SettingT = TypeVar("SettingT", bound=SettingKey)  # keeps the key type of a setting -> X mapping
log = logging.getLogger(__name__)
# lattice beam of a search read at its own setting only: the best path and rounding ties
LONE_PATH_BEAM = 1e-3


def as_setting(value: Union[float, Tuple[float, ...], List[float]]) -> Setting:
    """``(lm_weight, word_penalty)`` from a pair, or from a bare LM weight (penalty 0)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"a decoding setting is (lm_weight, word_penalty), got {value!r}")
        return float(value[0]), float(value[1])
    return float(value), 0.0


@dataclass
class DecoderConfig:
    """Search settings (Kaldi's names and defaults of ``latgen-faster`` in CTC recipes).

    Attributes:
        beam: search beam, in units of the unscaled objective ``acoustic cost + lm_weight x
            graph cost`` (a frame's acoustic cost is ``-log-prob``): a search at LM weight w
            uses ``beam / w`` on ``graph cost + acoustic cost / w``, so that a high LM weight
            does not keep ever more tokens for the same pruning.
        lattice_beam: how far from the best path lattice paths are kept (same units).
        max_active: most active tokens per frame.
        min_active: fewest active tokens per frame.
        acoustic_scale: ``1 / w`` of the reference LM weight the lattice is decoded at.
        prune_interval: frames between two prunings of the token lattice.
    """

    beam: float = defaults.BEAM
    lattice_beam: float = defaults.LATTICE_BEAM
    max_active: int = defaults.MAX_ACTIVE
    min_active: int = defaults.MIN_ACTIVE
    acoustic_scale: float = 1.0
    prune_interval: int = defaults.PRUNE_INTERVAL


@dataclass
class Hypothesis:
    """One decoding result.

    Attributes:
        word_ids: output word ids (``words.txt``), epsilons removed.
        words: the same as strings.
        graph_cost: summed graph cost (``-ln`` LM/lexicon weight) of the path.
        acoustic_cost: summed ``-log-prob`` of the path's frames (unscaled).
        reached_final: False when no final state was reached (the best partial path is kept).
        frames: the frame each word starts at (frames consumed before its arc).
    """

    word_ids: List[int]
    words: List[str]
    graph_cost: float
    acoustic_cost: float
    reached_final: bool = True
    frames: Optional[List[int]] = None


def _check_logprobs(logprobs: np.ndarray, num_units: Optional[int]) -> np.ndarray:
    x = np.ascontiguousarray(logprobs, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise DataError(f"log-probs must be a non-empty (T, K) matrix, got shape {x.shape}")
    if num_units is not None and x.shape[1] != num_units:
        raise DataError(
            f"log-probs have {x.shape[1]} columns but the graph has "
            f"{num_units} units (blank + phones)"
        )
    if not np.isfinite(x).all():
        raise DataError("log-probs hold NaN or +-inf")
    return x


def _extension() -> Any:
    ext = den_fb_ext.load()
    if ext is None:
        raise StnasError(
            "the C++ extension with the lattice decoder is not built: run 'make install' "
            "(or 'python -m pipeline.loss.den_fb_ext')"
        )
    return ext


class Decoder:
    """Decodes log-prob matrices against one TLG (thread-safe: searches share the graph).

    Args:
        graph_path: ``TLG.fst`` (an OpenFst binary StdVectorFst, as kaldifst writes it).
        words: word id -> word (``words.txt`` of the graph).
        config: search settings.
        num_units: K; when given, log-prob matrices must have K columns.

    Raises:
        DataError: the graph cannot be read or has no final state (naming the file).
    """

    def __init__(
        self,
        graph_path: PathLike,
        words: Mapping[int, str],
        config: Optional[DecoderConfig] = None,
        num_units: Optional[int] = None,
    ) -> None:
        self.ext = _extension()
        self.graph_path = Path(graph_path)
        try:
            self.graph = self.ext.DecodingGraph(str(graph_path))
        except RuntimeError as e:
            raise DataError(str(e).replace(f"{graph_path}: ", ""), graph_path) from None
        self.words = dict(words)
        self.config = config or DecoderConfig()
        self.num_units = num_units

    @classmethod
    def from_lang_test(
        cls, lang_test: PathLike, config: Optional[DecoderConfig] = None
    ) -> "Decoder":
        """Load ``TLG.fst``, ``words.txt`` and K (``graph_info.json``) of a ``lang_test_<lm>``."""
        lang_test = Path(lang_test)
        tlg_path = lang_test / "TLG.fst"
        if not tlg_path.is_file():
            raise DataError(
                "decoding graph not found (the graphs stage builds it: stnas decode)", tlg_path
            )
        words = {i: w for w, i in read_symbol_table(lang_test / "words.txt").items()}
        info_path = lang_test / "graph_info.json"
        num_units = (
            json.loads(info_path.read_text(encoding="utf-8")).get("num_units")
            if info_path.is_file()
            else None
        )
        return cls(tlg_path, words, config, num_units)

    def decode(
        self,
        logprobs: np.ndarray,
        settings: Sequence[SettingKey],
        reference_weight: float,
        reference_penalty: float = 0.0,
    ) -> Tuple[Dict[SettingKey, Hypothesis], Dict[str, int]]:
        """One lattice at ``reference_weight``, the best path of every setting read from it.

        Args:
            logprobs: (T, K) float32 log-probabilities, column 0 = blank.
            settings: LM weights (> 0) or ``(lm_weight, word_penalty)`` pairs.
            reference_weight: the LM weight the search runs at (beams scale with it).
            reference_penalty: the word penalty the search runs with. When the only setting
                is the reference itself, its best path is the search's: the lattice keeps
                just that path (no lattice beam), which is what one search costs.

        Returns:
            setting (as given) -> hypothesis (graph cost with the penalties, acoustic cost
            unscaled), and the search's counts: ``tokens`` and ``links`` made,
            ``max_frame_tokens`` (the most in one frame) and ``max_expanded`` (the most
            expanded in one frame: at most ``max_active``).

        Raises:
            DataError: a matrix of the wrong shape or with NaN/inf values.
        """
        x = _check_logprobs(logprobs, self.num_units)
        pairs = [as_setting(s) for s in settings]
        if any(w <= 0 for w, _ in pairs) or reference_weight <= 0:
            raise ValueError(
                f"LM weights must be > 0, got {settings} (reference {reference_weight})"
            )
        c = self.config
        alone = pairs == [(float(reference_weight), float(reference_penalty))]
        lattice_beam = LONE_PATH_BEAM if alone else c.lattice_beam / reference_weight
        try:
            found, reached, stats = self.ext.lattice_decode(
                self.graph,
                x,
                pairs,
                c.beam / reference_weight,
                lattice_beam,
                c.max_active,
                c.min_active,
                1.0 / reference_weight,
                c.prune_interval,
                reference_penalty,
            )
        except ValueError as e:
            raise DataError(str(e)) from None
        hyps = {
            s: self._hypothesis(ids, graph, acoustic, reached, frames)
            for s, (ids, graph, acoustic, frames) in zip(settings, found)
        }
        return hyps, dict(stats)

    def _hypothesis(
        self,
        word_ids: Sequence[int],
        graph_cost: float,
        acoustic_cost: float,
        reached_final: bool,
        frames: Optional[List[int]] = None,
    ) -> Hypothesis:
        return Hypothesis(
            list(word_ids),
            [self.words.get(i, f"<id{i}>") for i in word_ids],
            graph_cost,
            acoustic_cost,
            reached_final,
            list(frames) if frames is not None else None,
        )

    def sweep(
        self, logprobs: np.ndarray, settings: Sequence[SettingKey]
    ) -> Dict[SettingKey, Hypothesis]:
        """Best path of every setting, from one lattice decoded at the reference weight
        ``1 / config.acoustic_scale``."""
        return self.decode(logprobs, settings, 1.0 / self.config.acoustic_scale)[0]

    def best_path(
        self, logprobs: np.ndarray, lm_weight: float = 1.0, word_penalty: float = 0.0
    ) -> Hypothesis:
        """1-best at one setting, searched at that LM weight.

        Args:
            logprobs: (T, K) float32 log-probabilities, column 0 = blank.
            lm_weight: > 0.
            word_penalty: cost per output word (the graph cost returned includes it).
        """
        setting = (float(lm_weight), float(word_penalty))
        return self.decode(logprobs, [setting], *setting)[0][setting]

    def best_path_timed(
        self, logprobs: np.ndarray, lm_weight: float = 1.0, word_penalty: float = 0.0
    ) -> Tuple[Hypothesis, List[Tuple[str, int, int]]]:
        """:meth:`best_path` and each word's frames on it: ``(word, first, end)``, the word
        from the frame its arc consumes to the next word's (or the utterance's end)."""
        hyp = self.best_path(logprobs, lm_weight, word_penalty)
        starts = hyp.frames or []
        ends = starts[1:] + [len(logprobs)]
        return hyp, [(w, f, e) for w, f, e in zip(hyp.words, starts, ends)]
