"""flatbuffer.read_model: real converted models read correctly; malformed files are one ModelFormatError line.

Malformed models are made from real ones: bytes cut or overwritten, or the model unpacked with the
schema's object API, edited (wrong version, indices and sizes out of range) and packed again.
"""

import struct

import flatbuffers
import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from edgeclust.errors import InputError, ModelFormatError
from edgeclust.tflite import flatbuffer


def rebuild(data: bytes, edit) -> bytes:
    """Unpack `data` with the object API, let `edit` change it, pack it again (identifier TFL3)."""
    obj = fb.ModelT.InitFromObj(fb.Model.GetRootAs(bytearray(data), 0))  # writable arrays
    edit(obj)
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(obj.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def weight_index(obj) -> int:
    """Index of the first FULLY_CONNECTED weight tensor in subgraph 0 of an unpacked model."""
    sg = obj.subgraphs[0]
    for op in sg.operators:
        code = obj.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) == fb.BuiltinOperator.FULLY_CONNECTED:
            return int(op.inputs[1])
    raise AssertionError("no FULLY_CONNECTED")


def vector_length_position(data: bytes, vtable_slot: int) -> int:
    """Where the length of the root Model's vector field (vtable slot 4 + 2*field) is stored."""
    model = fb.Model.GetRootAs(data, 0)
    field = model._tab.Offset(vtable_slot)
    at = model._tab.Pos + field
    return at + struct.unpack_from("<I", data, at)[0]


def assert_one_line_format_error(data, match=None):
    with pytest.raises(ModelFormatError, match=match) as info:
        flatbuffer.read_model(data)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_reads_tensors_operators_and_quantization(plain):
    model = flatbuffer.read_model(plain.int8)
    assert model.version == 3 and model.size_bytes == len(plain.int8)
    assert [op.name for op in model.operators] == [
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "CONV_2D",
        "MAX_POOL_2D",
        "RESHAPE",
        "FULLY_CONNECTED",
        "FULLY_CONNECTED",
        "SOFTMAX",
    ]
    conv = model.operators[0]
    kernel = model.tensors[conv.inputs[1]]
    assert kernel.shape == (8, 3, 3, 1) and kernel.dtype == "INT8" and kernel.data.dtype == np.int8
    assert kernel.data.shape == kernel.shape and not kernel.data.flags.writeable
    assert kernel.quantization.per_channel and kernel.quantization.quantized_dimension == 0
    assert np.all(kernel.quantization.zero_points == 0)
    bias = model.tensors[conv.inputs[2]]
    assert bias.dtype == "INT32" and bias.shape == (8,)
    assert model.tensors[conv.outputs[0]].data is None
    assert model.inputs[0].index in model.subgraphs[0].inputs


def test_accepts_bytearray_and_memoryview(plain):
    assert (
        flatbuffer.read_model(bytearray(plain.int8)).op_names == flatbuffer.read_model(memoryview(plain.int8)).op_names
    )


def test_rebuilt_model_reads_the_same(plain):
    same = rebuild(plain.int8, lambda obj: None)
    a, b = flatbuffer.read_model(plain.int8), flatbuffer.read_model(same)
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    for ta, tb in zip(a.tensors, b.tensors):
        assert (ta.data is None) == (tb.data is None)
        if ta.data is not None:
            np.testing.assert_array_equal(ta.data, tb.data)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "empty file"),
        (b"TFL3", "only 4 bytes"),
        (b"\x10\x00\x00\x00XXXX" + bytes(32), r"file identifier is b'XXXX', expected b'TFL3'"),
        (b"PK\x03\x04" + bytes(60), r"zip archive.*edgeclust convert"),
        (b"\x89HDF\r\n\x1a\n" + bytes(60), r"HDF5"),
        (b"\xff\xff\xff\x7fTFL3" + bytes(32), "root table offset"),
        ("model.tflite", "must be bytes"),
    ],
)
def test_not_a_model(data, match):
    assert_one_line_format_error(data, match)


def test_wrong_schema_version(plain):
    def edit(obj):
        obj.version = 2

    assert_one_line_format_error(
        rebuild(plain.int8, edit), "unsupported .tflite schema version 2; edgeclust reads version 3"
    )


