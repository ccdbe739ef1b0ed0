"""The op resolver table: exactly the model's ops, DECODE for LUT models, unknown ops named."""

from __future__ import annotations

import re

import pytest

from edgeclust.backends.tflm import resolver
from edgeclust.errors import CodegenError


def test_resolver_calls_hold_exactly_the_models_ops(tiny_model):
    calls = resolver.resolver_calls(tiny_model.op_names, compressed=False)
    assert len(calls) == len(set(tiny_model.op_names))
    assert set(calls) == {resolver.OPS[op][0] for op in tiny_model.op_names}
    assert "AddConv2D()" in calls and "AddFullyConnected()" in calls and "AddDecode()" not in calls


def test_duplicates_collapse_and_the_order_is_stable():
    assert resolver.resolver_calls(["SOFTMAX", "CONV_2D", "SOFTMAX"], compressed=False) == [
        "AddConv2D()",
        "AddSoftmax()",
    ]


def test_a_compressed_model_adds_decode_once():
    assert resolver.resolver_calls(["CONV_2D"], compressed=True) == ["AddConv2D()", "AddDecode()"]
    assert resolver.resolver_calls(["CONV_2D", "TFLM_DECODE"], compressed=True) == ["AddConv2D()", "AddDecode()"]


def test_an_op_missing_from_the_table_is_an_error_naming_it():
    with pytest.raises(CodegenError) as info:
        resolver.resolver_calls(["CONV_2D", "MY_CUSTOM_OP", "ANOTHER_ONE"], compressed=False)
    message = str(info.value)
    assert "ANOTHER_ONE" in message and "MY_CUSTOM_OP" in message and "resolver.py" in message


def test_families_group_ops_that_share_a_kernel_file():
    families = resolver.op_families(["MAX_POOL_2D", "AVERAGE_POOL_2D", "CONV_2D"])
    assert families == {"conv": ["CONV_2D"], "pooling": ["AVERAGE_POOL_2D", "MAX_POOL_2D"]}


@pytest.mark.tflm_tree
def test_every_table_entry_is_a_method_of_tflms_resolver(tflm_root):
    header = (tflm_root / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
    methods = set(re.findall(r"TfLiteStatus (Add\w+)\(", header))
    for op, (call, family) in resolver.OPS.items():
        assert call[:-2] in methods, op
        assert (tflm_root / f"tensorflow/lite/micro/kernels/{family}.cc").is_file(), (op, family)
