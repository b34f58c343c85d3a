"""Colour quantization (kgpu._quantize): palettes, indices, image files, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

from kgpu._quantize import (
    indexed_size_bytes,
    quantize_colors,
    quantize_image,
    read_image,
    write_image,
)

#: Four well-separated colours.
COLOURS = np.array([[250, 10, 10], [10, 240, 20], [20, 20, 230], [245, 245, 240]], dtype=np.uint8)


def _image(height=24, width=32, noise=6, seed=0):
    """Four colour blocks with a little noise: a 4-colour palette fits it closely."""
    rng = np.random.default_rng(seed)
    block = (np.arange(height)[:, None] * 2 // height) * 2 + (np.arange(width)[None, :] * 2 // width)
    pixels = COLOURS[block].astype(np.int16) + rng.integers(-noise, noise + 1, size=(height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8), block


def test_palette_recovers_the_colours_on_every_backend(xp_name):
    pixels, blocks = _image()
    result = quantize_colors(pixels, 4, random_state=0, backend=xp_name)
    assert result.palette.dtype == np.uint8 and result.palette.shape == (4, 3)
    assert result.indices.dtype == np.uint8 and result.indices.shape == pixels.shape[:2]
    # Each block maps to one palette colour, within the noise of the true colour.
    for block_id, colour in enumerate(COLOURS):
        used = np.unique(result.indices[blocks == block_id])
        assert used.shape == (1,)
        assert np.abs(result.palette[used[0]].astype(int) - colour).max() <= 6


def test_same_palette_on_every_backend(xp_name):
    pixels, _ = _image(noise=40, seed=1)
    reference = quantize_colors(pixels, 6, random_state=3, backend="numpy")
    result = quantize_colors(pixels, 6, random_state=3, backend=xp_name)
    np.testing.assert_array_equal(result.palette, reference.palette)
    np.testing.assert_array_equal(result.indices, reference.indices)


def test_fewer_distinct_colours_than_asked_is_lossless():
    _, blocks = _image()
    pixels = COLOURS[blocks]  # exactly four colours, no noise
    result = quantize_colors(pixels, 16, random_state=0)
    assert result.palette.shape[0] == 4
    np.testing.assert_array_equal(result.palette[result.indices], pixels)


def test_sampling_fits_on_a_subset_but_labels_every_pixel():
    pixels, blocks = _image(height=40, width=40)
    result = quantize_colors(pixels, 4, sample_size=50, random_state=0)
    assert result.indices.shape == (40, 40)
    for block_id in range(4):
        assert np.unique(result.indices[blocks == block_id]).shape == (1,)


def test_flat_pixels_and_seed_reproducible():
    pixels, _ = _image(noise=30)
    flat = pixels.reshape(-1, 3)
    first = quantize_colors(flat, 5, sample_size=200, random_state=7)
    second = quantize_colors(flat, 5, sample_size=200, random_state=7)
    assert first.indices.shape == (flat.shape[0],)
    np.testing.assert_array_equal(first.palette, second.palette)
    np.testing.assert_array_equal(first.indices, second.indices)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_colors": 0}, ValueError, "n_clusters must be >= 1"),
        ({"n_colors": 300}, ValueError, "at most 256"),
        ({"sample_size": 0}, ValueError, "sample_size must be >= 1"),
    ],
)
def test_bad_parameters(kwargs, error, message):
    pixels, _ = _image()
    with pytest.raises(error, match=message):
        quantize_colors(pixels, **kwargs)


def test_bad_pixels():
    with pytest.raises(TypeError, match="must be uint8"):
        quantize_colors(np.zeros((4, 4, 3)), 2)
    with pytest.raises(ValueError, match="must have shape"):
        quantize_colors(np.zeros(12, dtype=np.uint8), 2)


def test_pixels_not_modified():
    pixels, _ = _image()
    before = pixels.copy()
    quantize_colors(pixels, 3, random_state=0)
    np.testing.assert_array_equal(pixels, before)


def test_indexed_size_bytes():
    # 16 colours: 4 bits a pixel; 10 x 10 pixels -> 50 bytes, palette 48 bytes.
    assert indexed_size_bytes(100, 16) == 50 + 48
    # 17 colours need 5 bits: ceil(100 * 5 / 8) = 63.
    assert indexed_size_bytes(100, 17) == 63 + 51
    # One colour still takes one bit a pixel.
    assert indexed_size_bytes(8, 1) == 1 + 3


def test_image_file_round_trip(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    pixels, _ = _image(noise=40)
    source = tmp_path / "in.png"
    Image.fromarray(pixels).save(source)
    report = quantize_image(source, tmp_path / "out.png", 5, random_state=0)
    with Image.open(report.output) as written:
        assert written.mode == "P"
        assert written.size == (32, 24)
        colours = written.convert("RGB").getcolors()
    assert len(colours) <= 5
    assert (report.width, report.height, report.n_colors) == (32, 24, len(colours))
    assert report.raw_bytes == 32 * 24 * 3
    assert report.indexed_bytes == indexed_size_bytes(32 * 24, report.n_colors)
    assert report.ratio == pytest.approx(report.raw_bytes / report.indexed_bytes)


def test_jpeg_output_is_rgb(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    pixels, _ = _image()
    quantized = quantize_colors(pixels, 4, random_state=0)
    path = write_image(tmp_path / "out.jpg", quantized)
    with Image.open(path) as written:
        assert written.mode == "RGB"


def test_read_image_converts_to_rgb_and_names_bad_files(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((3, 4), 128, dtype=np.uint8)).save(grey)
    pixels = read_image(grey)
    assert pixels.shape == (3, 4, 3) and pixels.dtype == np.uint8
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_image(tmp_path / "missing.png")
    not_image = tmp_path / "data.png"
    not_image.write_text("1,2,3\n")
    with pytest.raises(ValueError, match="not an image Pillow can read"):
        read_image(not_image)
