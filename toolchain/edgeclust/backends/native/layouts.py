"""Weight layouts read straight from a .tflite (for a model that arrives without the pipeline's verify step).

Each CONV_2D / FULLY_CONNECTED filter gets the smallest layout per tensor or per output channel (axis 0),
each DEPTHWISE_CONV_2D filter per tensor or along axis 3; a filter with more than 256 values gets none.
"""

from __future__ import annotations

from edgeclust.lower.weights import WeightLayout, smallest_layout
from edgeclust.tflite.flatbuffer import read_model

_CHANNEL_AXIS = {"CONV_2D": 0, "FULLY_CONNECTED": 0, "DEPTHWISE_CONV_2D": 3}


def default_layouts(tflite: bytes) -> tuple[WeightLayout, ...]:
    model = read_model(tflite)
    layouts = []
    seen = set()
    for op in model.operators:
        axis = _CHANNEL_AXIS.get(op.name)
        if axis is None or len(op.inputs) < 2 or op.inputs[1] < 0 or op.inputs[1] in seen:
            continue
        t = model.tensors[op.inputs[1]]
        if t.data is None or t.dtype != "INT8" or len(t.shape) <= axis:
            continue
        seen.add(t.index)
        layout = smallest_layout(t.data, channel_axis=axis, tensor=t.index, name=t.name, consumer=op.name)
        if layout is not None:
            layouts.append(layout)
    return tuple(layouts)
