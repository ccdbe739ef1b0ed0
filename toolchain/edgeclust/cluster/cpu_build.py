"""Compile cpu_kernels.c (TensorFlow CPU ops for the clustered training step) once per source and TensorFlow.

The shared library goes to resources.cache_dir("kernels") (~/.cache/edgeclust/kernels by default), named after a
hash of the source, the compiler command and TensorFlow's version, written under a temporary name and renamed
into place, so that concurrent processes never load half a file. Needs a C compiler (gcc, or $CC).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from edgeclust import resources

SOURCE = Path(__file__).with_name("cpu_kernels.c")


class KernelBuildError(RuntimeError):
    """The C kernels could not be compiled here (no compiler, or it failed): the caller falls back."""


def _compiler() -> str:
    cc = os.environ.get("CC") or "gcc"
    if shutil.which(cc) is None:
        raise KernelBuildError(f"no C compiler {cc!r} on PATH (install gcc, or set CC)")
    return cc


def command(cc: str, include_dir: str, lib_dir: str, output: str) -> list[str]:
    """The compile-and-link command line for the TensorFlow installation at include_dir / lib_dir."""
    return [
        cc,
        "-O3",
        "-std=c99",
        "-D_POSIX_C_SOURCE=200809L",
        "-shared",
        "-fPIC",
        "-Wall",
        "-Wextra",
        "-isystem",
        include_dir,
        str(SOURCE),
        "-o",
        output,
        f"-L{lib_dir}",
        "-l:libtensorflow_framework.so.2",
        f"-Wl,-rpath,{lib_dir}",
        "-lm",
    ]


def built_library(include_dir: str, lib_dir: str, tf_version: str) -> Path:
    """Path of the compiled library for this TensorFlow, compiling it first if the cache lacks it."""
    cc = _compiler()
    key = hashlib.sha256()
    key.update(SOURCE.read_bytes())
    key.update(" ".join(command(cc, include_dir, lib_dir, "out")).encode())
    key.update(tf_version.encode())
    target = resources.cache_dir("kernels") / f"cpu_kernels-{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=target.stem, suffix=".so.partial", dir=target.parent)
    os.close(fd)
    try:
        result = subprocess.run(command(cc, include_dir, lib_dir, partial), capture_output=True, text=True)
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise KernelBuildError(f"{cc} failed on {SOURCE.name}: {lines[0] if lines else 'no output'}")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target
