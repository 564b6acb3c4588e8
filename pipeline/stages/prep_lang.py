"""Prep's ``lang`` sub-step and the word LM a user brings: the lexicon with the words outside
the dictionary listed (``local/oov.txt``) and, with ``--g2p espeak``, pronounced
(``local/dict/lexicon_g2p.txt``, which the user may edit: an edited file makes the next
``stnas prep`` redo ``lang`` and what depends on it); ``--lm-arpa FILE`` installed as the
``tg`` word LM.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Dict, List, Set

from pipeline.data.layout import EVAL_SETS
from pipeline.io import atomic_write_text
from pipeline.lang.g2p import count_oovs, g2p_lexicon, write_oov_list
from pipeline.lang.graphs import read_arpa_vocabulary
from pipeline.lang.lexicon import (
    read_lexicon,
    units_from_lexicon,
    write_lexicon,
    write_units,
    write_words,
)
from pipeline.lang.lm_data import GIVEN_ARPA
from pipeline.stages.prep_config import PrepConfig
from pipeline.stages.runner import StageRun
from pipeline.textfile import read_text

log = logging.getLogger(__name__)
G2P_LEXICON = Path("local") / "dict" / "lexicon_g2p.txt"
OOV_LIST = Path("local") / "oov.txt"
# sub-steps that read the lexicon: redone when lexicon_g2p.txt was edited
_READS_LEXICON = ("lang", "labels_", "validate", "den")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lm_words(d: Path) -> Set[str]:
    """Words of the LM text pool (tts) and of a given ARPA LM: they need pronunciations too."""
    words: Set[str] = set()
    text = d / "local" / "lm" / "text"
    if text.is_file():
        words.update(read_text(text).split())
    arpa = d / "local" / "lm" / "tg.arpa"
    if arpa.is_file() and (d / "local" / "lm" / "tg.json").is_file():
        if json.loads(read_text(arpa.with_suffix(".json"))).get("source") == GIVEN_ARPA:
            words.update(read_arpa_vocabulary(arpa))
    return {w for w in words if not (w.startswith("<") and w.endswith(">"))}


def make_lang(d: Path, cfg: PrepConfig, train: str) -> Dict[str, object]:
    """``lang/{lexicon.txt, units.txt, words.txt}`` from ``local/dict/lexicon.txt``, listing
    the words of train/dev/test outside it in ``local/oov.txt`` and, with ``g2p: espeak``,
    adding pronunciations for those of train and of the LM's text."""
    lex = read_lexicon(d / "local" / "dict" / "lexicon.txt")
    texts = {s: d / s / "text" for s in ("train", *EVAL_SETS) if (d / s / "text").is_file()}
    oovs = count_oovs(texts, lex)
    write_oov_list(d / OOV_LIST, oovs)
    total = {s: sum(c.values()) for s, c in oovs.items()}
    info: Dict[str, object] = {"oov_tokens": total}
    if cfg.g2p == "espeak":
        wanted = sorted(
            w
            for w in set(oovs.get("train", {})) | (_lm_words(d) - set(lex))
            if not w.startswith(("<", "["))  # noise and tag tokens: <NOISE>, [LAUGHTER]
        )
        # schwa as the dictionary writes it: Festival's CMU dictionary has AX
        ax = any(p.rstrip("012") == "AX" for prons in lex.values() for pr in prons for p in pr)
        made = g2p_lexicon(d / G2P_LEXICON, wanted, bool(cfg.keep_stress), "AX" if ax else "AH")
        added = {w: prons for w, prons in made.items() if w not in lex}
        for word, prons in added.items():
            lex[word] = [list(p) for p in prons]
        info["g2p_words"] = len(added)
        info["g2p_sha256"] = _sha256(d / G2P_LEXICON) if (d / G2P_LEXICON).is_file() else ""
        log.info(
            "%d word(s) outside the dictionary pronounced by espeak-ng: %s (review or edit it; "
            "an edited file is used by the next 'stnas prep')",
            len(added),
            d / G2P_LEXICON,
        )
    elif any(total.values()):
        log.warning(
            "words outside the dictionary (%s tokens), listed in %s: training utterances "
            "with them are left out and they count as errors in dev/test; --g2p espeak "
            "gives them pronunciations",
            ", ".join(f"{s} {n}" for s, n in total.items() if n),
            d / OOV_LIST,
        )
    phones = units_from_lexicon(lex)
    write_lexicon(d / "lang" / "lexicon.txt", lex)
    write_units(d / "lang" / "units.txt", phones)
    write_words(d / "lang" / "words.txt", lex.keys())
    return {**info, "units": len(phones) + 1, "words": len(lex)}


def redo_lang_if_edited(run: StageRun, d: Path) -> None:
    """Forget ``lang`` and the sub-steps after it when ``lexicon_g2p.txt`` was edited since."""
    done = run.step_info("lang")
    path = d / G2P_LEXICON
    if "g2p_sha256" not in done or not path.is_file() or _sha256(path) == done["g2p_sha256"]:
        return
    log.info("%s was edited: lexicon, labels and den graph are made again", path)
    markers = sorted(p.name for p in (d / ".done").iterdir())
    for name in markers:
        if name.startswith(_READS_LEXICON):
            run.record.clear(name)


def install_arpa(arpa: Path, d: Path) -> Path:
    """Copy the user's ARPA LM to ``local/lm/tg.arpa`` (with ``tg.json`` saying so); decode
    then uses it as it is.

    Raises:
        DataError: not an ARPA file.
    """
    out = d / "local" / "lm" / "tg.arpa"
    record = out.with_suffix(".json")
    sha = _sha256(arpa)
    if out.is_file() and record.is_file():
        if json.loads(read_text(record)).get("sha256") == sha:
            return out  # installed already
    vocab = read_arpa_vocabulary(arpa)  # refuses anything that is not an ARPA LM
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    shutil.copyfile(arpa, tmp)
    tmp.replace(out)
    info = {"source": GIVEN_ARPA, "file": arpa.name, "sha256": sha, "words": len(vocab)}
    atomic_write_text(record, json.dumps(info, indent=2) + "\n")
    log.info("word LM tg: %s (%d words), used as it is", arpa, len(vocab))
    return out


def unpronounced_lm_words(d: Path) -> List[str]:
    """Words of a given ARPA LM that the lexicon cannot pronounce (warned about: they can
    never be recognised)."""
    words_txt = d / "lang" / "words.txt"
    if not words_txt.is_file():
        return []
    have = set(read_text(words_txt).split()[0::2])
    missing = sorted(_lm_words(d) - have) if (d / "local" / "lm" / "tg.json").is_file() else []
    if missing:
        log.warning(
            "%d word(s) of the given LM have no pronunciation and cannot be recognised "
            "(e.g. %s): prepare with --g2p espeak, or add them to the lexicon",
            len(missing),
            ", ".join(missing[:5]),
        )
    return missing
