"""Bit packing of weight indices: each row (one output channel, say) a little-endian bitstream of b-bit indices.

The layout, which the native backend's C decode reads, is fixed here and nowhere else:
element j of a row occupies bits [j*b, j*b + b) of that row's bitstream; bit k of the stream is bit (k % 8) of
byte (k // 8) of the row (LSB first); row r starts at byte r * row_stride, where row_stride is ceil(n*b / 8)
rounded up to a multiple of row_align. Unused bits and padding bytes are zero. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeclust.errors import ConfigError

MIN_BITS = 1
MAX_BITS = 8


@dataclass(frozen=True)
class PackedRows:
    """`rows` rows of `n` indices of `bits` bits each, row r in data[r*row_stride : (r+1)*row_stride]."""

    data: bytes
    row_stride: int
    bits: int
    rows: int
    n: int

    @property
    def nbytes(self) -> int:
        """Bytes the packed indices occupy (what they cost on flash)."""
        return len(self.data)


def row_stride_for(n: int, bits: int, row_align: int = 1) -> int:
    """Bytes one packed row of `n` indices of `bits` bits takes: ceil(n*bits/8) rounded up to `row_align`."""
    _check_bits(bits)
    _check_row_align(row_align)
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ConfigError(f"The row length must be a non-negative integer. Received: n={n!r}")
    raw = (n * bits + 7) // 8
    return -(-raw // row_align) * row_align


def pack_rows(indices: np.ndarray, bits: int, *, row_align: int = 1) -> PackedRows:
    """Pack a (rows, n) uint8 array of indices, each below 2**bits, into LSB-first bitstreams, one per row."""
    _check_bits(bits)
    _check_row_align(row_align)
    bits, row_align = int(bits), int(row_align)
    if not isinstance(indices, np.ndarray) or indices.dtype != np.uint8 or indices.ndim != 2:
        got = f"{indices.dtype} array of shape {indices.shape}" if isinstance(indices, np.ndarray) else type(indices)
        raise ConfigError(
            f"Indices to pack must be a 2-D uint8 numpy array (rows, n); got {got}. "
            "Reshape the tensor to (channels, -1) and cast its indices to uint8."
        )
    rows, n = (int(d) for d in indices.shape)
    if indices.size and int(indices.max()) >= 1 << bits:
        raise ConfigError(
            f"An index is {int(indices.max())}, which does not fit in {bits} bits "
            f"(at most {(1 << bits) - 1}); pack with more bits."
        )
    stride = row_stride_for(n, bits, row_align)
    if rows == 0 or stride == 0:
        return PackedRows(data=b"", row_stride=stride, bits=bits, rows=rows, n=n)
    shifts = np.arange(bits, dtype=np.uint8)
    # bit_stream[r, j*bits + i] is bit i of element j of row r: exactly stream order LSB-first.
    bit_stream = ((indices[:, :, None] >> shifts) & 1).reshape(rows, n * bits)
    padded = np.zeros((rows, stride * 8), dtype=np.uint8)
    padded[:, : n * bits] = bit_stream
    data = np.packbits(padded, axis=1, bitorder="little")
    return PackedRows(data=data.tobytes(), row_stride=stride, bits=bits, rows=rows, n=n)


def unpack_rows(packed: PackedRows) -> np.ndarray:
    """The (rows, n) uint8 indices back from `packed` (the inverse of pack_rows, as the C decode reads them)."""
    _check_bits(packed.bits)
    minimum = (packed.n * packed.bits + 7) // 8
    if packed.row_stride < minimum or len(packed.data) != packed.rows * packed.row_stride:
        raise ConfigError(
            f"Packed rows are inconsistent: {packed.rows} rows of stride {packed.row_stride} "
            f"(at least {minimum} for {packed.n} indices of {packed.bits} bits) but "
            f"{len(packed.data)} bytes; repack them with pack_rows."
        )
    if packed.rows == 0 or packed.n == 0:
        return np.zeros((packed.rows, packed.n), dtype=np.uint8)
    raw = np.frombuffer(packed.data, dtype=np.uint8).reshape(packed.rows, packed.row_stride)
    bit_stream = np.unpackbits(raw, axis=1, bitorder="little")[:, : packed.n * packed.bits]
    bit_values = bit_stream.reshape(packed.rows, packed.n, packed.bits) << np.arange(packed.bits, dtype=np.uint8)
    return bit_values.sum(axis=2, dtype=np.uint8)


def _check_bits(bits: int) -> None:
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool) or not MIN_BITS <= bits <= MAX_BITS:
        raise ConfigError(f"Index bits must be an integer in {MIN_BITS}..{MAX_BITS}. Received: bits={bits!r}")


def _check_row_align(row_align: int) -> None:
    if not isinstance(row_align, (int, np.integer)) or isinstance(row_align, bool) or row_align < 1:
        raise ConfigError(f"`row_align` must be a positive integer (bytes). Received: row_align={row_align!r}")
