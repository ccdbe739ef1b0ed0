"""Fine-tuning and evaluating Keras models for their task (pipeline/task.py: the model's own loss, or the task's
natural one), with progress by callback; and fine-tuning a clustered model epoch by epoch until its metric is
back within a target of the unclustered one's."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgeclust.errors import ConfigError
from edgeclust.pipeline.progress import Stages


def outputs_are_probabilities(model, x: np.ndarray) -> bool:
    """Whether the model ends in a softmax (rows non-negative, summing to 1) rather than logits."""
    y = np.asarray(model.predict(x[:32], verbose=0, batch_size=32), dtype=np.float64)
    return bool((y >= -1e-6).all() and np.allclose(y.sum(axis=-1), 1.0, atol=1e-3))


def last_activation(model) -> str | None:
    """The name of the activation the model's output goes through last ("softmax", "sigmoid", "linear", ...),
    or None when the last layer does not say."""
    layer = model.layers[-1] if getattr(model, "layers", None) else None
    while layer is not None and hasattr(layer, "layers") and layer.layers:  # a nested model: its last layer
        layer = layer.layers[-1]
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None) if activation is not None else None
    return name if isinstance(name, str) else None


def model_task(model, data, *, loss=None, asked: str = "auto"):
    """The model's task (pipeline/task.py) from its output, compiled loss (`loss`, as the file stores it) and
    `data`; `asked` (--task) overrides the inference."""
    from edgeclust.pipeline.task import infer_task

    output_shape = tuple(model.outputs[0].shape[1:])
    activation = last_activation(model)
    if activation in ("softmax", "sigmoid"):
        probabilities = True
    elif activation is not None:
        probabilities = False
    else:
        y = np.asarray(model.predict(data.x_train[:32], verbose=0, batch_size=32), dtype=np.float64)
        probabilities = bool((y >= -1e-6).all() and (y <= 1 + 1e-6).all())
    return infer_task(output_shape, data, loss=loss, probabilities=probabilities, asked=asked)


def predict(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.asarray(model.predict(x, verbose=0, batch_size=batch_size))


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of outputs (logits, probabilities or quantized scores) against integer labels."""
    return float(np.mean(np.argmax(outputs.reshape(len(labels), -1), axis=-1) == labels))


def _compile(model, x, learning_rate: float, from_logits: bool | None, task=None):
    import keras

    if not learning_rate > 0:
        raise ConfigError(f"`learning_rate` must be > 0. Received: learning_rate={learning_rate}")
    if task is not None:
        loss, _ = task.loss_for_training()
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=[task.training_metric()])
        return
    if from_logits is None:
        from_logits = not outputs_are_probabilities(model, x)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
    )


def finetune(
    model,
    x,
    y,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    stages: Stages | None = None,
    from_logits: bool | None = None,
    task=None,
):
    """Fine-tune `model` in place with Adam and the task's loss (pipeline/task.Task; None: sparse categorical
    cross-entropy on integer labels); returns the history."""
    import keras

    if epochs < 0:
        raise ConfigError(f"`epochs` must be >= 0. Received: epochs={epochs}")
    if epochs == 0:
        return None
    keras.utils.set_random_seed(seed)
    _compile(model, x, learning_rate, from_logits, task)
    callbacks = [_ProgressCallback(stages, epochs, int(np.ceil(len(x) / batch_size)))] if stages else []
    return model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=callbacks)


