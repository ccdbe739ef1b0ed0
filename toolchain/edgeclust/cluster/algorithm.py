"""The clustering maths in keras.ops: nearest centroids, packed indices, and the clustered weight with its gradients.

Layout. A weight tensor of n values with k clusters per tensor stores its indices *packed*: g consecutive
indices make one integer  i_0 k^(g-1) + ... + i_(g-1)  (g = group_size(k, n)), and the forward pass is one
gather of n / g rows from a table of all k^g combinations of centroids (k^g x g, rebuilt from the centroids
each step, a few thousand rows). Without XLA, TensorFlow's gather costs about the same per row whatever the
row's size, so packing makes the forward 2-3x cheaper than one gather per weight. Per channel (C channels,
centroids (C, k)) each index is global: channel * k + index, g = 1.

Gradients (a custom gradient, so that nothing is paid for autodiff of the gather): the original weight gets
the clustered weight's gradient straight through; each centroid gets the sum (or mean) of the gradients of
its weights, a weighted bincount of the packed indices (segment_sum when compiled with XLA, where bincount
is not compilable).
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

#: Largest table of centroid combinations (rows) that packing may use; 65536 only for pairs.
MAX_TABLE_ROWS = 4096
MAX_PAIR_TABLE_ROWS = 65536
MAX_GROUP = 8


def group_size(k: int, n: int, per_channel: bool = False) -> int:
    """How many indices are packed into one integer for a tensor of n values and k clusters (1 = none).

    The largest g (at most MAX_GROUP) whose table of k^g rows stays small (MAX_TABLE_ROWS, or
    MAX_PAIR_TABLE_ROWS for pairs) and costs well under the tensor itself to rebuild each step.
    """
    if per_channel:
        return 1
    for g in range(MAX_GROUP, 1, -1):
        rows = k**g
        limit = MAX_PAIR_TABLE_ROWS if g == 2 else MAX_TABLE_ROWS
        if rows <= limit and rows * g * 8 <= n:
            return g
    return 1


def packed_length(n: int, g: int) -> int:
    """Number of packed integers for n indices, g per integer (the last one padded with index 0)."""
    return -(-n // g)


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
            probe = ops.take(mids_table, (position + (step - 1)) * channels + channel)
            position = ops.where(probe < x, position + step, position)
    local = ops.take(ops.reshape(ops.transpose(order), (-1,)), position * channels + channel)
    if preserve_sparsity:
        local = ops.where(ops.equal(x, 0), ops.zeros_like(local), local)
    if channel_axes is not None:
        local = local + channel * k
    local = ops.reshape(local, tuple(shape[a] for a in perm))
    if perm != tuple(range(len(shape))):
        local = ops.transpose(local, tuple(int(i) for i in np.argsort(perm)))
    return local


def pack(indices, k: int, g: int):
    """Packed indices (ceil(n / g),) int32 from per-weight indices: g consecutive ones per integer, base k;
    the last integer is padded with index 0."""
    flat = ops.reshape(ops.cast(indices, "int32"), (-1,))
    if g == 1:
        return flat
    n = int(flat.shape[0])
    pad = packed_length(n, g) * g - n
    if pad:
        flat = ops.concatenate([flat, ops.zeros((pad,), "int32")])
    powers = ops.convert_to_tensor(np.array([k ** (g - 1 - s) for s in range(g)], np.int32))
    return ops.sum(ops.reshape(flat, (-1, g)) * powers[None, :], axis=1)


def unpack(packed, k: int, g: int, n: int):
    """Per-weight indices (n,) int32 from packed ones (the inverse of pack)."""
    if g == 1:
        return packed
    digits = [(packed // (k ** (g - 1 - s))) % k for s in range(g)]
    return ops.reshape(ops.stack(digits, axis=1), (-1,))[:n]


def combination_table(centroids, k: int, g: int):
    """All k^g combinations of g centroids, (k^g, g): row i_0 k^(g-1) + ... + i_(g-1) holds c[i_0..i_(g-1)]."""
    if g == 1:
        return ops.reshape(centroids, (-1, 1))
    columns = []
    for s in range(g):
        shape = [1] * g
        shape[s] = k
        columns.append(ops.reshape(ops.broadcast_to(ops.reshape(centroids, shape), [k] * g), (-1,)))
    return ops.stack(columns, axis=-1)


def lookup(centroids, packed, k: int, g: int, shape):
    """The clustered weight: each weight replaced by its centroid (shape `shape`)."""
    if g == 1:
        return ops.reshape(ops.take(ops.reshape(centroids, (-1,)), packed), shape)
    n = int(np.prod(shape))
    rows = ops.reshape(ops.take(combination_table(centroids, k, g), packed, axis=0), (-1,))
    if int(packed.shape[0]) * g != n:
        rows = rows[:n]
    return ops.reshape(rows, shape)


def _cluster_sums(values, packed, bins: int, xla: bool):
    if xla:
        return ops.segment_sum(values, packed, num_segments=bins)
    return ops.bincount(packed, weights=values, minlength=bins)


def _fold_slots(hist, k: int, g: int, s: int):
    """From a histogram over packed values (k^g,), the part that slot s contributes per centroid (k,)."""
    return ops.sum(ops.reshape(hist, [k] * g), axis=tuple(a for a in range(g) if a != s))


def per_cluster_sums(values, packed, k: int, g: int, centroid_shape, *, xla: bool):
    """Sum of `values` (shaped like the weight) over each cluster, shaped like the centroids."""
    flat = ops.reshape(values, (-1,))
    if g == 1:
        return ops.reshape(_cluster_sums(flat, packed, int(np.prod(centroid_shape)), xla), centroid_shape)
    n = int(flat.shape[0])
    full = n // g
    bins = k**g
    rows = ops.reshape(flat[: full * g] if full * g != n else flat, (full, g))
    main = packed[:full] if full != int(packed.shape[0]) else packed
    total = 0
    for s in range(g):
        total = total + _fold_slots(_cluster_sums(rows[:, s], main, bins, xla), k, g, s)
    if full * g != n:  # the padded last integer: its first n - full * g slots are real
        tail = unpack(packed[full:], k, g, g)[: n - full * g]
        total = total + _cluster_sums(flat[full * g:], tail, k, xla)
    return ops.reshape(total, centroid_shape)


def cluster_sizes(packed, k: int, g: int, centroid_shape, *, n: int, xla: bool):
    """Number of weights in each cluster (float32, shaped like the centroids)."""
    ones = ops.ones((n,), "float32")
    return per_cluster_sums(ones, packed, k, g, centroid_shape, xla=xla)


def clustered_weight(w, centroids, packed, *, g: int, average: bool = False, preserve_sparsity: bool = False,
                     xla: bool = False):
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
        out = lookup(c, packed, k, g, shape)

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            upstream = ops.convert_to_tensor(upstream)
            dc = per_cluster_sums(upstream, packed, k, g, centroid_shape, xla=xla)
            if average:
                dc = dc / ops.maximum(cluster_sizes(packed, k, g, centroid_shape, n=int(np.prod(shape)), xla=xla), 1.0)
            dw = upstream
            if keep is not None:
                dc = dc * ops.cast(keep, dc.dtype)
                dw = ops.where(ops.equal(w, 0), ops.zeros_like(upstream), upstream)
            return dw, ops.cast(dc, c.dtype)

        return out, grad

    # reshape to the same shape: a free read, so that variables enter the custom gradient as tensors
    return _clustered(ops.reshape(w, shape), ops.reshape(centroids, centroid_shape))
