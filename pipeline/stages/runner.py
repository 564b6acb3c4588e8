"""The one stage runner: every stage of the recipe goes through :func:`run_stage`.

A stage is declared as a :class:`Stage`: its directory, its inputs (files whose content it is
built from), the options that change its result, its resolved config, and its body (the
work). The runner owns everything around the body, the same way for every stage:

* **locks and log**: one process per stage dir, the dirs it reads share-locked
  (:func:`session`); the stage's log records appended to its log file;
* **freshness**: the inputs' fingerprints and the options are compared with what the last run
  recorded. Unchanged and finished → nothing runs ("already done", the recorded summary is
  returned). Changed → the stage is refused with a message naming what changed (or, for a
  stage declared ``refuse=False``, such as a decoding graph, simply redone);
* ``--force``: the stage starts over; the stage dirs built from it are removed;
* **records**: ``config.yaml`` and ``inputs.json`` before the body, ``stage.json`` and the
  done marker after it (:mod:`pipeline.stages.record`), all written atomically;
* **resumption**: a stage interrupted with the same inputs and options resumes (its body reads
  its own checkpoints, or skips the sub-steps whose markers are there, :meth:`StageRun.step`).

Data-parallel training runs the body on every rank; only the main rank takes locks, writes
the log and the records (``Stage.main``), and the ranks meet at barriers.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import yaml

from pipeline.errors import StaleResultError
from pipeline.io import atomic_write_text, input_fingerprints
from pipeline.locks import dir_locks
from pipeline.logfile import stage_log
from pipeline.stages.record import DONE, StageDir, remove_dependents
from pipeline.train.distributed import barrier

log = logging.getLogger(__name__)
Summary = Dict[str, Any]


@dataclass
class Stage:
    """What a stage is: where it writes, what it is built from, and its body.

    Attributes:
        name: the stage's name in messages (``warmup``, ``prep``, ``decode dev``).
        dir: its stage dir (records and markers; the body writes its outputs there).
        body: the work; gets the :class:`StageRun`, returns the summary recorded in
            ``stage.json`` and returned to the caller.
        inputs: name → file whose content the stage is built from (fingerprinted), or a
            function that returns them under the stage's locks (and may refuse missing ones).
        options: the settings that change its result (recorded and compared).
        config: the resolved config, frozen into ``<dir>/config.yaml`` before the body.
        command: the command recorded in ``stage.json`` (default: this process's argv).
        seed: the seed recorded in ``stage.json``.
        verb: how a refusal names a finished run (``was <verb> from other inputs``).
        redo: what ``--force`` does, in the refusal of a finished stage.
        refuse: refuse changed inputs or options (False: redo the stage instead).
        refuse_started: also refuse an interrupted run whose inputs changed (it would resume
            from the wrong checkpoint); False: such a run starts over.
        changes: the stage's own comparison with the last run (default: fingerprints and
            options, :meth:`StageDir.changes`).
        refusal: the message for changes (default: names the dir, the changes and --force).
        up_to_date: the summary of a finished, unchanged stage (default: the recorded one).
        reset: ``--force`` empties the dir and removes the stages built from it (False: the
            sub-steps are redone in place, as prep does).
        steps: the body is a sequence of :meth:`StageRun.step` sub-steps: a finished stage
            runs it again (redoing any step whose marker is gone) and keeps its records when
            no step ran.
        main: this process keeps the records (the main rank of a data-parallel run).
    """

    name: str
    dir: Path
    body: Callable[["StageRun"], Summary]
    inputs: Union[Dict[str, Path], Callable[[], Dict[str, Path]]] = field(default_factory=dict)
    options: Dict[str, Any] = field(default_factory=dict)
    config: Optional[Dict[str, Any]] = None
    command: str = ""
    seed: Optional[int] = None
    verb: str = "built"
    redo: str = "redo it (this also removes the stages built from it)"
    refuse: bool = True
    refuse_started: bool = True
    changes: Optional[Callable[[StageDir], List[str]]] = None
    refusal: Optional[Callable[[List[str], bool], str]] = None
    up_to_date: Optional[Callable[[StageDir], Summary]] = None
    reset: bool = True
    steps: bool = False
    main: bool = True


@dataclass
class StageRun:
    """What the body of a running stage gets.

    Attributes:
        stage: its declaration.
        record: its stage dir's records.
        previous: what the run before this one recorded (empty if none).
        force: the run was forced.
        ran: the sub-steps run now (:meth:`step`).
        done_info: JSON info for the done marker (set by the body).
    """

    stage: Stage
    record: StageDir
    previous: Dict[str, Any]
    force: bool
    ran: List[str] = field(default_factory=list)
    done_info: Dict[str, Any] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.stage.dir

    def step(self, name: str, fn: Callable[[], Optional[dict]]) -> None:
        """Run sub-step ``name`` unless its marker says it finished (``--force`` redoes it);
        mark it done with ``fn``'s info. A failing step is not marked: a rerun resumes there."""
        if self.record.is_done(name):
            log.info("%s: %s already done, skipping", self.stage.name, name)
            return
        log.info("%s: %s ...", self.stage.name, name)
        info = fn() or {}
        self.record.mark_done(name, info)
        self.ran.append(name)

    def step_info(self, name: str) -> Dict[str, Any]:
        """The info a finished sub-step left in its marker (empty if none)."""
        return self.record.marker_info(name)


