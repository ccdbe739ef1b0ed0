"""A representative subset of the model zoo (edgeclust.zoo) deployed natively and run under QEMU, as a user
would: each model built through the pipeline (16 clusters, no fine-tuning, a few random examples, one
self-test case), then flashed to qemu_mps2_an386, where the firmware must reproduce the host build's outputs
bit for bit (and the build has already checked those against the tflite_micro interpreter).

scripts/zoo_matrix.py runs the whole zoo (every architecture, through the CLI) and prints the table; this file
keeps CI's share under four minutes on two cores (3 min 49 s measured on a shared, busy two-core machine; the
first model pays for importing TensorFlow): one model per op family the native backend adds.
"""

from __future__ import annotations

import pytest

from edgeclust import data as edata
from edgeclust import zoo

BOARD = "qemu_mps2_an386"

# model -> (builder sizes, ops that model is here to cover)
MODELS = {
    "ds_cnn_kws": ({}, {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"}),
    "residual_cnn": ({}, {"ADD", "CONV_2D", "MEAN"}),
    "strided_dilated_cnn": ({}, {"REDUCE_MAX"}),
    "squeeze_excite": ({}, {"MUL", "LOGISTIC"}),
    "har_conv1d": ({}, {"RESHAPE", "MAX_POOL_2D", "MEAN"}),
    "fire_module": ({}, {"CONCATENATION"}),
    # unrolled; at some sizes, on some installs, the int8 converter leaves a float32 SPLIT between a DEQUANTIZE
    # and QUANTIZEs (test_movement's float32 island test covers those copies); this one converts all int8
    "lstm": ({"steps": 6, "units": 8}, {"UNPACK", "SPLIT", "LOGISTIC", "TANH", "MUL", "ADD"}),
}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", list(MODELS))
def test_zoo_model_builds_natively_and_passes_its_qemu_self_test(name, tmp_path):
    from edgeclust.pipeline.build import BuildOptions, build
    from edgeclust.pipeline.files import save_keras_atomic
    from edgeclust.pipeline.flashing import flash_project
    from edgeclust.pipeline.stages import ClusterOptions

    sizes, covers = MODELS[name]
    model = zoo.build(name, **sizes)
    save_keras_atomic(model, tmp_path / "model.keras")
    edata.save_npz(tmp_path / "data.npz", zoo.dataset(model, train=8, test=2))
    options = BuildOptions(
        board=BOARD,
        out_dir=tmp_path / "build",
        cluster=ClusterOptions(clusters=16, epochs=0),
        backend="native",
        self_test_cases=1,
    )
    result = build(tmp_path / "model.keras", tmp_path / "data.npz", options)
    assert result.report["parity"]["backend"] == "native"
    assert result.report["parity"]["firmware_equals_tflm_bit_for_bit"]
    assert covers <= set(result.lowered.result.op_names), sorted(result.lowered.result.op_names)

    lines: list[str] = []
    outcome = flash_project(tmp_path / "build", None, timeout_s=120, on_output=lines.append)
    assert outcome.passed, f"{outcome.meaning}: " + "\n".join(lines[-10:])
    assert any("self-test: PASS" in line for line in lines), lines[-10:]
    assert outcome.instructions is not None and outcome.instructions > 0
