"""`edgeclust build` end to end on a small real model: outputs, report, determinism, budget refusal, atomicity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeclust import data as edata
from edgeclust.errors import BudgetError, InputError
from edgeclust.pipeline.build import BuildOptions, build, build_titles
from edgeclust.pipeline.stages import ClusterOptions

FAST = ClusterOptions(clusters=16, init="kmeans++", epochs=1, learning_rate=1e-4, batch_size=64, seed=0)


@pytest.fixture(scope="module")
def built(tmp_path_factory, digits_inputs):
    model_path, data_path = digits_inputs
    out = tmp_path_factory.mktemp("builds") / "first"
    events = []
    result = build(
        model_path,
        data_path,
        BuildOptions(board="qemu_mps2_an386", out_dir=out, cluster=FAST, backend="tflm", parity_samples=60),
        on_progress=events.append,
    )
    return result, events


def test_build_writes_the_tflite_files_a_project_and_a_report(built):
    result, events = built
    out = result.out_dir
    report = json.loads((out / "report.json").read_text())
    for name in ("model_float32.tflite", "model_int8.tflite", "model_clustered.keras", "report.json", "timings.json"):
        assert (out / name).is_file(), name
    assert (out / "firmware" / "model_data.cc").is_file()
    assert report["board"]["id"] == "qemu_mps2_an386"
    assert report["clustering"]["folded_batch_norm"] is True
    assert "Fold BatchNorm" not in report["skipped_stages"]  # folded inside the clustering stage
    assert {w["layer"] for w in report["clustering"]["clustered"]} >= {"conv1", "dwconv", "pwconv", "dense1", "dense2"}
    # folding BN first and per-tensor int8 keep at most 16 values in every deployed weight tensor
    assert report["verify"]["passed"] and report["verify"]["max_unique_found"] <= 16
    assert all(w["unique_values"] <= 16 for w in report["weights"])
    assert report["budget"]["fits"] is True
    accuracy = report["parity"]["accuracy"]
    assert accuracy["keras"] > 0.8 and accuracy["keras_clustered"] > accuracy["keras"] - 0.05
    assert report["parity"]["int8_litert_vs_tflm_max_lsb"] <= 1
    assert report["files"]["model_int8.tflite"]
    # every stage started and finished, in order, and the counters count exactly the stages that ran
    started = [e for e in events if e.kind == "start"]
    assert started[0].title == "Load model and data" and started[-1].title == "Write report"
    assert [e.title for e in events if e.kind == "done"] == [e.title for e in started]
    assert [(e.stage, e.total) for e in started] == [(i, len(started)) for i in range(1, len(started) + 1)]
    assert [e.title for e in started] == build_titles(
        BuildOptions(board="qemu_mps2_an386", out_dir=out, cluster=FAST, backend="tflm")
    )
    # the converter calibrated on the 500 examples asked for (of 800), and the report says so
    assert report["conversion"]["calibration_samples"] == 500 == report["options"]["calibration_samples"]
    assert report["backend"]["name"] == "tflm" and report["parity"]["firmware_equals_tflm_bit_for_bit"]
    assert {entry["bits"] for entry in report["layouts"]} <= {1, 2, 3, 4}


def test_firmware_model_bytes_equal_the_deployed_tflite(built):
    result, _ = built
    from edgeclust.codegen import carray

    cc = (result.out_dir / "firmware" / "model_data.cc").read_text()
    assert carray.bytes_from_c_array(cc) == (result.out_dir / "model_int8.tflite").read_bytes()


def test_same_inputs_give_byte_identical_outputs(built, digits_inputs, tmp_path):
    result, _ = built
    model_path, data_path = digits_inputs
    again = build(
        model_path,
        data_path,
        BuildOptions(
            board="qemu_mps2_an386", out_dir=tmp_path / "second", backend="tflm", cluster=FAST, parity_samples=60
        ),
    ).out_dir
    first = result.out_dir
    names = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file())
    differing = [n for n in names if n != "timings.json" and (first / n).read_bytes() != (again / n).read_bytes()]
    assert differing == []


def test_a_model_that_does_not_fit_is_refused_with_the_numbers_and_nothing_is_written(digits_inputs, tmp_path):
    """The digits model fits lm3s6965evb; the MNIST CNN (int8, ~430 KB) cannot fit its 256 KiB of flash."""
    from edgeclust import examples
    from edgeclust.pipeline.files import save_keras_atomic

    model = examples.mnist_cnn(seed=0)
    save_keras_atomic(model, tmp_path / "mnist.keras")
    rng = np.random.default_rng(0)
    data = edata.Dataset(
        x_train=rng.random((64, 28, 28, 1), dtype=np.float32),
        y_train=rng.integers(0, 10, 64),
        x_test=rng.random((8, 28, 28, 1), dtype=np.float32),
        y_test=rng.integers(0, 10, 8),
    )
    edata.save_npz(tmp_path / "mnist.npz", data)
    out = tmp_path / "out"
    options = BuildOptions(board="qemu_lm3s6965evb", out_dir=out, cluster=ClusterOptions(clusters=0))
    with pytest.raises(BudgetError) as info:
        build(tmp_path / "mnist.keras", tmp_path / "mnist.npz", options)
    message = str(info.value)
    assert "flash" in message and "262,144" in message and "--allow-over-budget" in message
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist.keras", "mnist.npz"]


def test_an_interrupted_build_leaves_nothing(digits_inputs, tmp_path):
    model_path, data_path = digits_inputs
    out = tmp_path / "out"

    def interrupt(event):
        if event.kind == "start" and event.title == "Write report":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(
            model_path,
            data_path,
            BuildOptions(board="qemu_mps2_an386", out_dir=out, cluster=ClusterOptions(clusters=0), parity_samples=10),
            on_progress=interrupt,
        )
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_an_existing_out_folder_is_refused_before_any_work(digits_inputs, tmp_path):
    model_path, data_path = digits_inputs
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="--force"):
        build(model_path, data_path, BuildOptions(board="qemu_mps2_an386", out_dir=out))
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_force_replaces_an_existing_build(digits_inputs, tmp_path):
    model_path, data_path = digits_inputs
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    build(
        model_path,
        data_path,
        BuildOptions(
            board="qemu_mps2_an386", out_dir=out, force=True, cluster=ClusterOptions(clusters=0), parity_samples=10
        ),
    )
    assert not (out / "old.txt").exists() and (out / "report.json").is_file()


def test_lut_build_reports_decoded_ram_and_bit_identical_tflm_outputs(digits_inputs, tmp_path):
    model_path, data_path = digits_inputs
    result = build(
        model_path,
        data_path,
        BuildOptions(
            board="qemu_mps2_an386",
            out_dir=tmp_path / "lut",
            backend="tflm",
            cluster=FAST,
            compress="lut",
            parity_samples=40,
        ),
    )
    report = result.report
    assert report["parity"]["firmware_equals_tflm_bit_for_bit"] is True
    lut = report["backend"]["lut"]
    assert lut["compressed_tensors"] and lut["decoded_bytes"] > 0
    assert 0 <= lut["decoding_ram_bytes"] <= lut["decoded_bytes"] + 1024
    assert report["sizes"]["tflite_firmware"] < report["sizes"]["tflite_int8"]
    assert (result.out_dir / "model_firmware.tflite").stat().st_size == report["sizes"]["tflite_firmware"]
    assert "TFLM_DECODE" in report["ops"]
    assert "AddDecode()" in (result.out_dir / "firmware" / "main.cc").read_text() + "".join(
        p.read_text() for p in (result.out_dir / "firmware").glob("*.h")
    )


def test_32_clusters_with_lut_get_5_bit_indices(digits_inputs, tmp_path):
    """--clusters reaches the packer: 17 to 32 values per tensor are stored as 5-bit indices."""
    model_path, data_path = digits_inputs
    options = BuildOptions(
        board="qemu_mps2_an386",
        out_dir=tmp_path / "lut32",
        compress="lut",
        parity_samples=20,
        backend="tflm",
        cluster=ClusterOptions(clusters=32, epochs=0, seed=0),
        calibration_samples=64,
    )
    report = build(model_path, data_path, options).report
    compressed = report["backend"]["lut"]["compressed_tensors"]
    assert compressed and {c["index_bits"] for c in compressed} == {5}
    assert all(17 <= c["table_entries"] <= 32 for c in compressed)
    assert report["conversion"]["calibration_samples"] == 64


def test_plots_are_written_when_asked(digits_inputs, tmp_path):
    model_path, data_path = digits_inputs
    result = build(
        model_path,
        data_path,
        BuildOptions(board="qemu_mps2_an386", out_dir=tmp_path / "p", cluster=FAST, plots=True, parity_samples=10),
    )
    pngs = sorted(p.name for p in (result.out_dir / "plots").glob("*.png"))
    assert "sizes.png" in pngs and len(pngs) >= 6
    assert all((result.out_dir / "plots" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in pngs)
