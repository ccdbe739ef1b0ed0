"""The backend registry and seam: names resolve to Backend objects, `auto` says why it chose, a Cost reads and
refuses the same way for every backend, and the TFLM backend lowers a real model end to end."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclust.backends import BACKEND_CHOICES, choose_backend, get_backend
from edgeclust.backends.base import Backend, Cost
from edgeclust.errors import BudgetError, ConfigError


@pytest.fixture(scope="module")
def small_int8(digits) -> bytes:
    """A small Conv + Dense model, converted to int8 by the real converter."""
    import keras
    from keras import layers

    from edgeclust.tflite.convert import to_tflite

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(8, 8, 1))
    x = layers.Flatten()(layers.Conv2D(4, 3, activation="relu")(inputs))
    model = keras.Model(inputs, layers.Dense(10)(x))
    return to_tflite(model, quantize="int8", representative_data=digits.x_train, num_calibration=32)


def test_names_resolve_to_backends():
    assert BACKEND_CHOICES[0] == "auto" and {"tflm", "native"} <= set(BACKEND_CHOICES)
    tflm = get_backend("tflm", compress="lut")
    assert isinstance(tflm, Backend) and tflm.name == "tflm" and tflm.compress == "lut"


def test_an_unknown_backend_is_one_line_naming_the_choices():
    with pytest.raises(ConfigError) as info:
        get_backend("cmsis")
    assert "\n" not in str(info.value) and "auto, tflm, native" in str(info.value)


def test_auto_says_why_it_chose(small_int8):
    choice = choose_backend("auto", small_int8)
    assert choice.why.startswith("auto: ") and choice.backend.name in ("native", "tflm")
    if choice.backend.name == "tflm":
        assert "native" in choice.why  # not installed, or what it cannot run
    assert choose_backend("tflm", small_int8).why == ""


def test_the_tflm_backend_lowers_prices_and_renders_a_real_model(small_int8, digits):
    from edgeclust.pipeline.boards import board_spec
    from edgeclust.pipeline.layouts import weight_layouts

    backend = get_backend("tflm")
    assert backend.unsupported(small_int8) is None
    lowered = backend.lower(small_int8, weight_layouts(small_int8))
    assert lowered.backend == "tflm" and lowered.model == small_int8 and lowered.flash_bytes == len(small_int8)
    arena = lowered.details.arena
    assert lowered.arena_bytes == arena.reserved >= arena.measured * 1.25 and lowered.arena_bytes % 16 == 0
    from edgeclust.tflite import parity

    x = parity.quantize(digits.x_test[:3], lowered.interface.inputs[0])
    assert np.array_equal(backend.run_host(lowered, x), parity.run_tflm(small_int8, x))
    board = board_spec("qemu_lm3s6965evb")
    cost = backend.price(lowered, board)
    assert cost.fits and cost.flash_parts["model"] == len(small_int8) and cost.ram_parts["arena"] == arena.reserved
    files = backend.render(lowered, board, [])
    assert {"main.cc", "model_data.cc", "Makefile", "board.json"} <= set(files)
    assert f"kTensorArenaSize = {arena.reserved};".encode() in files["model_settings.h"]


def test_a_cost_reads_and_refuses_the_same_way_for_every_backend():
    cost = Cost(
        board_id="b",
        board_name="Board",
        flash_used=300,
        flash_total=200,
        ram_used=10,
        ram_total=20,
        flash_parts={"weights": 250, "code": 50},
        ram_parts={"arena": 10},
        flash_advice="fewer clusters",
        ram_advice="a smaller input",
    )
    assert cost.line() == (
        "b: flash 300 of 200 bytes (150%: weights 250 + code 50); RAM 10 of 20 bytes (50%: arena 10): DOES NOT FIT"
    )
    with pytest.raises(BudgetError) as info:
        cost.check()
    message = str(info.value)
    assert "\n" not in message and "100 bytes too many" in message and "fewer clusters" in message
    assert "--allow-over-budget" in message and "RAM" not in message.split("Options:")[0]
    assert "a smaller input" not in message  # RAM fits: only flash advice


def test_over_ram_advice_never_says_fewer_clusters_and_a_tflite_input_gets_no_clustering_advice():
    import dataclasses

    cost = Cost("b", 100, 200, 30, 20, flash_advice="fewer clusters", ram_advice="a smaller input")
    with pytest.raises(BudgetError, match="a smaller input") as info:
        cost.check()
    assert "fewer clusters" not in str(info.value)
    both = dataclasses.replace(cost, flash_used=300)
    with pytest.raises(BudgetError) as info:
        both.check(can_recluster=False)
    assert "fewer clusters" not in str(info.value) and "a smaller input" in str(info.value)
