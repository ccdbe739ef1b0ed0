"""Common Keras architectures as users bring them, for the model-zoo matrix (scripts/zoo_matrix.py) and tests.

Each builder returns an untrained keras.Model with a fixed input shape (random weights, seeded);
`dataset(model)` gives it random inputs and targets in the DATA.npz convention (class labels for a softmax
head, the model's own outputs as targets otherwise). keras is imported inside each function so that
`import edgeclust.zoo` stays light.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgeclust.data import Dataset

HAR_STEPS, HAR_CHANNELS, HAR_CLASSES = 128, 9, 6  # UCI HAR: 2.56 s at 50 Hz, body acc/gyro/total acc x y z
SEQ_STEPS = 32


def _keras(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    return keras, keras.layers


def _spread_head(model, seed: int):
    """Random biases for the classifier: an untrained keras.applications model's features die out, its logits
    are all equal and its softmax input scale (7.84e-9) is one TFLM refuses (see parity.check_tflm_can_run)."""
    head = [layer for layer in model.layers if getattr(layer, "bias", None) is not None][-1]
    kernel, bias = head.get_weights()
    head.set_weights([kernel, np.random.default_rng(seed).normal(size=bias.shape).astype(bias.dtype)])
    return model


def mobilenet_v1(seed: int = 0):
    """keras.applications.MobileNet, alpha 0.25, 96x96x3, 10 classes (classifier biases random)."""
    keras, _ = _keras(seed)
    model = keras.applications.MobileNet(input_shape=(96, 96, 3), alpha=0.25, weights=None, classes=10)
    return _spread_head(model, seed)


def mobilenet_v1_untrained(seed: int = 0):
    """keras.applications.MobileNet as `weights=None` leaves it: equal logits, a softmax TFLM cannot take."""
    keras, _ = _keras(seed)
    return keras.applications.MobileNet(input_shape=(96, 96, 3), alpha=0.25, weights=None, classes=10)


def mobilenet_v2(seed: int = 0):
    """keras.applications.MobileNetV2, alpha 0.35, 96x96x3, 10 classes (classifier biases random)."""
    keras, _ = _keras(seed)
    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)
    return _spread_head(model, seed)


def mobilenet_v3_small_minimalistic(seed: int = 0):
    """keras.applications.MobileNetV3Small, minimalistic (ReLU, no squeeze-excite), alpha 0.75, 96x96x3."""
    keras, _ = _keras(seed)
    model = keras.applications.MobileNetV3Small(
        input_shape=(96, 96, 3), alpha=0.75, minimalistic=True, weights=None, classes=10, include_preprocessing=False
    )
    return _spread_head(model, seed)


def mobilenet_v3_small(seed: int = 0):
    """keras.applications.MobileNetV3Small (hard-swish, squeeze-excite), alpha 0.75, 96x96x3."""
    keras, _ = _keras(seed)
    model = keras.applications.MobileNetV3Small(
        input_shape=(96, 96, 3), alpha=0.75, weights=None, classes=10, include_preprocessing=False
    )
    return _spread_head(model, seed)


def tutorial_cnn(seed: int = 0):
    """TensorFlow's CIFAR-10 tutorial CNN: 3 Conv2D + 2 MaxPooling2D, Flatten, Dense 64, Dense 10."""
    keras, layers = _keras(seed)
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name="tutorial_cnn",
    )


def rescaling_cnn(seed: int = 0):
    """Rescaling(1/255) input (pixels 0..255), Conv2D, MaxPooling2D, GlobalAveragePooling2D, softmax."""
    keras, layers = _keras(seed)
    inputs = keras.Input((28, 28, 1))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x), name="rescaling_cnn")


def normalization_mlp(seed: int = 0):
    """Normalization input (mean and variance per feature, as adapt() sets them), Dense 32, Dense 3 softmax."""
    keras, layers = _keras(seed)
    rng = np.random.default_rng(seed)
    inputs = keras.Input((8,))
    norm = layers.Normalization(mean=rng.normal(size=8), variance=rng.uniform(0.5, 2.0, size=8))
    x = layers.Dense(32, activation="relu")(norm(inputs))
    return keras.Model(inputs, layers.Dense(3, activation="softmax")(x), name="normalization_mlp")


