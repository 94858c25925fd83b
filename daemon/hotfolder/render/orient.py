"""EXIF orientation applied to stored pixels: a leaf module (Pillow only), so the gain map can be
turned with its picture without importing the transform stage that imports it."""

from __future__ import annotations

from typing import Final

from PIL import Image

_TRANSPOSE: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def orient(im: Image.Image, orientation: int) -> Image.Image:
    """Apply an EXIF orientation value to stored pixels (lossless permutation)."""
    method = _TRANSPOSE.get(orientation)
    return im if method is None else im.transpose(method)
