""".tflite bytes in, facts out: convert, read, inspect and verify, sizes, interpreter parity.

Import the module you need (`edgeclust.tflite.inspect`, ...): this package imports nothing itself, so
reading a model never pulls in TensorFlow; only `convert` does, inside `to_tflite`.
"""
