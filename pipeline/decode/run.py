"""The decode and score stages: log-probs → lattices → hypotheses per LM weight → WER.

``decode`` (per set): the model's log-probs (optionally kept as ``logits.ark/scp``), decoded
against ``data/<c>/lang_test_<lm>/TLG.fst`` (built once) by ``nj`` worker processes, best path
per LM weight → ``decode_<set>_<lm>/hyp/<w>.txt``. By default each LM weight is one
``FasterDecoder`` search (it honours ``max_active``); ``method="lattice"`` decodes one lattice
per utterance and reads every weight from it, as Kaldi's scoring does, but the lattice decoder
this ``kaldi_decoder`` exposes has no ``max_active`` and is 3-5x slower on a weak model
(tts debug model, 6 LM weights: RTF 1.1 vs 0.23 per core).

``score``: every LM weight of the dev set is scored, the best one is chosen **on dev** and only
that one is scored on the test sets (test is never tuned on); sclite reports go to
``scoring/``, a Kaldi ``best_wer`` line to each decode dir, and a row per set to ``RESULTS.md``.

Word LM: WSJ/SWBD use the corpus's own ARPA LMs (``local/lm/lm_paths.txt`` from prep); ``tts``
estimates a Kneser-Ney trigram on the fortunes sentence pool minus every dev and test sentence,
so no dev/test text is ever seen by the LM. The decoding vocabulary is the corpus lexicon.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from pipeline.data.datadir import read_map, write_map
from pipeline.decode.decoder import Decoder, DecoderConfig, decode_set
from pipeline.decode.scoring import WerResult
from pipeline.errors import DataError, StnasError
from pipeline.stage import StageDir, atomic_write_text

log = logging.getLogger(__name__)
FRAME_SHIFT_S = 0.01


@dataclass
class DecodeConfig:
    """What ``stnas decode`` needs (see the module docstring)."""

    model: str
    data_dir: str
    sets: List[str] = field(default_factory=lambda: ["dev", "test"])
    lm: str = "tg"
    lm_order: int = 3
    lm_weights: List[float] = field(default_factory=lambda: [0.3, 0.5, 0.7, 1.0, 1.5, 2.0])
    beam: float = 17.0
    lattice_beam: float = 8.0
    max_active: int = 7000
    method: str = "redecode"   # redecode: FasterDecoder per LM weight (has max_active);
    #                            lattice: one LatticeSimpleDecoder lattice (no max_active)
    nj: int = 1
    device: str = "cpu"
    write_logits: bool = False
    progress: bool = True


def word_lm_arpa(data_dir: Path, lm: str, order: int = 3) -> Path:
    """The ARPA file of LM ``lm`` for this data dir.

    A corpus LM listed by prep (``local/lm/lm_paths.txt``, WSJ) or an ARPA file already at
    ``local/lm/<lm>.arpa`` is used as it is. Otherwise an interpolated modified Kneser-Ney
    ``order``-gram is estimated once and kept there: for ``tts`` on the fortunes sentence pool,
    for other corpora (Switchboard, your own data) on the ``train`` transcripts, as Kaldi's
    Switchboard recipe does for its ``sw1_tg``. Every dev and test sentence is left out.
    """
    listed = data_dir / "local" / "lm" / "lm_paths.txt"
    if listed.is_file():
        paths = read_map(listed)
        if lm not in paths:
            raise DataError(f"LM '{lm}' not available (have: {', '.join(paths)})", listed)
        if paths[lm].endswith(".gz"):
            raise DataError(f"{paths[lm]} is gzip-compressed: gunzip it and point "
                            f"local/lm/lm_paths.txt at the plain ARPA file", listed)
        return Path(paths[lm])
    arpa = data_dir / "local" / "lm" / f"{lm}.arpa"
    if arpa.is_file():
        return arpa
    import yaml

    from pipeline.lang.lexicon import read_symbol_table
    from pipeline.lang.word_lm import estimate_word_lm, perplexity, write_arpa

    cfg = yaml.safe_load((data_dir / "config.yaml").read_text()) if \
        (data_dir / "config.yaml").is_file() else {}
    held = set()
    for name in ("dev", "test"):
        if (data_dir / name / "text").is_file():
            held |= set(read_map(data_dir / name / "text", allow_empty_value=True).values())
    if cfg.get("corpus") == "tts":
        from local.tts.sentences import sentence_pool
        from pipeline.lang.lexicon import read_festival_cmudict

        source, pool = "fortunes", sentence_pool(read_festival_cmudict())
    else:
        train_text = data_dir / "train" / "text"
        if not train_text.is_file():
            raise DataError(f"no word LM '{lm}' and no training text to estimate one from: put "
                            f"an ARPA file at {arpa} or list it in {listed}", train_text)
        source = str(train_text)
        pool = list(read_map(train_text, allow_empty_value=True).values())
    pool = [s for s in pool if s.strip() and s not in held]
    if not pool:
        raise DataError(f"no sentences left to estimate word LM '{lm}' from {source}", arpa)
    words = read_symbol_table(data_dir / "lang" / "words.txt")
    unk = "<UNK>" if "<UNK>" in words else "<unk>"
    t0 = time.perf_counter()
    model = estimate_word_lm([s.split() for s in pool], order=order, unk=unk)
    write_arpa(model, arpa)
    dev = [t.split() for t in read_map(data_dir / "dev" / "text").values()] \
        if (data_dir / "dev" / "text").is_file() else []
    ppl = perplexity(model, dev).summary() if dev else {}
    atomic_write_text(arpa.with_suffix(".json"), json.dumps(
        {"source": source, "sentences": len(pool), "excluded_dev_test": len(held),
         "order": order, "dev": ppl, "seconds": round(time.perf_counter() - t0, 2)},
        indent=2) + "\n")
    log.info("word LM %s: %d sentences of %s (dev/test excluded), dev perplexity %s", arpa,
             len(pool), source, ppl.get("perplexity"))
    return arpa


def lang_test_dir(data_dir: Path, lm: str, order: int = 3) -> Path:
    """``data/<c>/lang_test_<lm>`` with its TLG, built when missing or out of date."""
    from pipeline.lang.graphs import build_lang_test

    out = data_dir / f"lang_test_{lm}"
    info = build_lang_test(data_dir / "lang", word_lm_arpa(data_dir, lm, order), out)
    if not info.get("skipped"):
        log.info("built %s: TLG %s", out / "TLG.fst", info["TLG"])
    return out


def model_logprobs(model_path: Path, feats_scp: Path, device: str = "cpu",
                   max_frames: int = 20000) -> Iterator[Tuple[str, np.ndarray]]:
    """(utt, (T', K) float32 log-probs) for every utterance of ``feats_scp``, in its order."""
    import kaldiio
    import torch

    from pipeline.train.data import Batch, Utterance, collate, make_batches
    from pipeline.train.stages import load_model

    net, _, _ = load_model(model_path, torch.device(device))
    entries = read_map(feats_scp)
    utts = [Utterance(u, rx, int(kaldiio.load_mat(rx).shape[0]), (), u) for u, rx in
            entries.items()]
    batches = make_batches(utts, max_frames, 64, seed=0, epoch=0, shuffle=False)
    out: Dict[str, np.ndarray] = {}
    with torch.no_grad():
        for b in batches:
            batch: Batch = collate([utts[i] for i in b]).to(torch.device(device))
            log_probs, lengths = net(batch.feats, batch.lengths)
            for k, utt in enumerate(batch.utts):
                out[utt] = log_probs[k, :int(lengths[k])].float().cpu().numpy()
    for utt in entries:
        yield utt, out[utt]


_WORKER: Dict[str, Decoder] = {}


def _init_worker(lang_test: str, config: dict) -> None:
    _WORKER["decoder"] = Decoder.from_lang_test(lang_test, DecoderConfig(**config))


def _decode_shard(args: Tuple[List[Tuple[str, np.ndarray]], List[float], str]):
    shard, weights, method = args
    res = decode_set(_WORKER["decoder"], shard, weights, method,
                     frame_shift_s=3 * FRAME_SHIFT_S)
    return res.hyps, res.rtf.summary(), res.not_final


def run_decode(cfg: DecodeConfig, force: bool = False) -> Dict[str, dict]:
    """Decode every set of ``cfg.sets``; returns per-set info (RTF, utterances, paths)."""
    from tqdm import tqdm

    data_dir, model = Path(cfg.data_dir), Path(cfg.model)
    if not model.is_file():
        raise DataError("model not found (run 'stnas retrain')", model)
    lang_test = lang_test_dir(data_dir, cfg.lm, cfg.lm_order)
    graph_k = json.loads((lang_test / "graph_info.json").read_text())["num_units"]
    dconf = {"beam": cfg.beam, "lattice_beam": cfg.lattice_beam, "max_active": cfg.max_active}
    summary: Dict[str, dict] = {}
    for name in cfg.sets:
        feats = data_dir / name / "feats.scp"
        if not feats.is_file():
            raise DataError("missing (run 'stnas prep')", feats)
        out = model.parent / f"decode_{name}_{cfg.lm}"
        sd = StageDir(out, force=force)
        if sd.is_done("decode"):
            log.info("%s is decoded already (use --force to redo)", out)
            summary[name] = json.loads((out / "decode_info.json").read_text())
            continue
        t0 = time.perf_counter()
        mats = list(model_logprobs(model, feats, cfg.device))
        forward_s = time.perf_counter() - t0
        if mats and mats[0][1].shape[1] != graph_k:
            raise StnasError(f"{model} outputs {mats[0][1].shape[1]} units but "
                             f"{lang_test / 'TLG.fst'} was built for {graph_k} (units.txt)")
        if cfg.write_logits:
            import kaldiio

            with kaldiio.WriteHelper(f"ark,scp:{out / 'logits.ark'},{out / 'logits.scp'}") as w:
                for utt, m in mats:
                    w(utt, m)
        nj = max(1, min(cfg.nj, len(mats)))
        shards = [(mats[j::nj], cfg.lm_weights, cfg.method) for j in range(nj)]
        hyps: Dict[float, Dict[str, List[str]]] = {w: {} for w in cfg.lm_weights}
        decode_s, audio_s, not_final = 0.0, 0.0, []
        t0 = time.perf_counter()
        with ProcessPoolExecutor(nj, mp_context=get_context("spawn"), initializer=_init_worker,
                                 initargs=(str(lang_test), dconf)) as pool, \
                tqdm(total=len(mats), desc=f"decode {name}", unit="utt",
                     disable=not cfg.progress) as bar:
            for shard_hyps, rtf, nf in pool.map(_decode_shard, shards):
                for w, h in shard_hyps.items():
                    hyps[w].update(h)
                decode_s += rtf["decode_seconds"]
                audio_s += rtf["audio_seconds"]
                not_final += nf
                bar.update(int(rtf["utterances"]))
        wall = time.perf_counter() - t0
        for w, h in hyps.items():
            write_map(out / "hyp" / f"{w:g}.txt", {u: " ".join(words) for u, words in h.items()})
        info = {"set": name, "utterances": len(mats), "lm": cfg.lm, "lm_weights": cfg.lm_weights,
                "audio_seconds": audio_s, "forward_seconds": round(forward_s, 3),
                "decode_cpu_seconds": round(decode_s, 3), "decode_wall_seconds": round(wall, 3),
                "rtf_per_core": decode_s / max(audio_s, 1e-9), "nj": nj,
                "not_final": not_final, "config": asdict(cfg), "lang_test": str(lang_test)}
        atomic_write_text(out / "decode_info.json", json.dumps(info, indent=2) + "\n")
        sd.write_stage_json("stnas decode", None, [model, lang_test / "TLG.fst", feats])
        sd.mark_done("decode")
        log.info("decoded %s: %d utterances, RTF per core %.4f (search only)", name, len(mats),
                 info["rtf_per_core"])
        summary[name] = info
    return summary


def read_hyps(decode_dir: Path) -> Dict[float, Dict[str, str]]:
    """LM weight → utt → hypothesis text, from ``decode_dir/hyp/<w>.txt``."""
    files = sorted((decode_dir / "hyp").glob("*.txt"))
    if not files:
        raise DataError("no hypotheses (run 'stnas decode')", decode_dir / "hyp")
    return {float(p.stem): read_map(p, allow_empty_value=True) for p in files}


def run_score(model_dir: Path, data_dir: Path, lm: str, dev: str, tests: Sequence[str],
              results: Optional[Path] = None, arch_name: str = "", use_sclite: bool = True
              ) -> Dict[str, dict]:
    """Choose the LM weight on ``dev``, score ``dev`` and ``tests`` with it, update RESULTS.md."""
    from pipeline.decode.results import ResultRow, update_results
    from pipeline.decode.scoring import choose_lm_weight, score_at_weight, score_sweep
    from pipeline.decode.stm_scoring import has_stm

    def ref(name: str) -> Dict[str, str]:
        return read_map(data_dir / name / "text", allow_empty_value=True)

    dev_dir = model_dir / f"decode_{dev}_{lm}"
    dev_results = score_sweep(ref(dev), read_hyps(dev_dir), dev_dir, use_sclite)
    weight = choose_lm_weight(dev_results)
    out = {dev: score_at_weight(ref(dev), read_hyps(dev_dir), weight, dev_dir, use_sclite)}
    for name in tests:
        d = model_dir / f"decode_{name}_{lm}"
        if has_stm(data_dir / name):
            out.update(_score_stm_at_weight(name, read_hyps(d), weight, data_dir / name, d))
        else:
            out[name] = score_at_weight(ref(name), read_hyps(d), weight, d, use_sclite)
    rows = []
    params = _params(model_dir)
    corpus = data_dir.name
    if (data_dir / "config.yaml").is_file():
        import yaml

        corpus = (yaml.safe_load((data_dir / "config.yaml").read_text()) or {}).get("corpus",
                                                                                    corpus)
    for name, res in out.items():
        rows.append(ResultRow(corpus=corpus, set=name, arch=arch_name or
                              model_dir.parent.name, params=params, lm=lm, lm_weight=weight,
                              wer=res.wer, sub=res.sub, dels=res.dels, ins=res.ins,
                              words=res.words,
                              decode_dir=str(model_dir / f"decode_{name.split('.')[0]}_{lm}")))
    if results is not None:
        update_results(results, rows)
    return {name: {"wer": r.wer, "lm_weight": weight,
                   "best_wer": r.wer_line(model_dir / f"decode_{name.split('.')[0]}_{lm}"
                                          / f"wer_{weight:g}")}
            for name, r in out.items()}


def _score_stm_at_weight(name: str, hyps: Dict[float, Dict[str, str]], weight: float,
                         set_dir: Path, decode_dir: Path) -> Dict[str, WerResult]:
    """Score a set that has an stm/glm at the dev-chosen weight: ``name`` and ``name.<subset>``.

    Writes ``wer_<w>`` and ``best_wer`` (whole set, then one line per subset) like
    :func:`~pipeline.decode.scoring.score_at_weight`.
    """
    from pipeline.decode.stm_scoring import score_stm

    if weight not in hyps:
        raise StnasError(f"no hypotheses at the chosen LM weight {weight}")
    parts = score_stm(hyps[weight], set_dir, decode_dir / "scoring", f"hyp_{weight:g}")
    lines = [r.wer_line(r.report or "") for r in parts.values()]
    atomic_write_text(decode_dir / f"wer_{weight:g}", "\n".join(lines) + "\n")
    atomic_write_text(decode_dir / "best_wer", "\n".join(lines) + "\n")
    return {f"{name}.{sub}" if sub else name: r for sub, r in parts.items()}


def _params(model_dir: Path) -> str:
    for name in ("avg.pt", "best.pt"):
        if (model_dir / name).is_file():
            from pipeline.nas.model import num_parameters
            from pipeline.train.stages import load_model

            net, _, _ = load_model(model_dir / name)
            return f"{num_parameters(net) / 1e6:.2f}M"
    return "?"
