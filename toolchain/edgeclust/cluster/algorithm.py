"""The clustering maths: nearest centroids, and the clustered weight with its gradients.

Every forward pass uses each weight's nearest centroid (tfmot's semantics), found one of two exact ways:
- up to kernels.MAX_CLUSTERS_COMPARED clusters, by comparing the weight with each midpoint between sorted
  centroids (one fused pass, no gather, no state);
- beyond, from one stored int32 position per weight, the rank of its centroid among the sorted centroids
  (per channel, C channels of k centroids, the position is global: channel * k + rank), brought up to date
  every step by a local search (kernels.refresh_positions): a weight that moved past the midpoint to a
  neighbouring centroid moves one position, exact and O(1) per weight because a step moves a weight very
  little; then one lookup per weight among the sorted centroids.
The backward pass is one sum per cluster.

Gradients (a custom gradient, so that nothing is paid for autodiff of the lookup): the original weight gets
the clustered weight's gradient straight through; each centroid gets the sum (or mean) of the gradients of
its weights.

The full search (numpy, `nearest_positions`) serves initialisation and stripping; the training path is
keras.ops (and kernels.py's XLA-compiled versions on TensorFlow).
"""

from __future__ import annotations

import numpy as np
from keras import ops

from edgeclust.cluster import kernels


def channel_layout(shape: tuple[int, ...], channel_axes: tuple[int, ...]):
    """(permutation putting the channel axes last, number of channels) for a weight of `shape`."""
    rank = len(shape)
    axes = tuple(sorted(a % rank for a in channel_axes))
    perm = tuple(a for a in range(rank) if a not in axes) + axes
    return perm, int(np.prod([shape[a] for a in axes], dtype=np.int64))


def per_channel_columns(values: np.ndarray, channel_axes: tuple[int, ...] | None) -> np.ndarray:
    """values as a (weights per channel, channels) array (one column for the whole tensor without axes)."""
    if channel_axes is None:
        return values.reshape(-1, 1)
    perm, channels = channel_layout(values.shape, channel_axes)
    return np.transpose(values, perm).reshape(-1, channels)


def pinned(centroids, preserve_sparsity: bool):
    """The centroids the forward pass uses: with preserve_sparsity, centroid 0 of each row held at zero."""
    if not preserve_sparsity:
        return centroids
    k = int(centroids.shape[-1])
    keep = ops.convert_to_tensor(np.concatenate([[0.0], np.ones(k - 1)]).astype(np.float32))
    return centroids * ops.cast(keep, centroids.dtype)


def midpoints_np(sorted_centroids: np.ndarray) -> np.ndarray:
    """Midpoints between neighbouring sorted centroids, in float32 exactly as `sorted_tables` computes them."""
    s = sorted_centroids.astype(np.float32)
    return (s[:, 1:] + s[:, :-1]) / np.float32(2)


def nearest_positions(w, centroids, *, channel_axes: tuple[int, ...] | None) -> np.ndarray:
    """Global sorted position of each weight's nearest centroid (numpy int32, shape of w; ties go to the
    smaller centroid). centroids: (k,) per tensor or (C, k) per channel over `channel_axes` of w."""
    w = np.asarray(w, dtype=np.float32)
    c = np.asarray(centroids, dtype=np.float32).reshape(-1, np.shape(centroids)[-1])
    k = c.shape[-1]
    mids = midpoints_np(np.sort(c, axis=-1))
    columns = per_channel_columns(w, channel_axes)
    positions = np.empty(columns.shape, np.int32)
    for channel in range(columns.shape[1]):
        positions[:, channel] = np.searchsorted(mids[channel], columns[:, channel], side="left") + channel * k
    if channel_axes is None:
        return positions.reshape(w.shape)
    perm, _ = channel_layout(w.shape, channel_axes)
    moved_shape = tuple(w.shape[a] for a in perm)
    return np.transpose(positions.reshape(moved_shape), np.argsort(perm)).astype(np.int32)


def nearest_values(w, centroids, *, channel_axes: tuple[int, ...] | None) -> np.ndarray:
    """Each weight replaced by its nearest centroid (numpy, shape and dtype of w)."""
    c = np.asarray(centroids, dtype=np.float32)
    table = np.sort(c.reshape(-1, c.shape[-1]), axis=-1).reshape(-1)
    return table[nearest_positions(w, c, channel_axes=channel_axes)].astype(np.asarray(w).dtype)


def sorted_tables(centroids):
    """(order, sorted centroids, bounds) of (C, k) centroids: bounds (C, k + 1) holds -inf, the k - 1
    midpoints and +inf per row, so that sorted position r of a row owns the interval (bounds[r], bounds[r+1]]."""
    c = ops.convert_to_tensor(centroids)
    order = ops.cast(ops.argsort(c, axis=-1), "int32")
    sorted_c = ops.take_along_axis(c, order, axis=-1)
    mids = (sorted_c[:, 1:] + sorted_c[:, :-1]) / 2
    edge = ops.full((int(c.shape[0]), 1), np.inf, dtype=c.dtype)
    return order, sorted_c, ops.concatenate([-edge, mids, edge], axis=1)


