"""The per-weight passes of every clustered training step: position refresh, centroid lookup, per-cluster sums.

On the TensorFlow backend they run as small XLA-compiled functions, whether or not the model itself is
compiled with XLA: TensorFlow's own CPU gather costs ~4 ns per weight, ten times XLA's, and the clustered
forward pass is one gather per weight (measured: scripts/bench_clustering.py, DEVELOPERS.md). Outside an
XLA-compiled model, the local search with its lookup and the per-cluster sums run as our own C ops instead
(cpu_kernels.c, compiled once by cpu_build.py), a third of XLA's time: XLA's CPU scatter runs on one
thread, and a local search in XLA is four gathers. With AVX2 or AVX-512 the C op also replaces XLA's
comparison pass for one table of up to 16 clusters. Without a C compiler the XLA versions serve. This module
is the one place in edgeclust.cluster that touches TensorFlow; other Keras backends get keras.ops.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import keras
from keras import ops

from edgeclust.cluster import cpu_build

#: Set to False to run the keras.ops versions on the TensorFlow backend too (tests compare the two).
USE_XLA = True
#: Set to False to leave the C ops out (tests compare them with the XLA versions).
USE_CPU_OPS = True


def _xla() -> bool:
    return USE_XLA and keras.backend.backend() == "tensorflow"


@functools.cache
def _cpu_library():
    """(the loaded C ops, the most clusters their vector search handles without stored positions on this CPU),
    or None (with one warning) where they cannot be compiled here."""
    import ctypes

    import tensorflow as tf

    try:
        path = cpu_build.built_library(tf.sysconfig.get_include(), tf.sysconfig.get_lib(), tf.__version__)
        return tf.load_op_library(str(path)), int(ctypes.CDLL(str(path)).edgeclust_search_max_k())
    except (cpu_build.KernelBuildError, OSError, AttributeError, tf.errors.OpError) as error:
        warnings.warn(
            f"edgeclust: clustered training uses the slower XLA kernels: {error}", RuntimeWarning, stacklevel=3
        )
        return None


def _search_max_k() -> int:
    """The most clusters the C op's vector search handles without stored positions on this CPU (0: none)."""
    library = _cpu_library()
    return 0 if library is None else library[1]


def cpu_ops(*floats):
    """The C ops when this call may use them (TensorFlow, not inside an XLA-compiled function, and every tensor
    of `floats` float32: the C kernels are float32, and a mixed_float16 or float64 model hands them float16 or
    float64 weights and gradients), else None."""
    if not (USE_CPU_OPS and _xla()):
        return None
    if any(keras.backend.standardize_dtype(t.dtype) != "float32" for t in floats):
        return None
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.ops import control_flow_util

    if control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()):
        return None  # inside a jit_compile=True model: only XLA ops compile there
    library = _cpu_library()
    return None if library is None else library[0]


@functools.cache
def _tf_kernels():
    import tensorflow as tf

    take = tf.function(tf.gather, jit_compile=True, reduce_retracing=True, autograph=False)
    segment_sums = tf.function(tf.math.unsorted_segment_sum, jit_compile=True, autograph=False)
    refresh = tf.function(_refresh_positions_ops, jit_compile=True, autograph=False)
    compare = tf.function(_nearest_by_comparison_ops, jit_compile=True, autograph=False)
    # Keras variables and tensors enter as plain TensorFlow tensors (tf.function cannot trace the former).
    return (
        lambda table, indices: take(tf.convert_to_tensor(table), tf.convert_to_tensor(indices)),
        lambda values, indices, bins: segment_sums(
            tf.convert_to_tensor(values), tf.convert_to_tensor(indices), int(bins)
        ),
        lambda w, positions, bounds, k, per_channel: refresh(
            tf.convert_to_tensor(w),
            tf.convert_to_tensor(positions),
            tf.convert_to_tensor(bounds),
            int(k),
            bool(per_channel),
        ),
        lambda w, sorted_c, column_shape: compare(
            tf.convert_to_tensor(w), tf.convert_to_tensor(sorted_c), tuple(column_shape)
        ),
    )


def take(table, indices):
    """table[indices] for a 1-D table and int32 indices (all in range)."""
    if _xla():
        return _tf_kernels()[0](table, indices)
    return ops.take(table, indices)


def segment_sums(values, indices, bins: int):
    """(bins,) sums of 1-D `values` grouped by the matching int32 `indices` (all in 0..bins-1)."""
    native = cpu_ops(values)
    if native is not None:
        import tensorflow as tf

        return native.edgeclust_cluster_sums(
            tf.convert_to_tensor(values), tf.convert_to_tensor(indices), bins=int(bins)
        )
    if _xla():
        return _tf_kernels()[1](values, indices, bins)
    return ops.segment_sum(values, indices, num_segments=bins)


