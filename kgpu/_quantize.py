"""Colour quantization: an image's colours reduced to a palette found by K-Means.

K-Means is fitted on a random sample of the pixels (a few hundred thousand
pixels pin a palette down as well as millions do), then every pixel is
assigned to its nearest palette colour with :meth:`kgpu.KMeans.predict`, in
row blocks, on whatever backend computes. Reading and writing image files
needs Pillow (the ``io`` extra); :func:`quantize_colors` works on arrays alone.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

#: Most colours a palette image (PNG, GIF) can hold.
MAX_PALETTE_COLORS = 256

#: Suffixes written as palette images; others (JPEG) get the palette's RGB colours.
_PALETTE_SUFFIXES = (".png", ".gif", ".bmp", ".tif", ".tiff")


class QuantizedColors(NamedTuple):
    """Pixels as indices into a palette.

    Attributes
    ----------
    palette : ndarray of shape (n_used, channels), uint8
        The colours actually used, at most ``n_colors`` of them.
    indices : ndarray of shape pixels.shape[:-1], uint8
        Index into ``palette`` of every pixel.
    """

    palette: np.ndarray
    indices: np.ndarray


class QuantizeReport(NamedTuple):
    """What :func:`quantize_image` did.

    Attributes
    ----------
    width, height : int
    n_colors : int
        Colours in the written palette.
    raw_bytes : int
        Size of the image as raw 8-bit RGB (3 bytes a pixel).
    indexed_bytes : int
        Size as palette indices (``ceil(log2(n_colors))`` bits a pixel) plus the palette.
    ratio : float
        ``raw_bytes / indexed_bytes``.
    seconds : float
        Fit and assignment time.
    backend : str
        Library that computed.
    output : Path
        The written file.
    """

    width: int
    height: int
    n_colors: int
    raw_bytes: int
    indexed_bytes: int
    ratio: float
    seconds: float
    backend: str
    output: Path


def quantize_colors(
    pixels: np.ndarray,
    n_colors: int = 16,
    *,
    sample_size: int | None = 100_000,
    random_state: Any = 0,
    backend: str | None = None,
    device: Any = None,
    progress: Any = False,
) -> QuantizedColors:
    """Reduce the colours of an image to at most ``n_colors``.

    Parameters
    ----------
    pixels : ndarray of shape (height, width, channels) or (n_pixels, channels), uint8
        The image (e.g. ``numpy.asarray(PIL.Image.open(path).convert("RGB"))``).
    n_colors : int, default=16
        Most colours in the palette, 1 to 256.
    sample_size : int or None, default=100_000
        Pixels drawn at random (without replacement) to fit the palette;
        ``None`` fits on every pixel.
    random_state : int, RandomState instance or None, default=0
        Seeds the sample and K-Means.
    backend, device : see :class:`kgpu.KMeans`
        Where K-Means computes; the result is always NumPy.
    progress : bool or "auto", default=False
        Progress bar of the K-Means iterations.

    Returns
    -------
    QuantizedColors
        The palette (uint8) and every pixel's index into it. Fewer than
        ``n_colors`` colours are returned when the sample has fewer distinct
        colours, or when a palette colour ends up nearest to no pixel.
    """
    from sklearn.utils import check_random_state

    from ._kmeans import KMeans
    from ._validation import check_n_clusters

    pixels = np.asarray(pixels)
    if pixels.ndim not in (2, 3) or pixels.shape[-1] < 1:
        raise ValueError(
            f"pixels must have shape (height, width, channels) or (n_pixels, channels), got {pixels.shape}."
        )
    if pixels.dtype != np.uint8:
        raise TypeError(f"pixels must be uint8 (0-255 per channel), got {pixels.dtype}.")
    n_colors = check_n_clusters(n_colors)
    if n_colors > MAX_PALETTE_COLORS:
        raise ValueError(f"n_colors must be at most {MAX_PALETTE_COLORS} (a palette image's limit), got {n_colors}.")
    flat = pixels.reshape(-1, pixels.shape[-1])
    n_pixels = flat.shape[0]
    if n_pixels == 0:
        raise ValueError("the image has no pixels.")
    rng = check_random_state(random_state)
    if sample_size is not None and sample_size < n_pixels:
        if sample_size < 1:
            raise ValueError(f"sample_size must be >= 1 or None, got {sample_size}.")
        sample = flat[rng.choice(n_pixels, size=sample_size, replace=False)]
    else:
        sample = flat
    # Asking for more clusters than distinct colours only makes duplicate centers.
    n_distinct = _count_distinct_colors(sample)
    model = KMeans(
        n_clusters=min(n_colors, n_distinct), random_state=rng, backend=backend, device=device, progress=progress,
    )
    with warnings.catch_warnings():
        # Few distinct colours can still leave a cluster empty; the palette just gets smaller.
        warnings.filterwarnings("ignore", message="Number of distinct clusters")
        model.fit(sample.astype(np.float32))
    labels = np.asarray(model.predict(flat.astype(np.float32)))
    centers = np.asarray(model.cluster_centers_)
    used, compact_labels = np.unique(labels, return_inverse=True)
    palette = np.clip(np.rint(centers[used]), 0, 255).astype(np.uint8)
    return QuantizedColors(palette, compact_labels.astype(np.uint8).reshape(pixels.shape[:-1]))


def _count_distinct_colors(pixels: np.ndarray) -> int:
    """Distinct rows of a ``(n, channels)`` uint8 array."""
    if pixels.shape[1] > 4:
        return int(np.unique(pixels, axis=0).shape[0])
    # Up to four 8-bit channels pack into one uint32: a 1-D unique is far faster.
    packed = np.zeros(pixels.shape[0], dtype=np.uint32)
    for channel in range(pixels.shape[1]):
        packed |= pixels[:, channel].astype(np.uint32) << np.uint32(8 * channel)
    return int(np.unique(packed).shape[0])


def indexed_size_bytes(n_pixels: int, n_colors: int, channels: int = 3) -> int:
    """Bytes of an image stored as packed palette indices plus its palette.

    Each pixel takes ``ceil(log2(n_colors))`` bits (at least 1); the palette
    ``n_colors * channels`` bytes.
    """
    bits_per_pixel = max(1, math.ceil(math.log2(max(n_colors, 1))))
    return math.ceil(n_pixels * bits_per_pixel / 8) + n_colors * channels


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as an RGB uint8 array of shape ``(height, width, 3)``.

    Transparency is dropped; grey and palette images are expanded to RGB.
    """
    Image = _pillow()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file.")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, Image.UnidentifiedImageError) as exc:
        raise ValueError(f"{path}: not an image Pillow can read ({exc}).") from exc


