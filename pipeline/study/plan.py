"""The members of a study and the stage commands that make each one.

Layout under the study's ``exp_dir``::

    warmup/                      the shared warm-up (the search config's loss)
    warmup_ctc/, warmup_ctc_crf/ the warm-ups of the loss ablations (st_ctc, st_crf)
    <method>/s<seed>/            search/, retrain/ (decode_<set>_<lm>/ inside), as run.sh makes
    random/s<seed>/arch<i>.json  the uniformly drawn architectures; random/s<seed>/a<i>/retrain
    log/<job>.log                the output of every stage command
    RESULTS.md, study.md, study.png, results.json

Training stages run as ``stnas`` commands in their own process (the same code and files as
``run.sh``, and a peak memory that is the stage's own); decoding and scoring run in-process.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from pipeline.errors import StnasError
from pipeline.nas.arch import Arch
from pipeline.nas.space import load_space
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

    @property
    def name(self) -> str:
        return f"{self.method}/s{self.seed}" + (f"/a{self.index}" if self.index is not None else "")

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


def random_arch_paths(cfg: StudyConfig, seed: int) -> List[Path]:
    root = Path(cfg.exp_dir) / "random" / f"s{seed}"
    return [root / f"arch{i}.json" for i in range(1, cfg.random_archs + 1)]


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
    tdnn_d = tdnn_d_arch(cfg) if "tdnn_d" in cfg.methods else None
    for seed in cfg.seeds:
        for method in cfg.methods:
            if method == "random":
                for i, arch in enumerate(random_arch_paths(cfg, seed), 1):
                    plan.members.append(
                        Member(
                            method, seed, exp / "random" / f"s{seed}" / f"a{i}", arch, None, index=i
                        )
                    )
                continue
            if method == "tdnn_d":
                assert tdnn_d is not None  # drawn above: "tdnn_d" is in cfg.methods
                plan.members.append(Member(method, seed, exp / method / f"s{seed}", tdnn_d, None))
                continue
            strategy, kind = SEARCHED[method]
            member_exp = exp / method / f"s{seed}"
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
                *_sets(cfg.set.get("search", [])),
            ]
            plan.members.append(
                Member(method, seed, member_exp, member_exp / "search" / "arch.json", search, kind)
            )
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
    return plan
