"""Stage bookkeeping shared by every stage: atomic writes, done markers, ``stage.json``, and
the fingerprints that keep results fresh.

A stage directory holds the resolved config (``config.yaml``), a ``stage.json`` describing the
run (command, versions, git sha, seed, torch threads, inputs, wall time) and ``.done/<name>``
markers, one per finished sub-stage, so a rerun resumes where it stopped and ``--force`` redoes.

**Fresh results only.** A stage records the fingerprints of its inputs (model, graph,
features, labels, ...) and its options when it starts (``inputs.json``) and when it ends
(``stage.json``). A rerun compares them with the present ones (:meth:`StageDir.changes`): the
same → the finished stage is up to date and nothing runs; different → the stage is refused with
a message naming what changed, until it is rerun with ``--force``, which also removes the
stages built from it (:func:`remove_dependents`). Fingerprints are content hashes
(:func:`fingerprint`), so a copied or moved file keeps its fingerprint and a regenerated one
does not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Union

from pipeline import __version__
from pipeline.errors import write_error
from pipeline.locks import lock_dir, unlock_dir

PathLike = Union[str, Path]


def _umask() -> int:
    """The process umask (read without changing it for longer than a moment)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    A crash or exception leaves any previous ``path`` untouched and removes the temporary.
    The file gets the permissions of a plain ``open()`` under the process umask (``mkstemp``
    alone would leave it readable by its owner only).

    Raises:
        WriteError: the disk is full, read-only or not writable (a user error naming the
            place), instead of the raw OS or torch exception.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise (write_error(path, e) or e) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException as e:
        tmp_path.unlink(missing_ok=True)
        err = write_error(path, e) if isinstance(e, (OSError, RuntimeError)) else None
        if err is not None:
            raise err from None
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


_WHOLE_FILE = 1 << 26   # files up to 64 MiB are hashed whole
_BLOCK, _BLOCKS = 1 << 16, 64


def fingerprint(path: PathLike) -> str:
    """Content fingerprint of a file, ``sha256:<hex>``.

    A file up to 64 MiB is hashed whole; a larger one (feature archives of a big corpus) by
    its size and 64 blocks of 64 KiB at evenly spaced offsets, which tells a regenerated file
    from the old one while reading 4 MiB at most (an edit confined to the bytes between two
    sampled blocks would go unnoticed).
    """
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(f"{size}\n".encode())
    with open(path, "rb") as f:
        if size <= _WHOLE_FILE:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        else:
            for i in range(_BLOCKS):
                f.seek((size - _BLOCK) * i // (_BLOCKS - 1))
                h.update(f.read(_BLOCK))
    return "sha256:" + h.hexdigest()


def scp_fingerprint(scp: PathLike) -> str:
    """Fingerprint of an ``scp`` file together with every archive it points into."""
    scp = Path(scp)
    h = hashlib.sha256(fingerprint(scp).encode())
    arks = []
    for line in scp.read_text(encoding="utf-8").splitlines():
        parts = line.split(maxsplit=1)
        if len(parts) == 2:
            arks.append(parts[1].rsplit(":", 1)[0])
    for ark in sorted(set(arks)):
        h.update(f"{Path(ark).name} {fingerprint(ark) if Path(ark).is_file() else 'missing'}\n"
                 .encode())
    return "sha256:" + h.hexdigest()


def input_fingerprints(paths: Dict[str, PathLike]) -> Dict[str, Dict[str, str]]:
    """``{name: {"path", "fingerprint"}}`` for named inputs (``*.scp`` with their archives).

    Raises:
        FileNotFoundError: an input is missing.
    """
    out = {}
    for name, p in paths.items():
        p = Path(p)
        fp = scp_fingerprint(p) if p.suffix == ".scp" else fingerprint(p)
        out[name] = {"path": str(p), "fingerprint": fp}
    return out


def describe_changes(old: Dict[str, Any], new: Dict[str, Any], what: str) -> List[str]:
    """Human-readable differences between two flat dicts (``beam: 17 → 20``)."""
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            if what == "input":
                out.append(f"input {key} changed" if key in old and key in new
                           else f"input {key} {'added' if key in new else 'removed'}")
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
            rec = StageDir(sib).recorded().get("inputs") or {}
            paths = [Path(v["path"]) for v in rec.values() if isinstance(v, dict) and "path" in v]
            if any(src in p.resolve().parents for p in paths):
                lock_dir(sib)  # not while another process works in it (LockedError)
                shutil.rmtree(sib)
                unlock_dir(sib)
                removed.append(sib)
                todo.append(sib)
    return removed


def git_sha(repo: Optional[PathLike] = None) -> Optional[str]:
    """The commit of the source tree stnas runs from, or None outside a git checkout."""
    repo = Path(repo) if repo else Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def peak_memory() -> Dict[str, float]:
    """Peak memory of this process so far, MiB: ``peak_rss_mib`` (resident set, the whole
    process: the stage's own when it runs as its own command) and, when CUDA was used,
    ``peak_cuda_mib`` (torch's peak allocation on the current device)."""
    import resource

    out = {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        out["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    return out


class StageDir:
    """A stage's output directory with per-sub-stage done markers.

    Args:
        root: the directory (created if missing).
        force: redo finished sub-stages instead of skipping them.
    """

    def __init__(self, root: PathLike, force: bool = False) -> None:
        self.root = Path(root)
        self.force = force
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
        old_in = {k: v.get("fingerprint") for k, v in (rec.get("inputs") or {}).items()
                  if isinstance(v, dict)}
        new_in = {k: v["fingerprint"] for k, v in inputs.items()}
        old_opts = rec.get("options") or {}
        # an option a later version added is not a change: its default keeps the old behaviour
        new_opts = {k: v for k, v in options.items() if k in old_opts}
        return (describe_changes(old_in, new_in, "input")
                + describe_changes(old_opts, new_opts, "option"))

    def record_inputs(self, inputs: Dict[str, Dict[str, str]], options: Dict[str, Any]) -> None:
        """Write ``inputs.json`` (what a run that has started is built from)."""
        atomic_write_text(self.root / "inputs.json", json.dumps(
            {"fingerprints": 1, "inputs": inputs, "options": options,
             "torch_threads": torch_threads()}, indent=2, sort_keys=True, default=str) + "\n")

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
