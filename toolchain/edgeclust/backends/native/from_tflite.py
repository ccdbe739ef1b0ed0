"""A .tflite's main subgraph as a backend-neutral Graph (edgeclust.lower.graph), shapes at batch 1."""

from __future__ import annotations

import numpy as np

from edgeclust.lower.graph import Graph, GraphOp, GraphTensor, Quant
from edgeclust.tflite.flatbuffer import TfliteModel, numpy_dtype, read_model


def graph_from_tflite(tflite: bytes | TfliteModel) -> Graph:
    """The main subgraph's tensors (constants with their values) and ops with their options."""
    model = tflite if isinstance(tflite, TfliteModel) else read_model(tflite)
    sg = model.subgraphs[0]
    tensors = []
    for t in sg.tensors:
        np_dtype = numpy_dtype(t.dtype)
        dtype = np_dtype.name if np_dtype is not None else t.dtype.lower()
        quant = None
        if t.quantization is not None and len(t.quantization.scales):
            q = t.quantization
            quant = Quant(
                tuple(float(s) for s in q.scales),
                tuple(int(z) for z in q.zero_points),
                int(q.quantized_dimension),
                bool(q.zero_points_stored),
            )
        data = None if t.data is None else np.asarray(t.data)
        shape = tuple(max(int(d), 1) if i == 0 else int(d) for i, d in enumerate(t.shape))  # batch 1
        tensors.append(GraphTensor(t.index, t.name, shape, dtype, quant, data))
    ops = tuple(
        GraphOp(op.index, op.name, op.inputs, op.outputs, dict(op.options), op.has_custom_options)
        for op in sg.operators
    )
    return Graph(tuple(tensors), ops, tuple(sg.inputs), tuple(sg.outputs))