def mlp(seed: int = 0):
    """A plain MLP on 64 features: Dense 64, Dense 32, Dense 10 softmax."""
    keras, layers = _keras(seed)
    return keras.Sequential(
        [
            keras.Input((64,)),
            layers.Dense(64, activation="relu"),
            layers.Dense(32, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name="mlp",
    )


def strided_dilated_cnn(seed: int = 0):
    """Conv2D stride 2, Conv2D dilation 2, 'same' and 'valid' padding, GlobalMaxPooling2D."""
    keras, layers = _keras(seed)
    inputs = keras.Input((32, 32, 1))
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(16, 3, dilation_rate=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = layers.GlobalMaxPooling2D()(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x), name="strided_dilated_cnn")


def har_conv1d(seed: int = 0):
    """Human-activity recognition (UCI HAR shape 128x9): Conv1D, MaxPooling1D, Conv1D, GlobalAveragePooling1D."""
    keras, layers = _keras(seed)
    inputs = keras.Input((HAR_STEPS, HAR_CHANNELS))
    x = layers.Conv1D(16, 5, activation="relu")(inputs)
    x = layers.MaxPooling1D(2)(x)
    x = layers.Conv1D(32, 5, activation="relu")(x)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(HAR_CLASSES, activation="softmax")(x), name="har_conv1d")


def _recurrent(kind: str, seed: int, bidirectional: bool = False, steps: int = SEQ_STEPS, units: int = 24):
    keras, layers = _keras(seed)
    inputs = keras.Input((steps, HAR_CHANNELS))
    layer = getattr(layers, kind)(units)
    x = layers.Bidirectional(layer)(inputs) if bidirectional else layer(inputs)
    name = f"{'bi' if bidirectional else ''}{kind.lower()}"
    return keras.Model(inputs, layers.Dense(HAR_CLASSES, activation="softmax")(x), name=name)


def lstm(seed: int = 0, steps: int = SEQ_STEPS, units: int = 24):
    """Keras LSTM(units, 24) over `steps` (32) steps of 9 channels (not unrolled, as users write it), Dense softmax."""
    return _recurrent("LSTM", seed, steps=steps, units=units)


def gru(seed: int = 0, steps: int = SEQ_STEPS, units: int = 24):
    """Keras GRU(units, 24) over `steps` (32) steps of 9 channels (not unrolled), Dense softmax."""
    return _recurrent("GRU", seed, steps=steps, units=units)


def simple_rnn(seed: int = 0, steps: int = SEQ_STEPS, units: int = 24):
    """Keras SimpleRNN(units, 24) over `steps` (32) steps of 9 channels, Dense softmax."""
    return _recurrent("SimpleRNN", seed, steps=steps, units=units)


def bidirectional_lstm(seed: int = 0, steps: int = SEQ_STEPS, units: int = 24):
    """Bidirectional(LSTM(units, 24)) over `steps` (32) steps of 9 channels, Dense softmax."""
    return _recurrent("LSTM", seed, bidirectional=True, steps=steps, units=units)


def unet(seed: int = 0):
    """A small U-Net on 32x32x1: two levels down (MaxPooling2D), Conv2DTranspose and UpSampling2D up,
    Concatenate skips, a 1-channel sigmoid mask."""
    keras, layers = _keras(seed)
    inputs = keras.Input((32, 32, 1))
    c1 = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    p1 = layers.MaxPooling2D()(c1)
    c2 = layers.Conv2D(16, 3, padding="same", activation="relu")(p1)
    p2 = layers.MaxPooling2D()(c2)
    b = layers.Conv2D(32, 3, padding="same", activation="relu")(p2)
    u2 = layers.Conv2DTranspose(16, 2, strides=2, padding="same", activation="relu")(b)
    c3 = layers.Conv2D(16, 3, padding="same", activation="relu")(layers.Concatenate()([u2, c2]))
    u1 = layers.UpSampling2D()(c3)
    c4 = layers.Conv2D(8, 3, padding="same", activation="relu")(layers.Concatenate()([u1, c1]))
    return keras.Model(inputs, layers.Conv2D(1, 1, activation="sigmoid")(c4), name="unet")


def fire_module(seed: int = 0):
    """SqueezeNet: Conv2D, MaxPooling2D, a fire module (squeeze 1x1, expand 1x1 and 3x3, Concatenate)."""
    keras, layers = _keras(seed)
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(32, 3, strides=2, activation="relu")(inputs)
    x = layers.MaxPooling2D(3, strides=2)(x)
    squeeze = layers.Conv2D(8, 1, activation="relu")(x)
    expand1 = layers.Conv2D(16, 1, activation="relu")(squeeze)
    expand3 = layers.Conv2D(16, 3, padding="same", activation="relu")(squeeze)
    x = layers.Concatenate()([expand1, expand3])
    x = layers.Conv2D(10, 1)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Activation("softmax")(x), name="fire_module")


def squeeze_excite(seed: int = 0):
    """A Conv2D block with squeeze-excite: GlobalAveragePooling2D, Dense ReLU, Dense sigmoid, Multiply."""
    keras, layers = _keras(seed)
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(inputs)
    se = layers.GlobalAveragePooling2D()(x)
    se = layers.Dense(8, activation="relu")(se)
    se = layers.Dense(32, activation="sigmoid")(se)
    x = layers.Multiply()([x, layers.Reshape((1, 1, 32))(se)])
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x), name="squeeze_excite")


def sigmoid_head(seed: int = 0):
    """A binary classifier: Conv2D, GlobalAveragePooling2D, Dense(1, sigmoid)."""
    keras, layers = _keras(seed)
    inputs = keras.Input((16, 16, 1))
    x = layers.Conv2D(8, 3, activation="relu")(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x), name="sigmoid_head")


