"""`edgeclust build MODEL.tflite`: a .tflite converted elsewhere builds with clustering and conversion skipped,
its clustered tensors packed by the native backend, parity bit-identical, and the firmware passing under QEMU."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeclust import data as edata
from edgeclust.errors import ConfigError
from edgeclust.pipeline.build import BuildOptions, build
from edgeclust.pipeline.build_plan import TITLES
from edgeclust.pipeline.stages import ClusterOptions

BOARD = "qemu_mps2_an386"
SKIPPED = [TITLES["cluster"], TITLES["fold"], TITLES["convert"]]


def _small_model(seed: int = 0):
    """Conv2D + Dense on 8x8 digits, trained a little."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, name="dense"),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.fixture(scope="module")
def small_data(digits, tmp_path_factory):
    data = digits.subset(train=400, test=60)
    path = tmp_path_factory.mktemp("tflite_input") / "digits.npz"
    edata.save_npz(path, data)
    return data, path


@pytest.fixture(scope="module")
def edgeclust_tflite(small_data, tmp_path_factory):
    """A model clustered to 8 values by edgeclust, converted to int8 per tensor by edgeclust's converter."""
    from edgeclust.pipeline.stages import cluster_model, convert_model

    data, _ = small_data
    model = _small_model()
    model.fit(data.x_train, data.y_train, epochs=2, verbose=0)
    clustered = cluster_model(model, None, ClusterOptions(clusters=8, epochs=0, seed=0)).model
    tflite = convert_model(clustered, quantize="int8", representative=data.x_train, per_channel=False)
    path = tmp_path_factory.mktemp("tflite_input") / "clustered.tflite"
    path.write_bytes(tflite)
    return path


@pytest.fixture(scope="module")
def foreign_tflite(small_data, tmp_path_factory):
    """Stands for a model from other tools: kernels set to 8 values by hand, tf.lite.TFLiteConverter directly."""
    import tensorflow as tf

    data, _ = small_data
    model = _small_model(seed=1)
    model.fit(data.x_train, data.y_train, epochs=5, verbose=0)
    for name in ("conv", "dense"):
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        levels = np.linspace(kernel.min(), kernel.max(), 8)
        snapped = levels[np.abs(kernel[..., None] - levels).argmin(axis=-1)].astype(np.float32)
        layer.set_weights([snapped, bias])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None].astype(np.float32)] for x in data.x_train[:100])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("tflite_input") / "foreign.tflite"
    path.write_bytes(converter.convert())
    return path


def _build(model_path, data_path, out, **kwargs):
    events = []
    options = BuildOptions(board=BOARD, out_dir=out, cluster=ClusterOptions(clusters=0), backend="native", **kwargs)
    result = build(model_path, data_path, options, on_progress=events.append)
    return result, events


@pytest.mark.parametrize("which", ["edgeclust_tflite", "foreign_tflite"])
def test_a_tflite_builds_with_clustering_and_conversion_skipped(which, request, small_data, tmp_path):
    import hashlib

    model_path = request.getfixturevalue(which)
    _, data_path = small_data
    result, events = _build(model_path, data_path, tmp_path / "out")
    report = json.loads((result.out_dir / "report.json").read_text())
    assert report["inputs"]["model"]["format"] == "tflite"
    assert report["inputs"]["model"]["sha256"] == hashlib.sha256(model_path.read_bytes()).hexdigest()
    assert report["skipped_stages"] == [*SKIPPED, TITLES["plots"]]  # no --plots either
    assert report["clustering"] is None and report["conversion"] is None
    assert report["verify"] is None  # no --clusters: what each tensor holds, no pass/fail
    assert report["weights"] and max(w["max_unique_per_channel"] for w in report["weights"]) >= 2
    # the conv and dense kernels hold <= 8 values (per channel at least): packed as <= 3-bit indices
    kernels = [entry for entry in report["layouts"] if entry["unique_values"] <= 8]
    assert len(kernels) >= 2 and all(entry["bits"] <= 3 for entry in kernels)
    assert report["backend"]["name"] == "native"
    parity = report["parity"]
    assert parity["firmware_equals_tflm_bit_for_bit"] is True
    assert set(parity["accuracy"]) == {"litert_int8", "tflm_int8", "firmware"}
    # accuracy against the labels: the firmware's equals TFLM's, and is well above chance (0.1)
    assert parity["accuracy"]["firmware"] == parity["accuracy"]["tflm_int8"] > 0.25
    assert parity["int8_litert_vs_tflm_max_lsb"] <= 1
    assert (result.out_dir / "model_int8.tflite").read_bytes() == model_path.read_bytes()
    assert not (result.out_dir / "model_clustered.keras").exists()
    assert not (result.out_dir / "model_float32.tflite").exists()
    assert (result.out_dir / "firmware" / "Makefile").is_file()
    # progress counts only the stages that ran
    started = [e for e in events if e.kind == "start"]
    assert not {e.title for e in started} & set(SKIPPED)
    assert [(e.stage, e.total) for e in started] == [(i, len(started)) for i in range(1, len(started) + 1)]


