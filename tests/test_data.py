"""DATA.npz, MNIST IDX and digits loading: real files, every documented failure one DataError line."""

import gzip

import numpy as np
import pytest

from edgeclust import data as edata
from edgeclust.errors import DataError


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good_arrays():
    rng = np.random.default_rng(0)
    return dict(
        x_train=rng.random((20, 8, 8, 1), dtype=np.float32),
        y_train=rng.integers(0, 10, 20),
        x_test=rng.random((5, 8, 8, 1), dtype=np.float32),
        y_test=rng.integers(0, 10, 5),
    )


def test_mnist_matches_published_counts(mnist):
    assert mnist.x_train.shape == (60000, 28, 28, 1) and mnist.x_test.shape == (10000, 28, 28, 1)
    assert mnist.x_train.dtype == np.float32 and 0.0 <= mnist.x_train.min() and mnist.x_train.max() == 1.0
    assert np.bincount(mnist.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_npz_round_trip(tmp_path):
    arrays = _good_arrays()
    path = _npz(tmp_path / "d.npz", **arrays)
    loaded = edata.load_npz(path)
    assert loaded.input_shape == (8, 8, 1) and loaded.x_train.dtype == np.float32
    np.testing.assert_array_equal(loaded.y_test, arrays["y_test"])
    edata.save_npz(tmp_path / "again.npz", loaded)
    again = edata.load_npz(tmp_path / "again.npz")
    np.testing.assert_array_equal(again.x_train, loaded.x_train)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("y_test"), "missing array(s) y_test"),
        (lambda a: a.update(y_train=np.array(["a"] * len(a["y_train"]))), "numeric array with one row per example"),
        (lambda a: a.update(y_train=np.float32(np.nan) * np.ones(len(a["y_train"]), np.float32)), "y_train holds NaN"),
        (lambda a: a.update(y_train=np.eye(10)[a["y_train"]]), "y_train rows have shape (10,) but y_test rows"),
        (lambda a: a.update(y_test=a["y_test"][:3]), "x_test has 5 examples but y_test has 3"),
        (lambda a: a.update(y_train=-a["y_train"] - 1), "negative label"),
        (lambda a: a.update(x_test=np.zeros((5, 4, 4, 1), np.float32)), "x_train examples have shape"),
        (lambda a: a["x_train"].__setitem__((0, 0, 0, 0), np.nan), "NaN or Inf"),
        (lambda a: a.update(x_train=np.array(["a"] * 20)), "numeric array"),
        (lambda a: a.update(x_train=np.zeros(20, np.float32)), "shape (examples, *input_shape)"),
    ],
)
def test_npz_problems_are_one_line_data_errors(tmp_path, change, message):
    arrays = _good_arrays()
    change(arrays)
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=None) as info:
        edata.load_npz(path)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04truncated"])
def test_unreadable_npz(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match="not a readable .npz"):
        edata.load_npz(path)


def test_missing_npz(tmp_path):
    with pytest.raises(DataError, match="no such data file"):
        edata.load_npz(tmp_path / "nope.npz")


def test_idx_with_wrong_length_is_refused(tmp_path):
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 100)
    with pytest.raises(DataError, match="IDX header says shape"):
        edata.load_mnist(tmp_path)


def test_digits_split_is_seeded_and_disjoint():
    a, b = edata.load_digits(seed=1), edata.load_digits(seed=1)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert len(a.x_train) + len(a.x_test) == 1797 and a.input_shape == (8, 8, 1)
    assert a.x_train.max() <= 1.0 and a.num_classes == 10


def test_one_hot_rows_and_float_targets_load_as_float_and_class_labels_as_integers(tmp_path):
    arrays = _good_arrays()
    labels = edata.load_npz(_npz(tmp_path / "labels.npz", **arrays))
    assert labels.y_train.dtype == np.int64 and labels.num_classes == int(arrays["y_train"].max()) + 1
    one_hot = {**arrays, "y_train": np.eye(10)[arrays["y_train"]], "y_test": np.eye(10)[arrays["y_test"]]}
    loaded = edata.load_npz(_npz(tmp_path / "one_hot.npz", **one_hot))
    assert loaded.y_train.dtype == np.float32 and loaded.y_train.shape[1:] == (10,) and loaded.num_classes == 10
    autoencoder = {**arrays, "y_train": arrays["x_train"], "y_test": arrays["x_test"]}
    loaded = edata.load_npz(_npz(tmp_path / "ae.npz", **autoencoder))
    assert loaded.y_train.shape == loaded.x_train.shape and loaded.y_test.dtype == np.float32
