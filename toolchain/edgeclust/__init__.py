"""edgeclust: cluster Keras 3 weights and take the model to a microcontroller.

Kept light on purpose: importing `edgeclust` pulls in neither keras nor tensorflow, so that
`edgeclust --help` answers at once. Import the parts you need: `edgeclust.cluster`,
`edgeclust.tflite`, `edgeclust.codegen`, `edgeclust.pipeline`.
"""

__version__ = "0.1.0"
