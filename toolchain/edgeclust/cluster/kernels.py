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


#: Index dtype. Not uint8: inside a model compiled with XLA, a scatter whose indices are converted from
#: uint8 ran 1.6-1.9x slower than plain (measured, MLP); int32 costs 3 bytes a weight more and is fast.
INDEX_DTYPE = "int32"


def _xla() -> bool:
    return USE_XLA and keras.backend.backend() == "tensorflow"


@functools.cache
def _tf_kernels():
    import tensorflow as tf

    @tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
    def take(table, indices):
        return tf.gather(table, tf.cast(indices, tf.int32))

    @tf.function(jit_compile=True, autograph=False)
    def segment_sums(values, indices, bins):
        return tf.math.unsorted_segment_sum(values, tf.cast(indices, tf.int32), bins)

    return tf.convert_to_tensor, take, segment_sums


def take(table, indices):
    """table[indices] for a 1-D table and integer indices (all in range)."""
    if _xla():
        convert, kernel, _ = _tf_kernels()
        return kernel(convert(table), convert(indices))
    return ops.take(table, ops.cast(indices, "int32"))


def segment_sums(values, indices, bins: int):
    """(bins,) sums of 1-D `values` grouped by the matching integer `indices` (all in 0..bins-1)."""
    if _xla():
        convert, _, kernel = _tf_kernels()
        return kernel(convert(values), convert(indices), int(bins))
    return ops.segment_sum(values, ops.cast(indices, "int32"), num_segments=bins)
