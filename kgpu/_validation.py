"""Input checks shared by every estimator: shapes, dtypes, finiteness, weights.

Host inputs (NumPy arrays, lists, pandas frames, memmaps) go through
scikit-learn's own validation so feature names and its messages are kept;
arrays of other namespaces (CuPy, PyTorch, array-api-strict) are checked with
standard calls where they live, without a trip through host memory.
Nothing here writes into the caller's array.
"""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any

import numpy as np
from sklearn.utils.validation import check_array, validate_data

from ._backend import backend_name, is_array_api_obj, namespace_of
from ._kernels.dispatch import ANY_BACKEND, call, register


def _is_foreign_array(X: Any) -> bool:
    """True for an array-API array that is not a NumPy array (torch, cupy...)."""
    return is_array_api_obj(X) and not isinstance(X, np.ndarray)


def check_data(
    X: Any,
    *,
    estimator: Any = None,
    reset: bool = True,
    min_samples: int = 1,
    check_finite: bool = True,
) -> Any:
    """Validate a data matrix and return it as a floating array of its own namespace.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        NumPy array, list, pandas DataFrame, memmap, or an array of any
        array-API namespace (CuPy, PyTorch, array-api-strict).
    estimator : estimator or None
        When given, ``n_features_in_`` (and ``feature_names_in_`` for frames) are
        set on it (``reset=True``) or checked against it (``reset=False``).
    reset : bool
        Whether this call is a ``fit`` (records the feature count) or a later
        call (checks it).
    min_samples : int
        Fewest rows accepted.
    check_finite : bool
        Scan the values for NaN and infinity. ``False`` is for a caller whose
        own first pass over float32 / float64 ``X`` finds its largest ``|x|``
        anyway and refuses non-finite data there
        (:func:`check_finite_largest`), so that ``X`` is not read once more
        for this check alone. Half-precision ``X`` is always scanned here.

    Returns
    -------
    X : array of shape (n_samples, n_features), float16, bfloat16, float32 or float64
        Floating inputs keep their dtype, half precision included (NumPy
        float16, PyTorch float16 / bfloat16, CuPy float16: the callers
        compute on them in float32 block by block, see
        :func:`is_half_precision`); other real numeric dtypes become float64.
        Never a modified view of the caller's data.

    Raises
    ------
    ValueError
        For 1-D, 3-D or empty input, NaN or infinity, complex values.
    TypeError
        For non-numeric data (strings, objects that are not numbers).
    """
    if is_dask_array(X):
        # Only the estimators with a Dask engine take Dask arrays, and they
        # dispatch before this check; anything else would compute X whole.
        who = type(estimator).__name__ if estimator is not None else "This function"
        raise TypeError(
            f"{who} does not take Dask arrays: KMeans and MiniBatchKMeans run on them "
            "chunk by chunk. Compute the array first (X.compute()) if it fits in memory."
        )
    if is_torch_sparse(X):
        who = type(estimator).__name__ if estimator is not None else "This function"
        raise TypeError(
            f"{who} does not take sparse input: KMeans, MiniBatchKMeans, BisectingKMeans, "
            "kmeans_plusplus and the silhouette do. Densify it with X.to_dense() if it fits in memory."
        )
    if _is_foreign_array(X):
        return _check_foreign(X, estimator=estimator, reset=reset, min_samples=min_samples, check_finite=check_finite)
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError(
            f"Sparse input is not supported here ({type(X).__module__}.{type(X).__name__}): KMeans, "
            "MiniBatchKMeans, BisectingKMeans, kmeans_plusplus and the silhouette take SciPy sparse "
            "matrices and PyTorch sparse tensors on the CPU; GPU sparse input (cupyx.scipy.sparse) is "
            "not supported yet. Convert it with X.toarray() if it fits in memory."
        )
    _reject_non_numeric(X)
    half = isinstance(X, np.ndarray) and X.dtype == np.float16
    kwargs = dict(
        # float16 stays float16 (no widened copy of X); its finiteness is
        # checked below, block by block, for the same reason.
        dtype=None if half else [np.float64, np.float32],
        ensure_min_samples=min_samples,
        ensure_all_finite=check_finite and not half,
        accept_sparse=False,
    )
    if estimator is None:
        X_valid = check_array(X, **kwargs)
    else:
        X_valid = validate_data(estimator, X, reset=reset, **kwargs)
    if half:
        _check_finite_blocks(X_valid, namespace_of(X_valid))
    return X_valid


#: Names of the half-precision dtypes kgpu takes as input (computed in float32).
HALF_PRECISION = ("float16", "bfloat16")

#: Elements checked at a time by :func:`_check_finite_blocks`.
_FINITE_CHECK_ELEMENTS = 1 << 20


def is_half_precision(dtype: Any) -> bool:
    """True for float16 or bfloat16, of any library (NumPy, PyTorch, CuPy).

    Half-precision data stays half precision in memory; every kernel reads
    it in float32 row blocks (:class:`kgpu._stream.StreamedRows`) or works
    on a float32 conversion, never computes in half precision.
    """
    return str(dtype).rsplit(".", 1)[-1] in HALF_PRECISION


