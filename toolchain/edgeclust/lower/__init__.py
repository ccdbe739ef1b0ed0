"""Backend-neutral lowering of a .tflite model: weight layouts, bit packing, memory planning (numpy only)."""
