"""Models as users bring them, built end to end through the CLI: Keras' default layer names, a model
clustered with the API before `build`, and the CI gate `edgeclust verify --report` on what `build` wrote."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeclust import data as edata

BOARD = "qemu_mps2_an386"


@pytest.fixture(scope="module")
def default_named(tmp_path_factory, digits):
    """Two Conv2D layers and a Dense under Keras' default names (conv2d, conv2d_1, dense), trained briefly."""
    import keras

    keras.utils.clear_session()  # so that the default names start again at conv2d
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    assert [layer.name for layer in model.layers] == ["conv2d", "conv2d_1", "flatten", "dense"]
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(digits.x_train, digits.y_train, epochs=2, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("default_named")
    model.save(folder / "model.keras")
    edata.save_npz(folder / "d.npz", digits.subset(train=400, test=40))
    return model, folder


def _build(run_cli, model_path, data_path, out, *args):
    result = run_cli(
        ["build", model_path, "--board", BOARD, "--data", data_path, "--out", out, "--backend", "tflm", *args]
    )
    assert result.exit_code == 0, result.stderr[-3000:]
    return result


def test_layer_counts_follow_the_layers_not_the_converters_tensor_names(run_cli, default_named, tmp_path):
    _, folder = default_named
    out = tmp_path / "out"
    result = _build(run_cli, folder / "model.keras", folder / "d.npz", out, "--layer", "conv2d_1=4")
    # the layouts stage says what could be packed; the backend says what it stored (TFLM: int8 as it is)
    assert "can be packed as" in result.stderr
    assert "tflm stores every weight tensor as it is in the .tflite (int8)" in result.stderr
    report = json.loads((out / "report.json").read_text())
    layers = report["weight_layers"]
    assert sorted(layers.values()) == ["conv2d", "conv2d_1", "dense"], layers
    by_layer = {layer: report["verify"]["limits"][name] for name, layer in layers.items()}
    assert by_layer["conv2d_1"]["limit"] == 4 and by_layer["conv2d_1"]["unique"] <= 4
    assert by_layer["conv2d"]["limit"] == 16 and by_layer["dense"]["limit"] == 16
    # the CI gate of the README passes on what the build wrote, and names each tensor's real layer
    gate = run_cli(["verify", out / "model_int8.tflite", "--report", out / "report.json"])
    assert gate.exit_code == 0, gate.stdout
    assert "layer conv2d_1: <= 4" in gate.stdout and "layer conv2d: <= 16" in gate.stdout


def test_a_model_clustered_with_the_api_builds_with_the_defaults(run_cli, default_named, tmp_path, digits):
    import keras

    from edgeclust import cluster

    model, folder = default_named
    wrapped = cluster.cluster_weights(cluster.fold_batch_norms(model), 16, seed=0)
    wrapped.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    wrapped.fit(digits.x_train[:400], digits.y_train[:400], epochs=1, batch_size=32, verbose=0)
    cluster.strip_clustering(wrapped).save(tmp_path / "clustered.keras")
    out = tmp_path / "out"
    result = _build(run_cli, tmp_path / "clustered.keras", folder / "d.npz", out)
    report = json.loads((out / "report.json").read_text())
    # each layer is wrapped again, on exactly its 16 values (not left as it is and fine-tuned unclustered)
    assert sorted(w["layer"] for w in report["clustering"]["clustered"]) == ["conv2d", "conv2d_1", "dense"]
    assert report["clustering"]["unchanged"] == []
    assert report["verify"]["passed"] and report["verify"]["max_unique_found"] <= 16
    gate = run_cli(["verify", out / "model_int8.tflite", "--report", out / "report.json"])
    assert gate.exit_code == 0, gate.stdout
    assert run_cli(["verify", out / "model_int8.tflite", "-n", "16"]).exit_code == 0
    assert "fine-tuning skipped" not in result.stderr


def test_nothing_to_cluster_skips_fine_tuning_with_a_line(tmp_path, digits):
    import keras

    from edgeclust.pipeline.progress import Stages
    from edgeclust.pipeline.stages import ClusterOptions, cluster_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="tiny")])  # 6 weights <= 16
    events = []
    stages = Stages(["Cluster and fine-tune"], events.append)
    stages.start("Cluster and fine-tune")
    x = np.zeros((8, 3), np.float32)
    data = edata.Dataset(x, np.zeros(8, np.int64), x, np.zeros(8, np.int64))
    result = cluster_model(model, data, ClusterOptions(), stages)
    lines = [e.detail for e in events if e.kind == "info"]
    assert any("fine-tuning skipped" in line for line in lines), lines
    np.testing.assert_array_equal(result.model.get_layer("tiny").kernel.numpy(), model.get_layer("tiny").kernel.numpy())


