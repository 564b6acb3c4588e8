"""The decode stage: one stage dir per set, ``<model dir>/decode_<set>_<lm>``.

The graphs stage runs first (:mod:`pipeline.stages.graphs`); then the tuning set (dev) is
decoded at every LM weight and word penalty and chooses the pair, and every other set is
decoded once at that pair (:mod:`pipeline.decode.run`). Each set's inputs are the model, the
graph and its features; its options the settings and beams. A finished decode with the same
ones is skipped; with other ones it is refused until ``--force``; an interrupted one is
simply decoded again (a decode has no checkpoint to resume from).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

from pipeline.config import validate
from pipeline.decode.run import DecodeConfig, decode_dir_of, decode_one, read_tuned, tune
from pipeline.errors import DataError
from pipeline.stages.graphs import lang_test_dir
from pipeline.stages.record import StageDir
from pipeline.stages.runner import Stage, StageRun, execute, session
from pipeline.threads import pin_threads
from pipeline.train.checkpoint import load_model


def run_decode(cfg: DecodeConfig, force: bool = False) -> Dict[str, dict]:
    """Decode every set of ``cfg.sets`` (the tuning set first); per-set info (RTF, paths).

    Raises:
        CheckpointError: the model cannot be read, or is refused (it would run code).
        StaleResultError: a finished decode whose inputs or options changed (without force).
        StnasError: a set other than the tuning set, with no tuning decode to take the setting
            from.
    """
    validate(cfg)
    data_dir, model = Path(cfg.data_dir), Path(cfg.model)
    if not model.is_file():
        raise DataError("model not found (run 'stnas retrain')", model)
    load_model(model)  # a file that is not a retrained model (or unsafe) fails here, not later
    locks = [
        (data_dir, True),
        (model.parent, True),
        *[(decode_dir_of(model, name, cfg.lm), False) for name in cfg.sets],
    ]
    with session(model.parent / "log" / f"decode_{cfg.lm}.log", locks):
        pin_threads(cfg.num_threads)
        lang_test = lang_test_dir(data_dir, cfg.lm, cfg.lm_order)
        sets = sorted(cfg.sets, key=lambda s: s != cfg.tune_set)  # the tuning set first
        return {name: execute(decode_stage(cfg, name, lang_test), force) for name in sets}


def decode_stage(cfg: DecodeConfig, name: str, lang_test: Path) -> Stage:
    """The declaration of set ``name``'s decode."""
    data_dir, model = Path(cfg.data_dir), Path(cfg.model)
    feats = data_dir / name / "feats.scp"
    if not feats.is_file():
        raise DataError("missing (run 'stnas prep')", feats)
    out = decode_dir_of(model, name, cfg.lm)
    tuning = not cfg.tune_set or name == cfg.tune_set
    settings = cfg.grid() if tuning else [read_tuned(decode_dir_of(model, cfg.tune_set, cfg.lm))]
    graph_k = json.loads((lang_test / "graph_info.json").read_text())["num_units"]

    def body(run: StageRun) -> dict:
        info, hyps = decode_one(cfg, name, model, feats, lang_test, graph_k, settings, out)
        if tuning and cfg.tune_set:
            info["tuned"] = tune(cfg, out, hyps)
        return {k: v for k, v in info.items() if k != "config"}

    def up_to_date(sd: StageDir) -> dict:
        return {**json.loads((out / "decode_info.json").read_text()), "up_to_date": True}

    return Stage(
        name=f"decode {name}",
        dir=out,
        body=body,
        command="stnas decode",
        inputs={"model": model, "graph": lang_test / "TLG.fst", "features": feats},
        options={
            "lm": cfg.lm,
            "settings": [list(s) for s in settings],
            "beam": cfg.beam,
            "lattice_beam": cfg.lattice_beam,
            "max_active": cfg.max_active,
        },
        verb="decoded",
        redo="decode it again",
        refuse_started=False,
        up_to_date=up_to_date,
    )
