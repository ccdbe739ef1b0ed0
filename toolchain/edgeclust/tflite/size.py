"""What a model costs as users measure it: zipped bytes.

A zip file saves nothing on a microcontroller's flash; storing clustered weights as indices into value
tables does (backends/tflm/lut.py for TFLM's DECODE, backends/native for weights decoded in the kernels).
"""

from __future__ import annotations

import io
import zipfile


def zipped_size(data: bytes, arcname: str = "model.tflite") -> int:
    """Bytes of a zip archive holding `data` as `arcname` (ZIP_DEFLATED), the way users measure."""
    out = io.BytesIO()
    info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(info, bytes(data))
    return len(out.getvalue())
