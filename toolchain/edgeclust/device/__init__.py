"""Running tools: build generated projects (make, cmake), run firmware under QEMU, flash boards."""
