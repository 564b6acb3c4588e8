"""What a stage directory records about its runs: done markers, ``inputs.json`` and ``stage.json``.

A stage directory holds the resolved config (``config.yaml``), ``inputs.json`` (the
fingerprints of its inputs and the options that change its result, written when a run
starts), ``stage.json`` (command, versions, git sha, seed, torch threads, inputs, options,
wall time, peak memory, the stage's summary; written when it ends) and ``.done/<name>``
markers: ``.done/stage`` for the finished stage, one more per finished sub-step of a stage
that resumes step by step (prep). Only :mod:`pipeline.stages.runner` writes them.
"""

from __future__ import annotations

import json
import platform
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from pipeline import __version__
from pipeline.io import atomic_write_text, git_sha
from pipeline.locks import lock_dir, unlock_dir

PathLike = Union[str, Path]
DONE = "stage"  # the marker of a finished stage


def describe_changes(old: Dict[str, Any], new: Dict[str, Any], what: str) -> List[str]:
    """Human-readable differences between two flat dicts (``beam: 17 → 20``)."""
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            if what == "input":
                out.append(
                    f"input {key} changed"
                    if key in old and key in new
                    else f"input {key} {'added' if key in new else 'removed'}"
                )
            else:
                out.append(f"{key}: {old.get(key)!r} → {new.get(key)!r}")
    return out


