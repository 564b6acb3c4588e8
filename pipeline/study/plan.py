"""The members of a study and the stage commands that make each one.

Layout under the study's ``exp_dir``::

    warmup/                      the shared warm-up (the search config's loss)
    warmup_ctc/, warmup_ctc_crf/ the warm-ups of the loss ablations (st_ctc, st_crf)
    <method>/s<seed>/            search/, retrain/ (decode_<set>_<lm>/ inside), as run.sh makes
    random/s<seed>/arch<i>.json  the uniformly drawn architectures; random/s<seed>/a<i>/retrain
    b<j>/...                     with ``budgets``: the same per budget j (b<j>/tdnn_d/arch.json:
                                 TDNN-D scaled to it)
    log/<job>.log                the output of every stage command
    RESULTS.md, study.md, study.png, results.json

Training stages run as ``stnas`` commands in their own process (the same code and files as
``run.sh``, and a peak memory that is the stage's own); decoding and scoring run in-process.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from pipeline.errors import StnasError
from pipeline.nas.arch import Arch
from pipeline.nas.space import load_space
from pipeline.study.budgets import budget_name, draw_within, make_budget, scaled_tdnn_d, write_arch
from pipeline.study.config import StudyConfig
from pipeline.train.config import SCRATCH, load_config

# method → (strategy, warm-up: "conf" | None (no warm-up) | a loss name)
SEARCHED = {
    "st": ("st", "conf"),
    "darts": ("darts", "conf"),
    "snas": ("snas", "conf"),
    "st_no_warmup": ("st", None),
    "st_ctc": ("st", "ctc"),
    "st_crf": ("st", "ctc_crf"),
}


@dataclass
class Member:
    """One retrained model of the study."""

    method: str
    seed: int
    exp_dir: Path
    arch: Path  # what is retrained
    search: Optional[List[str]]  # the stnas search arguments (None: nothing searched)
    warmup: Optional[str] = None  # key into Plan.warmups
    index: Optional[int] = None  # random: which of the drawn architectures
    budget: Optional[int] = None  # 1-based index into StudyConfig.budgets

    @property
    def name(self) -> str:
        return (
            (f"b{self.budget}/" if self.budget else "")
            + f"{self.method}/s{self.seed}"
            + (f"/a{self.index}" if self.index is not None else "")
        )

    @property
    def retrain_dir(self) -> Path:
        return self.exp_dir / "retrain"


@dataclass
class Plan:
    """Everything a study runs, in order: prep, warm-ups, then the members seed by seed (so
    that a study stopped early has every method at the first seeds)."""

    prep: List[List[str]]  # stnas arguments (without the command: plan.command)
    warmups: dict  # key → stnas warmup arguments
    members: List[Member] = field(default_factory=list)
    retrain_args: dict = field(default_factory=dict)  # member name → stnas retrain arguments


def command(cfg: StudyConfig, args: List[str]) -> List[str]:
    """The process that runs ``stnas <args>``: this interpreter, or for training stages the
    study's ``launcher`` (e.g. ``torchrun --nproc_per_node 4``) when one is set."""
    if cfg.launcher and args[0] in ("warmup", "search", "retrain"):
        return [*cfg.launcher, "-m", "steps_py", *args]
    return [sys.executable, "-m", "steps_py", *args]


def _sets(items: List[str]) -> List[str]:
    out: List[str] = []
    for item in items:
        out += ["--set", item]
    return out


def search_space(cfg: StudyConfig) -> str:
    return load_config("search", Path(cfg.search_data.conf) / "search.yaml").space


def tdnn_d_arch(cfg: StudyConfig) -> Path:
    """The hand design of the study's space (``tdnn_d_arch``, default
    ``conf/arch/tdnn_d_<space>.json``), checked to be of that space.

    Raises:
        StnasError: missing, or of another space than the searches'.
    """
    space = search_space(cfg)
    path = Path(cfg.tdnn_d_arch or f"conf/arch/tdnn_d_{space}.json")
    if not path.is_file():
        raise StnasError(f"tdnn_d_arch {path}: not found (set tdnn_d_arch in the study config)")
    arch = Arch.from_json(path)
    if arch.space_hash != load_space(space).hash:
        raise StnasError(
            f"tdnn_d_arch {path} is of space '{arch.space_name}', but the study "
            f"searches '{space}': the rows would not share their candidates"
        )
    return path


