"""Memory of `inspect` and `verify` on a 2M-parameter model: a small multiple of the file, never weights x
clusters. scripts/scale_inspect.py measures the 20M-parameter case (seconds and peak RSS)."""

from __future__ import annotations

import contextlib
import io
import tracemalloc

import numpy as np
import pytest

from edgeclust.tflite import flatbuffer, inspect

PARAMS_SHAPE = (1024, 2048)  # 2,097,152 weights
LIMIT = 3.0  # peak traced bytes / file bytes; a weights x 16 temporary alone would be 16x (float32: 4x)


def clustered_like(dtype, rng) -> np.ndarray:
    """Weights drawn from 16 values per output channel, as per-channel clustering leaves them."""
    codes = rng.integers(0, 16, size=PARAMS_SHAPE, dtype=np.uint8)
    if dtype == np.int8:
        return (codes.astype(np.int8) - 8) * 15
    levels = rng.normal(0, 0.05, size=(PARAMS_SHAPE[0], 16)).astype(np.float32)
    return np.take_along_axis(levels, codes.astype(np.intp), axis=1)


@pytest.fixture(scope="module", params=["float32", "int8"])
def big_model(request, tmp_path_factory, make_fc_model):
    rng = np.random.default_rng(0)
    dtype = np.float32 if request.param == "float32" else np.int8
    weights = clustered_like(dtype, rng)
    scales = np.full(PARAMS_SHAPE[0], 0.01) if dtype == np.int8 else None
    path = tmp_path_factory.mktemp("scale") / f"big_{request.param}.tflite"
    path.write_bytes(make_fc_model(weights, scales=scales, axis=0))
    return path


def traced_peak(func) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = func()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("step", ["inspect", "verify per tensor", "verify per channel"])
def test_library_memory_is_a_small_multiple_of_the_file(big_model, step):
    size = big_model.stat().st_size
    run = {
        "inspect": lambda: inspect.inspect_weights(flatbuffer.read_model_file(big_model)),
        "verify per tensor": lambda: inspect.verify(flatbuffer.read_model_file(big_model), 16),
        "verify per channel": lambda: inspect.verify(flatbuffer.read_model_file(big_model), 16, per_channel=True),
    }[step]
    result, peak = traced_peak(run)
    assert peak < LIMIT * size, f"{step}: peak {peak:,} bytes for a {size:,}-byte model"
    if step == "inspect":
        assert result[0].max_unique_per_channel == 16 and result[0].shape == PARAMS_SHAPE
    else:
        assert result.passed == (step == "verify per channel" or big_model.name.endswith("int8.tflite"))


def test_cli_inspect_memory_is_a_small_multiple_of_the_file(big_model):
    """The command users run, in-process: reading, inspecting and printing the table."""
    from edgeclust.cli.main import main

    size = big_model.stat().st_size
    out = io.StringIO()

    def run():
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            with pytest.raises(SystemExit) as info:
                main(["inspect", str(big_model)])
        return info.value.code

    code, peak = traced_peak(run)
    assert code == 0 and "1 weight tensors" in out.getvalue()
    assert peak < LIMIT * size, f"peak {peak:,} bytes for a {size:,}-byte model"