@contextlib.contextmanager
def session(
    log_path: Optional[Path], locks: Sequence[Tuple[Path, bool]], main: bool = True
) -> Iterator[None]:
    """Hold the stage locks (``(dir, shared)``) and append the log to ``log_path`` for the
    ``with`` block (on the main rank only)."""
    if not main:
        yield
        return
    with dir_locks(*locks, what=" ".join(sys.argv)), contextlib.ExitStack() as stack:
        if log_path is not None:
            stack.enter_context(stage_log(log_path))
        yield


def run_stage(
    stage: Stage, force: bool = False, log_path: Optional[Path] = None, reads: Sequence[Path] = ()
) -> Summary:
    """Run ``stage`` in a :func:`session` of its own: its dir locked, ``reads`` share-locked,
    its log in ``log_path`` (default ``<dir>/log/<name>.log``)."""
    log_path = log_path or stage.dir / "log" / f"{stage.name}.log"
    locks = [(stage.dir, False), *[(Path(p), True) for p in reads]]
    with session(log_path, locks, stage.main):
        return execute(stage, force)


def _default_refusal(stage: Stage, changed: List[str], finished: bool) -> str:
    return (
        f"{stage.dir} {'was ' + stage.verb if finished else 'was started'} from other "
        f"inputs or with other options ({'; '.join(changed)}); rerun with --force to "
        + (stage.redo if finished else "start it over")
    )


def execute(stage: Stage, force: bool = False) -> Summary:
    """Run ``stage`` under locks already held (see the module docstring); its summary.

    Raises:
        StaleResultError: the stage (finished or interrupted) was built from other inputs or
            with other options, and it refuses changes; ``force`` starts it over.
    """
    sd = StageDir(stage.dir, force=force)
    previous = sd.recorded()
    inputs: Dict[str, Union[str, Path]] = dict(
        stage.inputs() if callable(stage.inputs) else stage.inputs
    )
    fingerprints = input_fingerprints(inputs)
    finished = sd.is_done(DONE)
    if not force:
        changed = (
            stage.changes(sd)
            if stage.changes is not None
            else sd.changes(fingerprints, stage.options)
        )
        started = bool(previous) or (stage.dir / "config.yaml").is_file()
        if changed and stage.refuse and (finished or (started and stage.refuse_started)):
            raise StaleResultError(
                stage.refusal(changed, finished)
                if stage.refusal
                else _default_refusal(stage, changed, finished)
            )
        if finished and not changed and not stage.steps:
            if stage.up_to_date is not None:
                return stage.up_to_date(sd)
            return {
                **(previous.get("summary") or {}),
                "stage": stage.name,
                "dir": str(stage.dir),
                "up_to_date": True,
            }
        if changed and not stage.refuse:
            log.info(
                "%s: inputs or options changed (%s); building it again",
                stage.dir,
                "; ".join(changed),
            )
            sd = StageDir(stage.dir, force=True)
            force = True
    if force and stage.reset and stage.main:
        for dep in remove_dependents(stage.dir):
            log.warning("removed %s: it was built from %s, which is redone", dep, stage.dir)
        sd.reset()
    barrier()
    if stage.main:
        if stage.config is not None:
            atomic_write_text(
                stage.dir / "config.yaml", yaml.safe_dump(stage.config, sort_keys=True)
            )
        sd.record_inputs(fingerprints, stage.options)
    run = StageRun(stage, sd, previous, force)
    summary = stage.body(run)
    if stage.steps and finished and not run.ran and (stage.dir / "stage.json").is_file():
        return summary  # nothing redone: stage.json keeps the run that made it
    if stage.main:
        sd.write_stage_json(
            stage.command or " ".join(sys.argv),
            stage.seed,
            fingerprints=fingerprints,
            options=stage.options,
            extra={"summary": summary},
        )
        sd.mark_done(DONE, run.done_info)
    barrier()
    return summary
