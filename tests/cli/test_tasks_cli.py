"""Models of every head, built as users bring them: the task (multiclass with integer or one-hot labels,
binary with one sigmoid output, regression and autoencoders) decides the fine-tuning loss, the metric in the
report and the summary, and how parity compares outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeclust.data import Dataset
from edgeclust.errors import DataError
from edgeclust.pipeline.task import infer_task, loss_kind

BOARD = "qemu_mps2_an386"


def _data(y_train, y_test, x_shape=(8,)):
    return Dataset(np.zeros((len(y_train), *x_shape), np.float32), y_train, np.zeros((len(y_test), *x_shape)), y_test)


@pytest.mark.parametrize(
    "output, y, loss, kind, labels",
    [
        ((10,), np.arange(20) % 10, None, "multiclass", "integer"),
        ((10,), np.eye(10, dtype=np.float32)[np.arange(20) % 10], None, "multiclass", "one_hot"),
        ((10,), np.eye(10, dtype=np.float32)[np.arange(20) % 10], "categorical_crossentropy", "multiclass", "one_hot"),
        ((1,), np.arange(20) % 2, None, "binary", "binary"),
        ((1,), (np.arange(20) % 2).reshape(-1, 1).astype(np.float32), None, "binary", "binary"),
        ((3,), (np.arange(60).reshape(20, 3) % 2).astype(np.float32), None, "binary", "binary"),
        ((1,), np.linspace(-1, 3, 20).astype(np.float32), None, "regression", "float"),
        ((8, 8, 1), np.random.default_rng(0).random((20, 8, 8, 1), dtype=np.float32), None, "regression", "float"),
        ((1,), np.arange(20) % 2, {"class_name": "MeanSquaredError", "config": {}}, "regression", "float"),
    ],
)
def test_the_task_comes_from_the_output_the_loss_and_the_labels(output, y, loss, kind, labels):
    task = infer_task(output, _data(y, y[:4]), loss=loss)
    assert (task.kind, task.labels) == (kind, labels)


def test_loss_names_in_the_shapes_files_store_them():
    assert loss_kind("sparse_categorical_crossentropy") == loss_kind("categorical_crossentropy") == "multiclass"
    assert loss_kind({"module": "keras.losses", "class_name": "BinaryCrossentropy", "config": {}}) == "binary"
    assert loss_kind("mse") == loss_kind("mean_absolute_error") == loss_kind("huber") == "regression"
    assert loss_kind(None) is None and loss_kind("my_custom_loss") is None


@pytest.mark.parametrize(
    "asked, y, output, message",
    [
        ("multiclass", np.random.default_rng(0).random((20, 8, 8, 1), dtype=np.float32), (8, 8, 1), "one score per"),
        ("binary", np.linspace(0, 3, 20).astype(np.float32), (1,), "labels 0 or 1"),
        ("regression", np.arange(20) % 10, (10,), "10 value(s) per example".replace("10 value", "1 value")),
        ("multiclass", np.arange(20) % 12, (10,), "labels go up to 11 but the model has 10 outputs"),
    ],
)
def test_a_task_the_data_cannot_fit_is_one_clear_error(asked, y, output, message):
    with pytest.raises(DataError) as info:
        infer_task(output, _data(y, y[:4]), asked=asked)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_metrics_per_task():
    one_hot = infer_task((3,), _data(np.eye(3, dtype=np.float32)[[0, 1, 2, 0]], np.eye(3, dtype=np.float32)[[0]]))
    scores = one_hot.scores(np.array([[3, 0, 0], [0, 2, 1], [1, 0, 0], [0, 0, 1]]), np.eye(3)[[0, 1, 2, 0]])
    assert scores == {"top-1 accuracy": 0.5}
    binary = infer_task((1,), _data(np.array([0, 1, 1, 0]), np.array([0, 1])), probabilities=True)
    assert binary.scores(np.array([[0.2], [0.9], [0.4], [0.6]]), np.array([0, 1, 1, 0])) == {"binary accuracy": 0.5}
    regression = infer_task((2,), _data(np.full((4, 2), 0.5, np.float32), np.ones((1, 2), np.float32)))
    scores = regression.scores(np.array([[1.0, 1.0], [1.0, 3.0]]), np.ones((2, 2)))
    assert scores == {"MSE": 1.0, "MAE": 0.5} and regression.drop(1.0, 1.25) == 0.25 and not regression.from_logits


# -- end to end, through the CLI -------------------------------------------------------------------------------


def _save(model, folder, name, x_train, y_train, x_test, y_test):
    model.save(folder / f"{name}.keras")
    np.savez(folder / f"{name}.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return folder / f"{name}.keras", folder / f"{name}.npz"


@pytest.fixture(scope="module")
def user_models(tmp_path_factory, digits):
    """The shapes of common tutorials on the digits: a one-hot categorical_crossentropy classifier, a one-output
    sigmoid classifier (digit >= 5), and a dense autoencoder trained on y = x; each with its DATA.npz."""
    import keras

    folder = tmp_path_factory.mktemp("user_models")
    d = digits.subset(train=400, test=40)
    keras.utils.set_random_seed(0)

    def body(outputs, activation):
        return [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(outputs, activation=activation),
        ]

    one_hot = keras.Sequential(body(10, "softmax"))
    one_hot.compile(keras.optimizers.Adam(1e-2), "categorical_crossentropy", metrics=["accuracy"])
    y_hot, y_hot_test = np.eye(10, dtype=np.float32)[d.y_train], np.eye(10, dtype=np.float32)[d.y_test]
    one_hot.fit(d.x_train, y_hot, epochs=5, verbose=0)
    binary = keras.Sequential(body(1, "sigmoid"))
    binary.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy", metrics=["accuracy"])
    y_bin, y_bin_test = (d.y_train >= 5).astype(np.int64), (d.y_test >= 5).astype(np.int64)
    binary.fit(d.x_train, y_bin, epochs=5, verbose=0)
    autoencoder = keras.Sequential([*body(64, "sigmoid"), keras.layers.Reshape((8, 8, 1))])
    autoencoder.compile(keras.optimizers.Adam(1e-2), "mse")
    autoencoder.fit(d.x_train, d.x_train, epochs=5, verbose=0)
    return {
        "one_hot": _save(one_hot, folder, "one_hot", d.x_train, y_hot, d.x_test, y_hot_test),
        "binary": _save(binary, folder, "binary", d.x_train, y_bin, d.x_test, y_bin_test),
        "autoencoder": _save(autoencoder, folder, "autoencoder", d.x_train, d.x_train, d.x_test, d.x_test),
    }


def _build(run_cli, paths, out, *args):
    model, data = paths
    result = run_cli(["build", model, "--board", BOARD, "--data", data, "--out", out, "--backend", "tflm", *args])
    assert result.exit_code == 0, result.stderr[-3000:]
    return result, json.loads((out / "report.json").read_text())


@pytest.mark.parametrize(
    "name, kind, metric, floor",
    [("one_hot", "multiclass", "top-1 accuracy", 0.5), ("binary", "binary", "binary accuracy", 0.6)],
)
def test_classifiers_of_every_head_build_and_report_their_metric(
    run_cli, user_models, tmp_path, name, kind, metric, floor
):
    result, report = _build(run_cli, user_models[name], tmp_path / "out")
    assert report["task"]["kind"] == kind and report["task"]["decided"] == "from the model's compiled loss"
    assert report["parity"]["metric"] == metric
    assert min(report["parity"]["metrics"][metric].values()) > floor, report["parity"]["metrics"]
    assert f"task: {kind}" in result.stderr and "loss" in result.stderr
    assert metric in result.stdout and ("binary acc." in result.stdout) == (kind == "binary")


def test_an_autoencoder_builds_with_its_own_loss_and_reports_mse_never_top1(run_cli, user_models, tmp_path):
    result, report = _build(run_cli, user_models["autoencoder"], tmp_path / "out", "--max-drop", "0.01")
    assert report["task"]["kind"] == "regression" and report["task"]["loss"] == "mse"
    assert "accuracy" not in report["parity"] and report["parity"]["metric"] == "MSE"
    mse = report["parity"]["metrics"]["MSE"]
    assert max(mse.values()) < 0.1 and abs(mse["tflm_int8"] - mse["keras_clustered"]) < 0.01, mse
    assert report["parity"]["int8_mean_abs_diff_vs_keras"] < 0.05
    assert report["clustering"]["fine_tuning"]["metric"] == "MSE"
    assert "top-1" not in result.stdout and "MSE" in result.stdout and "MAE" in result.stdout
    assert "What qemu_mps2_an386 pays for this model, per backend" in result.stdout  # as the demo shows it


def test_task_asked_for_that_the_data_cannot_fit_is_refused(run_cli, assert_one_line_error, user_models, tmp_path):
    model, data = user_models["autoencoder"]
    result = run_cli(
        ["build", model, "--board", BOARD, "--data", data, "--out", tmp_path / "o", "--task", "binary", "-q"]
    )
    assert_one_line_error(result, 2, "binary task needs labels 0 or 1", "leave --task out")
