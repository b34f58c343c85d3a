"""Problems for the kernel contract tests: blobs without near-ties, exact ties, awkward shapes."""

from __future__ import annotations

import numpy as np

#: (n_rows, n_centers, n_features): a plain case, k not a multiple of any tile
#: and d not a power of two (both spanning several tiles), fewer rows than one
#: tile, and a single center.
SHAPES = [(150, 5, 7), (200, 70, 37), (10, 3, 5), (60, 1, 4)]
SHAPE_IDS = ["plain", "k70-d37", "n-below-tile", "k1"]

DTYPES = ["float32", "float64", "float16"]


def blobs(n_rows: int, n_centers: int, n_features: int, dtype: str, seed: int = 0):
    """Rows scattered tightly around ``n_centers`` well-separated centers, and those centers.

    Every row is far closer to its own center than to any other, so no
    rounding can change its label: labels must match exactly.
    """
    rng = np.random.default_rng(seed)
    centers = _separated_centers(rng, n_centers, n_features)
    labels = np.arange(n_rows) % n_centers
    X = centers[labels] + 0.05 * rng.normal(size=(n_rows, n_features))
    return X.astype(dtype), centers.astype(dtype)


def _separated_centers(rng, n_centers: int, n_features: int) -> np.ndarray:
    # Spread-out random centers; rows stay within ~0.05 * sqrt(d) of theirs.
    while True:
        centers = rng.uniform(-8.0, 8.0, size=(n_centers, n_features))
        if n_centers == 1:
            return centers
        gaps = np.sqrt(((centers[:, None, :] - centers[None, :, :]) ** 2).sum(-1))
        np.fill_diagonal(gaps, np.inf)
        if gaps.min() > 2.0:
            return centers


def exact_ties(dtype: str):
    """Rows exactly halfway between two centers, and a duplicated center: ties go to the lowest index.

    Small integers: every distance is exact in any float precision.
    """
    X = np.array([[0, 0, 0], [0, 2, 0], [4, 0, 0], [1, 1, 1], [-3, 0, 0]], dtype=dtype)
    centers = np.array([[1, 0, 0], [-1, 0, 0], [4, 0, 0], [4, 0, 0], [0, 1, 0]], dtype=dtype)
    return X, centers


def ties_across_tiles(dtype: str):
    """Ties between centers in different tiles of a kernel that scans the centers in tiles of up to 64.

    100 centers on a line, 3 apart, with center 70 a copy of center 5: row 0
    sits on both (the lowest index, 5, must win over a later tile's equal
    score); row 1 is halfway between centers 63 and 64 (the last of one
    64-wide tile and the first of the next). Small integers and halves, so
    every distance is exact in any float precision.
    """
    centers = np.zeros((100, 3), dtype=dtype)
    centers[:, 0] = 3 * np.arange(100)
    centers[70] = centers[5]
    X = np.array([[15, 0, 0], [190.5, 0, 0], [297, 0, 0]], dtype=dtype)
    return X, centers


def weights_for(n_rows: int, kind: str, seed: int = 1) -> np.ndarray:
    """Uniform ones, or positive weights with some zeros."""
    if kind == "uniform":
        return np.ones(n_rows)
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.25, 3.0, n_rows)
    weights[::7] = 0.0
    return weights


def compute_dtype(dtype: str) -> str:
    """The dtype the reference is run in: float16 data is computed in float32."""
    return "float32" if dtype == "float16" else dtype
