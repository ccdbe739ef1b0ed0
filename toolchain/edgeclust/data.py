"""Data sets as numpy arrays: the DATA.npz convention, MNIST's IDX files, and the built-in digits.

numpy and the standard library only; no keras, no tensorflow.
"""

from __future__ import annotations

import gzip
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeclust.errors import DataError, first_line

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class Dataset:
    """Train and test arrays: x float32 of shape (n, *input_shape), y int64 labels in [0, num_classes)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def subset(self, train: int | None = None, test: int | None = None) -> Dataset:
        """The first `train` training and `test` test examples (all when None)."""
        return Dataset(self.x_train[:train], self.y_train[:train], self.x_test[:test], self.y_test[:test])


def _validated(arrays: dict[str, np.ndarray], source: str) -> Dataset:
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype == object or x.dtype.kind == "c" or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise DataError(f"{source}: x_{split} must be a real numeric array (e.g. float32), got dtype {x.dtype}")
        if x.ndim < 2:
            raise DataError(f"{source}: x_{split} must have shape (examples, *input_shape), got {x.shape}")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise DataError(
                f"{source}: y_{split} must be a 1-D array of integer class labels, got "
                f"dtype {y.dtype} with shape {y.shape} (one-hot labels: use y.argmax(axis=1))"
            )
        if len(x) != len(y):
            raise DataError(f"{source}: x_{split} has {len(x)} examples but y_{split} has {len(y)}")
        if len(x) == 0:
            raise DataError(f"{source}: x_{split} is empty")
        if y.min() < 0:
            raise DataError(f"{source}: y_{split} holds a negative label ({int(y.min())})")
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            raise DataError(f"{source}: x_{split} holds NaN or Inf values")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DataError(
            f"{source}: x_train examples have shape {arrays['x_train'].shape[1:]} but x_test "
            f"examples have {arrays['x_test'].shape[1:]}"
        )
    return Dataset(
        x_train=np.asarray(arrays["x_train"], dtype=np.float32),
        y_train=np.asarray(arrays["y_train"], dtype=np.int64),
        x_test=np.asarray(arrays["x_test"], dtype=np.float32),
        y_test=np.asarray(arrays["y_test"], dtype=np.int64),
    )


def load_npz(path: str | os.PathLike) -> Dataset:
    """Read DATA.npz: x_train, y_train, x_test, y_test (integer labels), checked."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file; give a .npz with arrays {', '.join(NPZ_KEYS)}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            if missing:
                raise DataError(
                    f"{path}: missing array(s) {', '.join(missing)}; a DATA.npz holds "
                    f"{', '.join(NPZ_KEYS)} (see README, 'Data')"
                )
            arrays = {k: npz[k] for k in NPZ_KEYS}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({first_line(exc)})") from None
    return _validated(arrays, str(path))


def save_npz(path: str | os.PathLike, data: Dataset) -> None:
    """Write `data` in the DATA.npz convention."""
    np.savez_compressed(path, **{k: getattr(data, k) for k in NPZ_KEYS})


def _read_idx(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: missing; MNIST needs the four official IDX .gz files") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable gzip file ({first_line(exc)})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != int(np.prod(shape)):
        raise DataError(f"{path}: IDX header says shape {shape} but the file holds {len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_mnist(directory: str | os.PathLike) -> Dataset:
    """MNIST from the four official IDX .gz files: x float32 in [0, 1] with shape (n, 28, 28, 1)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such folder; give the folder holding MNIST's four IDX .gz files")

    def images(name: str) -> np.ndarray:
        return (_read_idx(directory / name).astype(np.float32) / 255.0)[..., None]

    def labels(name: str) -> np.ndarray:
        return _read_idx(directory / name).astype(np.int64)

    return Dataset(
        x_train=images("train-images-idx3-ubyte.gz"),
        y_train=labels("train-labels-idx1-ubyte.gz"),
        x_test=images("t10k-images-idx3-ubyte.gz"),
        y_test=labels("t10k-labels-idx1-ubyte.gz"),
    )


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """The 8x8 handwritten digits that scikit-learn ships (1,797 images), x in [0, 1], shape (n, 8, 8, 1)."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise DataError("the built-in digits data comes with scikit-learn: pip install 'edgeclust[demo]'") from None
    bunch = sklearn_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[..., None]
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return Dataset(x[train], y[train], x[test], y[test])
