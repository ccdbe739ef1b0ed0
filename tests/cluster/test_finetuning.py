"""Fine-tuning on real data (an MNIST subset): it never ends below where it started, at any usual learning
rate, and fine-tuning to a target stops when the target is met, or says it was not and keeps the best epoch."""

import numpy as np
import pytest

from edgeclust import cluster
from edgeclust.pipeline.progress import Stages
from edgeclust.pipeline.training import accuracy, finetune, finetune_to_target, predict, validation_split

#: One image of the 500 test images is 0.2 points; two points is well beyond the spread between seeds.
NOISE_POINTS = 2.0


def _test_accuracy(model, data) -> float:
    return accuracy(predict(model, data.x_test), data.y_test) * 100


@pytest.mark.parametrize("learning_rate", [1e-5, 1e-4, 1e-3])
def test_fine_tuning_never_ends_below_its_start(trained_mnist_cnn, mnist_small, learning_rate):
    wrapped = cluster.cluster_weights(trained_mnist_cnn, 8, seed=0)
    start = _test_accuracy(cluster.strip_clustering(wrapped), mnist_small)
    finetune(
        wrapped, mnist_small.x_train, mnist_small.y_train, epochs=1, learning_rate=learning_rate, batch_size=64, seed=0
    )
    end = _test_accuracy(cluster.strip_clustering(wrapped), mnist_small)
    assert end >= start - NOISE_POINTS, f"lr {learning_rate:g}: {start:.1f}% -> {end:.1f}%"


def test_fine_tuning_to_a_reachable_target_stops_when_met(trained_mnist_cnn, mnist_small):
    wrapped = cluster.cluster_weights(trained_mnist_cnn, 2, seed=0)  # 2 clusters: far below the reference
    lines = []
    stages = Stages(["fine-tune"], lambda event: lines.append(event.detail) if event.kind == "info" else None)
    stages.start("fine-tune")
    result = finetune_to_target(
        wrapped,
        trained_mnist_cnn,
        mnist_small.x_train,
        mnist_small.y_train,
        max_drop_points=0.5,
        max_epochs=5,
        learning_rate=1e-3,
        batch_size=64,
        seed=0,
        stages=stages,
    )
    assert result.target_met and result.validation_size == 300
    assert result.curve[-1].drop_points <= 0.5 < min(p.drop_points for p in result.curve[:-1])
    assert len(result.curve) <= 5, "stopped as soon as the target was met"
    assert result.best_epoch == len(result.curve) - 1
    assert sum("validation accuracy" in line for line in lines) == len(result.curve)
    as_dict = result.as_dict()
    assert as_dict["target_met"] is True and len(as_dict["curve"]) == len(result.curve)


def test_fine_tuning_to_an_unreachable_target_says_so_and_keeps_the_best_epoch(trained_mnist_cnn, mnist_small):
    wrapped = cluster.cluster_weights(trained_mnist_cnn, 2, seed=0)
    result = finetune_to_target(
        wrapped,
        trained_mnist_cnn,
        mnist_small.x_train,
        mnist_small.y_train,
        max_drop_points=0.0,
        max_epochs=2,
        learning_rate=1e-6,
        batch_size=64,
        seed=0,
    )
    assert not result.target_met
    assert [p.epoch for p in result.curve] == [0, 1, 2]
    best = max(result.curve, key=lambda p: p.accuracy)
    assert result.best.accuracy == best.accuracy
    # the model holds the best epoch's weights: the split is seeded, so its accuracy is measured again exactly
    _, _, x_val, y_val = validation_split(mnist_small.x_train, mnist_small.y_train, 0.1, 0)
    assert accuracy(predict(wrapped, x_val), y_val) == pytest.approx(best.accuracy)
    assert accuracy(predict(cluster.strip_clustering(wrapped), x_val), y_val) == pytest.approx(best.accuracy)


def test_targets_are_validated(trained_mnist_cnn, mnist_small):
    from edgeclust.errors import ConfigError

    with pytest.raises(ConfigError, match="max_drop"):
        finetune_to_target(
            trained_mnist_cnn,
            trained_mnist_cnn,
            mnist_small.x_train,
            mnist_small.y_train,
            max_drop_points=-1,
            max_epochs=1,
            learning_rate=1e-4,
            batch_size=64,
            seed=0,
        )
    with pytest.raises(ConfigError, match="too few"):
        finetune_to_target(
            trained_mnist_cnn,
            trained_mnist_cnn,
            np.zeros((1, 28, 28, 1)),
            np.zeros(1, int),
            max_drop_points=1,
            max_epochs=1,
            learning_rate=1e-4,
            batch_size=64,
            seed=0,
        )
