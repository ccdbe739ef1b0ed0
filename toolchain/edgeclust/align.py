"""The one alignment rule for tensor arenas and model arrays: 16 bytes, what TFLM and CMSIS-NN expect."""

from __future__ import annotations

TENSOR_ALIGNMENT = 16


def align(n: int, alignment: int = TENSOR_ALIGNMENT) -> int:
    """`n` rounded up to a multiple of `alignment`."""
    return (int(n) + alignment - 1) // alignment * alignment
