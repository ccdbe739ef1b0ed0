"""The built-in demo: train a small CNN on scikit-learn's 8x8 digits, then run the whole build on it."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeclust import data as edata
from edgeclust.pipeline.build import BuildOptions, BuildResult, build_titles, run_build
from edgeclust.pipeline.comparison import price_build_on_every_backend
from edgeclust.pipeline.files import save_keras_atomic
from edgeclust.pipeline.progress import ProgressCallback, Stages
from edgeclust.pipeline.stages import ClusterOptions

DEMO_BOARD = "qemu_mps2_an386"
TRAIN_TITLE = "Train the demo model"


@dataclass(frozen=True)
class DemoResult:
    """The demo's build, and where its model and data were kept."""

    build: BuildResult
    model_path: Path
    data_path: Path
    prices: tuple = ()  # comparison.BackendPrice per backend: the same model on the same board


def train_digits_model(dataset: edata.Dataset, *, epochs: int, seed: int, stages: Stages):
    """The demo's digits CNN, trained from scratch (seeded) with progress ticks."""
    from edgeclust import examples
    from edgeclust.pipeline.training import _ProgressCallback

    model = examples.compile_for_training(examples.digits_cnn(seed=seed), learning_rate=3e-3)
    steps = -(-len(dataset.x_train) // 32)
    model.fit(
        dataset.x_train,
        dataset.y_train,
        batch_size=32,
        epochs=epochs,
        verbose=0,
        callbacks=[_ProgressCallback(stages, epochs, steps)],
    )
    return model


def run_demo(
    out_dir: Path,
    *,
    board=DEMO_BOARD,
    epochs: int = 12,
    seed: int = 0,
    backend: str = "auto",
    plots: bool = True,
    on_progress: ProgressCallback | None = None,
) -> DemoResult:
    """Train on the digits, save model.keras and data.npz under out_dir/inputs, then build for `board`."""
    import keras

    options = BuildOptions(
        board=board,
        out_dir=Path(out_dir),
        force=True,
        plots=plots,
        backend=backend,
        cluster=ClusterOptions(clusters=16, init="kmeans++", epochs=3, learning_rate=1e-4, batch_size=32, seed=seed),
    )
    stages = Stages([TRAIN_TITLE, *build_titles(options)], on_progress)
    stages.start(TRAIN_TITLE)
    dataset = edata.load_digits(seed=seed)
    stages.info(f"scikit-learn digits: {len(dataset.x_train):,} training and {len(dataset.x_test):,} test images, 8x8")
    keras.utils.set_random_seed(seed)
    model = train_digits_model(dataset, epochs=epochs, seed=seed, stages=stages)

    with tempfile.TemporaryDirectory(prefix="edgeclust-demo-") as tmp:
        model_path, data_path = Path(tmp) / "digits_cnn.keras", Path(tmp) / "digits.npz"
        save_keras_atomic(model, model_path)
        edata.save_npz(data_path, dataset)
        result = run_build(model_path, data_path, options, stages)
        prices = price_build_on_every_backend(result)
        inputs = Path(out_dir) / "inputs"
        inputs.mkdir(exist_ok=True)
        (inputs / model_path.name).write_bytes(model_path.read_bytes())
        (inputs / data_path.name).write_bytes(data_path.read_bytes())
    return DemoResult(result, inputs / model_path.name, inputs / data_path.name, prices)
