"""The graphs stage: ``data/<c>/lang_test_<lm>/TLG.fst``, built once per lang dir and word LM.

Its inputs are the lang dir's ``lexicon.txt``, ``units.txt``, ``words.txt`` and the ARPA LM
(:func:`pipeline.lang.lm_data.word_lm_arpa`); when one of them changes, or the graph
construction does (``GRAPH_VERSION``), the graph is built again, without a refusal: nothing
is lost, since the graph follows from its inputs alone. The decode stage runs it first.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, Optional, Union

from pipeline.errors import DataError
from pipeline.lang.graphs import GRAPH_VERSION, write_lang_test
from pipeline.lang.lm_data import word_lm_arpa
from pipeline.stages.record import StageDir
from pipeline.stages.runner import Stage, execute

PathLike = Union[str, Path]
log = logging.getLogger(__name__)


def build_lang_test(
    lang_dir: PathLike, arpa: PathLike, out_dir: PathLike, force: bool = False
) -> Dict[str, object]:
    """``out_dir/TLG.fst`` from a lang dir and an ARPA LM, unless it is up to date (under the
    caller's locks); the graph info (:func:`~pipeline.lang.graphs.write_lang_test`) with
    ``skipped``: whether it was up to date."""
    lang_dir, out_dir = Path(lang_dir), Path(out_dir)
    inputs = {
        "lexicon": lang_dir / "lexicon.txt",
        "units": lang_dir / "units.txt",
        "words": lang_dir / "words.txt",
        "arpa": Path(arpa),
    }
    for p in inputs.values():
        if not p.is_file():
            raise DataError("missing input of the decoding graph", p)

    def up_to_date(sd: StageDir) -> Dict[str, object]:
        log.info("%s is up to date; skipping the graph build", out_dir / "TLG.fst")
        info = json.loads((out_dir / "graph_info.json").read_text(encoding="utf-8"))
        return {**info, "skipped": True}

    stage = Stage(
        name="graphs",
        dir=out_dir,
        inputs=inputs,
        options={"graph_version": GRAPH_VERSION},
        command="graphs",
        body=lambda run: {**write_lang_test(lang_dir, arpa, out_dir), "skipped": False},
        refuse=False,
        up_to_date=up_to_date,
    )
    return execute(stage, force)


def lang_test_dir(data_dir: Path, lm: str, order: Optional[int] = None) -> Path:
    """``data/<c>/lang_test_<lm>`` with its TLG, built when missing or out of date."""
    out = data_dir / f"lang_test_{lm}"
    info = build_lang_test(data_dir / "lang", word_lm_arpa(data_dir, lm, order), out)
    if not info.get("skipped"):
        log.info("built %s: TLG %s", out / "TLG.fst", info["TLG"])
    return out
