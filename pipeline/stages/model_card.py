"""The model card of a package (its ``README.md``): what the model is, what it was trained on,
how well it does, what it costs, how to use it and how it was made.

:func:`model_card` renders facts the package writer gathered (:mod:`pipeline.stages.package`);
:func:`read_best_wer` reads a scored decode's ``best_wer`` without the paths it names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Optional

from pipeline.decode.package import FILES, MANIFEST, DecodingSpec, FeatureSpec
from pipeline.textfile import text_lines

_WER = re.compile(
    r"^%WER ([\d.]+) \[ (\d+) / (\d+), (\d+) ins, (\d+) del, (\d+) sub \]", re.MULTILINE
)
_CI = re.compile(r"^%WER 95 % interval \[([\d.]+), ([\d.]+)\]", re.MULTILINE)
_OOV = re.compile(r"^%OOV ([\d.]+)", re.MULTILINE)

WHAT = {
    "model.safetensors": "the weights (safetensors)",
    "arch.json": "the network: one op per block, widths, sub-sampling",
    "units.txt": "output units: `<blk> 0`, then the phones",
    "words.txt": "word table of the graph",
    "lexicon.txt": "decoding lexicon: the LM's words with their pronunciations",
    "TLG.fst": "decoding graph (OpenFst binary)",
    "lm.arpa": "the word LM the graph was built from",
    "fbank.conf": "Kaldi fbank options",
    "features.json": "sample rate, CMVN, deltas, input dimension",
    "decoding.json": "word LM, LM weight and word penalty, beams",
    "README.md": "this card",
}


def read_best_wer(path: Path) -> Optional[Dict[str, Any]]:
    """The first ``%WER`` line of a ``best_wer`` (the whole set), its 95 % interval and OOV
    rate: ``{"wer", "errors", "words", "ins", "del", "sub", "ci", "oov"}``; None when the
    file is missing or holds no ``%WER`` line."""
    if not path.is_file():
        return None
    text = "".join(text_lines(path))
    m = _WER.search(text)
    if m is None:
        return None
    ci, oov = _CI.search(text), _OOV.search(text)
    ins, dels, sub = int(m.group(4)), int(m.group(5)), int(m.group(6))
    return {
        "wer": float(m.group(1)),
        "errors": int(m.group(2)),
        "words": int(m.group(3)),
        "ins": ins,
        "del": dels,
        "sub": sub,
        "ci": (float(ci.group(1)), float(ci.group(2))) if ci else None,
        "oov": float(oov.group(1)) if oov else None,
    }


def arpa_counts(path: Path) -> Dict[int, int]:
    """n-gram counts from the ``\\data\\`` section of an ARPA file (order → count)."""
    counts: Dict[int, int] = {}
    for line in text_lines(path):
        line = line.strip()
        m = re.match(r"^ngram (\d+)\s*=\s*(\d+)$", line)
        if m:
            counts[int(m.group(1))] = int(m.group(2))
        elif line.endswith("-grams:"):
            break
    return counts


def _millions(x: float) -> str:
    return f"{x / 1e6:.2f} M"


def _per(held_out: Dict[str, Any]) -> str:
    ci = held_out.get("per_ci95")
    shown = f"{held_out['per']:.2f} %"
    return shown + (f" (95 % interval [{ci[0]:.2f}, {ci[1]:.2f}])" if ci else "")


def _results(results: Dict[str, Optional[Dict[str, Any]]], decoding: DecodingSpec) -> List[str]:
    scored = {k: v for k, v in results.items() if v}
    setting = (
        f"LM `{decoding.lm}`, LM weight {decoding.lm_weight:g}, word penalty "
        f"{decoding.word_penalty:g} ({'given' if decoding.chosen_on == 'given' else 'chosen on ' + decoding.chosen_on})"
    )
    if not scored:
        return [f"Not scored here (decode and score dev and test to report them). {setting}."]
    lines = [
        f"Scored by `stnas score` at {setting}; the interval is a bootstrap over utterances.",
        "",
        "| set | %WER | 95 % interval | errors / words | ins | del | sub | %OOV |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in scored.items():
        ci = f"[{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]" if r["ci"] else "?"
        oov = f"{r['oov']:.2f}" if r["oov"] is not None else "?"
        lines.append(
            f"| {name} | {r['wer']:.2f} | {ci} | {r['errors']} / {r['words']} | {r['ins']} | "
            f"{r['del']} | {r['sub']} | {oov} |"
        )
    missing = [k for k, v in results.items() if not v]
    if missing:
        lines += ["", f"Not scored: {', '.join(missing)}."]
    return lines


def model_card(facts: Dict[str, Any]) -> str:
    """``README.md`` of a package from the writer's facts (see :mod:`pipeline.stages.package`)."""
    feats: FeatureSpec = facts["features"]
    decoding: DecodingSpec = facts["decoding"]
    costs, train, model, graph = facts["costs"], facts["training"], facts["model"], facts["graph"]
    hours = f"{train['hours']:.2f} hours" if train.get("hours") is not None else "hours unknown"
    ngrams = ", ".join(f"{n}-grams {c:,}" for n, c in sorted(graph["ngrams"].items()))
    averaged = model.get("averaged")
    out = [
        f"# stnas model: {facts['title']}",
        "",
        "A speech recogniser packaged by `stnas package`: a TDNN acoustic model (its "
        "architecture searched by ST-NAS or designed by hand), trained with the CTC-CRF loss, "
        "and a WFST decoding graph. Everything here is data: no file holds code, and "
        f"`{MANIFEST}` lists the sha256 of every file, which the readers check.",
        "",
        "## Use",
        "",
        "```",
        "stnas transcribe --model THIS_DIR audio.wav more/ --out-dir out   # text and CTM",
        "stnas export --model THIS_DIR --format onnx --out am.onnx         # the network alone",
        "```",
        "",
        "## Training data",
        "",
        f"Corpus `{train.get('corpus', '?')}`"
        + (f" (prepared with --hours {train['prep_hours']:g})" if train.get("prep_hours") else "")
        + f"; training set `{train.get('set', '?')}`: {train.get('utterances', '?')} utterances, "
        + f"{hours} (speed-perturbed copies included when the name ends in _sp).",
        "",
        "## Results",
        "",
        *_results(facts["results"], decoding),
        "",
        "## Network",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | `{facts['title'].replace('|', chr(92) + '|')}` |",
        f"| parameters | {_millions(costs['params'])} ({int(costs['params']):,}) |",
        f"| multiply-adds per second of audio | {_millions(costs['macs'])} |",
        f"| look-ahead (right context) | {costs['lookahead']:g} ms |",
        f"| output units K | {facts['num_units']} (blank + {facts['num_units'] - 1} phones) |",
        f"| weights | {model.get('stage', '?')} stage, epoch {model.get('epoch', '?')}"
        + (f", averaged over {len(averaged)} epochs" if averaged else "")
        + (
            f"; held-out loss {model['held_out_loss']:.4f} per frame"
            if isinstance(model.get("held_out_loss"), float)
            else ""
        )
        + " |",
        *(
            [f"| held-out phone error rate (greedy) | {_per(facts['held_out'])} |"]
            if isinstance(facts.get("held_out"), dict) and "per" in facts["held_out"]
            else []
        ),
        "",
        "## Features and decoding",
        "",
        f"Mono audio at {feats.sample_rate} Hz → fbank (`fbank.conf`) → CMVN (means"
        + (" and variances" if feats.norm_vars else "")
        + " over the speaker's utterances with --utt2spk, else over the utterance) → Δ+ΔΔ "
        f"(order {feats.delta_order}, window {feats.delta_window}) → {feats.input_dim} "
        f"dimensions; one output frame per {feats.output_frame_shift_s * 1000:g} ms.",
        "",
        f"`TLG.fst`: {graph.get('vocabulary', '?')} words, built from `lexicon.txt` and "
        f"`lm.arpa` (word LM `{decoding.lm}`: {ngrams}); beam {decoding.beam:g}, "
        f"at most {decoding.max_active} active tokens.",
        "",
        "## Files",
        "",
        "| file | bytes | what |",
        "|---|---:|---|",
        *[
            f"| `{n}` | {facts['files'].get(n, 0):,} | {WHAT[n]} |"
            for n in FILES
            if n != "README.md"
        ],
        f"| `{MANIFEST}` | | size and sha256 of every other file |",
        "",
        "## Provenance",
        "",
        f"stnas {facts['version']}, commit `{facts['git_sha'] or 'unknown'}`, "
        f"made {facts['created']} by",
        "",
        "```",
        facts["command"],
        "```",
        "",
    ]
    return "\n".join(out)
