"""TFLite op -> MicroMutableOpResolver method: an explicit table; an op missing from it is an error naming it.

The table was read from TFLM's tensorflow/lite/micro/micro_mutable_op_resolver.h (every AddXxx() that
registers a builtin, plus the custom ops TFLM_DECODE and TFLite_Detection_PostProcess); the second column is
the kernel source file (tensorflow/lite/micro/kernels/<family>.cc) whose code the op pulls into the firmware,
which is how backends/tflm/runtime_sizes.toml prices it.
"""

from __future__ import annotations

from edgeclust.errors import CodegenError
from edgeclust.tflite.inspect import DECODE_OP

# op name as the .tflite names it -> (resolver call, kernel family)
OPS: dict[str, tuple[str, str]] = {
    "ABS": ("AddAbs()", "elementwise"),
    "ADD": ("AddAdd()", "add"),
    "ADD_N": ("AddAddN()", "add_n"),
    "ARG_MAX": ("AddArgMax()", "arg_min_max"),
    "ARG_MIN": ("AddArgMin()", "arg_min_max"),
    "ASSIGN_VARIABLE": ("AddAssignVariable()", "assign_variable"),
    "AVERAGE_POOL_2D": ("AddAveragePool2D()", "pooling"),
    "BATCH_MATMUL": ("AddBatchMatMul()", "batch_matmul"),
    "BATCH_TO_SPACE_ND": ("AddBatchToSpaceNd()", "batch_to_space_nd"),
    "BROADCAST_ARGS": ("AddBroadcastArgs()", "broadcast_args"),
    "BROADCAST_TO": ("AddBroadcastTo()", "broadcast_to"),
    "CALL_ONCE": ("AddCallOnce()", "call_once"),
    "CAST": ("AddCast()", "cast"),
    "CEIL": ("AddCeil()", "ceil"),
    "CIRCULAR_BUFFER": ("AddCircularBuffer()", "circular_buffer"),
    "CONCATENATION": ("AddConcatenation()", "concatenation"),
    "CONV_2D": ("AddConv2D()", "conv"),
    "COS": ("AddCos()", "elementwise"),
    "CUMSUM": ("AddCumSum()", "cumsum"),
    "DEPTHWISE_CONV_2D": ("AddDepthwiseConv2D()", "depthwise_conv"),
    "DEPTH_TO_SPACE": ("AddDepthToSpace()", "depth_to_space"),
    "DEQUANTIZE": ("AddDequantize()", "dequantize"),
    "DIV": ("AddDiv()", "div"),
    "DYNAMIC_UPDATE_SLICE": ("AddDynamicUpdateSlice()", "dynamic_update_slice"),
    "ELU": ("AddElu()", "elu"),
    "EMBEDDING_LOOKUP": ("AddEmbeddingLookup()", "embedding_lookup"),
    "EQUAL": ("AddEqual()", "comparisons"),
    "EXP": ("AddExp()", "exp"),
    "EXPAND_DIMS": ("AddExpandDims()", "expand_dims"),
    "FILL": ("AddFill()", "fill"),
    "FLOOR": ("AddFloor()", "floor"),
    "FLOOR_DIV": ("AddFloorDiv()", "floor_div"),
    "FLOOR_MOD": ("AddFloorMod()", "floor_mod"),
    "FULLY_CONNECTED": ("AddFullyConnected()", "fully_connected"),
    "GATHER": ("AddGather()", "gather"),
    "GATHER_ND": ("AddGatherNd()", "gather_nd"),
    "GREATER": ("AddGreater()", "comparisons"),
    "GREATER_EQUAL": ("AddGreaterEqual()", "comparisons"),
    "HARD_SWISH": ("AddHardSwish()", "hard_swish"),
    "IF": ("AddIf()", "if"),
    "L2_NORMALIZATION": ("AddL2Normalization()", "l2norm"),
    "L2_POOL_2D": ("AddL2Pool2D()", "l2_pool_2d"),
    "LEAKY_RELU": ("AddLeakyRelu()", "leaky_relu"),
    "LESS": ("AddLess()", "comparisons"),
    "LESS_EQUAL": ("AddLessEqual()", "comparisons"),
    "LOG": ("AddLog()", "elementwise"),
    "LOGICAL_AND": ("AddLogicalAnd()", "logical"),
    "LOGICAL_NOT": ("AddLogicalNot()", "elementwise"),
    "LOGICAL_OR": ("AddLogicalOr()", "logical"),
    "LOGISTIC": ("AddLogistic()", "logistic"),
    "LOG_SOFTMAX": ("AddLogSoftmax()", "log_softmax"),
    "MAXIMUM": ("AddMaximum()", "maximum_minimum"),
    "MAX_POOL_2D": ("AddMaxPool2D()", "pooling"),
    "MEAN": ("AddMean()", "reduce"),
    "MINIMUM": ("AddMinimum()", "maximum_minimum"),
    "MIRROR_PAD": ("AddMirrorPad()", "mirror_pad"),
    "MUL": ("AddMul()", "mul"),
    "NEG": ("AddNeg()", "neg"),
    "NOT_EQUAL": ("AddNotEqual()", "comparisons"),
    "PACK": ("AddPack()", "pack"),
    "PAD": ("AddPad()", "pad"),
    "PADV2": ("AddPadV2()", "pad"),
    "PRELU": ("AddPrelu()", "prelu"),
    "QUANTIZE": ("AddQuantize()", "quantize"),
    "READ_VARIABLE": ("AddReadVariable()", "read_variable"),
    "REDUCE_ALL": ("AddReduceAll()", "reduce"),
    "REDUCE_MAX": ("AddReduceMax()", "reduce"),
    "REDUCE_MIN": ("AddReduceMin()", "reduce"),
    "RELU": ("AddRelu()", "activations"),
    "RELU6": ("AddRelu6()", "activations"),
    "RESHAPE": ("AddReshape()", "reshape"),
    "RESIZE_BILINEAR": ("AddResizeBilinear()", "resize_bilinear"),
    "RESIZE_NEAREST_NEIGHBOR": ("AddResizeNearestNeighbor()", "resize_nearest_neighbor"),
    "REVERSE_V2": ("AddReverseV2()", "reverse"),
    "ROUND": ("AddRound()", "round"),
    "RSQRT": ("AddRsqrt()", "elementwise"),
    "SELECT_V2": ("AddSelectV2()", "select"),
    "SHAPE": ("AddShape()", "shape"),
    "SIN": ("AddSin()", "elementwise"),
    "SLICE": ("AddSlice()", "slice"),
    "SOFTMAX": ("AddSoftmax()", "softmax"),
    "SPACE_TO_BATCH_ND": ("AddSpaceToBatchNd()", "space_to_batch_nd"),
    "SPACE_TO_DEPTH": ("AddSpaceToDepth()", "space_to_depth"),
    "SPLIT": ("AddSplit()", "split"),
    "SPLIT_V": ("AddSplitV()", "split_v"),
    "SQRT": ("AddSqrt()", "elementwise"),
    "SQUARE": ("AddSquare()", "elementwise"),
    "SQUARED_DIFFERENCE": ("AddSquaredDifference()", "squared_difference"),
    "SQUEEZE": ("AddSqueeze()", "squeeze"),
    "STRIDED_SLICE": ("AddStridedSlice()", "strided_slice"),
    "SUB": ("AddSub()", "sub"),
    "SUM": ("AddSum()", "reduce"),
    "SVDF": ("AddSvdf()", "svdf"),
    "TANH": ("AddTanh()", "tanh"),
    DECODE_OP: ("AddDecode()", "decode"),
    "TFLite_Detection_PostProcess": ("AddDetectionPostprocess()", "detection_postprocess"),
    "TRANSPOSE": ("AddTranspose()", "transpose"),
    "TRANSPOSE_CONV": ("AddTransposeConv()", "transpose_conv"),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ("AddUnidirectionalSequenceLSTM()", "unidirectional_sequence_lstm"),
    "UNPACK": ("AddUnpack()", "unpack"),
    "VAR_HANDLE": ("AddVarHandle()", "var_handle"),
    "WHILE": ("AddWhile()", "while"),
    "ZEROS_LIKE": ("AddZerosLike()", "zeros_like"),
}


def resolver_calls(op_names, *, compressed: bool) -> list[str]:
    """The AddXxx() calls for exactly these ops (sorted, no duplicates); AddDecode() too when `compressed`."""
    names = sorted(set(op_names) | ({DECODE_OP} if compressed else set()))
    missing = [name for name in names if name not in OPS]
    if missing:
        raise CodegenError(
            f"the model uses op {missing[0]}, which the TFLM resolver table has no entry for"
            + (f" (nor {', '.join(missing[1:])})" if len(missing) > 1 else "")
            + "; replace the layer with a supported one or add the op to edgeclust/backends/tflm/resolver.py"
        )
    return [OPS[name][0] for name in names]


def op_families(op_names, *, compressed: bool = False) -> dict[str, list[str]]:
    """Kernel family -> the ops of the model that pull it in (families sorted), for the budget."""
    resolver_calls(op_names, compressed=compressed)  # unknown ops fail here, with the same message
    families: dict[str, list[str]] = {}
    for name in sorted(set(op_names) | ({DECODE_OP} if compressed else set())):
        families.setdefault(OPS[name][1], []).append(name)
    return dict(sorted(families.items()))