def test_clusters_given_checks_the_tflite_against_n(edgeclust_tflite, small_data, tmp_path):
    _, data_path = small_data
    options = BuildOptions(
        board=BOARD,
        out_dir=tmp_path / "out",
        cluster=ClusterOptions(clusters=8),
        backend="native",
        parity_samples=20,
    )
    report = build(edgeclust_tflite, data_path, options).report
    assert report["verify"]["passed"] is True and report["verify"]["max_unique"] == 8
    assert report["skipped_stages"] == [*SKIPPED, TITLES["plots"]]  # no --plots either


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"quantize": "float32"}, "--quantize"),
        ({"cluster": ClusterOptions(clusters=8, layers=(("dense", 4),))}, "--layer"),
        ({"cluster": ClusterOptions(clusters=8, max_drop=1.0)}, "--max-drop"),
        ({"cluster": ClusterOptions(clusters=8, epochs=3)}, "--epochs"),
        ({"calibration_samples": 100}, "--calibration-samples"),
    ],
)
def test_options_for_a_keras_model_are_refused_for_a_tflite(kwargs, fragment, edgeclust_tflite, small_data, tmp_path):
    _, data_path = small_data
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="makes no sense for a .tflite") as info:
        build(edgeclust_tflite, data_path, BuildOptions(board=BOARD, out_dir=out, **kwargs))
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert not out.exists()


def test_a_float32_tflite_builds_with_tflm_when_auto(small_data, tmp_path):
    """native refuses float ops, so auto picks tflm; the float model is reported as such."""
    from edgeclust.pipeline.stages import convert_model

    data, data_path = small_data
    model_path = tmp_path / "float.tflite"
    model_path.write_bytes(convert_model(_small_model(), quantize="float32", representative=None, per_channel=True))
    options = BuildOptions(board=BOARD, out_dir=tmp_path / "out", cluster=ClusterOptions(clusters=0), parity_samples=20)
    result = build(model_path, data_path, options)
    report = result.report
    assert report["backend"]["name"] == "tflm" and "native" in report["backend"]["chosen"]
    assert set(report["parity"]["accuracy"]) == {"litert_float32", "tflm_float32", "firmware"}
    assert (result.out_dir / "model_float32.tflite").read_bytes() == model_path.read_bytes()
    assert not (result.out_dir / "model_int8.tflite").exists()


def test_a_tflite_holding_more_values_than_asked_gets_a_hint_for_a_tflite(edgeclust_tflite, small_data, tmp_path):
    """--fold-bn means nothing for a .tflite input: the hint says what the check measured and what to give."""
    from edgeclust.errors import VerificationError

    _, data_path = small_data
    options = BuildOptions(board=BOARD, out_dir=tmp_path / "o", cluster=ClusterOptions(clusters=4), backend="tflm")
    with pytest.raises(VerificationError) as info:
        build(edgeclust_tflite, data_path, options)
    assert "more than 4 unique values" in str(info.value) and "not clustered to that many values" in str(info.value)
    assert "--fold-bn" not in str(info.value)
