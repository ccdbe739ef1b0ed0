"""Compile C sources with the host's compiler into a cached executable, and pipe bytes through it: the native
backend's host oracle runs this way.

Executables are cached per sources, compiler and flags in resources.cache_dir("native-host"), written under a
temporary name and renamed into place, so concurrent processes never run half a file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from edgeclust import resources
from edgeclust.errors import CodegenError, ToolMissingError

HOST_INSTALL = "sudo apt-get install gcc"


def host_compiler(cc: str | None = None) -> str:
    """`cc`, else $CC, else gcc; ToolMissingError when it is not on PATH."""
    cc = cc or os.environ.get("CC") or "gcc"
    if shutil.which(cc) is None:
        raise ToolMissingError(f"{cc} is not installed; install the host C compiler with: {HOST_INSTALL}")
    return cc


def compile_host(
    sources: Mapping[str, bytes], *, flags: Sequence[str], libs: Sequence[str] = ("-lm",), cc: str | None = None
) -> Path:
    """Compile every .c of `sources` ({file name: bytes}, headers beside them) into one executable; the cached
    path. A compile error is a CodegenError naming the compiler's first error line."""
    cc = host_compiler(cc)
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + sources[name] + b"\0")
    digest.update(" ".join([cc, *flags, *libs]).encode())
    target = resources.cache_dir("native-host") / digest.hexdigest()[:24] / "ec_host"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgeclust-host-") as tmp:
        for name, data in sources.items():
            Path(tmp, name).write_bytes(data)
        c_files = [str(Path(tmp, n)) for n in sorted(sources) if n.endswith(".c")]
        binary = Path(tmp, "ec_host")
        command = [cc, *flags, "-I", tmp, *c_files, *libs, "-o", str(binary)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            first = next((line for line in done.stderr.splitlines() if "error" in line), done.stderr.strip()[:200])
            raise CodegenError(f"the generated C does not compile with {cc}: {first}")
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.move(str(binary), partial)
        os.replace(partial, target)
    return target


def run_host_binary(binary: Path, data: bytes, *, timeout_s: float = 600) -> bytes:
    """Pipe `data` through `binary`; its standard output. A non-zero exit is a CodegenError with its first
    line of standard error; a run past `timeout_s` is a CodegenError too."""
    try:
        done = subprocess.run([str(binary)], input=data, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise CodegenError(f"the native host build did not finish within {timeout_s:g} s") from None
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CodegenError(
            f"the native host build failed on its inputs (exit {done.returncode}): "
            f"{detail[0] if detail else 'no message'}"
        )
    return done.stdout
