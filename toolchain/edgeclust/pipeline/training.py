"""Fine-tuning and evaluating Keras classifiers on integer labels, with progress by callback."""

from __future__ import annotations

import numpy as np

from edgeclust.errors import ConfigError
from edgeclust.pipeline.progress import Stages


def outputs_are_probabilities(model, x: np.ndarray) -> bool:
    """Whether the model ends in a softmax (rows non-negative, summing to 1) rather than logits."""
    y = np.asarray(model.predict(x[:32], verbose=0, batch_size=32), dtype=np.float64)
    return bool((y >= -1e-6).all() and np.allclose(y.sum(axis=-1), 1.0, atol=1e-3))


def predict(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.asarray(model.predict(x, verbose=0, batch_size=batch_size))


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of outputs (logits, probabilities or quantized scores) against integer labels."""
    return float(np.mean(np.argmax(outputs.reshape(len(labels), -1), axis=-1) == labels))


def finetune(model, x, y, *, epochs: int, learning_rate: float, batch_size: int, seed: int,
             stages: Stages | None = None, from_logits: bool | None = None):
    """Fine-tune `model` in place with Adam and sparse categorical cross-entropy; returns the history."""
    import keras

    if epochs < 0:
        raise ConfigError(f"`epochs` must be >= 0. Received: epochs={epochs}")
    if not learning_rate > 0:
        raise ConfigError(f"`learning_rate` must be > 0. Received: learning_rate={learning_rate}")
    if epochs == 0:
        return None
    if from_logits is None:
        from_logits = not outputs_are_probabilities(model, x)
    keras.utils.set_random_seed(seed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
    )
    callbacks = [_ProgressCallback(stages, epochs, int(np.ceil(len(x) / batch_size)))] if stages else []
    return model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=callbacks)


class _ProgressCallback:
    """Sends a tick every few training steps and a line per epoch (a keras.callbacks.Callback)."""

    def __new__(cls, stages: Stages, epochs: int, steps: int):
        import keras

        class Callback(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.epoch = 0
                self.every = max(1, steps // 50)

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                if (batch + 1) % self.every == 0 or batch + 1 == steps:
                    loss = (logs or {}).get("loss")
                    loss_text = f", loss {float(loss):.4f}" if loss is not None else ""
                    stages.tick(f"epoch {self.epoch + 1}/{epochs}, step {batch + 1}/{steps}{loss_text}")

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                stages.info(
                    f"epoch {epoch + 1}/{epochs}: loss {float(logs.get('loss', float('nan'))):.4f}, "
                    f"accuracy {float(logs.get('accuracy', float('nan'))):.4f}"
                )

        return Callback()
