"""What TFLM's CMSIS-NN kernels ask of the tensor arena beyond the reference kernels, which the host interpreter
measured: each op's scratch (RequestScratchBufferInArena, alive for that op) and the kernel sums the fully
connected layers keep (AllocatePersistentBuffer, with KERNELS_OPTIMIZED_FOR_SPEED). Sizes follow CMSIS-NN's
*_get_buffer_size functions as GCC compiles them (ARM_MATH_MVEI on Helium cores, ARM_MATH_DSP on cores with the
DSP extension, neither on the others) and TFLM's kernels/cmsis_nn/*.cc Prepare.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeclust.align import align
from edgeclust.tflite.flatbuffer import read_model

# -mcpu values whose GCC build defines ARM_MATH_MVEI / ARM_MATH_DSP (CMSIS-NN's arm_nn_math_types.h)
MVE_CPUS = frozenset({"cortex-m55", "cortex-m85"})
DSP_CPUS = frozenset({"cortex-m4", "cortex-m7", "cortex-m33", "cortex-m35p"})
CH_IN_BLOCK_MVE = 124  # arm_nnsupportfunctions.h


@dataclass(frozen=True)
class CmsisNnArena:
    """The bytes CMSIS-NN adds to a model's arena on one core: the largest op's scratch, the kernel sums."""

    arch: str  # "mve", "dsp" or "plain"
    scratch: int
    persistent: int

    @property
    def extra(self) -> int:
        return self.scratch + self.persistent


def arch_of(cpu: str) -> str:
    """Which CMSIS-NN code a core gets: Helium ("mve"), the DSP extension ("dsp") or plain C."""
    cpu = cpu.split("+")[0]
    return "mve" if cpu in MVE_CPUS else "dsp" if cpu in DSP_CPUS else "plain"


def cmsis_nn_arena(model_data: bytes, cpu: str) -> CmsisNnArena:
    """CMSIS-NN's extra arena bytes for the int8 ops of `model_data` compiled for `cpu` (16-byte aligned, as
    TFLM's planner places each buffer)."""
    arch = arch_of(cpu)
    model = read_model(model_data)
    sg = model.subgraphs[0]
    shape = {t.index: tuple(int(d) for d in t.shape) for t in sg.tensors}
    dtype = {t.index: t.dtype for t in sg.tensors}
    scratch = persistent = 0
    for op in sg.operators:
        if not op.inputs or dtype.get(op.inputs[0]) != "INT8":
            continue
        need, keep = _op_bytes(arch, op.name, op.options, [shape.get(i, ()) for i in op.inputs], shape[op.outputs[0]])
        scratch = max(scratch, need)
        persistent += keep
    return CmsisNnArena(arch, scratch, persistent)


def _op_bytes(arch: str, name: str, options: dict, ins: list[tuple[int, ...]], out: tuple[int, ...]):
    """(scratch, persistent) bytes one op asks for."""
    if name == "CONV_2D" and len(ins[0]) == 4 and len(ins[1]) == 4:
        (_, in_h, in_w, in_c), (_, k_h, k_w, _), (_, _, out_w, _) = ins[0], ins[1], out
        pads = _pads(options, (in_h, in_w), (out[1], out_w), (k_h, k_w))
        return align(_conv_buffer(arch, options, in_h, in_w, in_c, k_h, k_w, out_w, pads)), 0
    if name == "DEPTHWISE_CONV_2D" and len(ins[0]) == 4 and len(ins[1]) == 4:
        (_, in_h, in_w, in_c), (_, k_h, k_w, _), out_c = ins[0], ins[1], out[-1]
        pads = _pads(options, (in_h, in_w), (out[1], out[2]), (k_h, k_w))
        dilated = int(options.get("dilation_h_factor", 1)) != 1 or int(options.get("dilation_w_factor", 1)) != 1
        size = 0
        if arch == "mve" and in_c == 1 and out_c > 1:  # converted to a conv: its buffer and the filter reordered
            size = _conv_buffer(arch, options, in_h, in_w, 1, k_h, k_w, out[2], pads) + out_c * k_h * k_w
        elif in_c == out_c and not dilated:
            if arch == "mve":
                size = 4 * CH_IN_BLOCK_MVE * k_w * k_h
            elif arch == "dsp" and not ((k_h, k_w) == (3, 3) and max(pads) <= 1):
                size = in_c * k_w * k_h * 2
        return align(size), 0
    if name == "FULLY_CONNECTED" and len(ins[1]) >= 2:
        accum, depth = ins[1][-1], out[-1]
        if len(out) > 2 and accum % 4 == 0:  # the 1x1-conv path: per-tensor multipliers faked per channel
            return align(depth * 8), 0
        return 0, align(depth * 4) if arch == "mve" else 0  # kernel sums, computed once in Prepare
    if name == "AVERAGE_POOL_2D" and arch == "dsp" and out:
        return align(out[-1] * 4), 0
    return 0, 0


def _conv_buffer(arch, options, in_h, in_w, in_c, k_h, k_w, out_w, pads) -> int:
    """arm_convolve_wrapper_s8_get_buffer_size for GCC (1x1 fast: no buffer; arm_convolve_1x1_s8_fast's DSP
    buffer exists under Arm Compiler 6 only)."""
    stride_w = int(options.get("stride_w", 1))
    dil_h, dil_w = int(options.get("dilation_h_factor", 1)), int(options.get("dilation_w_factor", 1))
    cols = k_h * k_w * in_c
    if pads == (0, 0) and (k_h, k_w) == (1, 1) and (dil_h, dil_w) == (1, 1):
        return 0
    one_by_n = in_h == 1 and dil_w == 1 and k_h == 1 and (stride_w * in_c) % 4 == 0
    if arch != "mve":
        return 2 * (-(-cols // 4) * 4) * 2
    if one_by_n:
        total_pad = (out_w - 1) * stride_w + k_w - in_w
        asym = total_pad % 2
        pad_x = pads[1]
        right = max(1, (pad_x + asym + stride_w - 1) // stride_w) if pad_x + asym else 0
        left = max(1, (pad_x + stride_w - 1) // stride_w) if pad_x else 0
        if right + max(out_w - (right + left), 0) + left == out_w:
            pad_left = pad_x * in_c
            pad_right = right * in_c if asym else pad_left
            return max(k_w * in_c + pad_left, k_w * in_c - in_c + pad_right)
    return 4 * (-(-cols // 16)) * 16


def _pads(options, in_hw, out_hw, k_hw) -> tuple[int, int]:
    """TFLM's ComputePaddingHeightWidth: (pad_h, pad_w)."""
    if options.get("padding", "VALID") != "SAME":
        return 0, 0
    strides = int(options.get("stride_h", 1)), int(options.get("stride_w", 1))
    dils = int(options.get("dilation_h_factor", 1)), int(options.get("dilation_w_factor", 1))
    return tuple(
        max(0, (o - 1) * s + (k - 1) * d + 1 - i) // 2 for i, o, k, s, d in zip(in_hw, out_hw, k_hw, strides, dils)
    )