def budget_dir(cfg: StudyConfig, budget: Optional[int]) -> Path:
    """Where the members of budget ``budget`` (1-based; None: no budget) live."""
    return Path(cfg.exp_dir) / (f"b{budget}" if budget else "")


def random_arch_paths(cfg: StudyConfig, seed: int, budget: Optional[int] = None) -> List[Path]:
    root = budget_dir(cfg, budget) / "random" / f"s{seed}"
    return [root / f"arch{i}.json" for i in range(1, cfg.random_archs + 1)]


def tdnn_d_path(cfg: StudyConfig, budget: Optional[int]) -> Path:
    """The hand design a budget's TDNN-D rows retrain (scaled to the budget)."""
    return budget_dir(cfg, budget) / "tdnn_d" / "arch.json" if budget else tdnn_d_arch(cfg)


def draw_budget_archs(cfg: StudyConfig, num_units: int) -> None:
    """Per budget: TDNN-D scaled to it and, per seed, random architectures within it (kept
    once written, so a resumed study retrains the same ones)."""
    space = load_space(search_space(cfg))
    for j, targets in enumerate(cfg.budgets, 1):
        budget = make_budget(space, num_units, targets)
        if "tdnn_d" in cfg.methods:
            design = Arch.from_json(tdnn_d_arch(cfg))
            ops = scaled_tdnn_d(space, design, budget)
            write_arch(
                tdnn_d_path(cfg, j),
                space,
                ops,
                strategy="fixed",
                design="tdnn_d",
                rule=f"{design.describe()} at the uniform kernel and width with the most "
                f"parameters within {budget_name(targets)}",
            )
        if "random" not in cfg.methods:
            continue
        for seed in cfg.seeds:
            paths = random_arch_paths(cfg, seed, j)
            if all(p.is_file() for p in paths):
                continue
            drawn, (accepted, total) = draw_within(space, budget, cfg.random_archs, seed)
            for path, ops in zip(paths, drawn):
                write_arch(
                    path,
                    space,
                    ops,
                    strategy="random",
                    seed=seed,
                    rule=f"drawn uniformly, kept when within {budget_name(targets)} "
                    f"({accepted} of {total} draws accepted)",
                )


def draw_random_archs(cfg: StudyConfig, seed: int) -> List[Path]:
    """``random_archs`` distinct architectures drawn uniformly from the space with ``seed``
    (written once: an existing file is kept, so a resumed study retrains the same ones)."""
    space = load_space(search_space(cfg))
    paths = random_arch_paths(cfg, seed)
    if all(p.is_file() for p in paths):
        return paths
    rng = random.Random(f"study-random-{seed}")
    n = min(cfg.random_archs, space.num_subgraphs)
    drawn: List[List[str]] = []
    while len(drawn) < n:
        ops = [rng.choice(block) for block in space.blocks]
        if ops not in drawn:
            drawn.append(ops)
    for path, ops in zip(paths, drawn):
        if not path.is_file():
            Arch.from_space(
                space, ops, strategy="random", seed=seed, rule="drawn uniformly from the space"
            ).to_json(path)
    return paths


