"""Files written safely and told apart by content: atomic writes and fingerprints.

Every file a stage writes goes through :func:`atomic_path` (temp file + rename), so a crash
never leaves a half-written file under the final name. :func:`fingerprint` is a content hash:
a copied or moved file keeps its fingerprint, a regenerated one does not.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Iterator, Optional, Union

from pipeline.errors import write_error

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


_WHOLE_FILE = 1 << 26  # files up to 64 MiB are hashed whole
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
        h.update(
            f"{Path(ark).name} {fingerprint(ark) if Path(ark).is_file() else 'missing'}\n".encode()
        )
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


def git_sha(repo: Optional[PathLike] = None) -> Optional[str]:
    """The commit of the source tree stnas runs from, or None outside a git checkout."""
    repo = Path(repo) if repo else Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
