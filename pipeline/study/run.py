"""Run a study: every stage command of :func:`pipeline.study.plan.make_plan`, then the report.

Resumable like every stage: a finished stage is skipped by the stage itself (same inputs and
options), an interrupted one resumes from its last checkpoint, a stage whose inputs changed is
refused with the stage's own message. Each member's numbers go to ``members/<name>.json`` as
soon as it is scored, and the report is rewritten after every member, so a study stopped early
still has a report of what it finished.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path
from typing import Callable, List, Optional

from pipeline.data.datadir import read_reference
from pipeline.decode.run import DecodeConfig, decode_dir_of, read_tuned
from pipeline.errors import StnasError
from pipeline.io import atomic_write_text
from pipeline.nas.arch import Arch
from pipeline.nas.cost import network_costs
from pipeline.stages.decode import run_decode
from pipeline.stages.record import stage_info
from pipeline.stages.runner import session
from pipeline.stages.score import read_hyps, run_score
from pipeline.study.config import StudyConfig
from pipeline.study.plan import (
    Member,
    Plan,
    command,
    draw_budget_archs,
    draw_random_archs,
    make_plan,
)
from pipeline.study.stats import utterance_errors
from pipeline.study.write import write_study

log = logging.getLogger(__name__)


def run_command(cfg: StudyConfig, args: List[str], log_path: Path) -> float:
    """Run ``stnas <args>`` (:func:`pipeline.study.plan.command`), its output appended to
    ``log_path``; its wall time.

    Raises:
        StnasError: the command failed; the message has the log's last lines.
    """
    cmd = command(cfg, args)
    path = log_path
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(path, "a") as out:
        out.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
        out.flush()
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = "\n".join(path.read_text().splitlines()[-8:])
        raise StnasError(f"stnas {' '.join(args[:1])} failed (exit {rc}); log {path}:\n{tail}")
    return time.time() - t0


def model_of(member: Member) -> Path:
    avg = member.retrain_dir / "avg.pt"
    return avg if avg.is_file() else member.retrain_dir / "best.pt"


def decode_and_score(cfg: StudyConfig, member: Member) -> dict:
    """Decode dev (the whole weight × penalty sweep) and test (at dev's choice), score both,
    and return the member's numbers with test errors per utterance."""
    d, td = cfg.decode, cfg.train_data
    model = model_of(member)
    run_decode(
        DecodeConfig(
            model=str(model),
            data_dir=td.data_dir,
            sets=[d.dev, d.test],
            lm=d.lm,
            lm_weights=d.lm_weights,
            word_penalties=d.word_penalties,
            tune_set=d.dev,
            beam=d.beam,
            lattice_beam=d.lattice_beam,
            max_active=d.max_active,
            nj=d.nj,
            device=cfg.device,
            progress=False,
        )
    )
    scored = run_score(
        member.retrain_dir,
        Path(td.data_dir),
        d.lm,
        d.dev,
        [d.test],
        Path(cfg.exp_dir) / "RESULTS.md",
        member.name.replace("/", "-"),
    )
    setting = read_tuned(decode_dir_of(model, d.dev, d.lm))
    out: dict = {"wer": {}, "utterances": {}}
    for name in (d.dev, d.test):
        ref = read_reference(Path(td.data_dir) / name)
        hyp = read_hyps(decode_dir_of(model, name, d.lm))[setting]
        utts, errors, words = utterance_errors(ref, hyp)
        python_wer = 100.0 * errors.sum() / max(words.sum(), 1)
        if abs(python_wer - scored[name]["wer"]) > 0.01:
            log.warning(
                "%s %s: sclite %%WER %.2f but the per-utterance errors give %.2f",
                member.name,
                name,
                scored[name]["wer"],
                python_wer,
            )
        out["wer"][name] = scored[name]["wer"]
        out["utterances"][name] = {"ids": utts, "errors": errors.tolist(), "words": words.tolist()}
    out["setting"] = list(setting)
    return out


def member_record(cfg: StudyConfig, member: Member, num_units: int) -> dict:
    arch = Arch.from_json(member.arch)
    retrain = stage_info(member.retrain_dir)
    rec = {
        "name": member.name,
        "method": member.method,
        "seed": member.seed,
        "index": member.index,
        "budget": member.budget,
        "costs": network_costs(arch.layer_specs(), num_units),
        "held_out": retrain.get("held_out"),
        "ops": arch.ops,
        "arch": arch.describe(),
        "probabilities": arch.probabilities,
        "params": arch.num_parameters(num_units),
        "search": stage_info(member.exp_dir / "search") if member.search else None,
        "retrain": retrain,
    }
    rec.update(decode_and_score(cfg, member))
    return rec


def _run_all(cfg: StudyConfig, plan: Plan, say: Callable[[str], None]) -> None:
    exp = Path(cfg.exp_dir)
    logs, members_dir = exp / "log", exp / "members"
    for cmd in plan.prep:
        say(f"prep {cmd[cmd.index('--data-dir') + 1]}")
        run_command(cfg, cmd, logs / f"prep_{Path(cmd[cmd.index('--data-dir') + 1]).name}.log")
    for kind, cmd in plan.warmups.items():
        say(f"warm-up ({'the search config' if kind == 'conf' else kind})")
        run_command(cfg, cmd, logs / f"warmup_{kind}.log")
    units = Path(cfg.train_data.data_dir) / "lang" / "units.txt"
    num_units = sum(1 for _ in open(units))
    if cfg.budgets:
        draw_budget_archs(cfg, num_units)
    elif "random" in cfg.methods:
        for seed in cfg.seeds:
            draw_random_archs(cfg, seed)
    for i, member in enumerate(plan.members, 1):
        say(f"[{i}/{len(plan.members)}] {member.name}")
        tag = member.name.replace("/", "_")
        if member.search:
            run_command(cfg, member.search, logs / f"search_{tag}.log")
        run_command(cfg, plan.retrain_args[member.name], logs / f"retrain_{tag}.log")
        rec = member_record(cfg, member, num_units)
        atomic_write_text(members_dir / f"{tag}.json", json.dumps(rec) + "\n")
        say(
            f"  {rec['arch']}: dev {rec['wer'][cfg.decode.dev]:.2f} "
            f"test {rec['wer'][cfg.decode.test]:.2f}"
        )
        write_study(cfg, plan, members_dir)


def run_study(
    cfg: StudyConfig, report_only: bool = False, progress: Optional[Callable[[str], None]] = None
) -> Path:
    """Run (or resume) the study and write its report; returns ``study.md``.

    ``report_only``: run nothing, report the members that are scored already.
    """
    exp = Path(cfg.exp_dir)
    say = progress or (lambda msg: log.info("%s", msg))
    plan: Plan = make_plan(cfg)
    members_dir = exp / "members"
    if not report_only:
        with session(None, [(exp, False)]):
            _run_all(cfg, plan, say)
    if not members_dir.is_dir():
        raise StnasError(f"{members_dir}: no member of the study is scored yet")
    return write_study(cfg, plan, members_dir)