def make_plan(cfg: StudyConfig) -> Plan:
    """The commands of the study (random architectures are drawn by :func:`draw_random_archs`
    when the plan is run, not here)."""
    exp = Path(cfg.exp_dir)
    sd, td = cfg.search_data, cfg.train_data
    prep = []
    for spec in [sd] if td is sd else [sd, td]:
        cmd = ["prep", "--corpus", spec.corpus, "--data-dir", spec.data_dir]
        if (Path(spec.conf) / "prep.yaml").is_file():
            cmd += ["--config", str(Path(spec.conf) / "prep.yaml")]
        prep.append(cmd + spec.prep_args)
    common = ["--device", cfg.device, "--set", "progress=false"]
    warmups = {}
    for method in cfg.methods:
        kind = SEARCHED.get(method, (None, None))[1]
        if kind is None or kind in warmups:
            continue
        loss = [] if kind == "conf" else ["--set", f"loss={kind}"]
        warmups[kind] = [
            "warmup",
            "--config",
            str(Path(sd.conf) / "warmup.yaml"),
            "--data-dir",
            sd.data_dir,
            "--exp-dir",
            str(exp / ("warmup" if kind == "conf" else f"warmup_{kind}")),
            "--seed",
            str(cfg.warmup_seed),
            "--set",
            f"split_seed={cfg.split_seed}",
            *common,
            *loss,
            *_sets(cfg.set.get("warmup", [])),
        ]
    plan = Plan(prep=prep, warmups=warmups)
    if "tdnn_d" in cfg.methods:
        tdnn_d_arch(cfg)  # checked before anything runs
    budgets: List[Optional[int]] = list(range(1, len(cfg.budgets) + 1)) or [None]
    for seed in cfg.seeds:
        for b in budgets:
            plan.members += _members(cfg, seed, b, common)
    _plan_retrains(cfg, plan, common)
    return plan


def _members(cfg: StudyConfig, seed: int, b: Optional[int], common: List[str]) -> List[Member]:
    """The members of one seed and budget (None: no budget), in the order of the methods."""
    exp, sd, root = Path(cfg.exp_dir), cfg.search_data, budget_dir(cfg, b)
    out: List[Member] = []
    for method in cfg.methods:
        if method == "random":
            for i, arch in enumerate(random_arch_paths(cfg, seed, b), 1):
                out.append(
                    Member(
                        method,
                        seed,
                        root / "random" / f"s{seed}" / f"a{i}",
                        arch,
                        None,
                        index=i,
                        budget=b,
                    )
                )
            continue
        if method == "tdnn_d":
            out.append(
                Member(
                    method, seed, root / method / f"s{seed}", tdnn_d_path(cfg, b), None, budget=b
                )
            )
            continue
        strategy, kind = SEARCHED[method]
        member_exp = root / method / f"s{seed}"
        budget_sets = (
            [f"budget={json.dumps(cfg.budgets[b - 1])}", f"budget_form={cfg.budget_form}"]
            if b
            else []
        )
        init = (
            SCRATCH
            if kind is None
            else str(
                exp / ("warmup" if kind == "conf" else f"warmup_{kind}") / "warmup" / "best.pt"
            )
        )
        loss = [] if kind in ("conf", None) else ["--set", f"loss={kind}"]
        search = [
            "search",
            "--config",
            str(Path(sd.conf) / "search.yaml"),
            "--data-dir",
            sd.data_dir,
            "--exp-dir",
            str(member_exp),
            "--strategy",
            strategy,
            "--seed",
            str(seed),
            "--init",
            init,
            "--set",
            f"split_seed={cfg.split_seed}",
            *common,
            *loss,
            *_sets(cfg.set.get("search", []) + budget_sets),
        ]
        out.append(
            Member(
                method,
                seed,
                member_exp,
                member_exp / "search" / "arch.json",
                search,
                kind,
                budget=b,
            )
        )
    return out


def _plan_retrains(cfg: StudyConfig, plan: Plan, common: List[str]) -> None:
    td = cfg.train_data
    for m in plan.members:
        plan.retrain_args[m.name] = [
            "retrain",
            "--config",
            str(Path(td.conf) / "retrain.yaml"),
            "--data-dir",
            td.data_dir,
            "--exp-dir",
            str(m.exp_dir),
            "--arch",
            str(m.arch),
            "--seed",
            str(m.seed),
            *common,
            *_sets(cfg.set.get("retrain", [])),
        ]
