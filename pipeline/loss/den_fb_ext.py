"""Build and load the fused den forward-backward extension (``csrc/den_fb.cpp``, and
``csrc/den_fb_cuda.cu`` when torch has CUDA).

``make install`` (``tools/install.sh``) runs ``python -m pipeline.loss.den_fb_ext`` once, which
compiles with ``torch.utils.cpp_extension`` (g++ and ninja; nvcc for the CUDA kernels) into
``pipeline/loss/_build/``. At run time :func:`load` only imports the compiled library; it never
compiles. A missing or out-of-date build (sources newer than the library) gives None and a
warning naming the command to run, and the loss falls back to the pure-torch implementation.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import List, Optional

log = logging.getLogger(__name__)

NAME = "stnas_den_fb"
HERE = Path(__file__).resolve().parent
# the lattice decoder (pipeline/decode) is compiled into the same library: one build, one load
SOURCES = [HERE / "csrc" / "den_fb.cpp", HERE.parent / "decode" / "csrc" / "lattice_decoder.cpp"]
CUDA_SOURCES = [HERE / "csrc" / "den_fb_cuda.cu"]
BUILD_DIR = HERE / "_build"

_loaded: Optional[ModuleType] = None
_warned = False


def want_cuda() -> bool:
    """Whether to compile the CUDA kernels: torch was built with CUDA and nvcc is found."""
    import torch
    from torch.utils.cpp_extension import CUDA_HOME

    return torch.version.cuda is not None and CUDA_HOME is not None


def library_path() -> Optional[Path]:
    """The compiled library in :data:`BUILD_DIR`, if any."""
    found = sorted(BUILD_DIR.glob(f"{NAME}*.so")) if BUILD_DIR.is_dir() else []
    return found[0] if found else None


def build(verbose: bool = False) -> Path:
    """Compile the extension (incremental: ninja rebuilds only what changed); return its path."""
    from torch.utils.cpp_extension import load as cpp_load

    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    sources: List[str] = [str(p) for p in SOURCES]
    # -fopenmp: at::parallel_for runs serially in code compiled without it
    flags = ["-O3", "-march=native", "-fopenmp"]
    cuda = want_cuda()
    if cuda:
        sources += [str(p) for p in CUDA_SOURCES]
        flags.append("-DWITH_CUDA")
    cpp_load(
        name=NAME,
        sources=sources,
        extra_cflags=flags,
        extra_cuda_cflags=["-O3"] if cuda else None,
        extra_ldflags=["-fopenmp"],
        build_directory=str(BUILD_DIR),
        with_cuda=cuda,
        verbose=verbose,
    )
    path = library_path()
    if path is None:
        raise RuntimeError(f"den_fb extension: no library in {BUILD_DIR} after the build")
    os.utime(path)  # newer than the sources even when ninja had nothing to do
    return path


def _stale(path: Path) -> bool:
    newest = max(p.stat().st_mtime for p in SOURCES + CUDA_SOURCES if p.exists())
    return path.stat().st_mtime < newest


def load() -> Optional[ModuleType]:
    """The compiled extension, or None (with one warning) when it is not built or out of date."""
    global _loaded, _warned
    if _loaded is not None:
        return _loaded
    path = library_path()
    problem = (
        "is not built" if path is None else "is older than its sources" if _stale(path) else None
    )
    if problem is None:
        import torch  # noqa: F401  (the library links against torch's)

        spec = importlib.util.spec_from_file_location(NAME, path)
        assert spec is not None and spec.loader is not None  # a .so path: the extension loader
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except ImportError as e:
            problem = f"does not load ({e})"
        else:
            _loaded = module
            return module
    if not _warned:
        log.warning(
            "the fused den forward-backward extension %s; using the slower pure-torch "
            "implementation (build it with 'make install' or 'python -m "
            "pipeline.loss.den_fb_ext')",
            problem,
        )
        _warned = True
    return None


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the fused den forward-backward extension into pipeline/loss/_build/."
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    start = time.time()
    path = build(verbose=args.verbose)
    print(
        f"den_fb extension: {path} ({'CPU and CUDA' if want_cuda() else 'CPU'}; "
        f"{time.time() - start:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
