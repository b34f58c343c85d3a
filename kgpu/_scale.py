"""The working frame: a local origin and a power-of-two scale for the arithmetic.

Squared distances lose digits in two ways. Far from the origin (float32
coordinates near ``1e5``, say) the expansion ``||x||^2 - 2 x.c + ||c||^2``
cancels the few digits that tell clusters apart; at extreme magnitudes
(``1e300`` in float64, ``1e30`` in float32, or their reciprocals) the squares
overflow to inf or underflow to 0. Every estimator, the seedings and the
metrics therefore compute in one *working frame*::

    x_work = (x - origin) * 2**-exponent

The origin is a local one (the fit's weighted mean, or the data's mean for a
metric), so the working coordinates are small; the exponent brings the largest
working coordinate near 1 when it lies outside a comfortable window, and is 0
otherwise. Multiplying by a power of two is exact in floating point, so the
scale changes no result bit of ordinary data, and it is undone exactly on the
way out (centers, inertia, distances).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ._kernels.dispatch import ANY_BACKEND, call, register

#: Largest working exponent left alone, per itemsize: inside this window the
#: squares of coordinate differences neither overflow nor fall below the
#: smallest normal number, so no scale is applied and ordinary data runs
#: exactly as it always did.
COMFORTABLE_EXPONENT = {4: 16, 8: 128}

#: Largest power of two applied in one multiplication (2**100 is a normal
#: float32, so a float32 block multiplied by it does not overflow the factor).
_STEP_EXPONENT = 100


class Frame(NamedTuple):
    """A working frame ``x_work = (x - origin) * 2**-exponent``.

    Attributes
    ----------
    origin : array of shape (d,) or None
        Local origin, in the compute namespace and the data's dtype; ``None``
        for no translation (metrics that depend on the origin, e.g. cosine).
    exponent : int
        Working coordinates are divided by ``2**exponent`` (0: no scale).
    """

    origin: Any
    exponent: int

    @property
    def is_identity(self) -> bool:
        return self.origin is None and self.exponent == 0

    def apply(self, rows: Any) -> Any:
        """Rows (or centers) of shape ``(m, d)`` into working coordinates; a new array."""
        if self.origin is not None:
            rows = rows - self.origin
        return scale_by_power_of_two(rows, -self.exponent)

    def restore(self, rows: Any) -> Any:
        """Working rows (e.g. fitted centers) back to the data's coordinates."""
        rows = scale_by_power_of_two(rows, self.exponent)
        if self.origin is not None:
            rows = rows + self.origin
        return rows

    def restore_distances(self, values: Any, power: float) -> Any:
        """Distances (or their sums) under a metric homogeneous of degree ``power``, restored.

        ``power`` is 2 for squared Euclidean (inertia), 1 for the true metrics
        (Euclidean, Manhattan, Minkowski), 0 for cosine. ``values`` is an array
        or a Python float.
        """
        if self.exponent == 0 or power == 0:
            return values
        exponent = self.exponent * power
        if isinstance(values, (float, int)):
            try:
                return math.ldexp(float(values), int(exponent))
            except OverflowError:  # the true value is beyond float64 (e.g. an inertia of 1e600)
                return math.copysign(math.inf, values)
        return scale_by_power_of_two(values, int(exponent))

    def to_host(self) -> tuple[np.ndarray | None, int]:
        """The frame as host data (kept by a fitted estimator)."""
        from ._backend import to_numpy

        return (None if self.origin is None else np.array(to_numpy(self.origin)), self.exponent)


IDENTITY = Frame(None, 0)


def scale_by_power_of_two(values: Any, exponent: int) -> Any:
    """``values * 2**exponent``, exact, in steps small enough for float32 factors."""
    while exponent != 0:
        step = max(-_STEP_EXPONENT, min(_STEP_EXPONENT, exponent))
        values = values * math.ldexp(1.0, step)
        exponent -= step
    return values


def working_exponent(max_abs: float, itemsize: int) -> int:
    """Exponent of the scale for working coordinates whose largest magnitude is ``max_abs``.

    0 inside the comfortable window (see :data:`COMFORTABLE_EXPONENT`);
    otherwise the exponent that brings ``max_abs`` into ``[0.5, 1)``.
    """
    if not math.isfinite(max_abs) or max_abs <= 0:
        return 0
    exponent = math.frexp(max_abs)[1]
    return exponent if abs(exponent) > COMFORTABLE_EXPONENT.get(itemsize, 16) else 0


def _itemsize(X: Any, xp: Any) -> int:
    return 4 if X.dtype == xp.float32 else 8


