"""Loading users' models: what Keras can load is accepted, the rest is refused in one clear line."""

import zipfile

import numpy as np
import pytest

from edgeclust.data import Dataset
from edgeclust.errors import DataError, ModelFormatError
from edgeclust.pipeline.loading import check_data_fits, load_keras_model


@pytest.fixture(scope="module")
def small_model():
    import keras

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    return model


def test_keras_and_h5_load(tmp_path, small_model):
    small_model.save(tmp_path / "m.keras")
    small_model.save(tmp_path / "m.h5")
    x = np.ones((2, 8, 8, 1), np.float32)
    for name in ("m.keras", "m.h5"):
        loaded = load_keras_model(tmp_path / name)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), small_model.predict(x, verbose=0))


def test_saved_model_is_refused_with_what_to_do(tmp_path, small_model):
    small_model.export(tmp_path / "sm", verbose=False)
    with pytest.raises(ModelFormatError, match=r"SavedModel.*model.save\('model.keras'\)"):
        load_keras_model(tmp_path / "sm")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.keras", None, "no such file"),
        ("empty.keras", b"", "empty file"),
        ("random.keras", bytes(range(256)) * 4, "not a .keras model"),
        ("text.keras", b"hello", "not a .keras model"),
        ("fake.h5", b"not hdf5 at all", "not an HDF5 file"),
    ],
)
def test_bad_model_files(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelFormatError, match=message) as info:
        load_keras_model(path)
    assert "\n" not in str(info.value)


def test_truncated_and_foreign_zip(tmp_path, small_model):
    import zipfile

    small_model.save(tmp_path / "m.keras")
    blob = (tmp_path / "m.keras").read_bytes()
    (tmp_path / "trunc.keras").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelFormatError):
        load_keras_model(tmp_path / "trunc.keras")
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(ModelFormatError, match="no config.json"):
        load_keras_model(tmp_path / "other.keras")


def test_data_must_fit_the_model(small_model):
    rng = np.random.default_rng(0)
    ok = Dataset(rng.random((4, 64), np.float32), np.arange(4), rng.random((2, 64), np.float32), np.arange(2))
    assert check_data_fits(ok, small_model, "d.npz").input_shape == (8, 8, 1)  # same size: reshaped
    wrong = Dataset(rng.random((4, 5, 5), np.float32), np.arange(4), rng.random((2, 5, 5), np.float32), np.arange(2))
    with pytest.raises(DataError, match=r"shape \(5, 5\) but the model expects \(8, 8, 1\)"):
        check_data_fits(wrong, small_model, "d.npz")
    labels = Dataset(ok.x_train, np.array([0, 1, 2, 12]), ok.x_test, np.arange(2))
    with pytest.raises(DataError, match="labels go up to 12 but the model has 10 outputs"):
        check_data_fits(labels, small_model, "d.npz")


def test_what_keras_can_load_is_accepted_whatever_its_name(tmp_path, small_model):
    """An unzipped .keras folder, and a .keras or .h5 under another name, load (Keras goes by the suffix)."""
    small_model.save(tmp_path / "m.keras")
    small_model.save(tmp_path / "m.h5")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        archive.extractall(tmp_path / "unzipped")
    (tmp_path / "model.zip").write_bytes((tmp_path / "m.keras").read_bytes())
    (tmp_path / "model.hdf").write_bytes((tmp_path / "m.h5").read_bytes())
    x = np.ones((2, 8, 8, 1), np.float32)
    for name in ("unzipped", "model.zip", "model.hdf"):
        loaded = load_keras_model(tmp_path / name)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), small_model.predict(x, verbose=0))


def test_weights_only_h5_and_tflite_are_refused_with_what_to_do(tmp_path, small_model):
    small_model.save_weights(tmp_path / "m.weights.h5")
    with pytest.raises(ModelFormatError, match=r"weights only \(save_weights\)"):
        load_keras_model(tmp_path / "m.weights.h5")
    (tmp_path / "m.keras").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    with pytest.raises(ModelFormatError, match="a .tflite model, already converted"):
        load_keras_model(tmp_path / "m.keras")


def test_non_finite_weights_are_refused_by_name(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="head")])
    kernel = model.get_layer("head").kernel
    kernel.assign(np.where(np.eye(4, 3) == 1, np.inf, kernel.numpy()))
    model.save(tmp_path / "inf.keras")
    with pytest.raises(ModelFormatError, match=r"weight head/kernel holds 3 NaN or Inf values of 12"):
        load_keras_model(tmp_path / "inf.keras")


def _keras2_h5(source, target, extra: dict) -> None:
    """`source` (a Keras 3 .h5) rewritten as Keras 2 wrote it: `extra` {layer class: {key: value}} added to the
    stored config of every layer of that class."""
    import json
    import shutil

    import h5py

    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        for layer in config["config"]["layers"]:
            layer["config"].update(extra.get(layer["class_name"], {}))
        f.attrs["model_config"] = json.dumps(config)


@pytest.fixture(scope="module")
def keras3_h5(tmp_path_factory):
    """A depthwise CNN and an Embedding + LSTM model saved as .h5 by Keras 3, and an input for each."""
    import keras

    folder = tmp_path_factory.mktemp("legacy")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(keras.layers.DepthwiseConv2D(3, name="dw")(inputs))
    keras.Model(inputs, keras.layers.Dense(4, name="out")(x)).save(folder / "dw.h5")
    text = keras.Sequential(
        [
            keras.Input((5,), dtype="int32"),
            keras.layers.Embedding(20, 4, name="emb"),
            keras.layers.LSTM(3, name="lstm"),
            keras.layers.Dense(2),
        ]
    )
    text.save(folder / "text.h5")
    return folder, {"dw": np.ones((2, 8, 8, 1), np.float32), "text": np.arange(10, dtype=np.int32).reshape(2, 5)}


def test_keras2_h5_config_keys_are_dropped_and_the_model_loads(tmp_path, keras3_h5):
    import keras

    folder, x = keras3_h5
    _keras2_h5(folder / "dw.h5", tmp_path / "dw_k2.h5", {"DepthwiseConv2D": {"groups": 1}})
    _keras2_h5(
        folder / "text.h5", tmp_path / "text_k2.h5", {"Embedding": {"input_length": 5}, "LSTM": {"time_major": False}}
    )
    for name in ("dw", "text"):
        with pytest.warns(UserWarning, match="a Keras 2 file: dropped config keys") as caught:
            model = load_keras_model(tmp_path / f"{name}_k2.h5")
        original = keras.models.load_model(folder / f"{name}.h5", compile=False)
        np.testing.assert_allclose(model.predict(x[name], verbose=0), original.predict(x[name], verbose=0))
    assert "layer emb (Embedding): input_length; layer lstm (LSTM): time_major" in str(caught[-1].message)


def test_a_key_keras3_refuses_is_one_line_naming_the_layer_and_the_key(tmp_path, keras3_h5):
    folder, _ = keras3_h5
    _keras2_h5(folder / "dw.h5", tmp_path / "odd.h5", {"Dense": {"legacy_thing": 3}})
    with pytest.raises(ModelFormatError) as info:
        load_keras_model(tmp_path / "odd.h5")
    message = str(info.value)
    assert "layer 'out' (Dense) has the config key 'legacy_thing'" in message and "\n" not in message
    assert "save it again" in message and "config={" not in message
