"""Turning what users pass as an image into one well-defined array: HxWx3 uint8 RGB."""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .validation import MAX_IMAGE_PIXELS

WIDE_MODES = {"I;16": "16-bit", "I;16B": "16-bit", "I;16L": "16-bit", "I;16N": "16-bit", "I": "32-bit integer",
              "F": "32-bit float"}


def _check_pixels(width: int, height: int, name: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise InputError(f"{name} is {width}x{height} pixels, more than the limit of {MAX_IMAGE_PIXELS:,}; resize "
                         f"it (the model's processor downsizes it anyway) or raise EAGLE_WIDGETS_MAX_IMAGE_PIXELS")


def as_rgb_uint8(image, *, name: str = "image") -> np.ndarray:
    """Return `image` as a C-contiguous HxWx3 uint8 RGB array.

    Accepts a PIL image (any mode), or a numpy array that is HxW (greyscale), HxWx1, HxWx3 or HxWx4
    (alpha dropped), of dtype uint8 or float with values in [0, 1].
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        if image.width == 0 or image.height == 0:
            raise InputError(f"{name} is empty ({image.width}x{image.height} pixels)")
        if image.mode in WIDE_MODES:  # convert("RGB") would clip these to black or white
            raise InputError(f"{name} has PIL mode {image.mode!r} ({WIDE_MODES[image.mode]}); scale it to 8-bit "
                             f"RGB first, e.g. from a numpy array of floats in [0, 1]")
        _check_pixels(image.width, image.height, name)
        try:
            return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
        except (OSError, ValueError, SyntaxError) as err:  # truncated, closed or corrupt files
            raise InputError(f"{name} could not be read: {err}") from None
    if not isinstance(image, np.ndarray):
        raise InputError(
            f"{name} must be a PIL.Image.Image or a numpy array (HxW, HxWx3 or HxWx4), "
            f"got {type(image).__module__}.{type(image).__name__}"
        )
    arr = image
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"{name} must have shape HxW, HxWx3 or HxWx4, got shape {tuple(image.shape)}")
    arr = arr[:, :, :3]
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{name} is empty (shape {tuple(image.shape)})")
    _check_pixels(arr.shape[1], arr.shape[0], name)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.bool_:
        return np.ascontiguousarray(arr.astype(np.uint8) * 255)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name} contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise InputError(
                f"{name} is a float array with values in [{lo:.3g}, {hi:.3g}]; "
                "float images must lie in [0, 1] (or pass uint8 values 0..255)"
            )
        return np.ascontiguousarray(np.round(arr * 255.0).astype(np.uint8))
    raise InputError(f"{name} has dtype {arr.dtype}; use uint8 (0..255) or float (0..1)")


def load_image(source, name: str | None = None) -> np.ndarray:
    """An image file (a path, or its bytes as uploaded) as HxWx3 uint8 RGB; a missing, unreadable or
    oversized file is an InputError naming it."""
    import io
    from pathlib import Path

    from PIL import Image, ImageOps, UnidentifiedImageError

    from .files import regular_file

    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    label = name or ("the uploaded file" if is_bytes else str(source))
    if not is_bytes:
        regular_file(source, "image file")
    try:
        with Image.open(io.BytesIO(bytes(source)) if is_bytes else Path(source)) as im:
            _check_pixels(im.width, im.height, label)
            # Phone photos store their orientation in EXIF: show and explain them upright, as viewers do.
            return as_rgb_uint8(ImageOps.exif_transpose(im), name=label)
    except FileNotFoundError:
        raise InputError(f"no such image file: {label}") from None
    except IsADirectoryError:
        raise InputError(f"{label} is a folder, not an image file") from None
    except Image.DecompressionBombError as err:
        raise InputError(f"{label} is too large to decode safely ({err})") from None
    except UnidentifiedImageError:  # its message names Pillow's buffer object, not the user's file
        raise InputError(f"cannot read {label} as an image (not an image format Pillow can read)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise InputError(f"cannot read {label} as an image ({err})") from None
