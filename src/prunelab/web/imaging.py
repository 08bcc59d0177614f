"""Pictures for the explorer: uploads and drawings -> MNIST-style digits, arrays -> PNG.

The conversion itself lives in `prunelab.data.images` (shared with
`prunelab predict IMAGE`); this module only adapts it to uint8 pixels.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from prunelab.data.images import decode_image, mnist_style


def to_mnist(data: bytes) -> np.ndarray:
    """Uploaded image bytes -> uint8 (28, 28), white ink on black, centred like MNIST."""
    return np.rint(mnist_style(decode_image(data)) * 255.0).astype(np.uint8)


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """uint8 (H, W) -> PNG bytes, optionally enlarged `scale` times with nearest neighbour."""
    img = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="L")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