def tanh_head(seed: int = 0):
    """A regressor on 16 features with outputs in (-1, 1): Dense 32, Dense(2, tanh)."""
    keras, layers = _keras(seed)
    inputs = keras.Input((16,))
    x = layers.Dense(32, activation="relu")(inputs)
    return keras.Model(inputs, layers.Dense(2, activation="tanh")(x), name="tanh_head")


def residual_cnn(seed: int = 0):
    """ResNet-style: Conv2D + BatchNormalization blocks with Add skips (a 1x1 Conv2D when the shape changes)."""
    keras, layers = _keras(seed)
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    for filters, strides in ((16, 1), (32, 2)):
        y = layers.Conv2D(filters, 3, strides=strides, padding="same")(x)
        y = layers.BatchNormalization()(y)
        y = layers.Activation("relu")(y)
        y = layers.Conv2D(filters, 3, padding="same")(y)
        y = layers.BatchNormalization()(y)
        skip = x if strides == 1 else layers.Conv2D(filters, 1, strides=strides)(x)
        x = layers.Activation("relu")(layers.Add()([skip, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x), name="residual_cnn")


def ds_cnn_kws(seed: int = 0):
    """Keyword spotting DS-CNN (MLPerf Tiny shape, 49x10 MFCC): Conv2D, depthwise-separable blocks with BN."""
    keras, layers = _keras(seed)
    inputs = keras.Input((49, 10, 1))
    x = layers.Conv2D(32, (10, 4), strides=2, padding="same", activation="relu")(inputs)
    for _ in range(2):
        x = layers.DepthwiseConv2D(3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2D(32, 1)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(12, activation="softmax")(x), name="ds_cnn_kws")


def leaky_relu_cnn(seed: int = 0):
    """Conv2D + LeakyReLU, ZeroPadding2D, MaxPooling2D, Flatten, Dense softmax."""
    keras, layers = _keras(seed)
    inputs = keras.Input((16, 16, 1))
    x = layers.LeakyReLU(0.1)(layers.Conv2D(8, 3)(inputs))
    x = layers.ZeroPadding2D(1)(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    return keras.Model(inputs, layers.Dense(4, activation="softmax")(x), name="leaky_relu_cnn")


MODELS: dict[str, Callable] = {
    "mobilenet_v1": mobilenet_v1,
    "mobilenet_v1_untrained": mobilenet_v1_untrained,
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_small_minimalistic": mobilenet_v3_small_minimalistic,
    "mobilenet_v3_small": mobilenet_v3_small,
    "tutorial_cnn": tutorial_cnn,
    "rescaling_cnn": rescaling_cnn,
    "normalization_mlp": normalization_mlp,
    "mlp": mlp,
    "strided_dilated_cnn": strided_dilated_cnn,
    "residual_cnn": residual_cnn,
    "ds_cnn_kws": ds_cnn_kws,
    "har_conv1d": har_conv1d,
    "lstm": lstm,
    "gru": gru,
    "simple_rnn": simple_rnn,
    "bidirectional_lstm": bidirectional_lstm,
    "unet": unet,
    "fire_module": fire_module,
    "squeeze_excite": squeeze_excite,
    "sigmoid_head": sigmoid_head,
    "tanh_head": tanh_head,
    "leaky_relu_cnn": leaky_relu_cnn,
}


def build(name: str, seed: int = 0, **sizes):
    """The zoo model called `name` (see MODELS), untrained, weights seeded; `sizes` go to builders that take
    them (the recurrent ones: steps, units)."""
    if name not in MODELS:
        raise KeyError(f"no zoo model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name](seed, **sizes)


def dataset(model, *, train: int = 64, test: int = 16, seed: int = 0) -> Dataset:
    """Random inputs for `model` (uniform 0..1 for images, 0..255 under a Rescaling input, normal otherwise)
    with targets: class labels (the model's own argmax) for a softmax head, its outputs otherwise."""
    rng = np.random.default_rng(seed)
    shape = tuple(model.inputs[0].shape[1:])
    n = train + test
    if len(shape) == 3 and any(type(layer).__name__ == "Rescaling" for layer in model.layers):
        x = rng.integers(0, 256, size=(n, *shape)).astype(np.float32)
    elif len(shape) == 3:
        x = rng.uniform(0.0, 1.0, size=(n, *shape)).astype(np.float32)
    else:
        x = rng.normal(size=(n, *shape)).astype(np.float32)
    y = np.asarray(model.predict(x, verbose=0, batch_size=32))
    activation = getattr(getattr(model.layers[-1], "activation", None), "__name__", "")
    if activation == "softmax" and y.ndim == 2 and y.shape[1] > 1:  # class labels, every class present
        classes = y.shape[1]
        y = rng.integers(0, classes, size=n).astype(np.int64)
        y[: min(classes, n)] = np.arange(min(classes, n))
    else:
        y = y.astype(np.float32)
    return Dataset(x[:train], y[:train], x[train:], y[train:])