def max_abs(X: Any, *, xp: Any, origin: Any = None, budget_mib: float | None = None) -> float:
    """Largest ``|x - origin|`` over the rows of ``X`` (an array or streamed rows), a float.

    NaN when ``X`` holds a NaN, infinite when it holds an infinity (and no
    NaN). The ``"max_abs"`` kernel: :func:`max_abs_reference`, or a compiled pass
    (:mod:`kgpu._kernels.cpu_numba_frame`) with the same result.
    """
    return call("max_abs", X, xp=xp, origin=origin, budget_mib=budget_mib)


@register("max_abs", ANY_BACKEND, name="array-api")
def max_abs_reference(X: Any, *, xp: Any, origin: Any = None, budget_mib: float | None = None) -> float:
    """Largest ``|x - origin|`` over the rows of ``X`` (an array or streamed rows), a float."""
    from ._blocks import block_rows, map_blocks, row_blocks

    n_rows, n_features = X.shape
    if n_rows == 0:
        return 0.0

    def block_max(start: int, stop: int) -> float:
        block = X[start:stop, :]
        if origin is not None:
            block = block - origin
        return float(xp.max(xp.abs(block)))

    # Small blocks (an eighth of the budget): their two temporaries are all
    # this pass allocates, and it runs before the working copy exists.
    rows = block_rows(n_rows, max(1, n_features) * 8 * 8, xp, budget_mib)
    parts = map_blocks(block_max, row_blocks(n_rows, rows), xp)
    # NaN when any block holds one (Python's max would drop it, by its place):
    # a fit's finiteness check may rest on this value.
    if any(part != part for part in parts):
        return float("nan")
    return max(parts)


def weighted_mean(
    X: Any, sample_weight: Any = None, *, xp: Any, exponent: int = 0, budget_mib: float | None = None
) -> Any:
    """Weighted mean of the rows of ``X``: shape ``(d,)``, the dtype of ``X``.

    Each block is reduced in the data's dtype and the blocks are added in
    float64, in block order. ``exponent`` pre-scales the rows by
    ``2**-exponent`` so that the sums of data near the largest float cannot
    overflow; the result is scaled back.
    """
    from ._blocks import block_rows, map_blocks, row_blocks

    n_rows, n_features = X.shape

    def block_sum(start: int, stop: int) -> Any:
        rows = scale_by_power_of_two(X[start:stop, :], -exponent)
        if sample_weight is None:
            return xp.astype(xp.sum(rows, axis=0), xp.float64)
        return xp.astype(xp.matmul(sample_weight[start:stop], rows), xp.float64)

    rows = block_rows(n_rows, max(1, n_features) * 8 * 2, xp, budget_mib)
    parts = map_blocks(block_sum, row_blocks(n_rows, rows), xp)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    if sample_weight is None:
        total_weight = float(n_rows)
    else:
        total_weight = float(xp.sum(xp.astype(sample_weight, xp.float64)))
    if total_weight <= 0:
        total_weight = 1.0
    mean = scale_by_power_of_two(total / total_weight, exponent)
    return xp.astype(mean, X.dtype)


def fit_frame(
    X: Any,
    sample_weight: Any = None,
    *,
    xp: Any,
    center: bool = True,
    budget_mib: float | None = None,
    check_finite: bool = False,
) -> Frame:
    """The working frame of a fit on ``X`` (an array or streamed rows).

    Parameters
    ----------
    X : array of shape (n, d), or :class:`kgpu._stream.StreamedRows`
    sample_weight : array of shape (n,) or None
        Weights of the origin (the weighted mean); ``None`` for the plain mean.
    xp : namespace
    center : bool
        Translate to the weighted mean (False: scale only, e.g. for cosine).
    budget_mib : float or None
    check_finite : bool
        Refuse ``X`` holding NaN or infinity (the first pass finds its
        largest ``|x|`` anyway), for data validated without that check.

    Returns
    -------
    Frame
    """
    itemsize, largest, origin = _origin_of(
        X, sample_weight, xp=xp, center=center, budget_mib=budget_mib, check_finite=check_finite
    )
    if origin is not None:
        largest = max_abs(X, xp=xp, origin=origin, budget_mib=budget_mib)
    return Frame(origin, working_exponent(largest, itemsize))


def _origin_of(
    X: Any, sample_weight: Any, *, xp: Any, center: bool, budget_mib: float | None, check_finite: bool = False
) -> tuple[int, float, Any]:
    """The frame's first passes: ``X``'s itemsize, its largest ``|x|`` and the origin.

    The origin is the weighted mean, summed in the scale that largest value
    calls for; ``None`` without centering, or when ``X`` has no finite
    nonzero value. ``check_finite``: a NaN or infinite largest value is
    refused (:func:`kgpu._validation.check_finite_largest`).
    """
    from ._validation import check_finite_largest

    itemsize = _itemsize(X, xp)
    largest = max_abs(X, xp=xp, budget_mib=budget_mib)
    if check_finite:
        check_finite_largest(largest)
    origin = None
    if center and largest > 0 and math.isfinite(largest):
        origin = weighted_mean(
            X, sample_weight, xp=xp, exponent=working_exponent(largest, itemsize), budget_mib=budget_mib
        )
    return itemsize, largest, origin


