"""Reference models used by the demo, the examples, the benchmarks and the tests.

Builders only (untrained, compiled by the caller). keras is imported inside each function so that
`import edgeclust.examples` stays light.
"""

from __future__ import annotations


def mnist_cnn(input_shape=(28, 28, 1), num_classes: int = 10, seed: int | None = 0):
    """The MNIST CNN of the published experiment: 2 conv + 2 dense, about 431K parameters."""
    import keras
    from keras import layers

    if seed is not None:
        keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, 3, activation="relu", name="conv1"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Conv2D(64, 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(256, activation="relu", name="dense1"),
            layers.Dense(num_classes, activation="softmax", name="dense2"),
        ],
        name="mnist_cnn",
    )


def digits_cnn(input_shape=(8, 8, 1), num_classes: int = 10, seed: int | None = 0):
    """A small CNN for the 8x8 digits of the built-in demo (Conv, BatchNorm, depthwise, Dense)."""
    import keras
    from keras import layers

    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1")(inputs)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU()(x)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dwconv")(x)
    x = layers.Conv2D(32, 1, activation="relu", name="pwconv")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu", name="dense1")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="dense2")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def compile_for_training(model, learning_rate: float = 1e-3):
    """Adam, sparse categorical cross-entropy on softmax outputs, accuracy."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
