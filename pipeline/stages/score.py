"""The score stage: the decoding setting chosen on dev, applied to test; best_wer and RESULTS.md.

Every setting decoded on dev is scored, the best one (LM weight, word insertion penalty) is
chosen **on dev**, and only that one is scored on the test sets, which the decode stage
decoded at that setting alone (:mod:`pipeline.stages.decode`). sclite reports go to
``scoring/``, Kaldi ``best_wer`` lines (WER, then the OOV rate) to each decode dir, and a row
per set to ``RESULTS.md``.

Nothing stale is reported: every decode dir must be finished and built from the model and
graph files as they are now (their fingerprints, :mod:`pipeline.stages.record`), all from one model.
The OOV rate of a set is the share of its reference words that the decoding graph cannot
output (not in ``lang_test_<lm>/lexicon.txt``: no LM entry or no pronunciation).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from pipeline.data.datadir import SKIPPED_TEXT, read_map, read_reference
from pipeline.data.layout import corpus_of
from pipeline.decode.decoder import Setting, as_setting
from pipeline.decode.interval import interval_text, wer_interval
from pipeline.decode.results import ResultRow, update_results
from pipeline.decode.scoring import (
    WerResult,
    choose_setting,
    score_at_weight,
    score_sweep,
    setting_name,
)
from pipeline.decode.stm_scoring import has_stm, score_stm
from pipeline.errors import DataError, StaleResultError, StnasError
from pipeline.io import atomic_write_text, fingerprint
from pipeline.lang.graphs import decoding_vocabulary
from pipeline.nas.model import num_parameters
from pipeline.stages.record import finished_record
from pipeline.stages.runner import session
from pipeline.train.checkpoint import load_model

log = logging.getLogger(__name__)


def read_hyps(decode_dir: Path) -> Dict[Setting, Dict[str, str]]:
    """(LM weight, word penalty) → utt → hypothesis, from ``decode_dir/hyp/<w>_<p>.txt``
    (``<w>.txt``, from decodes without a penalty, reads as penalty 0)."""
    files = sorted((decode_dir / "hyp").glob("*.txt"))
    if not files:
        raise DataError("no hypotheses (run 'stnas decode')", decode_dir / "hyp")
    out = {}
    for p in files:
        try:
            key = as_setting(
                [float(x) for x in p.stem.split("_")] if "_" in p.stem else float(p.stem)
            )
        except ValueError:
            raise DataError("not a hypothesis file name (<lm_weight>_<penalty>.txt)", p) from None
        out[key] = read_map(p, allow_empty_value=True)
    return out


def check_fresh(decode_dir: Path, known: Optional[Dict[str, Optional[str]]] = None) -> dict:
    """The decode info of a finished decode whose model and graph are unchanged.

    ``known`` caches fingerprints by path across calls (the sets share model and graph).

    Raises:
        StnasError: not decoded (or not finished).
        StaleResultError: the model or graph file changed since it was decoded.
    """
    record = finished_record(decode_dir)
    if record is None:
        raise StnasError(f"{decode_dir}: not decoded (run 'stnas decode')")
    info = json.loads((decode_dir / "decode_info.json").read_text())
    rec = record.get("inputs") or {}
    known = {} if known is None else known
    for name in ("model", "graph"):
        entry = rec.get(name)
        if not isinstance(entry, dict):
            continue  # decoded before fingerprints were recorded
        path = Path(entry["path"])
        if str(path) not in known:
            known[str(path)] = fingerprint(path) if path.is_file() else None
        if known[str(path)] != entry["fingerprint"]:
            raise StaleResultError(
                f"{decode_dir} is stale: its {name} {path} has changed (or gone) since it was "
                "decoded; run 'stnas decode --force' to decode again"
            )
    info["model_fingerprint"] = (rec.get("model") or {}).get("fingerprint")
    return info


def oov_count(ref: Dict[str, str], vocab: Set[str]) -> Tuple[int, int]:
    """(reference words the graph cannot output, reference words)."""
    words = [w for t in ref.values() for w in t.split()]
    return sum(1 for w in words if w not in vocab), len(words)


def run_score(
    model_dir: Path,
    data_dir: Path,
    lm: str,
    dev: str,
    tests: Sequence[str],
    results: Optional[Path] = None,
    arch_name: str = "",
    use_sclite: bool = True,
) -> Dict[str, dict]:
    """Choose the setting on ``dev``, score ``dev`` and ``tests`` with it, update RESULTS.md.

    Reads only finished decodes, under their stage locks (shared: no decode may redo them
    meanwhile), and logs to ``<model_dir>/log/score_<lm>.log``.

    Raises:
        StaleResultError: a decode dir built from a model or graph that changed since.
        StnasError: a test set decoded at another setting than the one dev chooses now.
    """
    decodes = [model_dir / f"decode_{name}_{lm}" for name in [dev, *tests]]
    locks = [(d, True) for d in [data_dir, *decodes] if d.is_dir()]
    with session(model_dir / "log" / f"score_{lm}.log", locks):
        return _score(model_dir, data_dir, lm, dev, tests, results, arch_name, use_sclite)


def _score(
    model_dir: Path,
    data_dir: Path,
    lm: str,
    dev: str,
    tests: Sequence[str],
    results: Optional[Path],
    arch_name: str,
    use_sclite: bool,
) -> Dict[str, dict]:
    def ref(name: str) -> Dict[str, str]:  # skipped utterances included: deletions
        return read_reference(data_dir / name)

    dirs = {name: model_dir / f"decode_{name}_{lm}" for name in [dev, *tests]}
    known: Dict[str, Optional[str]] = {}
    infos = {name: check_fresh(d, known) for name, d in dirs.items()}
    models = {i["model_fingerprint"] for i in infos.values() if i.get("model_fingerprint")}
    if len(models) > 1:
        raise StaleResultError(
            f"the decodes of {', '.join(dirs)} come from different models; "
            "decode them all again with 'stnas decode --force'"
        )
    dev_hyps = read_hyps(dirs[dev])
    setting = choose_setting(score_sweep(ref(dev), dev_hyps, dirs[dev], use_sclite))
    vocab = decoding_vocabulary(infos[dev]["lang_test"])
    oov = {name: oov_count(ref(name), vocab) for name in dirs}

    def extra(name: str):
        n, words = oov[name]
        lines = [
            f"%OOV {100.0 * n / max(words, 1):.2f} [ {n} / {words} reference words are "
            f"not in the decoding vocabulary {infos[name]['lang_test']}/lexicon.txt ]"
        ]
        skipped = data_dir / name / SKIPPED_TEXT
        if skipped.is_file():
            left = read_map(skipped)
            w = sum(len(v.split()) for v in left.values())
            lines.append(
                f"%SKIPPED {len(left)} utterances ({w} words) left out by prep "
                f"--skip-bad are scored as deletions (see {data_dir / name}/"
                "bad_utts.txt)"
            )
        return lines

    cis = {dev: wer_interval(ref(dev), dev_hyps[setting])}

    def with_ci(name: str) -> List[str]:
        return extra(name) + [
            f"%WER 95 % interval {interval_text(cis[name])} (bootstrap over the "
            f"{len(ref(name))} utterances, pipeline/decode/interval.py)"
        ]

    out = {dev: score_at_weight(ref(dev), dev_hyps, setting, dirs[dev], use_sclite, with_ci(dev))}
    for name in tests:
        hyps = read_hyps(dirs[name])
        if setting not in hyps:
            raise StnasError(
                f"{dirs[name]} was decoded at {', '.join(map(setting_name, hyps))}"
                f" but dev now chooses {setting_name(setting)}: decode it again "
                "('stnas decode --force')"
            )
        if has_stm(data_dir / name):  # scored against the stm with its glm: no interval here
            out.update(_score_stm_at(name, hyps, setting, data_dir / name, dirs[name], extra(name)))
        else:
            if setting in hyps:
                cis[name] = wer_interval(ref(name), hyps[setting])
            out[name] = score_at_weight(
                ref(name), hyps, setting, dirs[name], use_sclite, with_ci(name)
            )
    params = _params(Path(infos[dev]["model"]))
    corpus = corpus_of(data_dir)
    rows = []
    for name, res in out.items():
        n, words = oov[name.split(".")[0]]
        rows.append(
            ResultRow(
                corpus=corpus,
                set=name,
                arch=arch_name or model_dir.parent.name,
                params=params,
                lm=lm,
                lm_weight=setting[0],
                word_penalty=setting[1],
                wer=res.wer,
                sub=res.sub,
                dels=res.dels,
                ins=res.ins,
                words=res.words,
                oov=f"{100.0 * n / max(words, 1):.2f}",
                decode_dir=str(dirs[name.split(".")[0]]),
                ci=interval_text(cis[name]) if name in cis else "?",
            )
        )
    if results is not None:
        update_results(results, rows)
    return {
        name: {
            "wer": r.wer,
            "wer_ci95": list(cis[name]) if name in cis else None,
            "lm_weight": setting[0],
            "word_penalty": setting[1],
            "oov_rate": 100.0 * oov[name.split(".")[0]][0] / max(oov[name.split(".")[0]][1], 1),
            "best_wer": r.wer_line(dirs[name.split(".")[0]] / f"wer_{setting_name(setting)}"),
        }
        for name, r in out.items()
    }


def _score_stm_at(
    name: str,
    hyps: Dict[Setting, Dict[str, str]],
    setting: Setting,
    set_dir: Path,
    decode_dir: Path,
    extra: Sequence[str] = (),
) -> Dict[str, WerResult]:
    """Score a set that has an stm/glm at the dev-chosen setting: ``name`` and
    ``name.<subset>``. Writes ``wer_<setting>`` and ``best_wer`` (whole set, then one line
    per subset, then ``extra``) like :func:`~pipeline.decode.scoring.score_at_weight`."""
    tag = setting_name(setting)
    parts = score_stm(hyps[setting], set_dir, decode_dir / "scoring", f"hyp_{tag}")
    lines = [r.wer_line(r.report or "") for r in parts.values()]
    atomic_write_text(decode_dir / f"wer_{tag}", "\n".join(lines) + "\n")
    atomic_write_text(decode_dir / "best_wer", "\n".join(lines + list(extra)) + "\n")
    return {f"{name}.{sub}" if sub else name: r for sub, r in parts.items()}


def _params(model: Path) -> str:
    if not model.is_file():
        return "?"
    net, _, _ = load_model(model)
    return f"{num_parameters(net) / 1e6:.2f}M"
