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
    """Train and test arrays: x float32 of shape (n, *input_shape); y int64 class labels of shape (n,), or float32
    targets of shape (n, ...) (one-hot rows, 0/1 labels, regression targets, y = x for an autoencoder)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        """Integer labels: the largest + 1; one-hot rows: their length."""
        if self.y_train.ndim > 1:
            return int(self.y_train.shape[-1])
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
        if y.ndim < 1 or y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
            raise DataError(
                f"{source}: y_{split} must be a numeric array with one row per example (integer class labels, "
                f"one-hot rows, 0/1 labels or float targets), got dtype {y.dtype} with shape {y.shape}"
            )
        if len(x) != len(y):
            raise DataError(f"{source}: x_{split} has {len(x)} examples but y_{split} has {len(y)}")
        if len(x) == 0:
            raise DataError(f"{source}: x_{split} is empty")
        if _class_labels(y) and y.min() < 0:
            raise DataError(f"{source}: y_{split} holds a negative label ({int(y.min())})")
        if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
            raise DataError(f"{source}: y_{split} holds NaN or Inf values")
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            raise DataError(f"{source}: x_{split} holds NaN or Inf values")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DataError(
            f"{source}: x_train examples have shape {arrays['x_train'].shape[1:]} but x_test "
            f"examples have {arrays['x_test'].shape[1:]}"
        )
    if arrays["y_train"].shape[1:] != arrays["y_test"].shape[1:]:
        raise DataError(
            f"{source}: y_train rows have shape {arrays['y_train'].shape[1:]} but y_test rows have "
            f"{arrays['y_test'].shape[1:]}"
        )
    classes = _class_labels(arrays["y_train"]) and _class_labels(arrays["y_test"])
    y_dtype = np.int64 if classes else np.float32
    return Dataset(
        x_train=np.asarray(arrays["x_train"], dtype=np.float32),
        y_train=np.asarray(arrays["y_train"], dtype=y_dtype),
        x_test=np.asarray(arrays["x_test"], dtype=np.float32),
        y_test=np.asarray(arrays["y_test"], dtype=y_dtype),
    )


def _class_labels(y: np.ndarray) -> bool:
    """Whether `y` reads as integer class labels: one integer per example."""
    return y.ndim == 1 and (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_)


def load_npz(path: str | os.PathLike) -> Dataset:
    """Read DATA.npz: x_train, y_train, x_test, y_test (class labels or targets, see Dataset), checked."""
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
