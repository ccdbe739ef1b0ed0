"""Bit packing of weight indices: the exact LSB-first row layout the native C decode reads, and round trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeclust.errors import ConfigError, EdgeclustError
from edgeclust.lower.pack import PackedRows, pack_rows, row_stride_for, unpack_rows


def reference_pack(indices: np.ndarray, bits: int, row_align: int) -> bytes:
    """The spec written out bit by bit in plain Python: an oracle independent of numpy's packbits."""
    rows, n = indices.shape
    stride = -(-((n * bits + 7) // 8) // row_align) * row_align
    out = bytearray(rows * stride)
    for r in range(rows):
        for j in range(n):
            for i in range(bits):
                if (int(indices[r, j]) >> i) & 1:
                    k = j * bits + i
                    out[r * stride + k // 8] |= 1 << (k % 8)
    return bytes(out)


def reference_read(data: bytes, row_stride: int, bits: int, r: int, j: int) -> int:
    """Element j of row r read the way a C decode does: bit by bit from the row's bytes."""
    value = 0
    for i in range(bits):
        k = j * bits + i
        value |= ((data[r * row_stride + k // 8] >> (k % 8)) & 1) << i
    return value


def test_known_bytes_for_4_bit_indices():
    packed = pack_rows(np.array([[1, 2, 3, 4, 5]], dtype=np.uint8), 4)
    # Element 0 in the low nibble of byte 0, element 1 in the high nibble; the odd last one alone in byte 2.
    assert packed.data == bytes([0x21, 0x43, 0x05])
    assert (packed.row_stride, packed.rows, packed.n, packed.bits) == (3, 1, 5, 4)


def test_known_bytes_for_3_bit_indices_crossing_bytes():
    # 7, 0, 5 = 0b111, 0b000, 0b101 fill stream bits 0..8; element 2 occupies bits 6, 7 and 8 (byte 1, bit 0).
    packed = pack_rows(np.array([[7, 0, 5]], dtype=np.uint8), 3)
    assert packed.data == bytes([0b0100_0111, 0b0000_0001])


def test_known_bytes_for_1_bit_and_8_bit():
    assert pack_rows(np.array([[1, 0, 1, 1, 0, 0, 0, 0, 1]], dtype=np.uint8), 1).data == bytes([0b0000_1101, 1])
    row = np.array([[0, 255, 17]], dtype=np.uint8)
    assert pack_rows(row, 8).data == bytes([0, 255, 17])


def test_rows_start_on_row_stride_with_zero_padding():
    indices = np.array([[3, 3, 3], [1, 2, 3]], dtype=np.uint8)
    packed = pack_rows(indices, 2, row_align=4)
    # 3 indices x 2 bits = 6 bits -> 1 byte, rounded up to 4.
    assert packed.row_stride == 4
    assert packed.data == bytes([0b0011_1111, 0, 0, 0, 0b0011_1001, 0, 0, 0])
    assert packed.nbytes == 8


@pytest.mark.parametrize(
    ("n", "bits", "align", "stride"),
    [
        (0, 4, 1, 0),
        (1, 1, 1, 1),
        (8, 1, 1, 1),
        (9, 1, 1, 2),
        (5, 3, 1, 2),
        (5, 3, 4, 4),
        (16, 8, 4, 16),
        (17, 8, 4, 20),
        (3, 7, 2, 4),
    ],
)
def test_row_stride(n, bits, align, stride):
    assert row_stride_for(n, bits, align) == stride


@settings(max_examples=120, deadline=None, derandomize=True)
@given(
    st.integers(1, 8),
    st.integers(0, 6),
    st.integers(0, 40),
    st.sampled_from([1, 2, 4, 8, 16]),
    st.randoms(use_true_random=False),
)
def test_round_trip_and_matches_bitwise_spec(bits, rows, n, align, rnd):
    rng = np.random.default_rng(rnd.getrandbits(32))
    indices = rng.integers(0, 1 << bits, size=(rows, n), dtype=np.uint8)
    packed = pack_rows(indices, bits, row_align=align)
    assert packed.data == reference_pack(indices, bits, align)
    assert packed.row_stride % align == 0
    assert packed.row_stride * 8 >= n * bits
    assert len(packed.data) == rows * packed.row_stride
    back = unpack_rows(packed)
    assert back.dtype == np.uint8 and back.shape == (rows, n)
    np.testing.assert_array_equal(back, indices)
    for r in range(rows):
        for j in range(n):
            assert reference_read(packed.data, packed.row_stride, bits, r, j) == indices[r, j]


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.integers(1, 8), st.integers(1, 3), st.integers(1, 30))
def test_extreme_values_round_trip(bits, rows, n):
    top = np.full((rows, n), (1 << bits) - 1, dtype=np.uint8)
    for indices in (top, np.zeros_like(top)):
        np.testing.assert_array_equal(unpack_rows(pack_rows(indices, bits)), indices)


def test_a_conv_sized_tensor_round_trips():
    # The MNIST CNN's largest tensor, 430k weights as 128 rows: vectorized numpy, not a Python loop per bit.
    rng = np.random.default_rng(0)
    indices = rng.integers(0, 16, size=(128, 3364), dtype=np.uint8)
    packed = pack_rows(indices, 4)
    assert packed.nbytes == 128 * 1682
    np.testing.assert_array_equal(unpack_rows(packed), indices)


def test_packed_rows_is_frozen():
    packed = pack_rows(np.zeros((1, 2), dtype=np.uint8), 1)
    with pytest.raises(AttributeError):
        packed.bits = 2  # type: ignore[misc]


@pytest.mark.parametrize("bits", [0, 9, -1, 2.0, True, "4", None])
def test_bad_bits_is_a_config_error(bits):
    with pytest.raises(ConfigError, match="bits"):
        pack_rows(np.zeros((1, 2), dtype=np.uint8), bits)


@pytest.mark.parametrize("align", [0, -4, 1.5, False])
def test_bad_row_align_is_a_config_error(align):
    with pytest.raises(ConfigError, match="row_align"):
        pack_rows(np.zeros((1, 2), dtype=np.uint8), 2, row_align=align)


@pytest.mark.parametrize(
    "indices",
    [
        np.zeros((2, 3), dtype=np.int32),
        np.zeros(6, dtype=np.uint8),
        np.zeros((1, 2, 3), dtype=np.uint8),
        [[0, 1]],
        np.zeros((2, 2), dtype=np.int8),
    ],
)
def test_wrong_dtype_or_shape_is_a_config_error(indices):
    with pytest.raises(ConfigError, match="2-D uint8"):
        pack_rows(indices, 4)


@pytest.mark.parametrize(("bits", "bad"), [(1, 2), (3, 8), (4, 16), (7, 128)])
def test_index_too_large_for_bits_is_a_config_error(bits, bad):
    indices = np.array([[0, bad]], dtype=np.uint8)
    with pytest.raises(ConfigError, match=f"does not fit in {bits} bits"):
        pack_rows(indices, bits)


def test_inconsistent_packed_rows_is_a_config_error():
    with pytest.raises(ConfigError, match="inconsistent"):
        unpack_rows(PackedRows(data=b"\x00" * 3, row_stride=2, bits=4, rows=2, n=4))
    with pytest.raises(ConfigError, match="inconsistent"):
        unpack_rows(PackedRows(data=b"\x00" * 2, row_stride=1, bits=4, rows=2, n=4))


def test_errors_are_one_line_edgeclust_errors():
    with pytest.raises(EdgeclustError) as caught:
        pack_rows(np.array([[9]], dtype=np.uint8), 3)
    assert "\n" not in str(caught.value)