def _check_finite_blocks(X: Any, xp: Any) -> None:
    """NaN / infinity check of ``X`` a few rows at a time (no ``n x d`` mask)."""
    n_rows, n_features = X.shape
    rows = max(1, _FINITE_CHECK_ELEMENTS // max(1, n_features))
    for start in range(0, n_rows, rows):
        block = X[start:start + rows, :]
        if not bool(xp.all(xp.isfinite(block))):
            raise ValueError(non_finite_message("NaN" if bool(xp.any(xp.isnan(block))) else "infinity"))


def non_finite_message(problem: str) -> str:
    """The error of data holding ``problem`` (``"NaN"`` or ``"infinity"``), the same on every path."""
    return f"Input X contains {problem}: remove or impute non-finite values first."


def check_finite_largest(largest: float) -> None:
    """Refuse data whose largest ``|x|`` is ``largest``: NaN when it holds a NaN, infinite with an infinity.

    The finiteness check of a fit that validated ``X`` with
    ``check_data(..., check_finite=False)``: its first pass over ``X`` finds
    the largest ``|x|`` (:func:`kgpu._scale.max_abs`, which returns NaN when
    any value is NaN), so that pass is the check, with
    :func:`find_non_finite`'s message.
    """
    if largest != largest:
        raise ValueError(non_finite_message("NaN"))
    if math.isinf(largest):
        raise ValueError(non_finite_message("infinity"))


def find_non_finite(X: Any, xp: Any) -> str | None:
    """``"NaN"`` when ``X`` holds a NaN, else ``"infinity"`` when it holds one, else ``None``.

    The ``"find_non_finite"`` kernel: :func:`find_non_finite_reference`, or a
    compiled pass without an ``n x d`` mask (:mod:`kgpu._kernels.cpu_numba_frame`).
    """
    return call("find_non_finite", X, xp=xp)


@register("find_non_finite", ANY_BACKEND, name="array-api")
def find_non_finite_reference(X: Any, *, xp: Any) -> str | None:
    """:func:`find_non_finite` with standard calls on the whole array."""
    if bool(xp.all(xp.isfinite(X))):
        return None
    return "NaN" if bool(xp.any(xp.isnan(X))) else "infinity"


def _reject_non_numeric(X: Any) -> None:
    # scikit-learn would try float("abc") and raise a ValueError about a
    # string; we name the real problem (a non-numeric dtype) first.
    dtype = getattr(X, "dtype", None)
    if dtype is not None and getattr(dtype, "kind", None) in ("U", "S", "M", "m"):
        raise TypeError(
            f"X has a non-numeric dtype ({dtype}); kgpu clusters real numbers only."
        )


def is_torch_sparse(X: Any) -> bool:
    """True for a PyTorch sparse tensor of any layout (checked without importing PyTorch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(X, torch.Tensor) and X.layout != torch.strided


def is_dask_array(X: Any) -> bool:
    """True for a ``dask.array.Array`` (checked without importing Dask)."""
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(X, dask_array.Array)


def check_dask_data(X: Any, *, estimator: Any = None, reset: bool = True, min_samples: int = 1) -> Any:
    """Validate a Dask array lazily: shape and dtype now, values with the first pass.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        NumPy or CuPy chunks.
    estimator, reset, min_samples :
        As in :func:`check_data`.

    Returns
    -------
    X : dask.array.Array, float32 or float64
        Chunked by rows only (every chunk holds whole rows). Finiteness is not
        checked here: that would compute the array; the Dask engine checks it
        in its first pass over the chunks.

    Raises
    ------
    ValueError
        For 1-D, 3-D or empty input, unknown chunk sizes, complex values.
    TypeError
        For a non-numeric dtype.
    """
    if X.ndim == 2 and any(size != size for size in X.shape):  # NaN: unknown chunk sizes
        raise ValueError(
            f"X has unknown chunk sizes (shape {X.shape}): call X.compute_chunk_sizes() first."
        )
    _check_shape(X, min_samples)
    kind = X.dtype.kind
    if kind == "c":
        raise ValueError("Complex data not supported: X must hold real numbers.")
    if kind not in "biuf":
        raise TypeError(f"X has a non-numeric dtype ({X.dtype}); kgpu clusters real numbers only.")
    if kind != "f":
        X = X.astype(np.float64)
    elif X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float32)
    if estimator is not None:
        _check_n_features(estimator, X.shape[1], reset=reset)
    return X.rechunk({1: -1})


def _check_shape(X: Any, min_samples: int) -> None:
    """2-D, at least ``min_samples`` rows and one column."""
    if X.ndim != 2:
        advice = (
            "reshape 1-D data with X.reshape(-1, 1) (one feature) or X.reshape(1, -1) (one sample)"
            if X.ndim < 2
            else "flatten the trailing dimensions, e.g. X.reshape(X.shape[0], -1)"
        )
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D array instead: X must have shape "
            f"(n_samples, n_features); {advice}."
        )
    n_samples, n_features = X.shape
    if n_samples < min_samples:
        raise ValueError(
            f"Found array with {n_samples} sample(s) (shape={tuple(X.shape)}) while a "
            f"minimum of {min_samples} is required."
        )
    if n_features < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a minimum "
            "of 1 is required."
        )


def _check_foreign(X: Any, *, estimator: Any, reset: bool, min_samples: int, check_finite: bool = True) -> Any:
    xp = namespace_of(X)
    _check_shape(X, min_samples)
    n_features = X.shape[1]
    if xp.isdtype(X.dtype, "complex floating"):
        raise ValueError("Complex data not supported: X must hold real numbers.")
    if not xp.isdtype(X.dtype, "bool") and not xp.isdtype(X.dtype, "numeric"):
        raise TypeError(
            f"X has a non-numeric dtype ({X.dtype}); kgpu clusters real numbers only."
        )
    if not xp.isdtype(X.dtype, "real floating"):
        # Integers and booleans become float64, as scikit-learn converts them.
        X = xp.astype(X, xp.float64)
    elif X.dtype not in (xp.float32, xp.float64) and not is_half_precision(X.dtype):
        X = xp.astype(X, xp.float32)
    if is_half_precision(X.dtype):
        # Kept half precision; checked in blocks so no n x d mask is made either.
        _check_finite_blocks(X, xp)
    elif check_finite:
        problem = find_non_finite(X, xp)
        if problem is not None:
            raise ValueError(non_finite_message(problem))
    if estimator is not None:
        _check_n_features(estimator, n_features, reset=reset)
    return X


def _check_n_features(estimator: Any, n_features: int, *, reset: bool) -> None:
    if reset:
        estimator.n_features_in_ = n_features
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
        return
    expected = getattr(estimator, "n_features_in_", None)
    if expected is not None and n_features != expected:
        raise ValueError(
            f"X has {n_features} features, but {type(estimator).__name__} is "
            f"expecting {expected} features as input."
        )


def check_sample_weight(sample_weight: Any, X: Any, xp: Any, device: Any = None) -> Any:
    """Validate ``sample_weight`` and return it as an array of ``xp`` in X's dtype.

    Parameters
    ----------
    sample_weight : None, float or array-like of shape (n_samples,)
        ``None`` gives every sample weight 1.
    X : array of shape (n_samples, n_features)
        Data in namespace ``xp``.
    xp : namespace
    device : device or None

    Returns
    -------
    sample_weight : array of shape (n_samples,)

    Raises
    ------
    ValueError
        Wrong shape, negative, non-finite, or all-zero weights.
    """
    from ._backend import move_to, to_numpy

    n_samples = X.shape[0]
    if sample_weight is None:
        return xp.ones(n_samples, dtype=X.dtype, device=device)
    if isinstance(sample_weight, numbers.Number):
        weights = np.full(n_samples, float(sample_weight))
    elif is_array_api_obj(sample_weight):
        weights = to_numpy(sample_weight)
    else:
        weights = np.asarray(sample_weight)
    if weights.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must be numeric, got dtype {weights.dtype}.")
    weights = weights.astype(np.float64, copy=False)
    if weights.ndim != 1 or weights.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight.shape == {weights.shape}, expected ({n_samples},): "
            "one weight per sample."
        )
    if not np.all(np.isfinite(weights)):
        raise ValueError("sample_weight contains NaN or infinity.")
    if np.any(weights < 0):
        raise ValueError("Negative values in data passed to sample_weight.")
    if not np.any(weights > 0):
        raise ValueError("sample_weight sums to zero: at least one weight must be positive.")
    dtype_name = "float32" if X.dtype == xp.float32 else "float64"
    return move_to(weights.astype(dtype_name), xp, device)


def check_n_clusters(n_clusters: Any, n_samples: int | None = None) -> int:
    """Check that ``n_clusters`` is a positive int no larger than ``n_samples``."""
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, numbers.Integral):
        raise TypeError(f"n_clusters must be an int, got {n_clusters!r}.")
    if n_clusters < 1:
        raise ValueError(f"n_clusters must be >= 1, got {n_clusters}.")
    if n_samples is not None and n_samples < n_clusters:
        raise ValueError(
            f"n_samples={n_samples} should be >= n_clusters={n_clusters}."
        )
    return int(n_clusters)


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Check an integer parameter and name it in the error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def check_non_negative_float(value: Any, name: str) -> float:
    """Check a real, finite, non-negative parameter and name it in the error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}.")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value}.")
    return float(value)


def describe_namespace(X: Any) -> str:
    """Name of the library that holds ``X`` (for messages and summaries)."""
    return backend_name(namespace_of(X)) if is_array_api_obj(X) else "numpy"
