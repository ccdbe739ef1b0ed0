"""The per-weight passes of every clustered training step: position refresh, centroid lookup, per-cluster sums.

On the TensorFlow backend both run as small XLA-compiled functions, whether or not the model itself is
compiled with XLA: TensorFlow's own CPU gather costs ~4 ns per weight, ten times XLA's, and the clustered
forward pass is one gather per weight (measured: scripts/bench_clustering.py, DEVELOPERS.md). This module
is the one place in edgeclust.cluster that touches TensorFlow; other Keras backends get keras.ops.
"""

from __future__ import annotations

import contextlib
import functools

import keras
from keras import ops

#: Set to False to run the keras.ops versions on the TensorFlow backend too (tests compare the two).
USE_XLA = True


def _xla() -> bool:
    return USE_XLA and keras.backend.backend() == "tensorflow"


@functools.cache
def _tf_kernels():
    import tensorflow as tf

    take = tf.function(tf.gather, jit_compile=True, reduce_retracing=True, autograph=False)
    segment_sums = tf.function(tf.math.unsorted_segment_sum, jit_compile=True, autograph=False)
    refresh = tf.function(_refresh_positions_ops, jit_compile=True, autograph=False)
    # Keras variables and tensors enter as plain TensorFlow tensors (tf.function cannot trace the former).
    return (lambda table, indices: take(tf.convert_to_tensor(table), tf.convert_to_tensor(indices)),
            lambda values, indices, bins: segment_sums(tf.convert_to_tensor(values), tf.convert_to_tensor(indices),
                                                       int(bins)),
            lambda w, positions, bounds, k, per_channel: refresh(
                tf.convert_to_tensor(w), tf.convert_to_tensor(positions), tf.convert_to_tensor(bounds), int(k),
                bool(per_channel)))


def take(table, indices):
    """table[indices] for a 1-D table and int32 indices (all in range)."""
    if _xla():
        return _tf_kernels()[0](table, indices)
    return ops.take(table, indices)


def segment_sums(values, indices, bins: int):
    """(bins,) sums of 1-D `values` grouped by the matching int32 `indices` (all in 0..bins-1)."""
    if _xla():
        return _tf_kernels()[1](values, indices, bins)
    return ops.segment_sum(values, indices, num_segments=bins)


def _refresh_positions_ops(w, positions, bounds, k: int, per_channel: bool):
    """Local search in keras.ops: move each position by the midpoints around it until none moves.

    One pass reads the four bounds around a weight's position (r-1, r, r+1, r+2) and moves it by up to
    one position exactly; a weight beyond the next midpoint moves two and the pass repeats (rare: a
    step moves a weight very little)."""
    last = int(bounds.shape[0]) - 1

    def one_pass(p):
        b = p + ops.floor_divide(p, k) if per_channel else p  # row c of bounds starts at c * (k + 1)
        lo = ops.take(bounds, b)
        hi = ops.take(bounds, b + 1)
        lo2 = ops.take(bounds, ops.maximum(b - 1, 0))
        hi2 = ops.take(bounds, ops.minimum(b + 2, last))
        up = ops.where(w > hi, ops.where(w > hi2, 2, 1), 0)
        down = ops.where(w <= lo, ops.where(w <= lo2, -2, -1), 0)
        move = ops.cast(up + down, "int32")
        return p + move, ops.any(ops.abs(move) > 1)

    first, again = one_pass(positions)
    final, _ = ops.while_loop(lambda p, again: again, lambda p, again: one_pass(p), (first, again),
                              maximum_iterations=k)
    return final


def refresh_positions(w, positions, bounds, k: int, per_channel: bool):
    """Flat int32 positions of the nearest centroids of flat `w` (see algorithm.sorted_tables for
    `bounds`, flattened), searched locally from the valid positions `positions`."""
    if _xla():
        return _tf_kernels()[2](w, positions, bounds, k, per_channel)
    return _refresh_positions_ops(ops.convert_to_tensor(w), ops.convert_to_tensor(positions),
                                  ops.convert_to_tensor(bounds), k, per_channel)


def eager_scope():
    """A block that runs eagerly even while TensorFlow traces a function (tf.init_scope, as Keras itself
    uses to create variables): where a wrapper built inside `fit` creates and initialises its state."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.init_scope()
    return contextlib.nullcontext()
