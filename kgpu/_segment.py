"""Segmented reductions: per-cluster weighted sums and weights.

The array API standard has no scatter-add, so this module is the one place
that provides it. :func:`segment_sum_standard` is written with standard calls
only (a one-hot matrix times the values: one GEMM, exact in its pairing and
deterministic); each backend that has a native scatter gets a fast path, and
the tests check every fast path against the standard version.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._backend import backend_name


def segment_sum(values: Any, labels: Any, n_segments: int, weights: Any = None, *, xp: Any) -> Any:
    """Weighted sum of the rows of ``values`` in each segment.

    Parameters
    ----------
    values : array of shape (n, d)
    labels : integer array of shape (n,)
        Segment of every row, in ``[0, n_segments)``.
    n_segments : int
    weights : array of shape (n,) or None
        Row weights (``None``: all ones).
    xp : namespace

    Returns
    -------
    sums : array of shape (n_segments, d), dtype of ``values``
        ``sums[j] = sum(weights[i] * values[i] for i with labels[i] == j)``.
    """
    name = backend_name(xp)
    if name == "numpy":
        return _segment_sum_numpy(values, labels, n_segments, weights)
    if name == "torch":
        return _segment_sum_torch(values, labels, n_segments, weights)
    if name == "cupy":
        return _segment_sum_cupy(values, labels, n_segments, weights)
    return segment_sum_standard(values, labels, n_segments, weights, xp=xp)


def segment_weight(labels: Any, n_segments: int, weights: Any = None, *, xp: Any, dtype: Any = None) -> Any:
    """Total weight (or count) of each segment: a weighted ``bincount``.

    Parameters
    ----------
    labels : integer array of shape (n,)
    n_segments : int
    weights : array of shape (n,) or None
        ``None`` counts rows.
    xp : namespace
    dtype : dtype or None
        Result dtype; defaults to that of ``weights`` (float64 when counting).

    Returns
    -------
    totals : array of shape (n_segments,)
    """
    name = backend_name(xp)
    if dtype is None:
        dtype = weights.dtype if weights is not None else xp.float64
    if name == "numpy":
        out = np.bincount(labels, weights=weights, minlength=n_segments)
        return out.astype(dtype, copy=False)
    if name == "torch":
        import torch

        out = torch.zeros(n_segments, dtype=dtype, device=labels.device)
        source = torch.ones_like(labels, dtype=dtype) if weights is None else weights.to(dtype)
        return out.index_add_(0, labels, source)
    if name == "cupy":
        import cupy

        out = cupy.bincount(labels, weights=weights, minlength=n_segments)
        return out.astype(dtype, copy=False)
    return segment_weight_standard(labels, n_segments, weights, xp=xp, dtype=dtype)


def segment_sum_standard(values: Any, labels: Any, n_segments: int, weights: Any = None, *, xp: Any) -> Any:
    """:func:`segment_sum` with standard calls only (one-hot GEMM)."""
    one_hot = _one_hot_rows(labels, n_segments, values.dtype, xp=xp)
    if weights is not None:
        one_hot = one_hot * weights[None, :]
    return one_hot @ values


def segment_weight_standard(labels: Any, n_segments: int, weights: Any = None, *, xp: Any, dtype: Any = None) -> Any:
    """:func:`segment_weight` with standard calls only."""
    if dtype is None:
        dtype = weights.dtype if weights is not None else xp.float64
    one_hot = _one_hot_rows(labels, n_segments, dtype, xp=xp)
    if weights is not None:
        one_hot = one_hot * xp.astype(weights, dtype)[None, :]
    return xp.sum(one_hot, axis=1)


def _one_hot_rows(labels: Any, n_segments: int, dtype: Any, *, xp: Any) -> Any:
    """``(n_segments, n)`` matrix with a 1 where ``labels[i] == j``."""
    segment_ids = xp.arange(n_segments, dtype=labels.dtype, device=_device(labels, xp))
    return xp.astype(segment_ids[:, None] == labels[None, :], dtype)


def _device(x: Any, xp: Any) -> Any:
    import array_api_compat

    return array_api_compat.device(x)


def _segment_sum_numpy(values: np.ndarray, labels: np.ndarray, n_segments: int, weights: Any) -> np.ndarray:
    # A (n_segments x n) CSC matrix with one entry per column is a scatter-add
    # in compiled code: O(n d), unlike np.add.at (slow) or a one-hot GEMM
    # (O(n d k)). Building it from (data, indices, indptr) skips COO sorting.
    import scipy.sparse as sp

    n_rows = labels.shape[0]
    data = np.ones(n_rows, dtype=values.dtype) if weights is None else weights.astype(values.dtype, copy=False)
    scatter = sp.csc_matrix(
        (data, labels, np.arange(n_rows + 1)), shape=(n_segments, n_rows)
    )
    return np.asarray(scatter @ values)


def _segment_sum_torch(values: Any, labels: Any, n_segments: int, weights: Any) -> Any:
    import torch

    out = torch.zeros((n_segments, values.shape[1]), dtype=values.dtype, device=values.device)
    source = values if weights is None else values * weights[:, None]
    return out.index_add_(0, labels, source)


def _segment_sum_cupy(values: Any, labels: Any, n_segments: int, weights: Any) -> Any:
    import cupy
    import cupyx

    out = cupy.zeros((n_segments, values.shape[1]), dtype=values.dtype)
    source = values if weights is None else values * weights[:, None]
    cupyx.scatter_add(out, labels, source)
    return out
