"""The host oracle: the generated C compiled with the host's gcc, examples piped through it.

Binaries are cached per source hash and flags under $EDGECLUST_CACHE_DIR (or ~/.cache/edgeclust)/native-host.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edgeclust.errors import CodegenError, ToolMissingError
from edgeclust.resources import templates_dir

CFLAGS = ("-O2", "-std=c99", "-Wall", "-Wextra", "-Werror")
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g")
RUNTIME_FILES = ("ec_kernels.c", "ec_kernels.h", "ec_host_main.c")


def runtime_dir() -> Path:
    return templates_dir() / "runtime" / "native"


def cache_dir() -> Path:
    root = os.environ.get("EDGECLUST_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgeclust"
    )
    return Path(root) / "native-host"


def build_host(model_files: dict[str, bytes], *, sanitize: bool = False, cc: str | None = None) -> Path:
    """Compile ec_model.c with the runtime and the host main; return the cached executable."""
    cc = cc or os.environ.get("CC") or "gcc"
    if shutil.which(cc) is None:
        raise ToolMissingError(f"{cc} is not installed; install the host C compiler with: sudo apt-get install gcc")
    sources = dict(model_files)
    for name in RUNTIME_FILES:
        sources[name] = (runtime_dir() / name).read_bytes()
    flags = list(CFLAGS) + (list(SANITIZE) if sanitize else [])
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + sources[name] + b"\0")
    digest.update(" ".join([cc, *flags]).encode())
    target = cache_dir() / digest.hexdigest()[:24] / "ec_host"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgeclust-host-") as tmp:
        for name, data in sources.items():
            Path(tmp, name).write_bytes(data)
        c_files = sorted(n for n in sources if n.endswith(".c"))
        command = [cc, *flags, "-I", tmp, *[str(Path(tmp, n)) for n in c_files], "-lm", "-o", str(Path(tmp, "ec_host"))]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            first = next((line for line in done.stderr.splitlines() if "error" in line), done.stderr.strip()[:200])
            raise CodegenError(f"the generated C does not compile with {cc}: {first}")
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.move(str(Path(tmp, "ec_host")), partial)
        os.replace(partial, target)
    return target


def run_host_binary(
    binary: Path, x: np.ndarray, output_shape: tuple[int, ...], output_dtype: str, *, timeout_s: float = 600
) -> np.ndarray:
    """Examples `x` (batch first, the model's input dtype) through the host build; outputs batch first."""
    x = np.ascontiguousarray(x)
    done = subprocess.run([str(binary)], input=x.tobytes(), capture_output=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CodegenError(
            f"the native host build failed on its inputs (exit {done.returncode}): "
            f"{detail[0] if detail else 'no message'}"
        )
    out = np.frombuffer(done.stdout, dtype=np.dtype(output_dtype))
    return out.reshape((len(x), *output_shape)).copy()
