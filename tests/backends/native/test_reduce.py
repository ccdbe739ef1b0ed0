"""REDUCE_MAX on the native backend (reduce.py, ec_reduce.c), bit-exact against tflite_micro.

Keras GlobalMaxPooling2D and GlobalMaxPooling1D convert to REDUCE_MAX; keras.ops.max over other axes (the
channels, several axes, keepdims) checks the walk over kept and reduced dims.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgeclust.backends.native import NativeBackend
from edgeclust.backends.native import reduce as rd
from edgeclust.backends.native.emit_c import model_source

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _ops(tflite: bytes) -> list[str]:
    from edgeclust.backends.native.from_tflite import graph_from_tflite

    return [op.name for op in graph_from_tflite(tflite).ops]


@pytest.mark.parametrize(
    ("shape", "axes"),
    [
        ((1, 7, 7, 32), [1, 2]),
        ((1, 5, 3, 4), [3]),
        ((1, 5, 3, 4), [1, 3]),
        ((1, 5, 3, 4), [-1, 1, 1]),
        ((1, 6, 9), [1]),
        ((1, 1, 1, 8), [1, 2]),
        ((2, 3, 4), [0, 1, 2]),
        ((1, 4, 1, 3, 2), [2, 4]),
    ],
)
def test_walk_visits_each_kept_index_over_its_reduced_dims(shape, axes):
    """The walk's counts and strides, read as the kernel reads them, give numpy's max for every axis set."""
    x = np.random.default_rng(0).integers(-128, 128, size=shape).astype(np.int8)
    resolved = rd.resolve_axes(np.array(axes), len(shape))
    kept_rank, count, stride = rd.walk(shape, resolved)
    kept = [np.arange(c) * s for c, s in zip(count[:kept_rank], stride[:kept_rank])]
    red = [np.arange(c) * s for c, s in zip(count[kept_rank:], stride[kept_rank:])]
    kept_off = sum(np.ix_(*kept)) if kept else np.zeros(1, np.int64)
    red_off = sum(np.ix_(*red)) if red else np.zeros(1, np.int64)
    flat = x.reshape(-1)
    ours = flat[np.add.outer(np.ravel(kept_off), np.ravel(red_off))].max(axis=1)
    assert np.array_equal(ours, x.max(axis=tuple(resolved)).reshape(-1))


def test_axes_out_of_range_are_refused():
    assert rd.resolve_axes(np.array([4]), 4) is None
    assert rd.resolve_axes(np.array([-5]), 4) is None
    assert rd.resolve_axes(np.array([-1, 3, 1]), 4) == [1, 3]


def _pool_model(keras, kind: str):
    layers = keras.layers
    if kind == "2d":
        inp = keras.Input((9, 7, 3), batch_size=1)
        x = layers.Conv2D(12, 3, padding="same", activation="relu")(inp)
        x = layers.GlobalMaxPooling2D()(x)
        data_shape = (9, 7, 3)
    elif kind == "2d_keepdims":
        inp = keras.Input((6, 6, 2), batch_size=1)
        x = layers.Conv2D(8, 3, activation="relu")(inp)
        x = layers.GlobalMaxPooling2D(keepdims=True)(x)
        x = layers.Conv2D(4, 1)(x)
        data_shape = (6, 6, 2)
    elif kind == "1d":
        inp = keras.Input((20, 5), batch_size=1)
        x = layers.Conv1D(10, 3, activation="relu")(inp)
        x = layers.GlobalMaxPooling1D()(x)
        data_shape = (20, 5)
    else:  # over the channels and over H with C: keras.ops.max as users write it in a Lambda
        inp = keras.Input((5, 4, 6), batch_size=1)
        x = layers.Conv2D(6, 1)(inp)
        a = layers.Lambda(lambda t: keras.ops.max(t, axis=-1))(x)
        b = layers.Lambda(lambda t: keras.ops.max(t, axis=(1, 3)))(x)
        x = layers.Concatenate()([layers.Flatten()(a), b])
        data_shape = (5, 4, 6)
    out = layers.Dense(6)(layers.Flatten()(x))
    return keras.Model(inp, out), data_shape


@pytest.mark.parametrize("kind", ["2d", "2d_keepdims", "1d", "channels"])
def test_reduce_max_models_match_tflm_bit_for_bit(kind, keras, nx):
    keras.utils.set_random_seed(0)
    model, shape = _pool_model(keras, kind)
    data = np.random.default_rng(0).normal(size=(64, *shape)).astype(np.float32)
    tflite = nx.convert(model, data)
    ops = _ops(tflite)
    assert "REDUCE_MAX" in ops, ops
    lowered = nx.check_bit_exact(tflite, n=16)
    steps = [s for s in lowered.details.program.steps if isinstance(s, rd.ReduceMaxStep)]
    assert len(steps) == ops.count("REDUCE_MAX")
    assert "ec_reduce_max(&reduce_max_" in model_source(lowered.details.program)


@pytest.mark.parametrize("kind", ["1d", "channels"])
def test_reduce_max_runs_clean_under_asan_and_ubsan(kind, keras, nx):
    """The strided walks (over the channels, over H and C, over time) in the sanitized host build."""
    keras.utils.set_random_seed(1)
    model, shape = _pool_model(keras, kind)
    tflite = nx.convert(model, np.random.default_rng(1).normal(size=(32, *shape)).astype(np.float32))
    nx.check_bit_exact(tflite, n=4, backend=NativeBackend(sanitize=True))


def test_global_max_pooling_is_one_contiguous_walk():
    """[1, H, W, C] over H, W: C outputs, one kept dim of stride 1, H*W merged into one reduced dim."""
    assert rd.walk((1, 7, 7, 32), [1, 2]) == (1, [32, 49], [1, 32])


def test_different_input_and_output_quantization_is_refused(keras, nx):
    """TFLM's EvalMaxHelper refuses it (TF_LITE_ENSURE_EQ on scale and zero point); so does the lowering."""
    import dataclasses

    from edgeclust.backends.native import lowering
    from edgeclust.backends.native.from_tflite import graph_from_tflite

    keras.utils.set_random_seed(0)
    model, shape = _pool_model(keras, "2d")
    tflite = nx.convert(model, np.random.default_rng(0).normal(size=(32, *shape)).astype(np.float32))
    graph = graph_from_tflite(tflite)
    op = next(op for op in graph.ops if op.name == "REDUCE_MAX")
    out = graph.tensors[op.outputs[0]]
    tensors = list(graph.tensors)
    tensors[out.index] = dataclasses.replace(out, quant=dataclasses.replace(out.quant, scales=(out.quant.scale * 2,)))
    with pytest.raises(lowering.Unsupported, match="REDUCE_MAX .* differ in scale"):
        lowering.lower_graph(dataclasses.replace(graph, tensors=tuple(tensors)))


def test_strided_dilated_cnn_from_the_zoo_matches_tflm(nx):
    from edgeclust import zoo

    model = zoo.build("strided_dilated_cnn")
    tflite = nx.convert(model, zoo.dataset(model, train=32, test=4).x_train)
    assert "REDUCE_MAX" in _ops(tflite)
    nx.check_bit_exact(tflite, n=8, backend=NativeBackend())