def torch_threads() -> Optional[int]:
    """The intra-op thread count torch computes with (None when torch is not loaded)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def remove_dependents(stage_dir: PathLike) -> List[Path]:
    """Remove the sibling stage dirs whose recorded inputs lie inside ``stage_dir`` (and, in
    turn, theirs): what ``--force`` on a stage must not leave behind. Returns them."""
    stage_dir = Path(stage_dir).resolve()
    removed: List[Path] = []
    todo = [stage_dir]
    while todo:
        src = todo.pop()
        if not src.parent.is_dir():
            continue
        for sib in sorted(src.parent.iterdir()):
            if sib == src or not sib.is_dir() or sib in removed:
                continue
            rec = StageDir(sib, create=False).recorded().get("inputs") or {}
            paths = [Path(v["path"]) for v in rec.values() if isinstance(v, dict) and "path" in v]
            if any(src in p.resolve().parents for p in paths):
                lock_dir(sib)  # not while another process works in it (LockedError)
                shutil.rmtree(sib)
                unlock_dir(sib)
                removed.append(sib)
                todo.append(sib)
    return removed


def peak_memory() -> Dict[str, float]:
    """Peak memory of this process so far, MiB: ``peak_rss_mib`` (resident set, the whole
    process: the stage's own when it runs as its own command) and, when CUDA was used,
    ``peak_cuda_mib`` (torch's peak allocation on the current device)."""
    out = {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        out["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


class StageDir:
    """A stage's output directory with per-sub-stage done markers.

    Args:
        root: the directory (created if missing, unless ``create`` is off).
        force: redo finished sub-stages instead of skipping them.
        create: create ``root`` (off for reading what another stage recorded).
    """

    def __init__(self, root: PathLike, force: bool = False, create: bool = True) -> None:
        self.root = Path(root)
        self.force = force
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        self._t0 = time.time()

    def _marker(self, name: str) -> Path:
        return self.root / ".done" / name

    def is_done(self, name: str) -> bool:
        """True when sub-stage ``name`` finished before and ``force`` is off."""
        return not self.force and self._marker(name).exists()

    def mark_done(self, name: str, info: Optional[Dict[str, Any]] = None) -> None:
        """Record that sub-stage ``name`` finished (with optional JSON info)."""
        atomic_write_text(self._marker(name), json.dumps(info or {}, sort_keys=True) + "\n")

    def marker_info(self, name: str) -> Dict[str, Any]:
        """The JSON info of sub-stage ``name``'s marker (empty when it is not done)."""
        p = self._marker(name)
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}

    def clear(self, name: str) -> None:
        """Forget that sub-stage ``name`` finished (it will run again)."""
        self._marker(name).unlink(missing_ok=True)

    def recorded(self) -> Dict[str, Any]:
        """What the last run recorded: ``stage.json`` if it finished, else ``inputs.json``."""
        for name in ("stage.json", "inputs.json"):
            path = self.root / name
            if path.is_file():
                try:
                    return json.loads(path.read_text(encoding="utf-8"))
                except ValueError:
                    return {}
        return {}

    def changes(self, inputs: Dict[str, Dict[str, str]], options: Dict[str, Any]) -> List[str]:
        """What differs from the recorded run: inputs (by fingerprint) and options.

        Args:
            inputs: name → ``{"path": ..., "fingerprint": ...}``.
            options: the settings that change results.

        Returns:
            descriptions such as ``input model changed`` or ``beam: 17.0 → 20.0``; empty when
            nothing changed or nothing was recorded (a stage from before fingerprints). An
            option the record lacks (added by a later version, whose default keeps the old
            behaviour) is not a change.
        """
        rec = self.recorded()
        if "fingerprints" not in rec:
            return []
        old_in = {
            k: v.get("fingerprint")
            for k, v in (rec.get("inputs") or {}).items()
            if isinstance(v, dict)
        }
        new_in = {k: v["fingerprint"] for k, v in inputs.items()}
        old_opts = rec.get("options") or {}
        # an option a later version added is not a change: its default keeps the old behaviour
        new_opts = {k: v for k, v in options.items() if k in old_opts}
        return describe_changes(old_in, new_in, "input") + describe_changes(
            old_opts, new_opts, "option"
        )

    def record_inputs(self, inputs: Dict[str, Dict[str, str]], options: Dict[str, Any]) -> None:
        """Write ``inputs.json`` (what a run that has started is built from)."""
        atomic_write_text(
            self.root / "inputs.json",
            json.dumps(
                {
                    "fingerprints": 1,
                    "inputs": inputs,
                    "options": options,
                    "torch_threads": torch_threads(),
                },
                indent=2,
                sort_keys=True,
                default=str,
            )
            + "\n",
        )

    def reset(self) -> None:
        """Remove everything in the stage dir (``--force``) but its lock file and its log
        (which the running command is writing: the redo's lines follow the old ones)."""
        for p in self.root.iterdir():
            if p.name in (".lock", "log"):
                continue
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()

    def write_stage_json(
        self,
        command: str,
        seed: Optional[int] = None,
        fingerprints: Optional[Dict[str, Dict[str, str]]] = None,
        options: Optional[Dict[str, Any]] = None,
        extra: Optional[Dict[str, Any]] = None,
    ) -> Path:
        """Write ``stage.json``: command, versions, git sha, seed, torch threads, inputs (named
        fingerprints, :func:`input_fingerprints`), options, wall time, peak memory."""
        versions = {"stnas": __version__, "python": platform.python_version()}
        for mod in ("torch", "numpy", "kaldiio", "kaldi_native_fbank", "kaldifst"):
            m = sys.modules.get(mod)
            if m is not None:
                versions[mod] = getattr(m, "__version__", "unknown")
        info = {
            "command": command,
            "seed": seed,
            "versions": versions,
            "git_sha": git_sha(),
            "host": platform.node(),
            "torch_threads": torch_threads(),
            "fingerprints": 1,
            "inputs": fingerprints or {},
            "options": options or {},
            "wall_time_s": round(time.time() - self._t0, 3),
            **peak_memory(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        if extra:
            info.update(extra)
        out = self.root / "stage.json"
        atomic_write_text(out, json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
        return out


def finished_record(stage_dir: PathLike) -> Optional[Dict[str, Any]]:
    """The ``stage.json`` of a finished stage, or None when it is not finished."""
    sd = StageDir(stage_dir, create=False)
    return sd.recorded() if sd.is_done(DONE) else None


def stage_info(stage_dir: PathLike) -> Dict[str, Any]:
    """Wall time, peak memory, stop reason and search diagnostics of a finished stage (its
    ``stage.json``); empty when it has none."""
    if not (Path(stage_dir) / "stage.json").is_file():
        return {}
    info = StageDir(stage_dir, create=False).recorded()
    summary = info.get("summary") or {}
    return {
        "wall_s": info.get("wall_time_s"),
        "peak_rss_mib": info.get("peak_rss_mib"),
        "peak_cuda_mib": info.get("peak_cuda_mib"),
        "stopped_by": summary.get("stopped_by"),
        "diagnostics": summary.get("diagnostics"),
        "held_out": summary.get("held_out"),
        "costs": summary.get("costs"),
    }
