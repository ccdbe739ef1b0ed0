"""Tiny models of every clusterable layer type, and helpers that count unique values independently."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest


@dataclass(frozen=True)
class Case:
    """One layer type: a model builder, the layer's name, and its clustered kernels with their channel axes."""

    id: str
    build: Callable  # () -> keras.Model (Functional), inputs
    kernels: Callable  # layer -> [(array, channel_axes)]


def _functional(layer_fn, input_shape, dtype="float32", two_inputs=False):
    import keras

    def build():
        keras.utils.set_random_seed(1)
        inputs = keras.Input(input_shape, dtype=dtype)
        layer = layer_fn()
        outputs = layer(inputs, inputs) if two_inputs else layer(inputs)
        model = keras.Model(inputs, outputs)
        rng = np.random.default_rng(0)
        if dtype == "int32":
            x = rng.integers(0, 20, (16, *input_shape)).astype("int32")
        else:
            x = rng.normal(size=(16, *input_shape)).astype("float32")
        return model, x

    return build


def _cases():
    from keras import layers as L

    cell = lambda layer: layer.cell
    return [
        Case("Dense", _functional(lambda: L.Dense(16, name="target"), (8,)), lambda t: [(t.kernel, (-1,))]),
        Case("Conv1D", _functional(lambda: L.Conv1D(8, 3, name="target"), (10, 3)), lambda t: [(t.kernel, (-1,))]),
        Case("Conv2D", _functional(lambda: L.Conv2D(8, 3, name="target"), (6, 6, 3)), lambda t: [(t.kernel, (-1,))]),
        Case("Conv3D", _functional(lambda: L.Conv3D(4, 2, name="target"), (4, 4, 4, 2)), lambda t: [(t.kernel, (-1,))]),
        Case(
            "Conv1DTranspose",
            _functional(lambda: L.Conv1DTranspose(4, 3, name="target"), (6, 3)),
            lambda t: [(t.kernel, (-2,))],
        ),
        Case(
            "Conv2DTranspose",
            _functional(lambda: L.Conv2DTranspose(4, 3, name="target"), (4, 4, 3)),
            lambda t: [(t.kernel, (-2,))],
        ),
        Case(
            "DepthwiseConv2D",
            _functional(lambda: L.DepthwiseConv2D(3, depth_multiplier=2, name="target"), (6, 6, 4)),
            lambda t: [(t.kernel, (-2, -1))],
        ),
        Case(
            "SeparableConv2D",
            _functional(lambda: L.SeparableConv2D(8, 3, name="target"), (6, 6, 6)),
            lambda t: [(t.depthwise_kernel, (-2, -1)), (t.pointwise_kernel, (-1,))],
        ),
        Case(
            "Embedding",
            _functional(lambda: L.Embedding(20, 8, name="target"), (5,), dtype="int32"),
            lambda t: [(t.embeddings, (-1,))],
        ),
        Case(
            "SimpleRNN",
            _functional(lambda: L.SimpleRNN(6, name="target"), (5, 4)),
            lambda t: [(cell(t).kernel, (-1,)), (cell(t).recurrent_kernel, (-1,))],
        ),
        Case(
            "LSTM",
            _functional(lambda: L.LSTM(6, name="target"), (5, 4)),
            lambda t: [(cell(t).kernel, (-1,)), (cell(t).recurrent_kernel, (-1,))],
        ),
        Case(
            "GRU",
            _functional(lambda: L.GRU(6, name="target"), (5, 4)),
            lambda t: [(cell(t).kernel, (-1,)), (cell(t).recurrent_kernel, (-1,))],
        ),
        Case(
            "Bidirectional",
            _functional(lambda: L.Bidirectional(L.LSTM(4), name="target"), (5, 4)),
            lambda t: [
                (x, (-1,))
                for side in (t.forward_layer, t.backward_layer)
                for x in (side.cell.kernel, side.cell.recurrent_kernel)
            ],
        ),
        Case(
            "StackedCells",
            _functional(lambda: L.RNN(L.StackedRNNCells([L.LSTMCell(4), L.GRUCell(5)]), name="target"), (5, 4)),
            lambda t: [(x, (-1,)) for c in t.cell.cells for x in (c.kernel, c.recurrent_kernel)],
        ),
        Case(
            "MultiHeadAttention",
            _functional(lambda: L.MultiHeadAttention(2, 4, name="target"), (5, 8), two_inputs=True),
            lambda t: [
                (t._query_dense.kernel, (-2, -1)),
                (t._key_dense.kernel, (-2, -1)),
                (t._value_dense.kernel, (-2, -1)),
                (t._output_dense.kernel, (-1,)),
            ],
        ),
    ]


CASES = _cases()


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def case(request) -> Case:
    return request.param


def unique_counts(array, channel_axes=None) -> list[int]:
    """Unique values of the whole tensor ([n]) or of each channel ([n per channel])."""
    a = np.asarray(array)
    if channel_axes is None:
        return [len(np.unique(a))]
    axes = sorted(ax % a.ndim for ax in channel_axes)
    rest = [ax for ax in range(a.ndim) if ax not in axes]
    per_channel = np.transpose(a, rest + axes).reshape(-1, int(np.prod([a.shape[ax] for ax in axes])))
    return [len(np.unique(per_channel[:, j])) for j in range(per_channel.shape[1])]


def regression_fit(model, x, steps: int = 4, lr: float = 1e-2, **compile_kwargs):
    """A few Adam steps of MSE towards random targets of the model's output shape."""
    import keras

    y = np.random.default_rng(1).normal(size=keras.ops.shape(model(x))).astype("float32")
    model.compile(keras.optimizers.Adam(lr), "mse", **compile_kwargs)
    return model.fit(x, y, batch_size=max(1, len(x) // steps), epochs=1, verbose=0, shuffle=False)
