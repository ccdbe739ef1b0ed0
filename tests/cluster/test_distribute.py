"""Fine-tuning a clustered model inside tf.distribute.MirroredStrategy with 2 logical CPU devices.

Logical devices must be configured before TensorFlow initialises, so the run happens in a subprocess.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.tensorflow_only  # tf.distribute

SCRIPT = textwrap.dedent("""
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    from edgeclust import cluster

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    r = np.random.default_rng(0)
    x = r.normal(size=(256, 8)).astype("float32"); y = r.integers(0, 3, 256)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu", name="hidden"),
                                  keras.layers.Dense(3, name="out")])
        wrapped = cluster.cluster_weights(model, 4, seed=0, cluster_per_channel=True)
        wrapped.get_layer("cluster_hidden").clustering  # built under the scope
        # beyond MAX_CLUSTERS_COMPARED clusters each replica stores and updates positions
        fast = keras.Sequential([keras.Input((8,)), cluster.ClusterWeights(keras.layers.Dense(64), 130, seed=0)])
        for m in (wrapped, fast):
            m.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    kernel0 = wrapped.get_layer("cluster_hidden").layer.kernel.numpy().copy()
    idx0 = fast.layers[0]._index_vars[0].numpy().copy()
    history = wrapped.fit(x, y, batch_size=32, epochs=2, verbose=0)
    fast.fit(x, y % 3, batch_size=32, epochs=1, verbose=0)  # logits 0..2 of 64: enough to move weights
    stripped = cluster.strip_clustering(wrapped)
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "loss": history.history["loss"],
        "moved": float(np.abs(wrapped.get_layer("cluster_hidden").layer.kernel.numpy() - kernel0).max()),
        "unique_per_channel": max(len(np.unique(c)) for c in stripped.get_layer("hidden").kernel.numpy().T),
        "fast_indices_changed": int((fast.layers[0]._index_vars[0].numpy() != idx0).sum()),
    }))
""")


def test_fine_tuning_under_mirrored_strategy(repo_root: Path):
    env = {**os.environ, "PYTHONPATH": str(repo_root / "toolchain")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["loss"][1] < result["loss"][0]
    assert result["moved"] > 0
    assert result["unique_per_channel"] <= 4
    assert result["fast_indices_changed"] > 0