def write_image(path: str | os.PathLike, quantized: QuantizedColors) -> Path:
    """Write a quantized image: a palette image for PNG/GIF/BMP/TIFF, RGB otherwise."""
    Image = _pillow()
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise FileNotFoundError(f"{path.parent}: no such directory.")
    height, width = quantized.indices.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(quantized.indices, dtype=np.uint8).tobytes())
    image.putpalette(quantized.palette.reshape(-1).tolist())
    if path.suffix.lower() not in _PALETTE_SUFFIXES:
        image = image.convert("RGB")
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"{path}: cannot write this image format (unknown file extension {path.suffix!r}).")
    from ._io import atomic_path

    # Through a temporary beside the target: a reader never sees half an image.
    with atomic_path(path) as temporary:
        try:
            image.save(temporary, format=image_format)
        except (KeyError, ValueError, OSError) as exc:
            raise ValueError(f"{path}: cannot write this image format ({exc}).") from exc
    return path


def quantize_image(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    n_colors: int = 16,
    *,
    sample_size: int | None = 100_000,
    random_state: Any = 0,
    backend: str | None = None,
    progress: Any = False,
) -> QuantizeReport:
    """Read an image, reduce it to ``n_colors`` colours, write it.

    Parameters
    ----------
    input_path, output_path : str or path-like
    n_colors, sample_size, random_state, backend, progress :
        See :func:`quantize_colors`.

    Returns
    -------
    QuantizeReport
    """
    import time

    from ._backend import backend_name, resolve_compute

    pixels = read_image(input_path)
    started = time.perf_counter()
    quantized = quantize_colors(
        pixels, n_colors, sample_size=sample_size, random_state=random_state, backend=backend, progress=progress,
    )
    seconds = time.perf_counter() - started
    written = write_image(output_path, quantized)
    height, width = pixels.shape[:2]
    raw_bytes = height * width * 3
    indexed_bytes = indexed_size_bytes(height * width, quantized.palette.shape[0])
    xp, _ = resolve_compute(backend, None, pixels)
    return QuantizeReport(
        width, height, int(quantized.palette.shape[0]), raw_bytes, indexed_bytes,
        raw_bytes / indexed_bytes, seconds, backend_name(xp), written,
    )


def _pillow():
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError("Reading and writing images needs Pillow: pip install 'kgpu[io]'.") from exc
    return Image


__all__ = [
    "QuantizeReport",
    "QuantizedColors",
    "indexed_size_bytes",
    "quantize_colors",
    "quantize_image",
    "read_image",
    "write_image",
]
