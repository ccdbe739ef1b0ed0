"""Which weights of which layers are clustered, and how a layer is made to compute with a clustered weight.

A clustered weight is named by a WeightSpec: the path from the wrapped layer to the layer that owns it
(`("forward_layer", "cell")` for a Bidirectional LSTM), the attribute that owner's `call` reads
(`"_kernel"` for Dense, whose `kernel` property reads `_kernel`), and the axes that make its output
channels. During the wrapper's call that attribute holds the clustered tensor and is restored afterwards
(`swapped`); the per-layer gradient and round-trip tests pin this down for every layer type below.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import keras

from edgeclust.errors import UnsupportedLayerError


class ClusterableLayer:
    """Mix this into your own layer to have it clustered: say which weights, by the attribute `call` reads.

    Example::

        class Scale(keras.layers.Layer, ClusterableLayer):
            def build(self, input_shape):
                self.kernel = self.add_weight(shape=(input_shape[-1], 8))
            def call(self, x):
                return x @ self.kernel
            def get_clusterable_weights(self):
                return [("kernel", self.kernel)]
    """

    def get_clusterable_weights(self):
        """[(attribute name, variable)]: the layer's call must read each weight as `self.<attribute name>`."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_clusterable_weights()")

    def get_clusterable_channel_axes(self, name: str) -> tuple[int, ...]:
        """The axes of weight `name` that make its output channels (for cluster_per_channel); last by default."""
        return (-1,)


@dataclass(frozen=True)
class WeightSpec:
    """One clustered weight: owner path from the wrapped layer, attribute read in call, name, channel axes."""

    path: tuple
    attr: str
    name: str
    channel_axes: tuple[int, ...]

    def owner(self, layer):
        """The layer (or cell) that owns the weight."""
        for step in self.path:
            layer = layer[step] if isinstance(step, int) else getattr(layer, step)
        return layer

    def variable(self, layer):
        """The weight's variable."""
        return getattr(self.owner(layer), self.attr)


L = keras.layers
NEVER_CLUSTERED = (
    L.BatchNormalization,
    L.LayerNormalization,
    L.GroupNormalization,
    L.UnitNormalization,
    L.PReLU,
)
_CELLS = (L.SimpleRNNCell, L.LSTMCell, L.GRUCell)
_CONV = (L.Conv1D, L.Conv2D, L.Conv3D)
_CONV_TRANSPOSE = (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)
_DEPTHWISE = (L.DepthwiseConv1D, L.DepthwiseConv2D)
_SEPARABLE = (L.SeparableConv1D, L.SeparableConv2D)
_MHA_KERNELS = (
    ("_query_dense", "query_kernel", (-2, -1)),
    ("_key_dense", "key_kernel", (-2, -1)),
    ("_value_dense", "value_kernel", (-2, -1)),
    ("_output_dense", "output_kernel", (-1,)),
)


def _prefixed(prefix: tuple, name_prefix: str, specs: list[WeightSpec]) -> list[WeightSpec]:
    return [WeightSpec(prefix + s.path, s.attr, f"{name_prefix}{s.name}", s.channel_axes) for s in specs]


def _user_specs(layer) -> list[WeightSpec]:
    specs = []
    for name, _variable in layer.get_clusterable_weights():
        if not hasattr(layer, name):
            raise UnsupportedLayerError(
                f"{type(layer).__name__}.get_clusterable_weights() returned {name!r}, which is not an attribute "
                f"of layer {layer.name!r}; return (attribute name, variable) pairs whose attribute call() reads"
            )
        specs.append(WeightSpec((), name, name, tuple(layer.get_clusterable_channel_axes(name))))
    return specs


def _cell_specs(cell, owner_name: str) -> list[WeightSpec]:
    if isinstance(cell, L.StackedRNNCells):
        out = []
        for i, inner in enumerate(cell.cells):
            out += _prefixed(("cells", i), f"cell_{i}/", _cell_specs(inner, owner_name))
        return out
    if isinstance(cell, _CELLS):
        return [
            WeightSpec((), "kernel", "kernel", (-1,)),
            WeightSpec((), "recurrent_kernel", "recurrent_kernel", (-1,)),
        ]
    if isinstance(cell, ClusterableLayer):
        return _user_specs(cell)
    raise UnknownWeightsError(
        f"Layer {owner_name!r} uses the RNN cell {type(cell).__name__}, which edgeclust cannot cluster. "
        "Use SimpleRNNCell/LSTMCell/GRUCell, or make the cell implement "
        "edgeclust.cluster.ClusterableLayer (get_clusterable_weights)"
    )


