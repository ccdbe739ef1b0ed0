"""Initial centroids: (values, k, rng) -> k sorted float32 centroids, one function per CentroidInitialization.

numpy only. `values` is a 1-D array of finite numbers (one tensor, or one channel of it).
"""

from __future__ import annotations

import numpy as np

from edgeclust.cluster.config import CentroidInitialization

#: k-means++ seeds on at most this many values (sampled); the k-means iterations then use all of them.
KMEANS_SEED_SAMPLE = 20_000
KMEANS_MAX_ITERATIONS = 100


def linear(values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k centroids evenly spaced between the minimum and the maximum."""
    return np.linspace(values.min(), values.max(), k).astype(np.float32)


def random(values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k centroids drawn uniformly between the minimum and the maximum, sorted."""
    return np.sort(rng.uniform(values.min(), values.max(), k)).astype(np.float32)


def density_based(values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k centroids evenly spaced on the cumulative distribution: the quantiles (i + 0.5) / k."""
    return np.quantile(values.astype(np.float64), (np.arange(k) + 0.5) / k).astype(np.float32)


def kmeans_plus_plus(values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (on a sample of at most KMEANS_SEED_SAMPLE values), then 1-D k-means on all values."""
    x = np.sort(values.astype(np.float64))
    sample = x if len(x) <= KMEANS_SEED_SAMPLE else np.sort(rng.choice(x, KMEANS_SEED_SAMPLE, replace=False))
    seeds = [sample[rng.integers(len(sample))]]
    d2 = (sample - seeds[0]) ** 2
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct values than clusters: repeat one
            seeds.append(seeds[-1])
            continue
        pick = np.searchsorted(np.cumsum(d2), rng.uniform(0, total), side="right")
        seeds.append(sample[min(pick, len(sample) - 1)])
        d2 = np.minimum(d2, (sample - seeds[-1]) ** 2)
    return kmeans_1d(x, np.sort(np.asarray(seeds))).astype(np.float32)


def kmeans_1d(sorted_values: np.ndarray, centroids: np.ndarray, max_iterations: int = KMEANS_MAX_ITERATIONS):
    """Lloyd's k-means on sorted 1-D values: each cluster is a contiguous run, summed with prefix sums."""
    x = sorted_values
    prefix = np.concatenate([[0.0], np.cumsum(x)])
    c = np.sort(np.asarray(centroids, dtype=np.float64))
    for _ in range(max_iterations):
        mids = (c[1:] + c[:-1]) / 2
        bounds = np.concatenate([[0], np.searchsorted(x, mids, side="right"), [len(x)]])
        counts = np.diff(bounds)
        sums = prefix[bounds[1:]] - prefix[bounds[:-1]]
        new = np.sort(np.where(counts > 0, sums / np.maximum(counts, 1), c))
        if np.allclose(new, c, rtol=0, atol=1e-9 * max(1.0, np.abs(c).max())):
            return new
        c = new
    return c


INITIALIZERS = {
    CentroidInitialization.LINEAR: linear,
    CentroidInitialization.RANDOM: random,
    CentroidInitialization.DENSITY_BASED: density_based,
    CentroidInitialization.KMEANS_PLUS_PLUS: kmeans_plus_plus,
}


def initial_centroids(
    values: np.ndarray,
    k: int,
    init: CentroidInitialization,
    rng: np.random.Generator,
    *,
    preserve_sparsity: bool = False,
) -> np.ndarray:
    """k centroids for `values` (1-D). With preserve_sparsity, centroid 0 is exactly 0 and the other k - 1
    are chosen among the non-zero values; otherwise they are sorted ascending."""
    values = np.asarray(values).reshape(-1)
    if not preserve_sparsity:
        return _centroids_for(values, k, init, rng)
    nonzero = values[values != 0]
    rest = _centroids_for(nonzero, k - 1, init, rng) if len(nonzero) else np.zeros(k - 1, np.float32)
    return np.concatenate([[0.0], rest]).astype(np.float32)


def exact_centroids(values: np.ndarray, k: int) -> np.ndarray | None:
    """The distinct values, padded to k by repeating the largest, when there are at most k of them (then
    clustering changes nothing); None otherwise."""
    distinct = np.unique(values.astype(np.float32))
    if len(distinct) > k:
        return None
    return np.concatenate([distinct, np.full(k - len(distinct), distinct[-1], np.float32)])


def _centroids_for(values: np.ndarray, k: int, init: CentroidInitialization, rng: np.random.Generator):
    exact = exact_centroids(values, k) if len(values) else None
    if exact is not None:
        return exact
    return INITIALIZERS[CentroidInitialization(init)](values, k, rng)
