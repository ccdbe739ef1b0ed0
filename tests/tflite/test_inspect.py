"""inspect_weights and verify on real converted models, against plain numpy counts; bounded memory."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgeclust.errors import ConfigError
from edgeclust.tflite import flatbuffer, inspect

LEVELS = 16


def stats_by_layer(data):
    return {s.name.split("/")[1].removesuffix("_1"): s for s in inspect.inspect_weights(data)}


def test_lists_each_weight_tensor_once_in_operator_order(plain):
    stats = inspect.inspect_weights(plain.int8)
    assert [s.name.split("/")[1] for s in stats] == ["conv1_1", "dwconv_1", "pwconv_1", "dense1_1", "dense2_1"]
    assert [s.consumer for s in stats] == [
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "CONV_2D",
        "FULLY_CONNECTED",
        "FULLY_CONNECTED",
    ]
    assert [s.channel_axis for s in stats] == [0, 3, 0, 0, 0]
    assert all(s.stored_as == "raw" and s.dtype == "INT8" for s in stats)


def test_counts_match_numpy_on_the_stored_tensors(plain):
    model = flatbuffer.read_model(plain.int8)
    for s in inspect.inspect_weights(model):
        values = model.tensors[s.tensor].data
        assert s.shape == values.shape and s.nbytes == values.nbytes
        assert s.unique_values == len(np.unique(values))
        axis = s.channel_axis
        per_channel = max(len(np.unique(np.take(values, c, axis=axis))) for c in range(values.shape[axis]))
        assert s.max_unique_per_channel == per_channel
        assert s.sparsity == pytest.approx(np.mean(values == 0))


def test_per_tensor_int8_keeps_the_16_levels(plain):
    for name, s in stats_by_layer(plain.int8_per_tensor).items():
        assert s.unique_values <= LEVELS, name
    result = inspect.verify(plain.int8_per_tensor, LEVELS)
    assert result.passed and result.checked == 5 and result.failures == ()
    assert result.summary() == "all 5 weight tensors hold at most 16 unique values per tensor"


def test_per_channel_int8_spreads_values_per_tensor_but_not_per_channel(plain):
    stats = stats_by_layer(plain.int8)
    assert any(s.unique_values > LEVELS for s in stats.values())
    assert all(s.max_unique_per_channel <= LEVELS for s in stats.values())
    failed = inspect.verify(plain.int8, LEVELS)
    assert not failed.passed and failed.failures
    assert {f.name for f in failed.failures} == {s.name for s in stats.values() if s.unique_values > LEVELS}
    assert inspect.verify(plain.int8, LEVELS, per_channel=True).passed


def test_folded_batchnorm_spreads_the_conv_before_it(with_bn):
    """The converter folds BN into conv1: its 16 values per tensor become many; per channel stay <= 16."""
    stats = stats_by_layer(with_bn.float32)
    conv1 = next(s for name, s in stats.items() if name.startswith("conv1"))
    assert conv1.unique_values > LEVELS
    assert conv1.max_unique_per_channel <= LEVELS
    assert stats["dense1"].unique_values <= LEVELS  # no BN after it
    result = inspect.verify(with_bn.float32, LEVELS)
    assert not result.passed and conv1.name in {f.name for f in result.failures}
    assert inspect.verify(with_bn.float32, LEVELS, per_channel=True).passed


def test_depthwise_kernel_channel_axis_is_last(with_bn):
    dw = next(s for s in inspect.inspect_weights(with_bn.int8) if s.consumer == "DEPTHWISE_CONV_2D")
    assert dw.shape == (1, 3, 3, 16) and dw.channel_axis == 3


def test_unclustered_model_fails_with_every_tensor_listed(unclustered_float):
    result = inspect.verify(unclustered_float, LEVELS)
    assert not result.passed and len(result.failures) == result.checked == 5
    assert "5 of 5 weight tensors hold more than 16 unique values per tensor" == result.summary()


def test_sparsity_counts_real_zeros_through_zero_points(make_fc_model):
    weights = np.full((4, 10), 3, dtype=np.int8)
    weights[0, :5] = -2  # channel 0 has zero point -2: five real zeros
    weights[1, :2] = 0  # channel 1 has zero point 0: two real zeros
    data = make_fc_model(weights, scales=[0.1] * 4, zero_points=[-2, 0, 5, 5], axis=0)
    (stats,) = inspect.inspect_weights(data)
    assert stats.sparsity == pytest.approx(7 / 40)
    assert stats.unique_values == 3 and stats.max_unique_per_channel == 2


def test_float_weights_count_without_quantization(make_fc_model):
    weights = np.tile(np.array([0.0, 0.5, -1.25], np.float32), (6, 4))
    (stats,) = inspect.inspect_weights(make_fc_model(weights))
    assert (stats.dtype, stats.unique_values, stats.max_unique_per_channel) == ("FLOAT32", 3, 3)
    assert stats.sparsity == pytest.approx(1 / 3)


def test_a_model_without_weights_does_not_pass(make_fc_model):
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    data = make_fc_model(np.ones((2, 3), np.int8))
    obj = fb.ModelT.InitFromObj(fb.Model.GetRootAs(bytearray(data), 0))
    obj.operatorCodes[0].builtinCode = obj.operatorCodes[0].deprecatedBuiltinCode = fb.BuiltinOperator.ADD
    builder = flatbuffers.Builder(1024)
    builder.Finish(obj.Pack(builder), file_identifier=b"TFL3")
    result = inspect.verify(bytes(builder.Output()), 4)
    assert (result.passed, result.checked) == (False, 0)
    assert "no weight tensors" in result.summary()


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "16"])
def test_max_unique_must_be_a_positive_integer(plain, bad):
    with pytest.raises(ConfigError, match="`max_unique` must be an integer >= 1"):
        inspect.verify(plain.int8, bad)


@settings(max_examples=60, deadline=None)
@given(
    values=hnp.arrays(
        dtype=st.sampled_from([np.int8, np.float32]),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6),
        elements={"allow_nan": False, "allow_infinity": False, "min_value": -100, "max_value": 100},
    ),
    axis_choice=st.integers(0, 3),
)
def test_unique_counts_match_a_naive_count(values, axis_choice):
    axis = axis_choice % values.ndim
    assert inspect.count_unique(values) == len(set(values.reshape(-1).tolist()))
    naive = max(len(set(np.take(values, c, axis=axis).reshape(-1).tolist())) for c in range(values.shape[axis]))
    assert inspect.max_unique_per_channel(values, axis) == naive


def test_memory_stays_proportional_to_the_largest_tensor(make_fc_model):
    """4M int8 weights in 1,024 channels of 16 values: no weights x clusters (or 8-byte-per-weight) temporaries."""
    rng = np.random.default_rng(0)
    weights = rng.integers(-8, 8, size=(1024, 4096), dtype=np.int8)
    data = make_fc_model(weights, scales=np.full(1024, 0.01), axis=0)
    tracemalloc.start()
    try:
        stats = inspect.inspect_weights(data)
        result = inspect.verify(data, 16, per_channel=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats[0].unique_values == 16 and result.passed
    assert peak < 3 * weights.nbytes, f"peak {peak:,} bytes for {weights.nbytes:,} bytes of weights"


def test_counts_across_chunk_and_block_boundaries():
    """Tensors larger than one counting chunk and one block of channels give the same counts as numpy."""
    rng = np.random.default_rng(3)
    values = rng.integers(0, 40, size=(300, 5000)).astype(np.float32) / 7  # 1.5M values, 2 blocks of rows
    values[:, 0] = np.arange(300)  # each row gets one value of its own, so rows differ in count
    values[299, :] = np.arange(5000)  # the last row, in the second block, holds the most
    assert inspect.count_unique(values) == np.unique(values).size
    assert inspect.max_unique_per_channel(values, 0) == 5000
    assert inspect.max_unique_per_channel(values, 1) == max(np.unique(values[:, c]).size for c in range(5000))
    quant = flatbuffer.Quantization(np.ones(300), np.full(300, 3), 0)
    ints = rng.integers(0, 6, size=(300, 5000)).astype(np.int8)
    assert inspect._sparsity(ints, quant) == pytest.approx(np.count_nonzero(ints == 3) / ints.size)


def test_nan_counts_once_and_signed_zeros_are_one_value():
    values = np.array([np.nan, 0.0, -0.0, np.nan, 1.5, np.inf, np.nan], np.float32)
    assert inspect.count_unique(values) == 4  # 0, 1.5, inf, NaN
    assert inspect.count_non_finite(values) == 4
