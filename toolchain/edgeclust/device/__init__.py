"""Running every tool edgeclust needs, and only here: the host compiler for the native oracle (host_build.py),
make and arm-none-eabi-size for firmware (build.py), QEMU (qemu.py) and its instruction counts (icount.py),
flash tools and serial consoles (flash.py, serial_console.py). Backends and the pipeline call it; it imports
neither."""
