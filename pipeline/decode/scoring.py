"""Word error rate by sclite (Kaldi's ``score_sclite.sh`` way) with a pure-Python fallback.

Reference and hypothesis ``text`` maps (utt -> words) become Kaldi-style ``trn`` files
(``w1 w2 ... (utt-id)``); sclite writes ``<name>.sys`` (summary), ``<name>.dtl`` (detailed
counts) and ``<name>.pra`` (alignments) into ``scoring/``, and the counts are read back from
``.dtl`` and checked against ``.sys``. Without sclite (Debian ``sctk``:
``/usr/lib/sctk/bin/sclite`` or ``sctk sclite``) the same numbers come from
:func:`align_like_sclite`, a pure-Python alignment with sclite's costs (insertion and
deletion 3, substitution 4) and sclite's preference among equal-cost alignments (match or
substitution, then insertion, then deletion, in a left-to-right dynamic programme; a rule
found by comparing with sclite 2.10 on thousands of random utterances), written to the same
three files in a reduced format. ``kaldialign.edit_distance(sclite_mode=True)`` has
the costs but breaks ties differently (about one utterance in 150 of random text gets other
sub/del/ins counts than sclite), so it is not used. Scoring is case-sensitive (``sclite -s``).

The decoding setting (LM weight and word insertion penalty) is chosen on dev
(:func:`choose_setting`: lowest WER) and only that setting is scored on test
(:func:`score_at_weight`), so test never influences the choice.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from pipeline.decode.align import align_like_sclite
from pipeline.errors import DataError, StnasError
from pipeline.io import atomic_write_text

if TYPE_CHECKING:  # decoder imports kaldi_decoder: not needed to score
    from pipeline.decode.decoder import SettingKey, SettingT

PathLike = Union[str, Path]
Text = Mapping[str, Union[str, Sequence[str]]]
log = logging.getLogger(__name__)

SCLITE_PATH = "/usr/lib/sctk/bin/sclite"
_BAD_ID = re.compile(r"[\s()]")
_BAD_WORD = re.compile(r"[(){}]|^@$")  # trn syntax: optional words, alternations, null word


@dataclass
class WerResult:
    """Error counts of one scored hypothesis set.

    Attributes:
        sub, dels, ins: substitutions, deletions, insertions.
        words: reference words.
        sentences: scored utterances; sentence_errors: those with any error.
        source: ``"sclite"`` or ``"python"`` (the fallback).
        report: the file the numbers were read from (``.dtl``).
    """

    sub: int
    dels: int
    ins: int
    words: int
    sentences: int
    sentence_errors: int
    source: str
    report: Optional[Path] = None

    @property
    def errors(self) -> int:
        """Substitutions + deletions + insertions."""
        return self.sub + self.dels + self.ins

    @property
    def wer(self) -> float:
        """Word error rate in percent (inf with errors but no reference words)."""
        if self.words == 0:
            return 0.0 if self.errors == 0 else math.inf
        return 100.0 * self.errors / self.words

    def wer_line(self, path: PathLike) -> str:
        """Kaldi's form: ``%WER 12.34 [ 56 / 454, 10 ins, 20 del, 26 sub ] <path>``."""
        return (
            f"%WER {self.wer:.2f} [ {self.errors} / {self.words}, {self.ins} ins, "
            f"{self.dels} del, {self.sub} sub ] {path}"
        )


def _words(value: Union[str, Sequence[str]]) -> List[str]:
    return value.split() if isinstance(value, str) else list(value)


def write_trn(path: PathLike, text: Text, utts: Optional[Sequence[str]] = None) -> None:
    """Write a ``trn`` file: ``w1 w2 ... (utt-id)`` per utterance, atomically.

    Args:
        path: output file.
        text: utt -> words (a string or a list).
        utts: the utterances to write, in order (missing ones get an empty line);
            default: ``text``'s keys, sorted.

    Raises:
        DataError: an utterance id with whitespace or parentheses, or a word with
            parentheses or braces or a lone ``@`` (trn syntax, sclite would misread them).
    """
    order = list(utts) if utts is not None else sorted(text)
    lines = []
    for utt in order:
        if _BAD_ID.search(utt) or not utt:
            raise DataError(f"utterance id {utt!r} cannot be written to a trn file", path)
        words = _words(text.get(utt, ""))
        bad = [w for w in words if _BAD_WORD.search(w)]
        if bad:
            raise DataError(f"words {bad[:3]} hold trn syntax characters", path, utt=utt)
        lines.append(" ".join(words + [f"({utt})"]) + "\n")
    atomic_write_text(path, "".join(lines))


