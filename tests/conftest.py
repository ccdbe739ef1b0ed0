"""Fixtures shared by every test area: the real data sets and small trained models.

Per-area fixtures live in tests/<area>/conftest.py.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.pop("TF_USE_LEGACY_KERAS", None)

import pytest  # noqa: E402

from edgeclust import data as edata  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("EDGECLUST_MNIST_DIR", REPO_ROOT.parent / "shared" / "data" / "mnist"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def mnist() -> edata.Dataset:
    """Full MNIST from ../shared/data/mnist (or $EDGECLUST_MNIST_DIR). Missing data fails, never skips."""
    if not MNIST_DIR.is_dir():
        pytest.fail(f"MNIST not found at {MNIST_DIR}; set EDGECLUST_MNIST_DIR to the IDX .gz folder")
    return edata.load_mnist(MNIST_DIR)


@pytest.fixture(scope="session")
def mnist_small(mnist) -> edata.Dataset:
    """3,000 training and 500 test images: enough to train the MNIST CNN to ~95% in one epoch."""
    return mnist.subset(train=3000, test=500)


@pytest.fixture(scope="session")
def trained_mnist_cnn(mnist_small):
    """The MNIST CNN of the published experiment, trained one epoch on mnist_small (seeded)."""
    from edgeclust import examples

    model = examples.compile_for_training(examples.mnist_cnn(seed=0))
    model.fit(mnist_small.x_train, mnist_small.y_train, batch_size=64, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="session")
def digits() -> edata.Dataset:
    return edata.load_digits()


@pytest.fixture(scope="session")
def digits_inputs(tmp_path_factory, digits):
    """A digits CNN (Conv, BatchNorm, depthwise, Dense) trained 3 epochs, saved as .keras, with DATA.npz."""
    import keras

    from edgeclust import examples
    from edgeclust.pipeline.files import save_keras_atomic

    folder = tmp_path_factory.mktemp("digits_inputs")
    keras.utils.set_random_seed(0)
    model = examples.compile_for_training(examples.digits_cnn(seed=0), learning_rate=3e-3)
    model.fit(digits.x_train, digits.y_train, batch_size=32, epochs=3, verbose=0)
    data = digits.subset(train=800, test=120)
    save_keras_atomic(model, folder / "digits.keras")
    edata.save_npz(folder / "digits.npz", data)
    return folder / "digits.keras", folder / "digits.npz"
