"""The clustering maths in keras.ops: nearest centroids, and the clustered weight with its gradients.

State: one int32 index per weight, recomputed from the moving weights only now and then; per channel
(C channels, centroids (C, k)) each index is global, channel * k + index. The forward pass is one lookup per weight, the backward pass one sum per cluster;
both are kernels.py's (XLA-compiled on the TensorFlow backend).

Gradients (a custom gradient, so that nothing is paid for autodiff of the lookup): the original weight gets
the clustered weight's gradient straight through; each centroid gets the sum (or mean) of the gradients of
its weights.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from edgeclust.cluster import kernels


def channel_layout(shape: tuple[int, ...], channel_axes: tuple[int, ...]):
    """(permutation putting the channel axes last, number of channels) for a weight of `shape`."""
    rank = len(shape)
    axes = tuple(sorted(a % rank for a in channel_axes))
    perm = tuple(a for a in range(rank) if a not in axes) + axes
    return perm, int(np.prod([shape[a] for a in axes], dtype=np.int64))


def nearest_indices(w, centroids, *, channel_axes: tuple[int, ...] | None, preserve_sparsity: bool,
                    xla: bool = False):
    """Index of each weight's nearest centroid (int32, shape of w; ties go to the smaller centroid).

    centroids: (k,) per tensor, or (C, k) per channel (then channel_axes says which axes of w are the
    channels and the result holds global indices channel * k + index). With preserve_sparsity, zero
    weights always take centroid 0. Per tensor without XLA: searchsorted over the sorted midpoints;
    otherwise a branch-free binary search (log2(k) gathers; XLA's searchsorted is 20x slower).
    """
    w = ops.convert_to_tensor(w)
    shape = tuple(w.shape)
    c = ops.reshape(ops.convert_to_tensor(centroids, dtype=w.dtype), (-1, centroids.shape[-1]))
    k = int(c.shape[-1])
    if channel_axes is None:
        perm, channels = tuple(range(len(shape))), 1
    else:
        perm, channels = channel_layout(shape, channel_axes)
    moved = ops.transpose(w, perm) if perm != tuple(range(len(shape))) else w
    x = ops.reshape(moved, (-1, channels))
    order = ops.cast(ops.argsort(c, axis=-1), "int32")
    sorted_c = ops.take_along_axis(c, order, axis=-1)
    bits = max(1, math.ceil(math.log2(k)))
    mids = (sorted_c[:, 1:] + sorted_c[:, :-1]) / 2
    pad = ops.full((channels, 2**bits - k), np.inf, dtype=w.dtype)
    mids_table = ops.reshape(ops.transpose(ops.concatenate([mids, pad], axis=1)), (-1,))
    channel = ops.arange(channels, dtype="int32")[None, :]
    if channels == 1 and not xla:
        position = ops.reshape(ops.cast(ops.searchsorted(mids[0], ops.reshape(x, (-1,)), side="left"), "int32"),
                               (-1, 1))
    else:
        position = ops.zeros(ops.shape(x), dtype="int32")
        for b in reversed(range(bits)):
            step = 2**b
            probe = kernels.take(mids_table, (position + (step - 1)) * channels + channel)
            position = ops.where(probe < x, position + step, position)
    local = kernels.take(ops.reshape(ops.transpose(order), (-1,)), position * channels + channel)
    if preserve_sparsity:
        local = ops.where(ops.equal(x, 0), ops.zeros_like(local), local)
    if channel_axes is not None:
        local = local + channel * k
    local = ops.reshape(local, tuple(shape[a] for a in perm))
    if perm != tuple(range(len(shape))):
        local = ops.transpose(local, tuple(int(i) for i in np.argsort(perm)))
    return local


def lookup(centroids, indices, shape):
    """The clustered weight: each weight replaced by its centroid (shape `shape`)."""
    return ops.reshape(kernels.take(ops.reshape(centroids, (-1,)), indices), shape)


def per_cluster_sums(values, indices, centroid_shape):
    """Sum of `values` (shaped like the weight) over each cluster, shaped like the centroids."""
    bins = int(np.prod(centroid_shape))
    return ops.reshape(kernels.segment_sums(ops.reshape(values, (-1,)), indices, bins), centroid_shape)


def cluster_sizes(indices, centroid_shape, *, n: int):
    """Number of weights in each cluster (float32, shaped like the centroids)."""
    return per_cluster_sums(ops.ones((n,), "float32"), indices, centroid_shape)


def clustered_weight(w, centroids, indices, *, average: bool = False, preserve_sparsity: bool = False):
    """The weight the forward pass uses, with gradients straight through to `w` and per cluster to the
    centroids (summed, or averaged by cluster size). With preserve_sparsity, centroid 0 is pinned at zero
    and weights that are exactly zero receive no gradient (so they stay zero)."""
    shape = tuple(w.shape)
    centroid_shape = tuple(centroids.shape)
    k = int(centroid_shape[-1])
    keep = None
    if preserve_sparsity:
        keep = ops.convert_to_tensor(np.concatenate([[0.0], np.ones(k - 1)]).astype(np.float32))

    @ops.custom_gradient
    def _clustered(w, c):
        if keep is not None:
            c = c * ops.cast(keep, c.dtype)
        out = lookup(c, indices, shape)

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            upstream = ops.convert_to_tensor(upstream)
            dc = per_cluster_sums(upstream, indices, centroid_shape)
            if average:
                dc = dc / ops.maximum(cluster_sizes(indices, centroid_shape, n=int(np.prod(shape))), 1.0)
            dw = upstream
            if keep is not None:
                dc = dc * ops.cast(keep, dc.dtype)
                dw = ops.where(ops.equal(w, 0), ops.zeros_like(upstream), upstream)
            return dw, ops.cast(dc, c.dtype)

        return out, grad

    # reshape to the same shape: a free read, so that variables enter the custom gradient as tensors
    return _clustered(ops.reshape(w, shape), ops.reshape(centroids, centroid_shape))