def test_no_subgraph(plain):
    def edit(obj):
        obj.subgraphs = []

    assert_one_line_format_error(rebuild(plain.int8, edit), "no subgraph")


def test_opcode_index_out_of_range(plain):
    def edit(obj):
        obj.subgraphs[0].operators[0].opcodeIndex = 99

    assert_one_line_format_error(rebuild(plain.int8, edit), "operator 0 uses opcode 99")


def test_tensor_index_out_of_range(plain):
    def edit(obj):
        obj.subgraphs[0].operators[1].inputs[0] = 999

    assert_one_line_format_error(rebuild(plain.int8, edit), r"operator 1 \(DEPTHWISE_CONV_2D\) refers to tensor 999")


def test_subgraph_output_out_of_range(plain):
    def edit(obj):
        obj.subgraphs[0].outputs[0] = -1

    assert_one_line_format_error(rebuild(plain.int8, edit), "inputs/outputs refers to tensor -1")


def test_buffer_index_out_of_range(plain):
    def edit(obj):
        obj.subgraphs[0].tensors[weight_index(obj)].buffer = 4096

    assert_one_line_format_error(rebuild(plain.int8, edit), "uses buffer 4096")


def test_buffer_smaller_than_its_shape(plain):
    def edit(obj):
        tensor = obj.subgraphs[0].tensors[weight_index(obj)]
        obj.buffers[tensor.buffer].data = obj.buffers[tensor.buffer].data[:-1]

    assert_one_line_format_error(
        rebuild(plain.int8, edit), r"holds 8,191 bytes but shape \[32, 256\] of INT8 needs 8,192"
    )


def test_external_buffer_past_the_end(plain):
    def edit(obj):
        buffer = obj.buffers[obj.subgraphs[0].tensors[weight_index(obj)].buffer]
        buffer.data, buffer.offset, buffer.size = None, 1 << 20, 8192

    assert_one_line_format_error(rebuild(plain.int8, edit), "past the end of the")


def test_constant_with_negative_dimension(plain):
    def edit(obj):
        obj.subgraphs[0].tensors[weight_index(obj)].shape = [-32, 256]

    assert_one_line_format_error(rebuild(plain.int8, edit), r"is constant but has shape \[-32, 256\]")


@pytest.mark.parametrize("slot, name", [(6, "operator_codes"), (8, "subgraphs"), (12, "buffers")])
@pytest.mark.parametrize("length", [0x7FFFFFFF, 0xFFFFFFFF])
def test_vector_length_past_the_file(plain, slot, name, length):
    data = bytearray(plain.int8)
    struct.pack_into("<I", data, vector_length_position(plain.int8, slot), length)
    assert_one_line_format_error(bytes(data), f"{name} claims {length:,} entries")


def test_vector_length_just_past_its_data(plain):
    data = bytearray(plain.int8)
    at = vector_length_position(plain.int8, 12)
    struct.pack_into("<I", data, at, (len(data) - at) // 4)  # fits the size check, runs past the end
    assert_one_line_format_error(bytes(data))


def test_every_truncation_is_a_format_error(plain):
    data = plain.int8
    for length in list(range(0, 64)) + list(range(64, len(data), 97)):
        assert_one_line_format_error(data[:length])


def test_random_bytes_behind_a_valid_identifier():
    rng = np.random.default_rng(0)
    for _ in range(200):
        body = rng.integers(0, 256, size=int(rng.integers(8, 2000)), dtype=np.uint8).tobytes()
        data = struct.pack("<I", int(rng.integers(8, 64))) + b"TFL3" + body
        try:
            flatbuffer.read_model(data)
        except ModelFormatError as exc:
            assert "\n" not in str(exc)


def test_read_model_file_names_the_file(tmp_path, plain):
    path = tmp_path / "m.tflite"
    path.write_bytes(plain.int8[:100])
    with pytest.raises(ModelFormatError, match=r"^.*m\.tflite: corrupted \.tflite file"):
        flatbuffer.read_model_file(path)
    with pytest.raises(InputError, match="no such file"):
        flatbuffer.read_model_file(tmp_path / "missing.tflite")
    with pytest.raises(InputError, match="is a folder"):
        flatbuffer.read_model_file(tmp_path)
    path.write_bytes(plain.int8)
    assert flatbuffer.read_model_file(path).size_bytes == len(plain.int8)