def refresh_positions(w, positions, centroids, *, per_channel: bool):
    """The positions (flat int32) of the nearest sorted centroids of w, starting the local search from
    `positions`, which must be valid positions (any, not necessarily close). centroids: (C, k)."""
    _, _, bounds = sorted_tables(centroids)
    return kernels.refresh_positions(
        ops.reshape(w, (-1,)), positions, ops.reshape(bounds, (-1,)), int(centroids.shape[-1]), per_channel
    )


def channel_stride(shape: tuple[int, ...], channel_axes: tuple[int, ...] | None) -> int | None:
    """Weights per run of one channel in w's flat order (1 when the channel axes are last), or None when the
    channel axes are not contiguous (then flat index i is not in channel (i // stride) % C)."""
    if channel_axes is None:
        return 1
    axes = sorted(a % len(shape) for a in channel_axes)
    if axes != list(range(axes[0], axes[-1] + 1)):
        return None
    return int(np.prod(shape[axes[-1] + 1 :], dtype=np.int64))


def nearest_from_positions(w, centroids, positions, *, channel_axes: tuple[int, ...] | None):
    """(clustered weight shaped like w, flat positions) in one pass of the C op, searched locally from
    `positions`, or None where the C op is not available (then refresh_positions and lookup do it)."""
    stride = channel_stride(tuple(w.shape), channel_axes)
    if stride is None:
        return None
    return kernels.nearest_from(w, ops.sort(ops.convert_to_tensor(centroids), axis=-1), positions, stride)


def lookup(table, positions, shape):
    """The clustered weight: each weight replaced by table[position] (shape `shape`)."""
    return ops.reshape(kernels.take(ops.reshape(table, (-1,)), positions), shape)


def per_cluster_sums(values, indices, centroid_shape):
    """Sum of `values` (shaped like the weight) over each cluster, shaped like the centroids."""
    bins = int(np.prod(centroid_shape))
    return ops.reshape(kernels.segment_sums(ops.reshape(values, (-1,)), indices, bins), centroid_shape)


def cluster_sizes(indices, centroid_shape, *, n: int):
    """Number of weights in each cluster (float32, shaped like the centroids)."""
    return per_cluster_sums(ops.ones((n,), "float32"), indices, centroid_shape)


def uses_comparison(k: int) -> bool:
    """Whether weights clustered to k values find their centroid by comparison (no stored positions)."""
    return k <= kernels.MAX_CLUSTERS_COMPARED


def column_shape(shape: tuple[int, ...], channel_axes: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape that C per-channel values take to broadcast against a weight of `shape`."""
    if channel_axes is None:
        return (1,) * len(shape)
    axes = {a % len(shape) for a in channel_axes}
    return tuple(shape[a] if a in axes else 1 for a in range(len(shape)))


def clustered_weight(
    w,
    centroids,
    positions=None,
    *,
    values=None,
    channel_axes: tuple[int, ...] | None = None,
    average: bool = False,
    preserve_sparsity: bool = False,
):
    """The weight the forward pass uses, with gradients straight through to `w` and per cluster to the
    centroids (summed, or averaged by cluster size). centroids: (C, k) (C channels over `channel_axes`).

    positions: flat sorted positions of each weight's nearest centroid (from refresh_positions), or None to
    find them by comparison with every midpoint (uses_comparison(k)); values: the clustered weight itself when
    nearest_from_positions has computed it with the positions (else a lookup). With preserve_sparsity, centroid 0 is
    pinned at zero and weights that are exactly zero receive no gradient (so they stay zero)."""
    shape = tuple(w.shape)
    centroid_shape = tuple(centroids.shape)
    k = centroid_shape[-1]

    @ops.custom_gradient
    def _clustered(w, c):
        order, sorted_c, _ = sorted_tables(pinned(c, preserve_sparsity))
        if positions is None:
            out, local = kernels.nearest_by_comparison(w, sorted_c, column_shape(shape, channel_axes))
            found = ops.reshape(local, (-1,))
            if channel_axes is not None:
                channel = ops.reshape(ops.arange(centroid_shape[0], dtype="int32"), column_shape(shape, channel_axes))
                found = ops.reshape(local + channel * k, (-1,))
        else:
            found = positions
            out = lookup(sorted_c, positions, shape) if values is None else values

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            upstream = ops.convert_to_tensor(upstream)
            by_position = per_cluster_sums(upstream, found, centroid_shape)
            if average:
                sizes = cluster_sizes(found, centroid_shape, n=int(np.prod(shape)))
                by_position = by_position / ops.maximum(sizes, 1.0)
            # position r of a row holds centroid order[r]: undo the sort
            dc = ops.take_along_axis(by_position, ops.cast(ops.argsort(order, axis=-1), "int32"), axis=-1)
            dw = upstream
            if preserve_sparsity:
                dc = pinned(dc, True)
                dw = ops.where(ops.equal(w, 0), ops.zeros_like(upstream), upstream)
            return dw, ops.cast(dc, c.dtype)

        return out, grad

    # reshape to the same shape: a free read, so that variables enter the custom gradient as tensors
    return _clustered(ops.reshape(w, shape), ops.reshape(centroids, centroid_shape))
