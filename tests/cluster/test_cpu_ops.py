"""The C ops of the clustered training step (cpu_kernels.c): built with the real compiler and loaded into
TensorFlow, exactly the nearest centroids and the sums of the XLA kernels, used outside XLA and not inside it,
and a one-line warning with the XLA kernels serving where no compiler is found."""

import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow_only

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from edgeclust import cluster  # noqa: E402
from edgeclust.cluster import algorithm, cpu_build, kernels  # noqa: E402


@pytest.fixture
def cpu_ops():
    ops = kernels.cpu_ops()
    assert ops is not None, "the C ops did not build here: is gcc installed?"
    return ops


CASES = [  # shape, channel axes
    ((300, 7), None),
    ((300, 7), (-1,)),
    ((3, 5, 4), (-2,)),  # Conv1DTranspose's axis: channels inside, 4 weights a run
    ((2, 3, 4), (-2, -1)),  # depthwise: two trailing axes
]


# per tensor, k <= 256 takes the AVX-512 path where the CPU has it (tables of 1, 2, 4 or 8 chunks of 32
# centroids: k = 17, 40, 100, 256); 257 and per channel the scalar loop
@pytest.mark.parametrize("k", [2, 3, 16, 17, 40, 100, 255, 256, 257])
@pytest.mark.parametrize("shape,channel_axes", CASES)
def test_nearest_from_any_start_equals_the_full_search(cpu_ops, k, shape, channel_axes):
    r = np.random.default_rng(k)
    w = r.normal(size=shape).astype(np.float32)
    w.flat[:5] = [np.inf, -np.inf, 0.0, 1e30, -1e30]
    channels = 1 if channel_axes is None else int(np.prod([shape[a] for a in channel_axes]))
    c = r.normal(size=(channels, k)).astype(np.float32)
    c[:, 1] = c[:, 0]  # two equal centroids: ties go to the smaller position
    want = algorithm.nearest_positions(w, c, channel_axes=channel_axes).reshape(-1)
    table = np.sort(c, axis=-1).reshape(-1)
    n = want.size
    starts = [want, np.zeros(n), r.integers(-5, channels * k + 5, n), np.clip(want + r.integers(-3, 4, n), 0, None)]
    for start in starts:
        got = algorithm.nearest_from_positions(w, c, start.astype(np.int32), channel_axes=channel_axes)
        assert got is not None
        value, position = (np.asarray(t) for t in got)
        np.testing.assert_array_equal(position, want)
        np.testing.assert_array_equal(value.reshape(-1), table[want])
        assert value.shape == shape


_PATH_CHECK = """
import numpy as np
from edgeclust.cluster import algorithm
r = np.random.default_rng(7)
for k in (1, 3, 16, 17, 32, 33, 40, 64, 100, 256):
    w = r.normal(size=(50_003,)).astype(np.float32)
    w[:2] = [np.inf, -np.inf]  # (NaN: numpy's searchsorted puts it last, the kernels where they started)
    c = r.normal(size=(1, k)).astype(np.float32)
    want = algorithm.nearest_positions(w, c, channel_axes=None)
    moved = w + r.normal(scale=0.02, size=w.shape).astype(np.float32)  # some weights cross a midpoint
    exact = algorithm.nearest_positions(moved, c, channel_axes=None)
    for start in (want, np.where(r.random(w.size) < 0.01, k + 3, want), None):  # None: searched from scratch
        start = None if start is None else start.astype(np.int32)
        value, position = algorithm.nearest_from_positions(moved, c, start, channel_axes=None)
        assert np.array_equal(np.asarray(position), exact), k
        assert np.array_equal(np.asarray(value), np.sort(c[0])[exact]), k
print("ok")
"""