def _guard_variant(layer) -> None:
    if getattr(layer, "quantization_mode", None) is not None or getattr(layer, "lora_enabled", False):
        raise UnsupportedLayerError(
            f"Layer {layer.name!r} ({type(layer).__name__}) is quantized or has LoRA enabled; cluster the float "
            "model before quantizing it, and merge LoRA weights first"
        )


def weight_specs(layer) -> list[WeightSpec]:
    """The weights of `layer` that are clustered ([] for layers whose weights are never clustered).

    Raises UnsupportedLayerError for a layer with weights that edgeclust does not know and that does not
    implement ClusterableLayer.
    """
    _guard_variant(layer)
    if isinstance(layer, ClusterableLayer):
        return _user_specs(layer)
    if isinstance(layer, L.MultiHeadAttention):
        return [WeightSpec((attr,), "_kernel", name, axes) for attr, name, axes in _MHA_KERNELS]
    if isinstance(layer, L.Bidirectional):
        return _prefixed(("forward_layer",), "forward/", weight_specs(layer.forward_layer)) + _prefixed(
            ("backward_layer",), "backward/", weight_specs(layer.backward_layer)
        )
    if isinstance(layer, L.RNN):
        return _prefixed(("cell",), "", _cell_specs(layer.cell, layer.name))
    if isinstance(layer, L.TimeDistributed):
        return _prefixed(("layer",), "", weight_specs(layer.layer))
    if isinstance(layer, _SEPARABLE):
        return [
            WeightSpec((), "depthwise_kernel", "depthwise_kernel", (-2, -1)),
            WeightSpec((), "pointwise_kernel", "pointwise_kernel", (-1,)),
        ]
    if isinstance(layer, _DEPTHWISE):
        return [WeightSpec((), "kernel", "depthwise_kernel", (-2, -1))]
    if isinstance(layer, _CONV_TRANSPOSE):
        return [WeightSpec((), "kernel", "kernel", (-2,))]
    if isinstance(layer, (*_CONV, L.Dense, L.EinsumDense)):
        return [WeightSpec((), "_kernel", "kernel", (-1,))]
    if isinstance(layer, L.Embedding):
        return [WeightSpec((), "_embeddings", "embeddings", (-1,))]
    if isinstance(layer, NEVER_CLUSTERED) or not layer.weights or not layer.trainable_weights:
        return []  # normalisation, or only statistics (Normalization's adapted mean and variance): never clustered
    raise UnknownWeightsError(
        f"Layer {layer.name!r} of class {type(layer).__name__} has weights that edgeclust does not know how to "
        "cluster. Make the class implement edgeclust.cluster.ClusterableLayer (get_clusterable_weights), "
        "or leave this layer out of the list of layers to cluster"
    )


class UnknownWeightsError(UnsupportedLayerError):
    """A layer with trainable weights of a class edgeclust does not know (and that does not say which of its
    weights are kernels). Clustering a whole model leaves such a layer as it is; wrapping it alone refuses it."""


def skip_reason(layer) -> str:
    """Why a layer with weights is not clustered (for the report)."""
    if isinstance(layer, NEVER_CLUSTERED):
        return f"{type(layer).__name__} weights are never clustered"
    if layer.weights and not layer.trainable_weights:
        names = ", ".join(w.name for w in layer.weights)
        return f"holds statistics, not trainable weights ({names}): left as they are"
    try:
        weight_specs(layer)
    except UnknownWeightsError:
        return (
            f"{type(layer).__name__} is a class edgeclust does not know: its weights are left unclustered "
            "(implement edgeclust.cluster.ClusterableLayer to cluster them)"
        )
    return "no clusterable weights"


def model_weight_specs(layer) -> list[WeightSpec]:
    """weight_specs(layer) for a layer met while clustering a whole model: [] for a layer of an unknown class
    (left unclustered, and reported), where weight_specs refuses it."""
    try:
        return weight_specs(layer)
    except UnknownWeightsError:
        return []


@contextlib.contextmanager
def swapped(layer, specs: list[WeightSpec], tensors: list):
    """Within the block, each spec's attribute of its owner holds the given tensor instead of its variable."""
    owners = [spec.owner(layer) for spec in specs]
    saved = [owner.__dict__[spec.attr] for owner, spec in zip(owners, specs)]
    try:
        for owner, spec, tensor in zip(owners, specs, tensors):
            object.__setattr__(owner, spec.attr, tensor)  # bypasses Keras' tracking on purpose
        yield
    finally:
        for owner, spec, value in zip(owners, specs, saved):
            object.__setattr__(owner, spec.attr, value)
