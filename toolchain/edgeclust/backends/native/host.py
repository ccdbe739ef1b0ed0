"""The host oracle: the generated C compiled with the host's compiler (device/host_build.py runs it), examples
piped through it.

What this backend decides: which runtime files go with the model and with which flags; device/ compiles
(cached in resources.cache_dir("native-host")) and runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeclust.backends.native.project import KERNEL_SOURCES
from edgeclust.device import host_build
from edgeclust.resources import templates_dir

CFLAGS = ("-O2", "-std=c99", "-Wall", "-Wextra", "-Werror")
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g")
RUNTIME_FILES = KERNEL_SOURCES + ("ec_host_main.c",)


def runtime_dir() -> Path:
    return templates_dir() / "runtime" / "native"


def build_host(model_files: dict[str, bytes], *, sanitize: bool = False, cc: str | None = None) -> Path:
    """Compile ec_model.c with the runtime and the host main; return the cached executable."""
    sources = dict(model_files)
    for name in RUNTIME_FILES:
        sources[name] = (runtime_dir() / name).read_bytes()
    flags = CFLAGS + (SANITIZE if sanitize else ())
    return host_build.compile_host(sources, flags=flags, cc=cc)


def run_host_binary(
    binary: Path, x: np.ndarray, output_shape: tuple[int, ...], output_dtype: str, *, timeout_s: float = 600
) -> np.ndarray:
    """Examples `x` (batch first, the model's input dtype) through the host build; outputs batch first."""
    x = np.ascontiguousarray(x)
    out = np.frombuffer(host_build.run_host_binary(binary, x.tobytes(), timeout_s=timeout_s), np.dtype(output_dtype))
    return out.reshape((len(x), *output_shape)).copy()