@pytest.mark.parametrize("path", ["scalar", "avx2", "best"])
def test_each_vector_path_finds_the_nearest_centroids(path):
    """EDGECLUST_CPU_KERNELS caps the path the library takes when it loads (scalar, AVX2, or the best the CPU
    has: AVX-512 where it exists): in a fresh process each finds every weight's nearest centroid, from stored
    positions (some stale or out of range) and from none, per tensor at every table size a path handles."""
    env = {**os.environ, "EDGECLUST_CPU_KERNELS": path, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", _PATH_CHECK], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_non_contiguous_channel_axes_leave_it_to_the_xla_kernels(cpu_ops):
    w = np.zeros((3, 4, 5), np.float32)
    assert algorithm.channel_stride(w.shape, (0, 2)) is None
    assert algorithm.nearest_from_positions(w, np.zeros((15, 4), np.float32), None, channel_axes=(0, 2)) is None
    assert algorithm.channel_stride(w.shape, (1,)) == 5


@pytest.mark.parametrize("bins", [1, 16, 300, 40000])
def test_cluster_sums_equal_xla_and_do_not_depend_on_chunking(cpu_ops, bins):
    r = np.random.default_rng(bins)
    n = 300_001  # several chunks, and a ragged end
    positions = r.integers(0, bins, n).astype(np.int32)
    values = r.normal(size=n).astype(np.float32)
    got = cpu_ops.edgeclust_cluster_sums(values, positions, bins=bins).numpy()
    np.testing.assert_allclose(got, np.bincount(positions, weights=values, minlength=bins), rtol=1e-4, atol=1e-3)
    again = cpu_ops.edgeclust_cluster_sums(values, positions, bins=bins).numpy()
    np.testing.assert_array_equal(got, again)


def _fit(model, steps=6):
    x = np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(64, 8)).astype(np.float32)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", jit_compile=False)
    model.fit(x, y, batch_size=16, epochs=steps // 4 + 1, verbose=0, shuffle=False)
    return model


def _clustered(k):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, name="d0"), keras.layers.Dense(8, name="d1")])
    return cluster.cluster_weights(model, k, seed=0)


@pytest.mark.parametrize("k", [8, 64])
def test_fine_tuning_with_the_c_ops_follows_the_xla_kernels(monkeypatch, k):
    with_c = _fit(_clustered(k))
    monkeypatch.setattr(kernels, "USE_CPU_OPS", False)
    with_xla = _fit(_clustered(k))
    for a, b in zip(with_c.get_weights(), with_xla.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # per-cluster sums add in another order
    stripped = cluster.strip_clustering(with_c).get_layer("d0").kernel.numpy()
    assert len(np.unique(stripped)) <= k


@pytest.mark.parametrize("policy", ["mixed_float16", "float64"])
@pytest.mark.parametrize("k", [8, 64])
def test_float16_and_float64_models_fine_tune_with_the_xla_kernels(policy, k):
    """The C kernels are float32: a model under keras.config.set_dtype_policy("mixed_float16") or "float64"
    hands its weights and gradients to the XLA kernels instead (it raised a TypeError in the C op before),
    and still holds k values."""
    try:
        keras.config.set_dtype_policy(policy)
        clustered = _fit(_clustered(k))
    finally:
        keras.config.set_dtype_policy("float32")
    assert all(np.isfinite(w).all() for w in clustered.get_weights())
    stripped = cluster.strip_clustering(clustered).get_layer("d0").kernel.numpy()
    assert len(np.unique(stripped)) <= k


def test_inside_an_xla_compiled_model_the_xla_kernels_serve(cpu_ops):
    seen = []

    @tf.function(jit_compile=True)
    def compiled(values, positions):
        seen.append(kernels.cpu_ops())
        return kernels.segment_sums(values, positions, 4)

    out = compiled(tf.ones((10,)), tf.constant([0, 1, 2, 3, 0, 1, 2, 3, 0, 1], tf.int32))
    assert seen == [None]
    np.testing.assert_array_equal(out.numpy(), [3, 3, 2, 2])
    model = _clustered(64)
    x = np.ones((16, 32), np.float32)
    model.compile(optimizer="adam", loss="mse", jit_compile=True)
    model.fit(x, np.zeros((16, 8), np.float32), epochs=1, verbose=0)  # compiles: no C op in the XLA graph


def test_without_a_compiler_one_warning_and_the_xla_kernels(tmp_path):
    code = (
        "import warnings, numpy as np\n"
        "from edgeclust.cluster import kernels\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    assert kernels.cpu_ops() is None\n"
        "    assert kernels.cpu_ops() is None\n"
        "print(len(caught), caught[0].message)\n"
        "print(np.asarray(kernels.segment_sums(np.ones(4, np.float32), np.array([0, 1, 1, 1], np.int32), 2)))\n"
    )
    env = {**os.environ, "CC": "no-such-cc", "XDG_CACHE_HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("1 edgeclust: clustered training uses the slower XLA kernels: no C compiler")
    assert lines[1] == "[1. 3.]"
    assert not list(tmp_path.rglob("*.so"))


def test_the_library_is_built_once_and_named_after_its_inputs(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGECLUST_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = cpu_build.built_library(tf.sysconfig.get_include(), tf.sysconfig.get_lib(), tf.__version__)
    stamp = first.stat().st_mtime_ns
    again = cpu_build.built_library(tf.sysconfig.get_include(), tf.sysconfig.get_lib(), tf.__version__)
    assert again == first and again.stat().st_mtime_ns == stamp
    other = cpu_build.built_library(tf.sysconfig.get_include(), tf.sysconfig.get_lib(), tf.__version__ + "+other")
    assert other != first
    assert sorted(p.name for p in first.parent.iterdir()) == sorted([first.name, other.name])  # no partial files
