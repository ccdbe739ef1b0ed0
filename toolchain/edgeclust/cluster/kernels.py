"""The two per-weight passes of every clustered training step: centroid lookup and per-cluster sums.

On the TensorFlow backend both run as small XLA-compiled functions, whether or not the model itself is
compiled with XLA: TensorFlow's own CPU gather costs ~4 ns per weight, ten times XLA's, and the clustered
forward pass is one gather per weight (measured: scripts/bench_clustering.py, DEVELOPERS.md). This module
is the one place in edgeclust.cluster that touches TensorFlow; other Keras backends get keras.ops.
"""

from __future__ import annotations

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
    # Keras variables and tensors enter as plain TensorFlow tensors (tf.function cannot trace the former).
    return (lambda table, indices: take(tf.convert_to_tensor(table), tf.convert_to_tensor(indices)),
            lambda values, indices, bins: segment_sums(tf.convert_to_tensor(values), tf.convert_to_tensor(indices),
                                                       int(bins)))


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
