"""Bad input for `edgeclust inspect`, `verify` and `convert`: one 'edgeclust: error:' line, a defined exit code,
no traceback, nothing written. Every case uses real files: real converted models cut, overwritten or edited
with the flatbuffer schema's object API, real .keras / .h5 / SavedModel files, real DATA.npz archives.
"""

from __future__ import annotations

import struct
import zipfile

import numpy as np
import pytest


def tiny_keras_model(seed: int = 0):
    """Conv2D, DepthwiseConv2D, Dense on 8x8x1 inputs: a real model small enough to convert in a second."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(8, 8, 1))
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same", name="dwconv")(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(10, activation="softmax", name="dense")(x)
    return keras.Model(inputs, outputs, name="tiny")


@pytest.fixture(scope="module")
def tiny_tflite(digits) -> dict[str, bytes]:
    """The tiny model converted for real: {"float32": bytes, "int8": bytes}."""
    from edgeclust.tflite import convert

    model = tiny_keras_model()
    return {
        "float32": convert.to_tflite(model, quantize="float32"),
        "int8": convert.to_tflite(model, quantize="int8", representative_data=digits.x_train[:64]),
    }


def rebuild_tflite(data: bytes, edit) -> bytes:
    """Unpack .tflite bytes with the schema's object API, let `edit(model)` change them, pack again."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    obj = fb.ModelT.InitFromObj(fb.Model.GetRootAs(bytearray(data), 0))
    edit(obj)
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(obj.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# ---------------------------------------------------------------------------------------------- inputs


def _fc_weight_tensor(obj) -> int:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    for op in obj.subgraphs[0].operators:
        code = obj.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) == fb.BuiltinOperator.FULLY_CONNECTED:
            return int(op.inputs[1])
    raise AssertionError("the tiny model has a FULLY_CONNECTED op")


def _set_version(obj):
    obj.version = 2


def _buffer_out_of_range(obj):
    obj.subgraphs[0].tensors[_fc_weight_tensor(obj)].buffer = 999


def _tensor_out_of_range(obj):
    obj.subgraphs[0].operators[0].inputs[0] = 999


def _external_buffer_past_end(obj):
    buffer = obj.buffers[obj.subgraphs[0].tensors[_fc_weight_tensor(obj)].buffer]
    buffer.data, buffer.offset, buffer.size = None, 10_000_000, 4096


def _shape_larger_than_buffer(obj):
    obj.subgraphs[0].tensors[_fc_weight_tensor(obj)].shape = [10, 9999]


def _opcode_out_of_range(obj):
    obj.subgraphs[0].operators[0].opcodeIndex = 77


def _no_subgraph(obj):
    obj.subgraphs = []


