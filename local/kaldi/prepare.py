"""Your own data: already-prepared Kaldi data dirs (``--corpus kaldi --corpus-root DIR``).

``DIR`` holds ``train/``, ``dev/`` and ``test/`` Kaldi data dirs (``wav.scp``, ``text``,
``utt2spk``, optional ``spk2utt`` (made from ``utt2spk`` when absent) and ``segments``) and
optionally ``lexicon.txt``; without it the CMU dictionary is used. Each dir is validated strictly — nothing is silently re-sorted or
fixed, since a wrong file usually means a wrong upstream step — then copied.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Optional

from pipeline.data.datadir import write_spk2utt
from pipeline.data.validate import validate_data_dir
from pipeline.errors import DataError
from pipeline.lang.lexicon import read_cmudict, read_festival_cmudict, read_lexicon, write_lexicon

log = logging.getLogger(__name__)
SETS = ("train", "dev", "test")
FILES = ("wav.scp", "text", "utt2spk", "spk2utt", "segments")


def prepare(
    corpus_root: Optional[Path],
    out_dir: Path,
    *,
    lexicon: Optional[Path] = None,
    keep_stress: bool = False,
    skip_bad: bool = False,
    **_: object,
) -> dict:
    """Validate and copy ``corpus_root/{train,dev,test}`` and the lexicon into ``out_dir``."""
    if corpus_root is None or not Path(corpus_root).is_dir():
        raise DataError(
            "corpus root not found; --corpus kaldi needs --corpus-root DIR holding "
            "train/, dev/ and test/ Kaldi data dirs",
            corpus_root,
        )
    root = Path(corpus_root)
    info = {"sets": {}}
    for s in SETS:
        src = root / s
        if not src.is_dir():
            raise DataError(f"expected a Kaldi data dir '{s}/' here", src)
        dst = Path(out_dir) / s
        dst.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, dst / name)
        checked = src  # errors name the user's files
        if not (src / "spk2utt").is_file() and (src / "utt2spk").is_file():
            write_spk2utt(dst)  # as utils/utt2spk_to_spk2utt.pl would
            log.info("%s: no spk2utt, made from utt2spk", src)
            checked = dst
        # --skip-bad: empty transcripts and missing audio are left out by prep, listed
        info["sets"][s] = validate_data_dir(
            checked, check_audio=not skip_bad, allow_empty_text=skip_bad
        )["utts"]
    if lexicon is None and (root / "lexicon.txt").is_file():
        lex = read_lexicon(root / "lexicon.txt")
    elif lexicon is not None and Path(lexicon).name == "lexicon.txt":
        lex = read_lexicon(lexicon)
    elif lexicon is not None:
        lex = read_cmudict(lexicon, keep_stress)
    else:
        lex = read_festival_cmudict(keep_stress=keep_stress)
    # the whole dictionary: the decoding vocabulary is the LM's words that have a
    # pronunciation, which must not depend on the words the dev/test transcripts hold
    write_lexicon(Path(out_dir) / "local" / "dict" / "lexicon.txt", lex)
    return info
