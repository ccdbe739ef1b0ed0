"""Weight layouts, decided once per build: for each weight tensor, its index bit width and value tables.

numpy only and backend-neutral: the TFLM backend turns a layout into TFLM's LUT compression, the native
backend packs indices from it. A layout says what the tensor holds; whether packing pays is the backend's call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeclust.errors import ConfigError

MAX_INDEX_BITS = 8


@dataclass(frozen=True, eq=False)
class WeightLayout:
    """One weight tensor as shared values: `tables[t][indices[...]]` gives back the weights exactly.

    axis: the tensor axis that selects a table (one table per index along it), or None for one table.
    tables: shape (n_tables, entries), each row sorted ascending, the tensor's dtype; entries <= 2**bits is
    the largest row's count of distinct values (shorter rows are padded with their last value).
    indices: the tensor's shape, uint8 (entries <= 256), each in 0..entries-1 of its own table.
    """

    subgraph: int
    tensor: int
    name: str
    consumer: str
    shape: tuple[int, ...]
    dtype: str  # numpy name of the stored values: "int8", "float32", ...
    axis: int | None
    bits: int
    tables: np.ndarray
    indices: np.ndarray
    unique_values: int  # the largest table's count of distinct values

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    @property
    def entries(self) -> int:
        return int(self.tables.shape[1])

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def packed_index_bytes(self) -> int:
        """Bytes of the indices packed as one bitstream over the whole tensor."""
        return (self.size * self.bits + 7) // 8

    @property
    def table_bytes(self) -> int:
        return int(self.tables.size * self.tables.dtype.itemsize)

    def decode(self) -> np.ndarray:
        """The weights back from indices and tables (what a kernel that decodes in its loop computes with)."""
        if self.axis is None:
            return self.tables[0][self.indices]
        moved = np.moveaxis(self.indices, self.axis, 0)
        decoded = np.take_along_axis(self.tables, moved.reshape(moved.shape[0], -1), axis=1).reshape(moved.shape)
        return np.moveaxis(decoded, 0, self.axis)


def index_bits(unique_values: int) -> int:
    """Bits an index needs to tell `unique_values` values apart: ceil(log2(n)), at least 1."""
    return max(1, (max(int(unique_values), 1) - 1).bit_length())


def layout_for(
    values: np.ndarray,
    *,
    axis: int | None,
    subgraph: int = 0,
    tensor: int = 0,
    name: str = "",
    consumer: str = "",
    max_bits: int = MAX_INDEX_BITS,
) -> WeightLayout | None:
    """The layout of `values` with one table per index along `axis` (None: one table), or None when a table
    would need more than `max_bits`-bit indices."""
    if not isinstance(max_bits, int) or isinstance(max_bits, bool) or not 1 <= max_bits <= MAX_INDEX_BITS:
        raise ConfigError(f"`max_bits` must be an integer in 1..{MAX_INDEX_BITS}. Received: max_bits={max_bits!r}")
    values = np.asarray(values)
    if values.size == 0:
        return None
    if axis is not None:
        axis = axis % values.ndim
        rows = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
    else:
        rows = values.reshape(1, -1)
    uniques = [np.unique(row) for row in rows]
    most = max(len(u) for u in uniques)
    bits = index_bits(most)
    if bits > max_bits:
        return None
    entries = most
    tables = np.stack([np.concatenate([u, np.repeat(u[-1:], entries - len(u))]) for u in uniques]).astype(values.dtype)
    index_rows = np.stack([np.searchsorted(u, row) for u, row in zip(uniques, rows)]).astype(np.uint8)
    if axis is None:
        indices = index_rows.reshape(values.shape)
    else:
        moved_shape = (values.shape[axis],) + tuple(s for i, s in enumerate(values.shape) if i != axis)
        indices = np.moveaxis(index_rows.reshape(moved_shape), 0, axis)
    return WeightLayout(
        subgraph=subgraph,
        tensor=tensor,
        name=name,
        consumer=consumer,
        shape=tuple(values.shape),
        dtype=values.dtype.name,
        axis=axis,
        bits=bits,
        tables=tables,
        indices=np.ascontiguousarray(indices),
        unique_values=most,
    )


def smallest_layout(values: np.ndarray, *, channel_axis: int | None, **where) -> WeightLayout | None:
    """Per tensor or per channel along `channel_axis`, whichever needs fewer index bits (per tensor on a tie:
    one table is smaller)."""
    whole = layout_for(values, axis=None, **where)
    if channel_axis is None or np.asarray(values).ndim == 0:
        return whole
    per_channel = layout_for(values, axis=channel_axis, **where)
    if whole is None:
        return per_channel
    if per_channel is not None and per_channel.bits < whole.bits:
        return per_channel
    return whole
