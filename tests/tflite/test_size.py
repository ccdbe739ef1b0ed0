"""Zipped size, and the TFLM backend's LUT compression (made for real with tflite_micro.compression, driven by
the weight layouts) checked in TFLM."""

import zipfile

import numpy as np
import pytest

from edgeclust.errors import ConfigError
from edgeclust.tflite import flatbuffer, inspect, parity, size


def test_zipped_size_is_what_zipfile_writes(tmp_path, plain):
    path = tmp_path / "m.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.tflite", plain.float32)
    assert size.zipped_size(plain.float32, "model.tflite") == path.stat().st_size
    assert size.zipped_size(plain.float32, "model.tflite") < len(plain.float32)


def test_clustered_float_model_zips_far_smaller(plain, unclustered_float):
    clustered = size.zipped_size(plain.float32)
    unclustered = size.zipped_size(unclustered_float)
    assert unclustered / clustered > 3, (unclustered, clustered)


def test_lut_model_decodes_to_the_same_weights(plain, lut_per_tensor):
    original = {w.name: w.values for w in inspect.find_weights(plain.int8_per_tensor)}
    decoded = inspect.find_weights(lut_per_tensor.model)
    assert {w.name for w in decoded} == set(original)
    compressed = {c.name for c in lut_per_tensor.compressed_tensors}
    for w in decoded:
        assert w.stored_as == ("lut" if w.name in compressed else "raw")
        np.testing.assert_array_equal(w.values, original[w.name])
    assert "TFLM_DECODE" in flatbuffer.read_model(lut_per_tensor.model).op_names


def test_lut_compresses_what_pays_and_says_why_it_skips_the_rest(plain, lut_per_tensor):
    done = {c.name.split("/")[1]: c for c in lut_per_tensor.compressed_tensors}
    skipped = {s.name.split("/")[1]: s.reason for s in lut_per_tensor.skipped_tensors}
    assert set(done) | set(skipped) == {"conv1_1", "dwconv_1", "pwconv_1", "dense1_1", "dense2_1"}
    dense1 = done["dense1_1"]
    assert (dense1.mode, dense1.index_bits, dense1.table_entries) == ("per-tensor", 4, 16)
    assert dense1.compressed_bytes == 8192 // 2 + 16 + 16  # 4-bit indices, header, one int8 table
    assert all("would not be smaller" in reason for reason in skipped.values())
    assert lut_per_tensor.decoded_bytes == sum(c.decoded_bytes for c in done.values())
    assert len(lut_per_tensor.model) < len(plain.int8_per_tensor) - 3000


@pytest.mark.parametrize("which", ["int8_per_tensor", "int8", "float32"])
def test_tflm_on_the_lut_model_equals_tflm_on_the_original_bit_for_bit(plain, digits, which, lut):
    original = getattr(plain, which)
    lut = lut(original)
    assert lut.compressed_tensors, [s.reason for s in lut.skipped_tensors]
    x = digits.x_test[:100]
    np.testing.assert_array_equal(parity.run_tflm(lut.model, x), parity.run_tflm(original, x))


def test_per_channel_quantized_tensors_get_per_channel_tables(plain, lut):
    lut = lut(plain.int8)
    dense1 = next(c for c in lut.compressed_tensors if "dense1" in c.name)
    assert (dense1.mode, dense1.axis, dense1.tables) == ("per-channel", 0, 32)


def test_unclustered_weights_are_skipped_with_the_reason(unclustered_float, lut):
    result = lut(unclustered_float)
    assert result.compressed_tensors == () and result.model == unclustered_float and result.decoded_bytes == 0
    reasons = [s.reason for s in result.skipped_tensors]
    assert any("more than 256 unique values" in r for r in reasons)  # the big tensors: too many values
    assert all("more than 256 unique values" in r or "more than 7" in r or "would not be smaller" in r for r in reasons)


def test_the_layouts_bit_width_sets_the_index_bits(make_fc_model, lut):
    """17 to 128 values get 5 to 7-bit indices (the pipeline's layouts), not a fixed 4."""
    for values, bits in ((17, 5), (32, 5), (33, 6), (100, 7)):
        weights = np.resize(np.arange(-50, -50 + values, dtype=np.int8), 4000).reshape(100, 40)
        data = make_fc_model(weights)
        (done,) = lut(data).compressed_tensors
        assert (done.index_bits, done.table_entries) == (bits, values)
    assert lut(data, max_index_bits=6).compressed_tensors == ()
    x = np.random.default_rng(0).random((4, 40), dtype=np.float32)
    np.testing.assert_array_equal(parity.run_tflm(lut(data).model, x), parity.run_tflm(data, x))


def test_already_compressed_tensors_are_left_alone(lut_per_tensor, lut):
    again = lut(lut_per_tensor.model)
    reasons = {s.name: s.reason for s in again.skipped_tensors}
    assert all(reasons[c.name] == "already compressed" for c in lut_per_tensor.compressed_tensors)


def test_decoded_weights_cost_arena_unless_given_their_own_memory(plain, lut_per_tensor):
    int8_arena = parity.tflm_arena_bytes(plain.int8_per_tensor)
    lut_arena = parity.tflm_arena_bytes(lut_per_tensor.model)
    separate = parity.tflm_arena_bytes(lut_per_tensor.model, alt_decompression_bytes=lut_per_tensor.decoded_bytes)
    assert lut_arena > int8_arena + lut_per_tensor.decoded_bytes // 2
    assert separate <= int8_arena + 1024


@pytest.mark.parametrize("bad", [0, 8, 2.0, None])
def test_index_bits_are_checked(plain, bad, lut):
    with pytest.raises(ConfigError, match=r"`max_index_bits` must be an integer in 1\.\.7"):
        lut(plain.int8, max_index_bits=bad)
