"""edgeclust: cluster Keras 3 weights and take the model to a microcontroller.

Kept light on purpose: importing `edgeclust` pulls in neither keras nor tensorflow, so that
`edgeclust --help` answers at once. Import the parts you need: `edgeclust.cluster`,
`edgeclust.tflite`, `edgeclust.codegen`, `edgeclust.pipeline`.
"""

__version__ = "0.1.0"


def fit_to_board(model_path, data_path, options, *, flash_budget=None, on_progress=None, on_line=None):
    """Choose each layer's number of clusters so the model fits the board (or `flash_budget` bytes for its
    weights, tables and biases) with the least validation loss, then build once with them: what
    `edgeclust build --fit` runs. `options` is an `edgeclust.pipeline.build.BuildOptions`; returns a
    `FitResult` (`.plan`: the counts, the table; `.build`: the build's result). See pipeline/fit.py."""
    from edgeclust.pipeline.fit import fit_to_board as run

    return run(model_path, data_path, options, flash_budget=flash_budget, on_progress=on_progress, on_line=on_line)
