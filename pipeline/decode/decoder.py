"""WFST decoding of network log-probabilities against TLG (Kaldi's decoders via ``kaldi_decoder``).

A decodable is a (T, K) float32 matrix of log-probabilities, column 0 = blank;
``kaldi_decoder.DecodableCtc`` scores TLG input label ``k + 1`` with column ``k`` (the token
ids of :mod:`pipeline.lang.token_fst`). Costs follow Kaldi: an arc's graph cost is ``-ln`` of
its LM / lexicon weight, a frame's acoustic cost is ``-log-prob``.

The LM weight sweep works as Kaldi's scoring does (``lattice-scale --inv-acoustic-scale=LMWT |
lattice-best-path``): each utterance is decoded once into a raw state-level lattice
(``LatticeSimpleDecoder``, the lattice decoder this ``kaldi_decoder`` exposes -- it has no
``LatticeFasterDecoder``), the acoustic costs are brought back to scale 1, and for every LM
weight ``w`` the best path minimises ``graph cost + acoustic cost / w``. ``LatticeSimpleDecoder``
prunes by beam and lattice beam but has no ``max_active`` limit; :meth:`Decoder.best_path`
(``FasterDecoder``, with ``max_active``) decodes one LM weight directly by scaling the
log-probs by ``1 / w`` (the same objective, scaled), and ``method="redecode"`` sweeps that way.

Word insertion penalty (Kaldi's ``lattice-add-penalty --word-ins-penalty``): a cost ``p`` added
to every output word, so the objective is ``graph cost + p * words + acoustic cost / w``. The
graph for a penalty is ``TLG o P``, with P one state and a ``word:word / p`` loop per word
(:func:`penalty_fst`), composed once per penalty and kept. A decoding *setting* is a pair
``(lm_weight, word_penalty)``; a bare number means penalty 0.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import kaldi_decoder
import kaldifst
import numpy as np

from pipeline.decode import defaults
from pipeline.errors import DataError
from pipeline.lang.lexicon import read_symbol_table

PathLike = Union[str, Path]
SWEEP_METHODS = ("auto", "lattice", "redecode")
Setting = Tuple[float, float]  # (LM weight, word insertion penalty)
SettingKey = Union[float, Setting]  # a setting as given: a bare LM weight (penalty 0) or a pair
SettingT = TypeVar("SettingT", bound=SettingKey)  # keeps the key type of a setting -> X mapping
log = logging.getLogger(__name__)


def as_setting(value: Union[float, Tuple[float, ...], List[float]]) -> Setting:
    """``(lm_weight, word_penalty)`` from a pair, or from a bare LM weight (penalty 0)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"a decoding setting is (lm_weight, word_penalty), got {value!r}")
        return float(value[0]), float(value[1])
    return float(value), 0.0


def penalty_fst(word_ids: Iterable[int], penalty: float) -> kaldifst.StdVectorFst:
    """One state, start and final, with a ``w:w`` loop of cost ``penalty`` for every word id."""
    fst = kaldifst.StdVectorFst()
    state = fst.add_state()
    fst.start = state
    fst.set_final(state, 0.0)
    for w in sorted(set(word_ids)):
        if w > 0:
            fst.add_arc(state, kaldifst.StdArc(w, w, float(penalty), state))
    kaldifst.arcsort(fst, sort_type="ilabel")
    return fst


@dataclass
class DecoderConfig:
    """Search settings (Kaldi's names and defaults of ``latgen-faster`` in CTC recipes).

    Attributes:
        beam: search beam, in units of the unscaled objective ``acoustic cost + lm_weight x
            graph cost`` (a frame's acoustic cost is ``-log-prob``): a search at LM weight w
            scales the log-probs by ``1 / w`` and so uses ``beam / w``. A fixed beam in scaled
            units would let a high LM weight keep ever more tokens for the same pruning.
        lattice_beam: how far from the best path lattice paths are kept (same units).
        max_active: most active tokens per frame (``FasterDecoder`` only).
        min_active: fewest active tokens per frame (``FasterDecoder`` only).
        acoustic_scale: log-prob scale during the lattice search; the lattice's acoustic
            costs are divided by it afterwards, as ``latgen-faster`` does.
    """

    beam: float = defaults.BEAM
    lattice_beam: float = defaults.LATTICE_BEAM
    max_active: int = defaults.MAX_ACTIVE
    min_active: int = defaults.MIN_ACTIVE
    acoustic_scale: float = 1.0


@dataclass
class Hypothesis:
    """One decoding result.

    Attributes:
        word_ids: output word ids (``words.txt``), epsilons removed.
        words: the same as strings.
        graph_cost: summed graph cost (``-ln`` LM/lexicon weight) of the path.
        acoustic_cost: summed ``-log-prob`` of the path's frames (unscaled).
        reached_final: False when no final state was reached (the best partial path is kept).
    """

    word_ids: List[int]
    words: List[str]
    graph_cost: float
    acoustic_cost: float
    reached_final: bool = True


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


