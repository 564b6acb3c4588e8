"""Stage bookkeeping shared by every stage: atomic writes, done markers, ``stage.json``.

A stage directory holds the resolved config (``config.yaml``), a ``stage.json`` describing the
run (command, versions, git sha, seed, input checksums, wall time) and ``.done/<name>`` markers,
one per finished sub-stage, so a rerun resumes where it stopped and ``--force`` redoes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Optional, Union

from pipeline import __version__
from pipeline.errors import StageDoneError

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
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def file_checksum(path: PathLike, limit_bytes: int = 1 << 26) -> str:
    """sha256 of a file (first ``limit_bytes`` only, so huge archives stay cheap), hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(limit_bytes))
    return h.hexdigest()


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

    def refuse_if_done(self, name: str = "stage") -> None:
        """Raise StageDoneError when the whole stage finished and ``force`` is off."""
        if self.is_done(name):
            raise StageDoneError(
                f"{self.root} is a finished stage; rerun with --force to redo it"
            )

    def write_stage_json(
        self,
        command: str,
        seed: Optional[int] = None,
        inputs: Iterable[PathLike] = (),
        extra: Optional[Dict[str, Any]] = None,
    ) -> Path:
        """Write ``stage.json``: command, versions, git sha, seed, input checksums, wall time."""
        versions = {"stnas": __version__, "python": platform.python_version()}
        for mod in ("torch", "numpy", "kaldiio", "kaldi_native_fbank", "kaldifst"):
            m = sys.modules.get(mod)
            if m is not None:
                versions[mod] = getattr(m, "__version__", "unknown")
        checksums = {}
        for p in inputs:
            p = Path(p)
            if p.is_file():
                checksums[str(p)] = file_checksum(p)
        info = {
            "command": command,
            "seed": seed,
            "versions": versions,
            "git_sha": git_sha(),
            "host": platform.node(),
            "inputs": checksums,
            "wall_time_s": round(time.time() - self._t0, 3),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        if extra:
            info.update(extra)
        out = self.root / "stage.json"
        atomic_write_text(out, json.dumps(info, indent=2, sort_keys=True) + "\n")
        return out