def _buffers_length_past_the_file(data: bytes) -> bytes:
    """Overwrite the length of the root Model's `buffers` vector (field 4) with one the file cannot hold."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    model = fb.Model.GetRootAs(data, 0)
    field = model._tab.Offset(12)  # vtable slot of field 4 (buffers)
    at = model._tab.Pos + field
    vector = at + struct.unpack_from("<I", data, at)[0]
    patched = bytearray(data)
    struct.pack_into("<I", patched, vector, 0x3FFFFFFF)
    return bytes(patched)


TFLITE_CASES = {
    # name: (file name, make(float_bytes) -> bytes or None for "absent", fragments of the error line)
    "missing": ("missing.tflite", None, ["missing.tflite", "no such file"]),
    "empty": ("empty.tflite", lambda m: b"", ["empty.tflite", "empty file"]),
    "tiny": ("tiny.tflite", lambda m: b"TFL3", ["only 4 bytes"]),
    "text": ("notes.tflite", lambda m: b"weights: 1 2 3\n" * 20, ["not a .tflite file", "file identifier"]),
    "random": ("random.tflite", lambda m: np.random.default_rng(1).bytes(4096), ["not a .tflite file"]),
    "truncated half": ("cut.tflite", lambda m: m[: len(m) // 2], ["cut.tflite", "corrupted .tflite file"]),
    "truncated header": ("cut.tflite", lambda m: m[:40], ["cut.tflite", "corrupted .tflite file"]),
    "keras zip": ("model.tflite", lambda m: _zip_bytes(), ["zip archive", "edgeclust convert"]),
    "hdf5": ("model.tflite", lambda m: b"\x89HDF\r\n\x1a\n" + bytes(100), ["HDF5"]),
    "wrong identifier": ("ident.tflite", lambda m: m[:4] + b"TFL2" + m[8:], ["file identifier is b'TFL2'"]),
    "wrong schema version": ("v2.tflite", lambda m: rebuild_tflite(m, _set_version), ["schema version 2"]),
    "buffer index out of range": ("b.tflite", lambda m: rebuild_tflite(m, _buffer_out_of_range), ["uses buffer 999"]),
    "tensor index out of range": (
        "t.tflite",
        lambda m: rebuild_tflite(m, _tensor_out_of_range),
        ["refers to tensor 999"],
    ),
    "opcode out of range": ("o.tflite", lambda m: rebuild_tflite(m, _opcode_out_of_range), ["opcode 77"]),
    "no subgraph": ("s.tflite", lambda m: rebuild_tflite(m, _no_subgraph), ["no subgraph"]),
    "buffer offset past the end": (
        "x.tflite",
        lambda m: rebuild_tflite(m, _external_buffer_past_end),
        ["past the end of the"],
    ),
    "buffer smaller than its shape": (
        "s.tflite",
        lambda m: rebuild_tflite(m, _shape_larger_than_buffer),
        ["holds 10,240 bytes but shape [10, 9999]"],
    ),
    "vector length past the file": ("l.tflite", _buffers_length_past_the_file, ["buffers claims"]),
}


def _zip_bytes() -> bytes:
    import io

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("config.json", "{}")
    return out.getvalue()


def _place(folder, tiny_tflite, case):
    name, make, fragments = TFLITE_CASES[case]
    path = folder / name
    if make is not None:
        path.write_bytes(make(tiny_tflite["float32"]))
    return path, fragments


def _with_weight_value(data: bytes, value: float) -> tuple[bytes, str]:
    """The float model with one FULLY_CONNECTED weight set to `value`; returns the bytes and that tensor's name."""
    names = {}

    def edit(obj):
        index = _fc_weight_tensor(obj)
        tensor = obj.subgraphs[0].tensors[index]
        weights = np.asarray(obj.buffers[tensor.buffer].data, dtype=np.uint8).copy().view("<f4")
        weights[7] = value
        obj.buffers[tensor.buffer].data = weights.view(np.uint8)
        names["weight"] = tensor.name.decode()

    return rebuild_tflite(data, edit), names["weight"]


# --------------------------------------------------------------------------------- inspect and verify

COMMANDS = {"inspect": ["inspect"], "verify": ["verify", "--max-unique", "16"]}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", sorted(TFLITE_CASES))
def test_unreadable_tflite_is_one_line_exit_2(
    tmp_path, tiny_tflite, command, case, run_cli, assert_one_line_error, nothing_written
):
    path, fragments = _place(tmp_path, tiny_tflite, case)
    with nothing_written(tmp_path):
        args = COMMANDS[command][:1] + [path.name] + COMMANDS[command][1:]
        result = run_cli(args, cwd=tmp_path)
        assert_one_line_error(result, 2, *fragments)
        assert result.stdout == ""


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_folder_is_refused(tmp_path, command, run_cli, assert_one_line_error, nothing_written):
    (tmp_path / "model.tflite").mkdir()
    with nothing_written(tmp_path):
        result = run_cli(COMMANDS[command][:1] + ["model.tflite"] + COMMANDS[command][1:], cwd=tmp_path)
        assert_one_line_error(result, 2, "model.tflite", "is a folder")


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_name_the_tensor(
    tmp_path, tiny_tflite, command, value, run_cli, assert_one_line_error, nothing_written
):
    data, weight_name = _with_weight_value(tiny_tflite["float32"], value)
    (tmp_path / "broken.tflite").write_bytes(data)
    with nothing_written(tmp_path):
        result = run_cli(COMMANDS[command][:1] + ["broken.tflite"] + COMMANDS[command][1:], cwd=tmp_path)
        line = assert_one_line_error(
            result, 2, "broken.tflite", repr(weight_name), "FULLY_CONNECTED", "holds 1 NaN or Inf values of 2,560"
        )
        assert "retrain or repair" in line


