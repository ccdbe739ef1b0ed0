"""What the firmware project needs from the TFLite stage: the model's interface and the boot self-test cases."""

from __future__ import annotations

import numpy as np

from edgeclust.errors import CodegenError


def codegen_interface(model_data: bytes, labels: list[str] | None = None):
    """The .tflite inputs and outputs (shape, dtype, quantization) as codegen's ModelInterface."""
    from edgeclust.codegen.project import ModelInterface, TensorSpec
    from edgeclust.tflite import parity

    found = parity.model_interface(model_data)

    def spec(t) -> TensorSpec:
        return TensorSpec(name=t.name, shape=tuple(t.shape), dtype=t.dtype, scale=t.scale, zero_point=t.zero_point)

    return ModelInterface(
        inputs=tuple(spec(t) for t in found.inputs),
        outputs=tuple(spec(t) for t in found.outputs),
        labels=labels,
    )


def self_test_cases(model_data: bytes, x: np.ndarray) -> list:
    """Inputs in the model's own dtype with the outputs the TFLM host interpreter gives for them.

    TFLM on the host runs the same reference kernels as the board, so an int8 firmware must reproduce these
    outputs bit for bit.
    """
    from edgeclust.codegen.project import SelfTestCase
    from edgeclust.tflite import parity

    interface = parity.model_interface(model_data)
    if len(interface.inputs) != 1 or len(interface.outputs) != 1:
        raise CodegenError(
            f"the firmware self-test supports models with one input and one output; this one has "
            f"{len(interface.inputs)} and {len(interface.outputs)}"
        )
    inputs = parity.quantize(np.asarray(x), interface.inputs[0])
    outputs = parity.run_tflm(model_data, inputs)
    return [SelfTestCase(input=inputs[i], expected_output=np.asarray(outputs[i])) for i in range(len(inputs))]