def find_sclite() -> Optional[List[str]]:
    """The command that runs sclite (``sclite`` on PATH, Debian's path, or ``sctk sclite``)."""
    sclite = shutil.which("sclite")
    if sclite:
        return [sclite]
    if Path(SCLITE_PATH).is_file():
        return [SCLITE_PATH]
    sctk = shutil.which("sctk")
    if sctk:
        return [sctk, "sclite"]
    return None


_DTL_FIELDS = {
    "errors": r"Percent Total Error\s*=\s*[\d.]+%\s*\(\s*(\d+)\)",
    "sub": r"Percent Substitution\s*=\s*[\d.]+%\s*\(\s*(\d+)\)",
    "dels": r"Percent Deletions\s*=\s*[\d.]+%\s*\(\s*(\d+)\)",
    "ins": r"Percent Insertions\s*=\s*[\d.]+%\s*\(\s*(\d+)\)",
    "words": r"Ref\. words\s*=\s*\(\s*(\d+)\)",
    "sentences": r"^\s*sentences\s+(\d+)",
    "sentence_errors": r"^\s*with errors\s+[\d.]+%\s*\(\s*(\d+)\)",
}
_SYS_SUM = re.compile(
    r"\|\s*Sum/Avg\s*\|\s*(\d+)\s+(\d+)\s*\|\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)"
    r"\s+([\d.]+)\s+([\d.]+)"
)