@pytest.mark.parametrize("n", ["1", "0", "-3"])
def test_verify_refuses_fewer_than_two_clusters(
    tmp_path, tiny_tflite, n, run_cli, assert_one_line_error, nothing_written
):
    (tmp_path / "m.tflite").write_bytes(tiny_tflite["int8"])
    with nothing_written(tmp_path):
        result = run_cli(["verify", "m.tflite", "--max-unique", n], cwd=tmp_path)
        assert_one_line_error(result, 2, "--max-unique", ">= 2", f"Received: --max-unique {n}")


def test_good_model_inspects_and_verifies(tmp_path, tiny_tflite, run_cli):
    (tmp_path / "m.tflite").write_bytes(tiny_tflite["int8"])
    shown = run_cli(["inspect", "m.tflite"], cwd=tmp_path)
    assert shown.exit_code == 0 and shown.stderr == ""
    assert "3 weight tensors" in shown.stdout and "FULLY_CONNECTED" in shown.stdout
    assert run_cli(["verify", "m.tflite", "-n", "256"], cwd=tmp_path).exit_code == 0
    failed = run_cli(["verify", "m.tflite", "-n", "2"], cwd=tmp_path)  # unclustered: every tensor fails
    assert failed.exit_code == 1 and failed.stdout.startswith("FAIL") and "Traceback" not in failed.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_subprocess_gives_the_same_one_line(
    tmp_path, tiny_tflite, command, run_cli, assert_one_line_error, nothing_written
):
    path, fragments = _place(tmp_path, tiny_tflite, "truncated half")
    with nothing_written(tmp_path):
        result = run_cli(COMMANDS[command][:1] + [path.name] + COMMANDS[command][1:], cwd=tmp_path, subprocess=True)
        assert_one_line_error(result, 2, *fragments)


def test_debug_shows_the_traceback(tmp_path, tiny_tflite, run_cli):
    path, _ = _place(tmp_path, tiny_tflite, "wrong schema version")
    result = run_cli(["inspect", path.name], cwd=tmp_path, subprocess=True, debug=True)
    assert result.exit_code != 0
    assert "Traceback" in result.stderr and "ModelFormatError" in result.stderr


# ------------------------------------------------------------------------------------------- convert


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    """The tiny model as .keras, .h5, weights-only .h5 and SavedModel; and with a NaN weight."""
    folder = tmp_path_factory.mktemp("keras_files")
    model = tiny_keras_model()
    model.save(folder / "tiny.keras")
    model.save(folder / "tiny.h5")
    model.save_weights(folder / "tiny.weights.h5")
    model.export(folder / "saved_model", verbose=False)
    kernel = model.get_layer("dense").kernel
    broken = kernel.numpy()
    broken[3, 4] = np.nan
    kernel.assign(broken)
    model.save(folder / "nan.keras")
    return folder


