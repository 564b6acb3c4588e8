"""``manifest.json``: the sha256 of every file of a directory that travels as a whole (a model
package, :mod:`pipeline.decode.package`).

Schema::

    {"format": "stnas-model-package", "version": 1,
     "files": {"model.safetensors": {"sha256": "<64 hex digits>", "bytes": 123456}, ...}}

File names are plain names in the directory itself (no ``/``, no leading dot), so a manifest
can name nothing outside it. Reading checks the structure and nothing else;
:func:`verify_files` compares each listed file with its hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Dict, Iterable, Union

from pipeline.errors import StnasError
from pipeline.io import atomic_write_text
from pipeline.textfile import read_text

PathLike = Union[str, Path]
MANIFEST = "manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(StnasError):
    """A manifest that cannot be read, or a file that does not match it."""


def sha256_file(path: PathLike) -> str:
    """The sha256 of a file's bytes, as 64 hex digits."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(directory: PathLike, names: Iterable[str], fmt: str, version: int) -> Path:
    """Hash ``names`` (files of ``directory``) into ``directory/manifest.json``, atomically."""
    d = Path(directory)
    files: Dict[str, Dict[str, Any]] = {}
    for name in sorted(names):
        if not _NAME.match(name) or name == MANIFEST:
            raise ValueError(f"not a plain file name for a manifest: {name!r}")
        files[name] = {"sha256": sha256_file(d / name), "bytes": (d / name).stat().st_size}
    out = d / MANIFEST
    text = json.dumps({"format": fmt, "version": version, "files": files}, indent=2)
    atomic_write_text(out, text + "\n")
    return out


def read_manifest(directory: PathLike, fmt: str, max_version: int) -> Dict[str, Dict[str, Any]]:
    """The ``files`` of ``directory/manifest.json``: name → ``{"sha256", "bytes"}``.

    Raises:
        ManifestError: no manifest, not UTF-8 JSON, another format, a newer version than
            ``max_version``, or an entry that is not a plain name with a sha256 and a size
            (naming the manifest).
    """
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{path}: missing: {directory} is not a {fmt} directory")
    try:
        data = json.loads(read_text(path))
    except StnasError as e:
        raise ManifestError(str(e)) from None
    except (ValueError, RecursionError) as e:
        raise ManifestError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise ManifestError(f"{path}: not a {fmt} manifest")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ManifestError(f"{path}: 'version' must be a positive integer")
    if version > max_version:
        raise ManifestError(
            f"{path}: format version {version} is newer than this stnas reads "
            f"({max_version}): update stnas"
        )
    files = data.get("files")
    if not isinstance(files, dict) or not files:
        raise ManifestError(f"{path}: 'files' must map file names to their sha256")
    out: Dict[str, Dict[str, Any]] = {}
    for name, entry in files.items():
        if not _NAME.match(name) or name == MANIFEST:
            raise ManifestError(f"{path}: '{name}' is not a plain file name of the directory")
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        size = entry.get("bytes") if isinstance(entry, dict) else None
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise ManifestError(f"{path}: '{name}' has no sha256 (64 hex digits)")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{path}: '{name}' has no size in bytes")
        out[name] = {"sha256": digest, "bytes": size}
    return out


def verify_files(directory: PathLike, files: Dict[str, Dict[str, Any]]) -> None:
    """Check that every file of the manifest is there with its size and sha256.

    Raises:
        ManifestError: a file missing, or whose content differs from the manifest's (naming
            the file and both hashes).
    """
    d = Path(directory)
    for name, entry in sorted(files.items()):
        path = d / name
        if not path.is_file():
            raise ManifestError(f"{path}: missing, but listed in {d / MANIFEST}")
        size = path.stat().st_size
        got = f"{size} bytes" if size != entry["bytes"] else f"sha256 {sha256_file(path)}"
        want = f"{entry['bytes']} bytes" if size != entry["bytes"] else f"sha256 {entry['sha256']}"
        if got != want:
            raise ManifestError(
                f"{path}: refused: {got} does not match the {want} of {d / MANIFEST}; "
                "the file was changed or damaged after packaging"
            )
