"""Which Keras layer each weight tensor of a converted .tflite came from, found by content, not by name.

The converter names tensors after scopes that need not be the layers' names (layer `conv2d` of a second
model becomes `model_1/conv2d_1/convolution`, which reads as layer `conv2d_1`), so a weight tensor is tied to
the layer whose weights hold the same values: the dequantised tensor and the Keras weight, each sorted, agree
within the int8 rounding (sorting makes the comparison blind to the converter's transposes and reshapes).
"""

from __future__ import annotations

import numpy as np

# Sorted values may differ by half a quantisation step (1/254 of the largest magnitude, per tensor or per
# channel); a different layer's weights differ by far more.
_TOLERANCE = 0.02


def keras_weights(model) -> list[tuple[str, np.ndarray]]:
    """(layer name, values) of every float weight of every layer, nested models' layers included."""
    import keras

    found = []

    def visit(layer):
        if isinstance(layer, keras.Model):
            for inner in layer.layers:
                visit(inner)
            return
        for weight in layer.weights:
            values = np.asarray(keras.ops.convert_to_numpy(weight))
            if values.dtype.kind == "f" and values.size > 1:
                found.append((layer.name, values.astype(np.float64).reshape(-1)))

    for layer in model.layers:
        visit(layer)
    return found


def dequantized(weight) -> np.ndarray:
    """A .tflite weight's real values (flat), from its stored values and quantisation."""
    values = np.asarray(weight.values)
    q = weight.quantization
    if values.dtype.kind not in "iu" or q is None or len(q.scales) == 0:
        return values.astype(np.float64).reshape(-1)
    scales = np.asarray(q.scales, np.float64)
    zeros = np.asarray(q.zero_points, np.float64) if len(q.zero_points) else np.zeros_like(scales)
    if len(scales) > 1 and values.ndim > 0 and values.shape[q.quantized_dimension] == len(scales):
        shape = [1] * values.ndim
        shape[q.quantized_dimension] = len(scales)
        real = (values.astype(np.float64) - zeros.reshape(shape)) * scales.reshape(shape)
    else:
        real = (values.astype(np.float64) - zeros[0]) * scales[0]
    return real.reshape(-1)


def _distance(a_sorted: np.ndarray, b_sorted: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(b_sorted))), 1e-12)
    return float(np.max(np.abs(a_sorted - b_sorted))) / scale


def tensor_layers(tflite: bytes, model) -> dict[str, str]:
    """{weight tensor name: name of the Keras layer whose weight it holds}, for the tensors that match one."""
    from edgeclust.tflite.inspect import find_weights

    if model is None:
        return {}
    by_size: dict[int, list[tuple[str, np.ndarray]]] = {}
    for name, values in keras_weights(model):
        by_size.setdefault(values.size, []).append((name, np.sort(values)))
    found = {}
    for weight in find_weights(tflite):
        real = np.sort(dequantized(weight))
        scored = [(_distance(real, values), name) for name, values in by_size.get(real.size, [])]
        if scored:
            distance, name = min(scored)
            if distance <= _TOLERANCE:
                found[weight.name] = name
    return found
