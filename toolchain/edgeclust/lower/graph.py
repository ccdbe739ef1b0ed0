"""Backend-neutral model graph: tensors with shape, dtype and quantization, ops with their options.

numpy only. A backend builds one from its input format (the native backend from a .tflite) and lowers it;
keeping it apart from the flatbuffer lets tests and property checks build graphs by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Quant:
    """Affine quantization: real = scales[c] * (q - zero_points[c]), one entry per tensor or per `axis` index."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int = 0
    zero_points_stored: bool = True  # False: the model gave scales without zero points

    @property
    def scale(self) -> float:
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        return self.zero_points[0]

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1


@dataclass(frozen=True, eq=False)
class GraphTensor:
    """One tensor: `data` holds the values of a constant (weights, biases, shapes), None for activations."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy name: "int8", "int32", "float32"
    quant: Quant | None = None
    data: np.ndarray | None = None

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


@dataclass(frozen=True, eq=False)
class GraphOp:
    """One operator: its name ("CONV_2D"), input and output tensor indices (-1: absent) and its options.

    custom_options: a builtin operator that also carries custom options (TFLM refuses to run such a model).
    """

    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict)
    custom_options: bool = False


@dataclass(frozen=True, eq=False)
class Graph:
    """A model's main subgraph: tensors by index, ops in execution order, model inputs and outputs."""

    tensors: tuple[GraphTensor, ...]
    ops: tuple[GraphOp, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def consumers(self, tensor: int) -> tuple[GraphOp, ...]:
        """The ops that read `tensor`, in execution order."""
        return tuple(op for op in self.ops if tensor in op.inputs)

    def producer(self, tensor: int) -> GraphOp | None:
        return next((op for op in self.ops if tensor in op.outputs), None)
