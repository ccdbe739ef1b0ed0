"""Same model, data, seed and options -> the same bytes, in any process: seed every generator and make
TensorFlow's kernels deterministic before anything random or parallel runs."""

from __future__ import annotations


def make_deterministic(seed: int) -> None:
    """Seed Python, numpy and the Keras backend; on TensorFlow, also ask for deterministic op kernels (which
    fixes the order of parallel reductions and refuses ops that have no deterministic implementation)."""
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
