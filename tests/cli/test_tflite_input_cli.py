"""`edgeclust build MODEL.tflite` from the command line: builds with --backend native, `edgeclust flash` passes
its self-test under QEMU, and options that only mean something for a Keras model are one-line usage errors."""

from __future__ import annotations

import json

import pytest

from edgeclust import data as edata


@pytest.fixture(scope="module")
def tflite_inputs(digits, tmp_path_factory):
    """A small Conv + Dense model clustered to 8 values, converted to int8 by edgeclust, and its DATA.npz."""
    import keras

    from edgeclust.pipeline.stages import ClusterOptions, cluster_model, convert_model

    folder = tmp_path_factory.mktemp("tflite_cli")
    data = digits.subset(train=300, test=40)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train, data.y_train, epochs=2, verbose=0)
    clustered = cluster_model(model, None, ClusterOptions(clusters=8, epochs=0, seed=0)).model
    (folder / "model.tflite").write_bytes(
        convert_model(clustered, quantize="int8", representative=data.x_train, per_channel=False)
    )
    edata.save_npz(folder / "data.npz", data)
    return folder / "model.tflite", folder / "data.npz"


def test_a_tflite_builds_and_its_firmware_passes_under_qemu(run_cli, tflite_inputs, tmp_path):
    model, data = tflite_inputs
    result = run_cli(
        ["build", model, "--board", "qemu_mps2_an386", "--data", data, "--backend", "native", "--out", "out"],
        tmp_path,
        subprocess=True,
    )
    assert result.exit_code == 0, result.stderr
    assert "clustering and conversion skipped" in result.stderr
    assert "Cluster and fine-tune" not in result.stderr and "Convert to .tflite" not in result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["inputs"]["model"]["format"] == "tflite" and report["backend"]["name"] == "native"
    assert report["parity"]["firmware_equals_tflm_bit_for_bit"] is True
    flashed = run_cli(["flash", "out"], tmp_path, subprocess=True)
    assert flashed.exit_code == 0, flashed.stderr + flashed.stdout
    assert "self-test: PASS" in flashed.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--quantize", "float32"], "--quantize"),
        (["--clusters", "8", "--epochs", "2"], "--epochs (fine-tuning)"),
        (["--layer", "dense*=4"], "--layer"),
        (["--max-drop", "1"], "--max-drop"),
        (["--per-channel"], "--per-channel needs --clusters"),
    ],
)
def test_keras_only_options_are_usage_errors(
    run_cli, assert_one_line_error, nothing_written, tflite_inputs, tmp_path, args, fragment
):
    model, data = tflite_inputs
    with nothing_written(tmp_path):
        result = run_cli(
            ["build", model, "--board", "qemu_mps2_an386", "--data", data, "--out", "out", *args], tmp_path
        )
    line = assert_one_line_error(result, 2, fragment)
    assert ".tflite" in line