class _ProgressCallback:
    """Sends a tick every few training steps and a line per epoch (a keras.callbacks.Callback)."""

    def __new__(cls, stages: Stages, epochs: int, steps: int, first_epoch: int = 0):
        import keras

        class Callback(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.epoch = first_epoch
                self.every = max(1, steps // 50)

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = first_epoch + epoch

            def on_train_batch_end(self, batch, logs=None):
                if (batch + 1) % self.every == 0 or batch + 1 == steps:
                    loss = (logs or {}).get("loss")
                    loss_text = f", loss {float(loss):.4f}" if loss is not None else ""
                    stages.tick(f"epoch {self.epoch + 1}/{epochs}, step {batch + 1}/{steps}{loss_text}")

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                metrics = "".join(
                    f", {name.replace('_', ' ')} {float(value):.4f}" for name, value in logs.items() if name != "loss"
                )
                stages.info(
                    f"epoch {first_epoch + epoch + 1}/{epochs}: loss {float(logs.get('loss', float('nan'))):.4f}"
                    f"{metrics}"
                )

        return Callback()


@dataclass(frozen=True)
class EpochAccuracy:
    """The validation metric after `epoch` epochs of fine-tuning (0: as clustered; `accuracy` holds the task's
    metric, e.g. MSE for regression), and how much worse than the unclustered model (points, or MSE rise)."""

    epoch: int
    accuracy: float
    drop_points: float


@dataclass(frozen=True)
class Recovery:
    """What fine-tuning to a target did: the curve, the epoch kept (the best), and whether the target was met."""

    reference_accuracy: float  # the unclustered model on the validation split
    max_drop_points: float
    max_epochs: int
    validation_size: int
    curve: tuple[EpochAccuracy, ...]
    best_epoch: int
    target_met: bool
    metric: str = "top-1 accuracy"  # what `reference_accuracy` and the curve's values measure

    @property
    def best(self) -> EpochAccuracy:
        return self.curve[self.best_epoch]

    def as_dict(self) -> dict:
        return {**asdict(self), "curve": [asdict(point) for point in self.curve]}


def validation_split(x: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    """(x_train, y_train, x_val, y_val): a seeded random `fraction` of the training data set apart."""
    if not 0 < fraction < 1:
        raise ConfigError(f"`validation_fraction` must be between 0 and 1. Received: {fraction}")
    n_val = max(1, int(round(len(x) * fraction)))
    if n_val >= len(x):
        raise ConfigError(
            f"{len(x)} training examples are too few to set {n_val} apart for validation; give more training data"
        )
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def finetune_to_target(
    model,
    reference,
    x,
    y,
    *,
    max_drop_points: float,
    max_epochs: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    validation_fraction: float = 0.1,
    stages: Stages | None = None,
    from_logits: bool | None = None,
    task=None,
) -> Recovery:
    """Fine-tune the clustered `model` in place, one epoch at a time, until its accuracy on a validation split
    of (x, y) is at most `max_drop_points` below the unclustered `reference` model's, or `max_epochs` have run.

    Stops as soon as the target is met; otherwise keeps the weights of the best epoch (0: none helped)."""
    import keras

    if not max_drop_points >= 0:
        raise ConfigError(f"`max_drop` must be >= 0 points. Received: {max_drop_points}")
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 0:
        raise ConfigError(f"`max_epochs` must be an integer >= 0. Received: {max_epochs!r}")
    x_train, y_train, x_val, y_val = validation_split(x, y, validation_fraction, seed)

    def measure(m) -> float:
        return task.score(predict(m, x_val), y_val) if task is not None else accuracy(predict(m, x_val), y_val)

    def worse(value: float) -> float:
        return (
            task.drop(reference_accuracy, value) if task is not None else round((reference_accuracy - value) * 100, 6)
        )

    def better(a: EpochAccuracy, b: EpochAccuracy) -> bool:
        return a.drop_points < b.drop_points

    metric = task.metric if task is not None else "top-1 accuracy"
    reference_accuracy = measure(reference)

    def point(epoch: int) -> EpochAccuracy:
        value = measure(model)
        return EpochAccuracy(epoch, value, worse(value))

    def report(p: EpochAccuracy) -> None:
        if stages:
            label = "as clustered" if p.epoch == 0 else f"epoch {p.epoch}/{max_epochs}"
            if task is None or task.classification:
                how = f"{p.drop_points:+.2f} points below"
            else:
                how = f"{p.drop_points:+.6g} above"
            stages.info(
                f"{label}: validation {'accuracy' if metric == 'top-1 accuracy' else metric} {p.accuracy:.4f} "
                f"({how} {reference_accuracy:.4f}; "
                f"target {max_drop_points:g})"
            )

    curve = [point(0)]
    report(curve[0])
    best, kept = 0, [np.array(v) for v in model.get_weights()]
    if curve[0].drop_points > max_drop_points and max_epochs > 0:
        keras.utils.set_random_seed(seed)
        _compile(model, x_train, learning_rate, from_logits, task)
        steps = int(np.ceil(len(x_train) / batch_size))
        for epoch in range(1, max_epochs + 1):
            callbacks = [_ProgressCallback(stages, max_epochs, steps, first_epoch=epoch - 1)] if stages else []
            model.fit(x_train, y_train, epochs=1, batch_size=batch_size, shuffle=True, verbose=0, callbacks=callbacks)
            curve.append(point(epoch))
            report(curve[-1])
            if better(curve[-1], curve[best]):
                best, kept = epoch, [np.array(v) for v in model.get_weights()]
            if curve[-1].drop_points <= max_drop_points:
                break
    model.set_weights(kept)
    return Recovery(
        reference_accuracy,
        max_drop_points,
        max_epochs,
        len(x_val),
        tuple(curve),
        best,
        curve[best].drop_points <= max_drop_points,
        metric,
    )