@pytest.fixture(scope="module")
def npz_files(tmp_path_factory, digits):
    """DATA.npz variants: good, and each way one can be wrong."""
    folder = tmp_path_factory.mktemp("npz_files")
    good = {
        "x_train": digits.x_train[:40],
        "y_train": digits.y_train[:40],
        "x_test": digits.x_test[:20],
        "y_test": digits.y_test[:20],
    }
    variants = {
        "good": {},
        "missing": {"drop": "y_test"},
        "shape": {"x_train": np.zeros((40, 5, 5), np.float32), "x_test": np.zeros((20, 5, 5), np.float32)},
        "split shapes": {"x_test": np.zeros((20, 8, 9, 1), np.float32)},
        "strings": {"x_train": np.array(["a"] * 40)},
        "complex": {"x_train": good["x_train"].astype(np.complex64)},
        "float labels": {"y_train": good["y_train"].astype(np.float32)},
        "one-hot labels": {"y_train": np.eye(10, dtype=np.int64)[good["y_train"]]},
        "negative labels": {"y_train": good["y_train"] - 5},
        "labels past outputs": {"y_test": good["y_test"] + 10},
        "lengths": {"y_train": good["y_train"][:30]},
        "nan": {"x_train": np.where(np.arange(40)[:, None, None, None] == 3, np.nan, good["x_train"])},
        "empty": {"x_train": good["x_train"][:0], "y_train": good["y_train"][:0]},
    }
    for name, change in variants.items():
        arrays = {k: v for k, v in good.items() if k != change.get("drop")}
        arrays.update({k: v for k, v in change.items() if k != "drop"})
        np.savez(folder / f"{name.replace(' ', '_')}.npz", **arrays)
    (folder / "not_npz.npz").write_bytes(b"x_train,y_train\n1,2\n")
    (folder / "truncated.npz").write_bytes((folder / "good.npz").read_bytes()[:300])
    return folder


MODEL_CASES = {
    # name: (how to place MODEL in the work folder, fragments of the error line)
    "missing": (None, ["missing.keras", "no such file"]),
    "empty": (b"", ["empty file"]),
    "text": (b"a model, honest\n", ["not a .keras model"]),
    "random": (np.random.default_rng(2).bytes(2048), ["not a .keras model"]),
    "truncated": ("truncate", ["damaged or truncated"]),
    "zip without config": ("zip", ["no config.json inside"]),
    "tflite": ("tflite", ["a .tflite model", "edgeclust inspect"]),
    "saved model": ("saved_model", ["SavedModel", "model.save('model.keras')"]),
    "weights only h5": ("weights_h5", ["weights only"]),
    "fake h5": ("fake_h5", ["not an HDF5 file"]),
    "nan weight": ("nan", ["weight", "dense", "kernel", "holds 1 NaN or Inf values of 2,560"]),
    "folder": ("folder", ["a folder, not a model file"]),
}


