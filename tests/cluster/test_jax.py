"""The JAX backend: clustering, fine-tuning (a built CNN and an unbuilt Sequential LSTM), stripping and .keras
saving under KERAS_BACKEND=jax in a process where TensorFlow cannot be imported; then `edgeclust build` under
TensorFlow turns the JAX-clustered .keras file into a .tflite whose weights hold at most N values."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tensorflow_only  # runs the JAX half in its own process, the build under TensorFlow

N = 8
SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "jax"

    class NoTensorFlow:  # as in an install without TensorFlow: Keras itself then never imports it either
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "tensorflow":
                raise ModuleNotFoundError(f"No module named {name!r}")

    sys.meta_path.insert(0, NoTensorFlow())
    import keras, numpy as np
    from edgeclust import cluster

    out, n = sys.argv[1], int(sys.argv[2])
    data = np.load(os.path.join(out, "data.npz"))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(32, activation="relu", name="hidden"),
                              keras.layers.Dense(10, name="logits")])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(3e-3), loss, metrics=["accuracy"])
    model.fit(data["x_train"], data["y_train"], batch_size=32, epochs=3, verbose=0)
    wrapped = cluster.cluster_weights(model, n, seed=0)
    wrapped.compile(keras.optimizers.Adam(1e-4), loss, metrics=["accuracy"])
    wrapped.fit(data["x_train"], data["y_train"], batch_size=32, epochs=1, verbose=0)
    wrapped.save(os.path.join(out, "wrapped.keras"))
    restored = keras.models.load_model(os.path.join(out, "wrapped.keras"))
    stripped = cluster.strip_clustering(restored)
    stripped.save(os.path.join(out, "stripped.keras"))
    x = data["x_test"]

    lstm = cluster.cluster_weights(keras.Sequential([keras.layers.Embedding(20, 8), keras.layers.LSTM(8),
                                                     keras.layers.Dense(1)]), 4, seed=0)
    tokens = np.random.default_rng(0).integers(0, 20, (32, 6))
    lstm.compile("adam", "mse")
    lstm_history = lstm.fit(tokens, np.random.default_rng(1).normal(size=(32, 1)), epochs=1, verbose=0)
    print(json.dumps({
        "backend": keras.backend.backend(),
        "tensorflow_imported": any(m.split(".")[0] == "tensorflow" for m in sys.modules),
        "restored_matches": float(np.abs(np.asarray(restored(x)) - np.asarray(wrapped(x))).max()),
        "stripped_matches": float(np.abs(np.asarray(stripped(x)) - np.asarray(wrapped(x))).max()),
        "unique": {l.name: len(np.unique(np.asarray(l.kernel))) for l in stripped.layers if l.weights},
        "accuracy": float(np.mean(np.argmax(np.asarray(stripped(x)), -1) == data["y_test"])),
        "lstm_loss": lstm_history.history["loss"],
        "lstm_unique": max(len(np.unique(np.asarray(v))) for l in cluster.strip_clustering(lstm).layers
                           for v in l.weights if "kernel" in v.path or "embeddings" in v.path),
    }))
""")


def test_cluster_under_jax_then_build_under_tensorflow(tmp_path: Path, repo_root: Path, digits):
    from edgeclust import data as edata
    from edgeclust.tflite import flatbuffer, inspect

    edata.save_npz(tmp_path / "data.npz", digits.subset(train=600, test=100))
    env = {**os.environ, "PYTHONPATH": str(repo_root / "toolchain"), "KERAS_BACKEND": "jax"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(N)], capture_output=True, text=True, env=env, timeout=900
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax" and result["tensorflow_imported"] is False
    assert result["restored_matches"] == 0.0 and result["stripped_matches"] < 1e-5
    assert all(2 <= count <= N for count in result["unique"].values()), result["unique"]
    assert result["accuracy"] > 0.5
    assert np.isfinite(result["lstm_loss"]).all() and result["lstm_unique"] <= 4

    env = {
        **os.environ,
        "PYTHONPATH": str(repo_root / "toolchain"),
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeclust",
            "build",
            str(tmp_path / "stripped.keras"),
            "--board",
            "qemu_mps2_an386",
            "--data",
            str(tmp_path / "data.npz"),
            "--clusters",
            "0",
            "--quantize",
            "float32",
            "--parity-samples",
            "20",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    verified = inspect.verify(flatbuffer.read_model_file(tmp_path / "out" / "model_float32.tflite"), N)
    assert verified.passed and verified.checked == 3, verified.summary()