def _refresh_positions_ops(w, positions, bounds, k: int, per_channel: bool):
    """Local search in keras.ops: one pass reads the four bounds around each weight's position (r-1, r, r+1,
    r+2) and moves it by up to one position, exactly; if any weight lies beyond the next midpoint (rare: a
    step moves a weight very little), every position is searched again from scratch."""
    last = int(bounds.shape[0]) - 1
    b = positions + ops.floor_divide(positions, k) if per_channel else positions  # row c starts at c * (k + 1)
    lo = ops.take(bounds, b)
    hi = ops.take(bounds, b + 1)
    lo2 = ops.take(bounds, ops.maximum(b - 1, 0))
    hi2 = ops.take(bounds, ops.minimum(b + 2, last))
    move = ops.cast(ops.where(w > hi, 1, 0) - ops.where(w <= lo, 1, 0), "int32")
    far = ops.any(ops.logical_or(w > hi2, w <= lo2))
    return ops.cond(far, lambda: _binary_search_ops(w, positions, bounds, k, per_channel), lambda: positions + move)


def _binary_search_ops(w, positions, bounds, k: int, per_channel: bool):
    """Global sorted positions by binary search over each row's midpoints (bounds[1..k-1] of the row);
    `positions` only tells each weight's channel."""
    channel = ops.floor_divide(positions, k) if per_channel else ops.zeros_like(positions)
    row = channel * (k + 1)
    found = ops.zeros_like(positions)
    step = 1 << max(0, (k - 1).bit_length() - 1)
    while step >= 1:
        probe = found + step
        inside = probe <= k - 1
        mid = ops.take(bounds, row + ops.minimum(probe, k - 1))
        found = ops.where(ops.logical_and(inside, mid < w), probe, found)
        step //= 2
    return found + channel * k


def refresh_positions(w, positions, bounds, k: int, per_channel: bool):
    """Flat int32 positions of the nearest centroids of flat `w` (see algorithm.sorted_tables for
    `bounds`, flattened), searched locally from the valid positions `positions`."""
    if _xla():
        return _tf_kernels()[2](w, positions, bounds, k, per_channel)
    return _refresh_positions_ops(
        ops.convert_to_tensor(w), ops.convert_to_tensor(positions), ops.convert_to_tensor(bounds), k, per_channel
    )


def nearest_from(w, sorted_c, positions, inner: int):
    """(value, flat position) of each weight's nearest centroid by the C op, searched locally from the valid
    flat `positions` (None: binary search), or None where the C ops are not available. sorted_c: (C, k);
    the weight at flat index i belongs to channel (i // inner) % C."""
    native = cpu_ops(w)
    if native is None:
        return None
    import tensorflow as tf

    start = tf.zeros((0,), "int32") if positions is None else tf.convert_to_tensor(positions)
    value, position = native.edgeclust_nearest(
        tf.convert_to_tensor(w), tf.convert_to_tensor(sorted_c), start, inner=int(inner)
    )
    return value, tf.reshape(position, (-1,))


def eager_scope():
    """A block that runs eagerly even while TensorFlow traces a function (tf.init_scope, as Keras itself
    uses to create variables): where a wrapper built inside `fit` creates and initialises its state."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.init_scope()
    return contextlib.nullcontext()


#: Up to this many clusters the nearest centroid is found with no stored state: by comparing each weight with
#: every midpoint (one fused, branch-free XLA pass), or per tensor by the C op's binary search in registers.
#: Beyond, positions are stored and searched locally. Step time clustered/plain, MLP 4 x Dense(1024), batch
#: 64, outside XLA, round 2's first C op (Zen 3): comparison 1.21x at k = 16, 1.37x at 32, 1.58x at 64,
#: 1.82x at 128; local search by the C op about 1.26x whatever k. The state a model holds must not depend on
#: the CPU it was built on, so this stays 16 where the C op could search 32 without state.
MAX_CLUSTERS_COMPARED = 16


def _nearest_by_comparison_ops(w, sorted_c, column_shape: tuple):
    """(value, local sorted position) of each weight's nearest centroid: k - 1 comparisons with the
    midpoints, each a select of the next centroid (exact values, ties to the smaller centroid).

    sorted_c: (C, k) sorted rows; column_shape: the shape one column of C values takes to broadcast
    against w (C spread over w's channel axes, 1 elsewhere)."""
    k = int(sorted_c.shape[-1])
    column = [ops.reshape(sorted_c[:, j], column_shape) for j in range(k)]
    value = ops.broadcast_to(column[0], ops.shape(w))
    position = ops.zeros(ops.shape(w), "int32")
    for j in range(k - 1):
        above = w > (column[j] + column[j + 1]) / 2
        value = ops.where(above, column[j + 1], value)
        position = position + ops.cast(above, "int32")
    return value, position


def nearest_by_comparison(w, sorted_c, column_shape: tuple):
    """See _nearest_by_comparison_ops (XLA-compiled on TensorFlow). One table (sorted_c of one row) where the C
    op's vector search handles k on this CPU: that instead, the same values and positions (binary search over
    the midpoints in registers; MLP 4 x Dense(1024), N=16: step 1.18x plain with XLA's pass, see DEVELOPERS.md)."""
    # cpu_ops first: on other backends it answers None without loading TensorFlow
    if int(sorted_c.shape[0]) == 1 and cpu_ops(w) is not None and int(sorted_c.shape[-1]) <= _search_max_k():
        value, position = nearest_from(w, sorted_c, None, 1)
        return value, ops.reshape(position, tuple(value.shape))
    if _xla():
        return _tf_kernels()[3](w, sorted_c, column_shape)
    return _nearest_by_comparison_ops(ops.convert_to_tensor(w), ops.convert_to_tensor(sorted_c), tuple(column_shape))