def _model_arg(folder, keras_files, tiny_tflite, case) -> str:
    import shutil

    how, _ = MODEL_CASES[case]
    if how is None:
        return "missing.keras"
    if isinstance(how, bytes):
        (folder / "model.keras").write_bytes(how)
        return "model.keras"
    if how == "truncate":
        blob = (keras_files / "tiny.keras").read_bytes()
        (folder / "model.keras").write_bytes(blob[: len(blob) // 2])
    elif how == "zip":
        (folder / "model.keras").write_bytes(_other_zip())
    elif how == "tflite":
        (folder / "model.keras").write_bytes(tiny_tflite["float32"])
    elif how == "saved_model":
        shutil.copytree(keras_files / "saved_model", folder / "model.keras")
    elif how == "weights_h5":
        shutil.copy(keras_files / "tiny.weights.h5", folder / "model.h5")
        return "model.h5"
    elif how == "fake_h5":
        (folder / "model.h5").write_bytes(b"not an hdf5 file")
        return "model.h5"
    elif how == "nan":
        shutil.copy(keras_files / "nan.keras", folder / "model.keras")
    elif how == "folder":
        (folder / "model.keras").mkdir()
    return "model.keras"


def _other_zip() -> bytes:
    import io

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("readme.txt", "not a model")
    return out.getvalue()


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_convert_refuses_bad_models_and_writes_nothing(
    tmp_path, keras_files, tiny_tflite, case, run_cli, assert_one_line_error, nothing_written
):
    model = _model_arg(tmp_path, keras_files, tiny_tflite, case)
    with nothing_written(tmp_path):
        result = run_cli(["convert", model, "--quantize", "float32", "-o", "out/model.tflite"], cwd=tmp_path)
        assert_one_line_error(result, 2, *MODEL_CASES[case][1])


DATA_CASES = {
    # npz file: fragments of the error line (each is refused before the model is converted)
    "absent.npz": ["absent.npz", "no such data file"],
    "not_npz.npz": ["not a readable .npz file"],
    "truncated.npz": ["not a readable .npz file"],
    "missing.npz": ["missing array(s) y_test"],
    "split_shapes.npz": ["x_train examples have shape (8, 8, 1) but x_test examples have (8, 9, 1)"],
    "strings.npz": ["x_train must be a real numeric array"],
    "complex.npz": ["x_train must be a real numeric array", "complex64"],
    "negative_labels.npz": ["y_train holds a negative label (-5)"],
    "lengths.npz": ["x_train has 40 examples but y_train has 30"],
    "nan.npz": ["x_train holds NaN or Inf values"],
    "empty.npz": ["x_train is empty"],
}
# refused once the model is loaded: they do not fit it
DATA_MODEL_CASES = {
    "shape.npz": ["examples have shape (5, 5) but the model expects (8, 8, 1)"],
    "labels_past_outputs.npz": ["labels go up to 19 but the model has 10 outputs"],
}


@pytest.mark.parametrize("npz", sorted(DATA_CASES))
def test_convert_refuses_bad_data_and_writes_nothing(
    tmp_path, keras_files, npz_files, npz, run_cli, assert_one_line_error, nothing_written
):
    data = npz_files / npz
    result_folder = tmp_path / "work"
    result_folder.mkdir()
    with nothing_written(result_folder):
        result = run_cli(["convert", keras_files / "tiny.keras", "--data", data, "-o", "m.tflite"], cwd=result_folder)
        assert_one_line_error(result, 2, *DATA_CASES[npz])


@pytest.mark.parametrize("npz", sorted(DATA_MODEL_CASES))
def test_convert_refuses_data_that_does_not_fit_the_model(
    tmp_path, keras_files, npz_files, npz, run_cli, assert_one_line_error, nothing_written
):
    with nothing_written(tmp_path):
        result = run_cli(
            ["convert", keras_files / "tiny.keras", "--data", npz_files / npz, "-o", "m.tflite"], cwd=tmp_path
        )
        assert_one_line_error(result, 2, *DATA_MODEL_CASES[npz])


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--quantize", "int8"], ["int8 conversion needs --data DATA.npz"]),
        (["--quantize", "float32", "-o", "model.bin"], ["model.bin", "must end in .tflite"]),
        (["--quantize", "float32", "-o", "folder.tflite"], ["folder.tflite", "is a folder"]),
    ],
)
def test_convert_usage_errors(tmp_path, keras_files, args, fragments, run_cli, assert_one_line_error, nothing_written):
    (tmp_path / "folder.tflite").mkdir()
    with nothing_written(tmp_path):
        if "-o" not in args:
            args = args + ["-o", "m.tflite"]
        result = run_cli(["convert", keras_files / "tiny.keras", *args], cwd=tmp_path)
        assert_one_line_error(result, 2, *fragments)


def test_convert_missing_model_in_a_subprocess(tmp_path, run_cli, assert_one_line_error):
    result = run_cli(
        ["convert", "nope.keras", "--quantize", "float32", "-o", "m.tflite"], cwd=tmp_path, subprocess=True
    )
    assert_one_line_error(result, 2, "nope.keras", "no such file")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["tiny.keras", "tiny.h5"])
def test_convert_accepts_keras_and_keras3_h5(tmp_path, keras_files, npz_files, name, run_cli):
    """A Keras 3 .h5 loads with keras.models.load_model(compile=False), so it converts like a .keras."""
    result = run_cli(["convert", keras_files / name, "--data", npz_files / "good.npz", "-o", "m.tflite"], cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "m.tflite").read_bytes()[4:8] == b"TFL3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]  # no temporary left beside it