def centered_copy(X: Any, origin: Any, *, xp: Any, budget_mib: float | None = None) -> tuple[Any, float]:
    """``([X - origin, 1], max |X - origin|)``: the ``"centered_copy"`` kernel.

    The working copy of a frame without scale, and the largest working
    coordinate that decides the scale, from one read of ``X`` where a
    compiled kernel applies (:mod:`kgpu._kernels.cpu_numba_frame`).
    """
    return call("centered_copy", X, origin, xp=xp, budget_mib=budget_mib)


@register("centered_copy", ANY_BACKEND, name="array-api")
def centered_copy_reference(X: Any, origin: Any, *, xp: Any, budget_mib: float | None = None) -> tuple[Any, float]:
    """:func:`centered_copy` as the working copy and :func:`max_abs_reference`, two passes."""
    from ._distances import homogeneous_reference

    return homogeneous_reference(X, xp=xp, offset=origin), max_abs_reference(X, xp=xp, origin=origin, budget_mib=budget_mib)


def fit_frame_and_working_copy(
    X: Any,
    sample_weight: Any = None,
    *,
    xp: Any,
    center: bool = True,
    budget_mib: float | None = None,
    check_finite: bool = False,
) -> tuple[Frame, Any]:
    """:func:`fit_frame` and Lloyd's working copy ``[x_work, 1]`` in that frame.

    The same frame and the same copy as ``fit_frame`` followed by
    :func:`kgpu._stream.working_copy`, with one read of ``X`` fewer: the copy
    is written while the largest ``|x - origin|`` is found (as if no scale
    were needed), and made again, scaled, in the rare case one is.
    ``check_finite`` as in :func:`fit_frame`.

    Returns
    -------
    frame : Frame
    design : array of shape (n, d + 1) or StreamedRows
    """
    from ._stream import StreamedRows, working_copy

    if isinstance(X, StreamedRows):
        frame = fit_frame(X, sample_weight, xp=xp, center=center, budget_mib=budget_mib, check_finite=check_finite)
        return frame, working_copy(X, xp=xp, frame=frame)
    itemsize, largest, origin = _origin_of(
        X, sample_weight, xp=xp, center=center, budget_mib=budget_mib, check_finite=check_finite
    )
    if origin is None:
        frame = Frame(None, working_exponent(largest, itemsize))
        return frame, working_copy(X, xp=xp, frame=frame)
    design, largest = centered_copy(X, origin, xp=xp, budget_mib=budget_mib)
    frame = Frame(origin, working_exponent(largest, itemsize))
    if frame.exponent != 0:
        del design  # before the scaled copy is made: never two copies at once
        design = working_copy(X, xp=xp, frame=frame)
    return frame, design


def frame_of_centers(centers: Any, *, xp: Any, center: bool = True) -> Frame:
    """A working frame from fitted centers alone (origin: their mean)."""
    itemsize = _itemsize(centers, xp)
    origin = xp.mean(centers, axis=0) if center else None
    working = centers if origin is None else centers - origin
    largest = float(xp.max(xp.abs(working))) if working.shape[0] else 0.0
    return Frame(origin, working_exponent(largest, itemsize))


def metric_power(metric: Any) -> float:
    """Degree of homogeneity of a metric: 2 squared Euclidean, 0 cosine, 1 otherwise."""
    name = getattr(metric, "name", metric)
    return {"sqeuclidean": 2.0, "cosine": 0.0}.get(name, 1.0)


def is_translation_invariant(metric: Any) -> bool:
    """Whether distances under ``metric`` do not change when the origin moves."""
    return getattr(metric, "name", metric) != "cosine"


def frame_view(X: Any, frame: Frame, *, xp: Any, device: Any) -> Any:
    """``X`` read in working coordinates block by block, without a copy of ``X``.

    Identity frames return ``X`` itself; otherwise a
    :class:`kgpu._stream.StreamedRows` whose blocks are transformed on the way.
    """
    from ._stream import StreamedRows

    if frame.is_identity:
        return X
    if isinstance(X, StreamedRows):
        return X.in_frame(frame)
    return StreamedRows(X, xp, device, frame=frame)


__all__ = [
    "Frame", "IDENTITY", "centered_copy", "fit_frame", "fit_frame_and_working_copy", "frame_of_centers", "frame_view", "max_abs", "max_abs_reference", "metric_power",
    "scale_by_power_of_two", "weighted_mean", "working_exponent", "is_translation_invariant",
]
