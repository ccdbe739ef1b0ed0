"""Atomic outputs: a folder or file appears whole at the end, or not at all. Standard library only."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from edgeclust.errors import InputError


def check_out_dir(out_dir: str | os.PathLike, force: bool) -> Path:
    """Refuse an existing non-empty output folder unless `force`; refuse a file in its place."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise InputError(f"{out_dir}: exists and is not empty; choose another --out or add --force to replace it")
    return out_dir


@contextlib.contextmanager
def staged_dir(out_dir: str | os.PathLike, force: bool):
    """Yield an empty staging folder beside `out_dir`; on success it becomes `out_dir`, on any error it goes.

    An existing `out_dir` (allowed by `force`) is replaced only once the new one is complete.
    """
    out_dir = check_out_dir(out_dir, force).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        yield staging
        if out_dir.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, trash / "old")
            os.replace(staging, out_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write a file through a temporary name in the same folder, so a reader never sees half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
