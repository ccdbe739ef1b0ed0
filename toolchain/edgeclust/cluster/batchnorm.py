"""fold_batch_norms: an equivalent model with each BatchNormalization folded into the layer before it.

Why: the TFLite converter folds BN itself after clustering, multiplying each output channel by its own
scale, so a kernel clustered to 16 values reaches the .tflite with ~110. Fold first, then cluster.
A BN is folded when it normalises the last axis and directly follows a Conv1D/2D/3D, ConvTranspose,
DepthwiseConv or Dense without activation whose output nothing else uses; any other BN stays as it is.
"""

from __future__ import annotations

import keras
import numpy as np

L = keras.layers
_FOLDABLE = (
    L.Conv1D,
    L.Conv2D,
    L.Conv3D,
    L.Conv1DTranspose,
    L.Conv2DTranspose,
    L.Conv3DTranspose,
    L.DepthwiseConv1D,
    L.DepthwiseConv2D,
    L.Dense,
)


def _last_axis_bn(layer) -> bool:
    if not isinstance(layer, L.BatchNormalization) or not layer.built:
        return False
    rank = len(layer.get_build_config()["input_shape"])
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    return [a % rank for a in axes] == [rank - 1]


def _foldable(layer) -> bool:
    return (
        isinstance(layer, _FOLDABLE)
        and layer.built
        and getattr(layer, "data_format", "channels_last") == "channels_last"
        and getattr(layer.activation, "__name__", "") == "linear"
    )


def _folded(layer, bn):
    """A copy of `layer` with `bn` (inference statistics) folded into its kernel and bias."""
    mean = np.asarray(bn.moving_mean.numpy(), np.float64)
    var = np.asarray(bn.moving_variance.numpy(), np.float64)
    gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.gamma is not None else np.ones_like(mean)
    beta = np.asarray(bn.beta.numpy(), np.float64) if bn.beta is not None else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.epsilon)
    kernel = np.asarray(layer.kernel.numpy(), np.float64)
    bias = np.asarray(layer.bias.numpy(), np.float64) if layer.use_bias else np.zeros_like(mean)
    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):
        kernel = kernel * scale.reshape(kernel.shape[-2:])
    elif isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        kernel = kernel * scale[:, None]
    else:
        kernel = kernel * scale
    bias = (bias - mean) * scale + beta
    config = {**layer.get_config(), "use_bias": True}
    clone = layer.__class__.from_config(config)
    clone.build_from_config(layer.get_build_config())
    clone.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return clone


def _copy(layer):
    from edgeclust.cluster.api import copy_layer

    return copy_layer(layer)


def _fold_sequential(model):
    layers, i = [], 0
    source = model.layers
    while i < len(source):
        layer = source[i]
        nxt = source[i + 1] if i + 1 < len(source) else None
        if _foldable(layer) and nxt is not None and _last_axis_bn(nxt):
            layers.append(_folded(layer, nxt))
            i += 2
            continue
        layers.append(fold_batch_norms(layer) if isinstance(layer, keras.Model) else _copy(layer))
        i += 1
    if getattr(model, "_functional", None) is not None:
        spec = model.inputs[0]
        layers = [keras.Input(batch_shape=spec.shape, dtype=spec.dtype, name=spec.name)] + layers
    return keras.Sequential(layers, name=model.name)


def _pairs(model) -> dict[str, str]:
    """{producer layer name: BN layer name} for the BNs of a Functional model that can be folded."""
    nodes = [node for depth in model._nodes_by_depth.values() for node in depth]
    uses: dict[int, int] = {}
    for node in nodes:
        for tensor in node.input_tensors:
            uses[id(tensor)] = uses.get(id(tensor), 0) + 1
    outputs = {id(t) for t in model.outputs}
    pairs = {}
    for node in nodes:
        bn = node.operation
        if not _last_axis_bn(bn) or len(bn._inbound_nodes) != 1 or len(node.input_tensors) != 1:
            continue
        tensor = node.input_tensors[0]
        producer = tensor._keras_history.operation
        if (
            _foldable(producer)
            and len(producer._inbound_nodes) == 1
            and uses.get(id(tensor)) == 1
            and id(tensor) not in outputs
        ):
            pairs[producer.name] = bn.name
    return pairs


def fold_batch_norms(model):
    """An equivalent Sequential/Functional model with each foldable BatchNormalization folded away.

    The original model is not changed. Models without a foldable BN come back as a copy.
    """
    from edgeclust.cluster.api import _reject_subclassed

    _reject_subclassed(model)
    if isinstance(model, keras.Sequential):
        return _fold_sequential(model)
    pairs = _pairs(model)
    by_name = {layer.name: layer for layer in model.layers}
    folded_bns = set(pairs.values())

    def clone(layer):
        if layer.name in pairs:
            return _folded(layer, by_name[pairs[layer.name]])
        if isinstance(layer, keras.Model):
            return fold_batch_norms(layer)
        return _copy(layer)

    def call(layer, *args, **kwargs):
        if layer.name in folded_bns:
            return args[0]
        return layer(*args, **kwargs)

    from edgeclust.cluster.api import clone_graph_model

    return clone_graph_model(model, clone, call)