def _lattice_copy(lat: kaldifst.Lattice) -> kaldifst.Lattice:
    return type(lat)(lat)


def lattice_best_path(
    lattice: kaldifst.Lattice, lm_weight: float
) -> Tuple[List[int], float, float]:
    """Best path of a lattice (acoustic costs at scale 1) under LM weight ``lm_weight``.

    Minimises ``graph cost + acoustic cost / lm_weight``, like Kaldi's ``lattice-scale
    --inv-acoustic-scale=LMWT`` followed by ``lattice-best-path``.

    Returns:
        (word ids, graph cost, acoustic cost) of that path, costs unscaled; ``([], inf,
        inf)`` for an empty lattice.
    """
    if lm_weight <= 0:
        raise ValueError(f"LM weight must be > 0, got {lm_weight}")
    if lattice.num_states == 0:
        return [], float("inf"), float("inf")
    lat = _lattice_copy(lattice)
    kaldifst.scale_lattice(kaldifst.lattice_scale(lmwt=1.0, acwt=1.0 / lm_weight), lat)
    ok, _, olabels, weight = kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(lat))
    if not ok:
        raise RuntimeError("shortest path of a lattice is not linear")
    return list(olabels), float(weight.value1), float(weight.value2) * lm_weight


class Decoder:
    """Decodes log-prob matrices against one TLG.

    Args:
        graph: TLG (``kaldifst.StdVectorFst``).
        words: word id -> word (``words.txt`` of the graph).
        config: search settings.
        num_units: K; when given, log-prob matrices must have K columns.
    """

    def __init__(
        self,
        graph: kaldifst.StdVectorFst,
        words: Mapping[int, str],
        config: Optional[DecoderConfig] = None,
        num_units: Optional[int] = None,
    ) -> None:
        self.graph = graph
        self.words = dict(words)
        self.config = config or DecoderConfig()
        self.num_units = num_units
        self._graphs: Dict[float, kaldifst.StdVectorFst] = {0.0: graph}

    def graph_for(self, word_penalty: float) -> kaldifst.StdVectorFst:
        """TLG with ``word_penalty`` added to every output word (``TLG o P``, cached)."""
        word_penalty = float(word_penalty)
        if word_penalty not in self._graphs:
            g = kaldifst.StdVectorFst(
                kaldifst.compose(self.graph, penalty_fst(self.words, word_penalty))
            )
            kaldifst.arcsort(g, sort_type="ilabel")
            self._graphs[word_penalty] = g
        return self._graphs[word_penalty]

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
        graph = kaldifst.StdVectorFst.read(str(tlg_path))
        if graph is None:
            raise DataError("unreadable FST", tlg_path)
        words = {i: w for w, i in read_symbol_table(lang_test / "words.txt").items()}
        info_path = lang_test / "graph_info.json"
        num_units = (
            json.loads(info_path.read_text(encoding="utf-8")).get("num_units")
            if info_path.is_file()
            else None
        )
        return cls(graph, words, config, num_units)

    def _hypothesis(
        self, word_ids: Sequence[int], graph_cost: float, acoustic_cost: float, reached_final: bool
    ) -> Hypothesis:
        return Hypothesis(
            list(word_ids),
            [self.words.get(i, f"<id{i}>") for i in word_ids],
            graph_cost,
            acoustic_cost,
            reached_final,
        )

    def _faster(
        self, logprobs: np.ndarray, lm_weight: float, word_penalty: float
    ) -> Tuple[Optional[kaldifst.Lattice], bool]:
        """``FasterDecoder`` at one setting: (its best path, or None, and reached-final)."""
        if lm_weight <= 0:
            raise ValueError(f"LM weight must be > 0, got {lm_weight}")
        x = _check_logprobs(logprobs, self.num_units)
        c = self.config
        opts = kaldi_decoder.FasterDecoderOptions(
            beam=c.beam / lm_weight, max_active=c.max_active, min_active=c.min_active
        )
        dec = kaldi_decoder.FasterDecoder(self.graph_for(word_penalty), opts)
        dec.decode(kaldi_decoder.DecodableCtc(x / lm_weight))
        ok, lat = dec.get_best_path()
        if not ok:
            log.warning("no surviving path (graph and log-probs incompatible?)")
        return (lat if ok else None), dec.reached_final()

    def best_path(
        self, logprobs: np.ndarray, lm_weight: float = 1.0, word_penalty: float = 0.0
    ) -> Hypothesis:
        """1-best with ``FasterDecoder`` (honours ``max_active``) at one setting.

        Args:
            logprobs: (T, K) float32 log-probabilities, column 0 = blank.
            lm_weight: > 0; the log-probs are scaled by ``1 / lm_weight``.
            word_penalty: cost per output word (the graph cost returned includes it).
        """
        lat, reached = self._faster(logprobs, lm_weight, word_penalty)
        if lat is None:
            return self._hypothesis([], float("inf"), float("inf"), False)
        _, _, olabels, weight = kaldifst.get_linear_symbol_sequence(lat)
        return self._hypothesis(
            olabels, float(weight.value1), float(weight.value2) * lm_weight, reached
        )

    def best_path_timed(
        self, logprobs: np.ndarray, lm_weight: float = 1.0, word_penalty: float = 0.0
    ) -> Tuple[Hypothesis, List[Tuple[str, int, int]]]:
        """:meth:`best_path` and each word's frames on it: ``(word, first, end)``, the word
        from the frame its arc consumes to the next word's (or the utterance's end)."""
        lat, reached = self._faster(logprobs, lm_weight, word_penalty)
        if lat is None:
            return self._hypothesis([], float("inf"), float("inf"), False), []
        _, _, olabels, weight = kaldifst.get_linear_symbol_sequence(lat)
        # the best path is linear: its arcs in the text form "src dst ilabel olabel weight"
        # (kaldifst iterates no Lattice arcs from Python)
        arcs = {}
        for line in lat.to_str(show_weight_one=True).splitlines():
            f = line.split()
            if len(f) >= 4:
                arcs[int(f[0])] = (int(f[1]), int(f[2]), int(f[3]))
        starts: List[Tuple[int, int]] = []
        state, frame = lat.start, 0
        while state in arcs:
            state, ilabel, olabel = arcs[state]
            if olabel:
                starts.append((olabel, frame))
            if ilabel:
                frame += 1
        timed = [
            (self.words.get(w, f"<id{w}>"), f, starts[i + 1][1] if i + 1 < len(starts) else frame)
            for i, (w, f) in enumerate(starts)
        ]
        hyp = self._hypothesis(
            olabels, float(weight.value1), float(weight.value2) * lm_weight, reached
        )
        return hyp, timed

    def lattice(
        self, logprobs: np.ndarray, word_penalty: float = 0.0
    ) -> Tuple[kaldifst.Lattice, bool]:
        """Raw state-level lattice (word outputs), acoustic costs at scale 1.

        Args:
            logprobs: (T, K) float32 log-probabilities, column 0 = blank.
            word_penalty: cost per output word, in the lattice's graph costs.

        Returns:
            the lattice and whether a final state was reached.
        """
        x = _check_logprobs(logprobs, self.num_units)
        c = self.config
        scale = c.acoustic_scale
        cfg = kaldi_decoder.LatticeSimpleDecoderConfig(
            beam=c.beam * scale, lattice_beam=c.lattice_beam * scale
        )
        dec = kaldi_decoder.LatticeSimpleDecoder(self.graph_for(word_penalty), cfg)
        dec.decode(kaldi_decoder.DecodableCtc(x * c.acoustic_scale))
        reached = dec.final_relative_cost() != float("inf")
        ok, lat = dec.get_raw_lattice()  # without a final state: every token counts as final
        if not ok:
            log.warning("empty lattice (graph and log-probs incompatible?)")
        elif c.acoustic_scale != 1.0:
            kaldifst.scale_lattice(
                kaldifst.lattice_scale(lmwt=1.0, acwt=1.0 / c.acoustic_scale), lat
            )
        return lat, reached

    def sweep(
        self, logprobs: np.ndarray, settings: Sequence[SettingKey], method: str = "auto"
    ) -> Dict[SettingKey, Hypothesis]:
        """Best path for each decoding setting.

        Args:
            logprobs: (T, K) float32 log-probabilities, column 0 = blank.
            settings: LM weights (> 0) or ``(lm_weight, word_penalty)`` pairs.
            method: ``"lattice"`` (one lattice per penalty, every weight read from it),
                ``"redecode"`` (one :meth:`best_path` search per setting) or ``"auto"``
                (lattice for a penalty with several weights, else one search: per setting
                on the demo model a lattice costs about 3 searches and the weights read from
                it almost nothing; ``bench/results/decode.md``).

        Returns:
            setting (as given) -> hypothesis.
        """
        if method not in SWEEP_METHODS:
            raise ValueError(f"unknown sweep method {method!r} ({', '.join(SWEEP_METHODS)})")
        by_penalty: Dict[float, List[SettingKey]] = {}
        for s in settings:
            by_penalty.setdefault(as_setting(s)[1], []).append(s)
        if method == "auto":
            return {
                **self.sweep(
                    logprobs,
                    [s for group in by_penalty.values() if len(group) == 1 for s in group],
                    "redecode",
                ),
                **self.sweep(
                    logprobs,
                    [s for group in by_penalty.values() if len(group) > 1 for s in group],
                    "lattice",
                ),
            }
        if method == "redecode":
            return {s: self.best_path(logprobs, *as_setting(s)) for s in settings}
        out = {}
        for penalty in sorted(by_penalty):
            lat, reached = self.lattice(logprobs, penalty)
            for s in settings:
                w, p = as_setting(s)
                if p == penalty:
                    ids, graph_cost, ac_cost = lattice_best_path(lat, w)
                    out[s] = self._hypothesis(ids, graph_cost, ac_cost, reached)
        return {s: out[s] for s in settings}
