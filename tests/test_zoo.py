"""The zoo's builders give fixed-shape models with data in the DATA.npz convention, and what the int8 converter
makes of the sequence models (scripts/zoo_matrix.py builds the whole zoo natively and under QEMU)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from edgeclust import zoo


def _ops(model) -> Counter:
    from edgeclust.tflite.convert import to_tflite
    from edgeclust.tflite.flatbuffer import read_model

    tflite = to_tflite(model, quantize="int8", representative_data=zoo.dataset(model, train=16, test=4).x_train)
    return Counter(op.name for sg in read_model(tflite).subgraphs for op in sg.operators)


@pytest.mark.parametrize("name", ["mlp", "tanh_head", "unet"])
def test_builders_give_fixed_shapes_and_matching_data(name):
    model = zoo.build(name)
    assert None not in model.inputs[0].shape[1:]
    data = zoo.dataset(model, train=8, test=4)
    assert data.x_train.shape == (8, *model.inputs[0].shape[1:]) and len(data.y_test) == 4
    if name == "mlp":
        assert data.y_train.dtype == np.int64 and data.num_classes == 10
    else:
        assert data.y_train.shape[1:] == tuple(model.outputs[0].shape[1:])


def test_unknown_name_lists_the_zoo():
    with pytest.raises(KeyError, match="mobilenet_v1"):
        zoo.build("resnet152")


def test_conv1d_converts_to_reshape_conv_2d_and_a_3d_mean():
    """Conv1D: RESHAPE to (1, 1, T, C) + CONV_2D; MaxPooling1D: MAX_POOL_2D; GlobalAveragePooling1D: RESHAPE back
    to 3-D + MEAN over the time axis."""
    assert _ops(zoo.build("har_conv1d")) == Counter(
        {"RESHAPE": 2, "CONV_2D": 2, "MAX_POOL_2D": 1, "MEAN": 1, "FULLY_CONNECTED": 1, "SOFTMAX": 1}
    )


def test_an_lstm_as_users_write_it_converts_unrolled():
    ops = _ops(zoo.build("lstm"))
    assert "WHILE" not in ops
    assert ops["UNPACK"] == 1 and ops["SPLIT"] == zoo.SEQ_STEPS and ops["FULLY_CONNECTED"] == 2 * zoo.SEQ_STEPS
    assert {"LOGISTIC", "TANH", "MUL", "ADD"} <= set(ops)
