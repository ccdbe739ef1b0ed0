"""What runs on the board, one module (or package) per backend behind the Backend protocol (base.py).

The registry: `get_backend(name)` imports a backend only when asked (TFLM pulls in jinja2, native the C
generator), and `choose_backend("auto", tflite)` takes native where it runs the model, else TFLM, saying why.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

from edgeclust.errors import ConfigError

# --backend value -> (module, class implementing base.Backend)
BACKENDS = {
    "tflm": ("edgeclust.backends.tflm", "TflmBackend"),
    "native": ("edgeclust.backends.native", "NativeBackend"),
}
BACKEND_CHOICES = ("auto", *BACKENDS)


@dataclass(frozen=True)
class BackendChoice:
    """The backend a build uses and, for `auto`, one line saying why."""

    backend: object  # a base.Backend
    why: str = ""


def get_backend(name: str, *, compress: str = "none"):
    """The backend called `name`, built with the settings it takes (`compress` for TFLM's LUT)."""
    if name not in BACKENDS:
        raise ConfigError(f"`backend` must be one of {', '.join(BACKEND_CHOICES)}. Received: {name!r}")
    module_name, class_name = BACKENDS[name]
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"the {name} backend is not available in this installation ({exc}); use --backend tflm"
        ) from None
    settings = {"compress": compress} if "compress" in inspect.signature(cls).parameters else {}
    return cls(**settings)


def choose_backend(name: str, tflite: bytes, *, compress: str = "none") -> BackendChoice:
    """`name`, or for "auto": native when it runs this model, else TFLM with the reason."""
    if name != "auto":
        return BackendChoice(get_backend(name, compress=compress))
    try:
        native = get_backend("native", compress=compress)
    except ConfigError:
        return BackendChoice(get_backend("tflm", compress=compress), "auto: tflm (the native backend is not installed)")
    why_not = native.unsupported(tflite)
    if why_not is None:
        return BackendChoice(native, "auto: native (it runs every op of this model)")
    return BackendChoice(get_backend("tflm", compress=compress), f"auto: tflm, because native cannot: {why_not}")