@pytest.fixture(scope="module")
def normalized(tmp_path_factory, digits):
    """A model that starts with an adapted Normalization layer (mean and variance: statistics, not weights)."""
    import keras

    keras.utils.set_random_seed(0)
    norm = keras.layers.Normalization(name="norm")
    norm.adapt(digits.x_train[:200])
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), norm, keras.layers.Flatten(), keras.layers.Dense(10, name="classifier")]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    folder = tmp_path_factory.mktemp("normalized")
    model.save(folder / "model.keras")
    edata.save_npz(folder / "d.npz", digits.subset(train=300, test=30))
    return folder


def test_normalization_statistics_are_left_as_they_are_with_one_line(run_cli, normalized, tmp_path):
    out = tmp_path / "out"
    result = _build(run_cli, normalized / "model.keras", normalized / "d.npz", out)
    report = json.loads((out / "report.json").read_text())
    assert [w["layer"] for w in report["clustering"]["clustered"]] == ["classifier"]
    assert [s["layer"] for s in report["clustering"]["skipped"]] == ["norm"]
    assert sum("norm: holds statistics" in line for line in result.stderr.splitlines()) == 1, result.stderr


def test_asking_for_a_layer_that_cannot_be_clustered_is_one_error(run_cli, assert_one_line_error, normalized, tmp_path):
    result = run_cli(
        [
            "build",
            normalized / "model.keras",
            "--board",
            BOARD,
            "--data",
            normalized / "d.npz",
            "--out",
            tmp_path / "o",
            "--layer",
            "norm=8",
            "-q",
        ]
    )
    assert_one_line_error(result, 1, "'norm' (Normalization) was asked for with norm=8", "statistics")


def test_warnings_become_grouped_notes_never_source_lines(run_cli, digits_inputs, tmp_path):
    """Layers too small to cluster at N=200 (and Keras' own warnings) are edgeclust's notes, not Python's."""
    model, data = digits_inputs
    result = run_cli(
        ["build", model, "--board", BOARD, "--data", data, "--out", tmp_path / "o", "--backend", "tflm"]
        + ["--clusters", "200", "--epochs", "0", "--parity-samples", "10"]
    )
    assert result.exit_code == 0, result.stderr[-2000:]
    notes = [line for line in result.stderr.splitlines() if "note: layer" in line]
    assert len(notes) == 1 and "conv1 (144 weights)" in notes[0] and "left unclustered" in notes[0], notes
    assert "Warning:" not in result.stderr and ".py:" not in result.stderr, result.stderr


def test_warnings_as_notes_says_each_message_once():
    import io
    import warnings

    from edgeclust.cli.progress import warnings_as_notes

    stream = io.StringIO()
    with warnings_as_notes(stream):
        for _ in range(3):
            warnings.warn("Argument `input_length` is deprecated. Just remove it.\nmore", UserWarning, stacklevel=1)
    assert stream.getvalue().splitlines() == [
        "note: Argument `input_length` is deprecated. Just remove it.",
        "note: (said 3 times) Argument `input_length` is deprecated. Just remove it.",
    ]