def parse_dtl(path: PathLike, source: str = "sclite") -> WerResult:
    """Counts from a ``.dtl`` report (sclite's detailed overall report)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("scoring report not found", path)
    text = path.read_text(encoding="utf-8", errors="replace")
    found: Dict[str, int] = {}
    for key, pattern in _DTL_FIELDS.items():
        m = re.search(pattern, text, flags=re.MULTILINE)
        if m is None:
            raise DataError(f"no '{key}' count in the report", path)
        found[key] = int(m.group(1))
    res = WerResult(
        found["sub"],
        found["dels"],
        found["ins"],
        found["words"],
        found["sentences"],
        found["sentence_errors"],
        source,
        path,
    )
    if res.errors != found["errors"]:
        raise DataError(f"total errors {found['errors']} != sub+del+ins {res.errors}", path)
    return res


def parse_sys(path: PathLike) -> Dict[str, float]:
    """The ``Sum/Avg`` row of a ``.sys`` report: sentences, words and the percentages."""
    path = Path(path)
    m = (
        _SYS_SUM.search(path.read_text(encoding="utf-8", errors="replace"))
        if path.is_file()
        else None
    )
    if m is None:
        raise DataError("no Sum/Avg row in the sclite summary", path)
    keys = ("sentences", "words", "corr", "sub", "del", "ins", "err")
    return {k: float(v) for k, v in zip(keys, m.groups())}


def run_sclite(
    ref_trn: PathLike,
    hyp_trn: PathLike,
    out_dir: PathLike,
    name: str,
    command: Optional[List[str]] = None,
    formats: Tuple[str, str] = ("trn", "trn"),
) -> WerResult:
    """Score ``hyp_trn`` against ``ref_trn`` with sclite into ``out_dir/<name>.{sys,dtl,pra}``.

    ``formats`` are the (reference, hypothesis) formats: ``("trn", "trn")`` scores
    case-sensitively by utterance id; ``("stm", "ctm")`` scores NIST style with fragments and
    optionally deletable words (``-F -D``), case-insensitively as ``hubscr.pl`` does.
    """
    command = command or find_sclite()
    if command is None:
        raise StnasError("sclite not found (install the Debian package sctk)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mode = ["-i", "rm", "-s", "-e", "utf-8"] if formats == ("trn", "trn") else ["-F", "-D"]
    args = command + [
        "-r",
        str(ref_trn),
        formats[0],
        "-h",
        str(hyp_trn),
        formats[1],
        *mode,
        "-o",
        "sum",
        "pralign",
        "dtl",
        "-O",
        str(out_dir),
        "-n",
        name,
    ]
    proc = subprocess.run(args, capture_output=True, text=True)
    atomic_write_text(out_dir / f"{name}.log", " ".join(args) + "\n" + proc.stdout + proc.stderr)
    if proc.returncode != 0 or "Successful Completion" not in proc.stdout:
        raise StnasError(f"sclite failed (exit {proc.returncode}); see {out_dir / name}.log")
    res = parse_dtl(out_dir / f"{name}.dtl")
    summary = parse_sys(out_dir / f"{name}.sys")
    if int(summary["words"]) != res.words or int(summary["sentences"]) != res.sentences:
        raise DataError("sclite .sys and .dtl disagree on words/sentences", out_dir / name)
    return res


def score_python(ref: Text, hyp: Text, out_dir: PathLike, name: str) -> WerResult:
    """The fallback without sclite; writes reduced ``.sys``/``.dtl``/``.pra`` files."""
    out_dir = Path(out_dir)
    sub = dels = ins = words = sent_err = 0
    pra = []
    for utt in sorted(ref):
        r, h = _words(ref[utt]), _words(hyp.get(utt, ""))
        ali, s, d, i = align_like_sclite(r, h)
        sub, dels, ins, words = sub + s, dels + d, ins + i, words + len(r)
        sent_err += (s + d + i) > 0
        pra += [
            f"id: ({utt})",
            f"Scores: (#C #S #D #I) {len(r) - s - d} {s} {d} {i}",
            "REF:  " + " ".join(a for a, _ in ali),
            "HYP:  " + " ".join(b for _, b in ali),
            "",
        ]
    res = WerResult(sub, dels, ins, words, len(ref), sent_err, "python", out_dir / f"{name}.dtl")

    def pct(n: int) -> float:
        return 100.0 * n / words if words else 0.0

    dtl = [
        f"DETAILED OVERALL REPORT (python fallback, sclite costs): {name}",
        "",
        f" sentences {len(ref)}",
        f" with errors {100.0 * sent_err / max(len(ref), 1):.1f}% ( {sent_err})",
        "",
        f"Percent Total Error       = {pct(res.errors):5.1f}%   ( {res.errors})",
        f"Percent Substitution      = {pct(sub):5.1f}%   ( {sub})",
        f"Percent Deletions         = {pct(dels):5.1f}%   ( {dels})",
        f"Percent Insertions        = {pct(ins):5.1f}%   ( {ins})",
        f"Ref. words                =           ( {words})",
        "",
    ]
    atomic_write_text(out_dir / f"{name}.dtl", "\n".join(dtl))
    atomic_write_text(out_dir / f"{name}.pra", "\n".join(pra))
    atomic_write_text(
        out_dir / f"{name}.sys",
        f"| Sum/Avg| {len(ref)} {words} | {pct(words - sub - dels):.1f} "
        f"{pct(sub):.1f} {pct(dels):.1f} {pct(ins):.1f} {pct(res.errors):.1f} |\n",
    )
    return res


def score(
    ref: Text, hyp: Text, scoring_dir: PathLike, name: str, use_sclite: bool = True
) -> WerResult:
    """Write ``ref.trn`` / ``<name>.trn`` into ``scoring_dir`` and score them.

    Args:
        ref: utt -> reference words (the data dir's ``text``).
        hyp: utt -> hypothesis words; an utterance missing here counts as all deleted.
        scoring_dir: e.g. ``decode_test_tg/scoring``.
        name: root name of the reports, e.g. ``hyp_0.8``.
        use_sclite: False forces the Python fallback.

    Raises:
        DataError: hypotheses for utterances the reference lacks.
    """
    scoring_dir = Path(scoring_dir)
    extra = sorted(set(hyp) - set(ref))
    if extra:
        raise DataError(f"{len(extra)} hypotheses have no reference, e.g. {extra[0]}", utt=extra[0])
    missing = sorted(set(ref) - set(hyp))
    if missing:
        log.warning(
            "%d utterances have no hypothesis (scored as empty), e.g. %s", len(missing), missing[0]
        )
    utts = sorted(ref)
    write_trn(scoring_dir / "ref.trn", ref, utts)
    write_trn(scoring_dir / f"{name}.trn", hyp, utts)
    command = find_sclite() if use_sclite else None
    if command is None:
        if use_sclite:
            log.info("sclite not found; scoring with the Python fallback (sclite's costs)")
        return score_python(ref, hyp, scoring_dir, name)
    return run_sclite(
        scoring_dir / "ref.trn", scoring_dir / f"{name}.trn", scoring_dir, name, command
    )


def setting_name(setting: SettingKey) -> str:
    """File-name form of a decoding setting: ``1.5`` for an LM weight, ``1.5_0.5`` for
    ``(lm_weight, word_penalty)`` (Kaldi's ``wer_<lmwt>_<wip>``)."""
    if isinstance(setting, (tuple, list)):
        return "_".join(f"{float(x):g}" for x in setting)
    return f"{float(setting):g}"


def score_sweep(
    ref: Text, hyps: Mapping[SettingT, Text], decode_dir: PathLike, use_sclite: bool = True
) -> Dict[SettingT, WerResult]:
    """Score every setting: ``scoring/hyp_<setting>.*`` and ``wer_<setting>`` (Kaldi-style)."""
    decode_dir = Path(decode_dir)
    results = {}
    for key in sorted(hyps):
        name = setting_name(key)
        res = score(ref, hyps[key], decode_dir / "scoring", f"hyp_{name}", use_sclite)
        atomic_write_text(decode_dir / f"wer_{name}", res.wer_line(res.report or "") + "\n")
        results[key] = res
    return results


def choose_setting(dev_results: Mapping[SettingT, WerResult]) -> SettingT:
    """The setting with the lowest dev WER (ties: the smaller LM weight, then penalty)."""
    if not dev_results:
        raise StnasError("no dev results to choose an LM weight from")
    return min(dev_results, key=lambda s: (dev_results[s].errors / max(dev_results[s].words, 1), s))


choose_lm_weight = choose_setting  # the name for LM-weight-only sweeps


def write_best_wer(
    decode_dir: PathLike, result: WerResult, setting: SettingKey, extra: Sequence[str] = ()
) -> str:
    """Write ``decode_dir/best_wer`` (a Kaldi ``%WER`` line, then ``extra`` lines such as the
    OOV rate) and return the ``%WER`` line."""
    decode_dir = Path(decode_dir)
    line = result.wer_line(decode_dir / f"wer_{setting_name(setting)}")
    atomic_write_text(decode_dir / "best_wer", "\n".join([line, *extra]) + "\n")
    return line


def score_at_weight(
    ref: Text,
    hyps: Mapping[SettingT, Text],
    setting: SettingT,
    decode_dir: PathLike,
    use_sclite: bool = True,
    extra: Sequence[str] = (),
) -> WerResult:
    """Score only the hypotheses of ``setting`` (chosen on dev) and write ``best_wer``.

    Args:
        ref: utt -> reference words of this (test) set.
        hyps: setting -> utt -> words; only ``hyps[setting]`` is read.
        setting: the LM weight or ``(lm_weight, word_penalty)`` chosen on dev.
        decode_dir: the test decode dir.
        extra: more lines for ``best_wer`` (e.g. the OOV rate).
    """
    if setting not in hyps:
        raise StnasError(
            f"no hypotheses at the chosen setting {setting_name(setting)} "
            f"(have: {', '.join(setting_name(k) for k in sorted(hyps))})"
        )
    res = score_sweep(ref, {setting: hyps[setting]}, decode_dir, use_sclite)[setting]
    write_best_wer(decode_dir, res, setting, extra)
    return res
