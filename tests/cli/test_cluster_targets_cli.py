"""Per-layer counts (--layer NAME_OR_GLOB=N), fine-tuning to a target (--max-drop, --max-epochs) and verify's
per-layer expectations (--max-unique NAME=N, --report), through `edgeclust cluster`, `build` and `verify`."""

from __future__ import annotations

import json

import numpy as np


def test_cluster_with_layer_counts_and_a_target(run_cli, digits_inputs, tmp_path):
    model, data = digits_inputs
    result = run_cli(
        [
            "cluster",
            model,
            "--data",
            data,
            "--clusters",
            "16",
            "--layer",
            "dense*=8",
            "--layer",
            "dense2=4",
            "--layer",
            "dwconv=0",
            "--max-drop",
            "3",
            "--max-epochs",
            "2",
            "--lr",
            "1e-4",
            "-o",
            "out.keras",
        ],
        tmp_path,
    )
    assert result.exit_code == 0, result.stderr
    assert "clustered 4 weight tensor(s) to 4/8/16 values per tensor" in result.stdout
    assert "dense2/kernel: 4 values" in result.stdout and "dense1/kernel: 8 values" in result.stdout
    assert "skipped dwconv (DepthwiseConv2D): left unclustered (layer_clusters gives it N=0)" in result.stdout
    assert "fine-tuned to within 3 points: target met" in result.stdout
    assert "validation accuracy" in result.stderr  # progress: the accuracy of every epoch

    import keras

    stripped = keras.models.load_model(tmp_path / "out.keras")
    unique = {
        name: len(np.unique(stripped.get_layer(name).kernel.numpy()))
        for name in ("conv1", "dwconv", "pwconv", "dense1", "dense2")
    }
    assert unique["dense2"] <= 4 and unique["dense1"] <= 8 and unique["conv1"] <= 16 and unique["pwconv"] <= 16
    assert unique["dwconv"] > 16

    converted = run_cli(["convert", "out.keras", "--data", data, "--per-tensor", "-o", "out.tflite"], tmp_path)
    assert converted.exit_code == 0, converted.stderr
    ok = run_cli(
        [
            "verify",
            "out.tflite",
            "--max-unique",
            "16",
            "--max-unique",
            "dense1=8",
            "--max-unique",
            "dense2=4",
            "--max-unique",
            "dwconv=0",
        ],
        tmp_path,
    )
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert "dwconv" in ok.stdout and "unchecked" in ok.stdout
    too_strict = run_cli(["verify", "out.tflite", "--max-unique", "dense1=4", "--json"], tmp_path)
    assert too_strict.exit_code == 1
    checks = {c["layer"]: c for c in json.loads(too_strict.stdout)["tensors"] if c["layer"]}
    assert checks["dense1"]["passed"] is False and checks["dense1"]["limit"] == 4


def test_layer_option_mistakes_are_one_line_errors(run_cli, assert_one_line_error, digits_inputs, tmp_path):
    model, data = digits_inputs
    bad = run_cli(["cluster", model, "--layer", "dense1", "-o", "out.keras"], tmp_path)
    assert_one_line_error(bad, 2, "NAME_OR_GLOB=N")
    unknown = run_cli(["cluster", model, "--layer", "dense9=8", "--epochs", "0", "-q", "-o", "out.keras"], tmp_path)
    assert_one_line_error(unknown, 2, "'dense9' matches no clusterable layer", "dense1")


def test_many_clusters_leave_small_tensors_as_they_are(run_cli, digits_inputs, tmp_path):
    model, data = digits_inputs
    result = run_cli(["cluster", model, "--clusters", "200", "--epochs", "0", "-o", "out.keras"], tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "left conv1/kernel as it is: does not have enough weights to cluster: 144 <= 200" in result.stdout


def test_build_verifies_each_tensor_against_its_layer_and_reports_the_curve(run_cli, digits_inputs, tmp_path):
    model, data = digits_inputs
    result = run_cli(
        [
            "build",
            model,
            "--board",
            "qemu_mps2_an386",
            "--data",
            data,
            "--clusters",
            "16",
            "--layer",
            "dense1=8",
            "--max-drop",
            "50",
            "--max-epochs",
            "1",
            "--quantize",
            "float32",
            "--parity-samples",
            "20",
            "--out",
            "out",
        ],
        tmp_path,
        subprocess=True,
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    clustering = report["clustering"]
    assert {(e["layer"], e["clusters"]) for e in clustering["clustered"]} >= {("dense1", 8), ("dense2", 16)}
    assert clustering["fine_tuning"]["target_met"] is True and clustering["fine_tuning"]["curve"]
    verify = report["verify"]  # each tensor against its own layer's N
    assert verify["passed"] is True and verify["max_unique"] is None and verify["failures"] == []
    limits = {name.split("/")[1]: entry["limit"] for name, entry in verify["limits"].items()}
    assert limits["dense1_1"] == 8 and limits["dense2_1"] == 16 and limits["conv1_1"] == 16, limits
    tflite = tmp_path / "out" / "model_float32.tflite"
    verified = run_cli(["verify", tflite, "--report", tmp_path / "out" / "report.json"], tmp_path)
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    assert "dense1" in verified.stdout
