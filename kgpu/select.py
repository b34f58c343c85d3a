"""Choosing the number of clusters: elbow, silhouette sweep, gap statistic, all at once.

Each function fits one clustering per ``k`` (a clone of ``estimator`` with
``n_clusters=k``, by default :class:`kgpu.KMeans`) on the chosen backend and
scores it with the kernels of :mod:`kgpu.metrics`:

- :func:`elbow` finds the knee of the inertia curve with Kneedle
  (Satopää, Albrecht, Irwin & Raghavan 2011);
- :func:`silhouette_sweep` takes the ``k`` of the highest mean silhouette;
- :func:`gap_statistic` follows Tibshirani, Walther & Hastie (2001);
- :func:`choose_k` fits every ``k`` once and applies all the criteria
  (elbow, silhouette, Calinski-Harabasz, Davies-Bouldin, gap) to the same fits.

Random draws (reference data sets, silhouette samples) are made on the host
from ``random_state``; with an int seed every function here gives the same
answer as the others and on every backend.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
from sklearn.base import clone
from sklearn.utils import check_random_state

from ._backend import device_of, move_to, to_numpy
from ._base import Placement
from ._blocks import block_rows, map_blocks, row_blocks
from ._progress import progress_bar
from ._scale import Frame, fit_frame
from .metrics import (
    EncodedLabels,
    _check_silhouette_metric,
    _in_working_frame,
    _check_working_memory,
    _place,
    calinski_harabasz_from_stats,
    check_sample_size,
    cluster_stats,
    compact_codes,
    davies_bouldin_from_stats,
    sample_indices,
    silhouette_kernel,
)

#: Criteria :func:`choose_k` understands, in the order its table shows them.
CRITERIA = ("elbow", "silhouette", "calinski_harabasz", "davies_bouldin", "gap")

#: Reference distributions of the gap statistic.
REFERENCES = ("uniform", "pca")

#: With ``sample_size="auto"`` the silhouette of larger data is computed on a
#: sample of this many rows: its cost grows as the square of the rows.
AUTO_SILHOUETTE_ROWS = 10_000


# --------------------------------------------------------------------- knee
@dataclass(frozen=True)
class Knee:
    """Kneedle's view of a decreasing convex curve.

    Attributes
    ----------
    knee : float or None
        ``x`` of the most pronounced knee; ``None`` when there is none (a
        straight line, too few points).
    knees : tuple of float
        ``x`` of every knee Kneedle detects, in increasing order.
    x_normalized, y_normalized : ndarray
        The curve scaled to the unit square (``y`` flipped so the knee is a
        maximum of ``y_normalized - x_normalized``).
    difference : ndarray
        ``y_normalized - x_normalized``, the difference curve.
    """

    knee: float | None
    knees: tuple
    x_normalized: np.ndarray = field(repr=False)
    y_normalized: np.ndarray = field(repr=False)
    difference: np.ndarray = field(repr=False)


def find_knee(x: Iterable[float], y: Iterable[float], *, sensitivity: float = 1.0) -> Knee:
    """Knee of a decreasing convex curve (such as inertia against ``k``) by Kneedle.

    Kneedle (Satopää et al., 2011), offline, without smoothing:

    1. scale ``x`` and ``y`` to ``[0, 1]``;
    2. flip ``y`` (``1 - y``) so the decreasing convex curve becomes an
       increasing concave one, whose knee is where it is farthest above the
       diagonal;
    3. take the difference curve ``d = y - x``; each local maximum of ``d``
       is a candidate, with threshold ``T = d_max - S * mean(diff(x))``;
    4. a candidate is a knee when ``d`` falls below ``T`` before the next
       local maximum (or the end of the curve).

    When several knees are found the most pronounced one (largest ``d``) is
    reported; all are listed. Larger ``sensitivity`` (``S``) asks for sharper
    knees. The elbow favours the first large bend of the curve, so with many
    clusters of unequal separation it may stop early: compare it with the
    silhouette and the gap statistic.

    Parameters
    ----------
    x : sequence of float
        Increasing abscissae (the values of ``k``), at least 3.
    y : sequence of float
        The curve, e.g. the inertia at each ``k``.
    sensitivity : float, default=1.0
        Kneedle's ``S``, >= 0.

    Returns
    -------
    Knee

    Examples
    --------
    >>> from kgpu.select import find_knee
    >>> find_knee([1, 2, 3, 4, 5, 6], [100, 50, 10, 8, 6, 4]).knee
    3.0
    """
    x_values = np.asarray(x, dtype=np.float64).reshape(-1)
    y_values = np.asarray(y, dtype=np.float64).reshape(-1)
    if x_values.shape != y_values.shape:
        raise ValueError(f"x and y must have the same length, got {x_values.size} and {y_values.size}.")
    if isinstance(sensitivity, bool) or not isinstance(sensitivity, numbers.Real) or not sensitivity >= 0:
        raise ValueError(f"sensitivity must be a real number >= 0, got {sensitivity!r}.")
    empty = np.zeros(0)
    finite = np.isfinite(x_values) & np.isfinite(y_values)
    x_values, y_values = x_values[finite], y_values[finite]
    if x_values.size < 3:
        return Knee(None, (), empty, empty, empty)
    if np.any(np.diff(x_values) <= 0):
        raise ValueError("x must be strictly increasing.")
    y_span = y_values.max() - y_values.min()
    x_normalized = (x_values - x_values[0]) / (x_values[-1] - x_values[0])
    if y_span == 0:
        return Knee(None, (), x_normalized, np.zeros_like(x_normalized), -x_normalized)
    y_normalized = 1.0 - (y_values - y_values.min()) / y_span
    difference = y_normalized - x_normalized
    threshold_drop = sensitivity * float(np.mean(np.diff(x_normalized)))
    maxima = [
        i for i in range(1, difference.size - 1)
        if difference[i] > difference[i - 1] and difference[i] >= difference[i + 1]
    ]
    knees = []
    for position, i in enumerate(maxima):
        next_maximum = maxima[position + 1] if position + 1 < len(maxima) else difference.size
        threshold = difference[i] - threshold_drop
        if np.any(difference[i + 1 : next_maximum + 1] < threshold):
            knees.append(i)
    if not knees:
        return Knee(None, (), x_normalized, y_normalized, difference)
    strongest = max(knees, key=lambda i: difference[i])
    return Knee(
        float(x_values[strongest]), tuple(float(x_values[i]) for i in knees),
        x_normalized, y_normalized, difference,
    )


# ------------------------------------------------------------------ results
@dataclass
class ElbowResult:
    """Inertia against ``k`` and its knee (see :func:`elbow`).

    Attributes
    ----------
    k_values : ndarray of int, shape (n_k,)
    inertia : ndarray of float, shape (n_k,)
        Each model's objective (``inertia_``).
    knee : int or None
        The chosen ``k``; ``None`` when the curve has no knee.
    knees : tuple of int
        Every knee Kneedle detected.
    difference : ndarray of shape (n_k,)
        Kneedle's difference curve.
    models : dict of int to estimator
        The fitted model for each ``k``.
    """

    k_values: np.ndarray
    inertia: np.ndarray
    knee: int | None
    knees: tuple
    difference: np.ndarray = field(repr=False)
    models: dict = field(repr=False, default_factory=dict)

    def plot(self, ax: Any = None) -> Any:
        """Draw the curve and its knee (:func:`kgpu.plot.plot_elbow`); returns the Axes."""
        from .plot import plot_elbow

        return plot_elbow(self, ax=ax)


@dataclass
class SilhouetteSweepResult:
    """Mean silhouette against ``k`` (see :func:`silhouette_sweep`).

    Attributes
    ----------
    k_values : ndarray of int, shape (n_k,)
    silhouette : ndarray of float, shape (n_k,)
        NaN where the silhouette is undefined (``k = 1``, a single cluster found).
    best_k : int or None
        ``k`` of the highest silhouette.
    metric : str
    sample_size : int or None
        Rows the silhouette was computed on (``None``: all).
    models : dict of int to estimator
    """

    k_values: np.ndarray
    silhouette: np.ndarray
    best_k: int | None
    metric: str = "euclidean"
    sample_size: int | None = None
    models: dict = field(repr=False, default_factory=dict)


@dataclass
class GapResult:
    """The gap statistic against ``k`` (see :func:`gap_statistic`).

    Attributes
    ----------
    k_values : ndarray of int, shape (n_k,)
    gap : ndarray of shape (n_k,)
        ``Gap(k) = mean_b log W*_kb - log W_k``.
    s_k : ndarray of shape (n_k,)
        ``sd_k * sqrt(1 + 1/B)``, the simulation error of ``Gap(k)``.
    sd_k : ndarray of shape (n_k,)
        Standard deviation (``1/B`` normalisation) of ``log W*_kb`` over the
        ``B`` reference sets.
    log_w : ndarray of shape (n_k,)
        ``log W_k`` of the data.
    ref_log_w : ndarray of shape (n_refs, n_k)
        ``log W*_kb`` of every reference set.
    best_k : int
        The smallest ``k`` with ``Gap(k) >= Gap(k+1) - s_{k+1}``.
    n_refs : int
    reference : str
    models : dict of int to estimator
        The models fitted on the data (not on the references).
    """

    k_values: np.ndarray
    gap: np.ndarray
    s_k: np.ndarray
    sd_k: np.ndarray
    log_w: np.ndarray
    ref_log_w: np.ndarray = field(repr=False)
    best_k: int | None = None
    n_refs: int = 10
    reference: str = "uniform"
    models: dict = field(repr=False, default_factory=dict)

    def plot(self, ax: Any = None) -> Any:
        """Draw ``Gap(k)`` with its ``s_k`` bars (:func:`kgpu.plot.plot_gap`); returns the Axes."""
        from .plot import plot_gap

        return plot_gap(self, ax=ax)


@dataclass
class ChooseKResult:
    """Every criterion of :func:`choose_k` on the same fits, per ``k``.

    Attributes
    ----------
    k_values : ndarray of int, shape (n_k,)
    inertia : ndarray of shape (n_k,)
        Each model's objective (``inertia_``); always computed.
    silhouette, calinski_harabasz, davies_bouldin, gap, s_k : ndarray of shape (n_k,) or None
        The criteria asked for (``None`` for the others); NaN where a score
        is undefined (e.g. the silhouette at ``k = 1``).
    picks : dict of str to int or None
        The ``k`` each criterion chooses: the knee of the inertia (``"elbow"``),
        the highest silhouette and Calinski-Harabasz, the lowest
        Davies-Bouldin, and the gap rule.
    models : dict of int to estimator
        The fitted model for each ``k``.
    log_w, ref_log_w : ndarray or None
        The gap statistic's ``log W_k`` and ``log W*_kb`` (see :class:`GapResult`).
    knees : tuple of int
        Every knee of the inertia curve (the pick is the most pronounced).
    sample_size : int or None
        Rows the silhouette was computed on (``None``: all).
    """

    k_values: np.ndarray
    inertia: np.ndarray
    silhouette: np.ndarray | None = None
    calinski_harabasz: np.ndarray | None = None
    davies_bouldin: np.ndarray | None = None
    gap: np.ndarray | None = None
    s_k: np.ndarray | None = None
    picks: dict = field(default_factory=dict)
    models: dict = field(repr=False, default_factory=dict)
    log_w: np.ndarray | None = field(repr=False, default=None)
    ref_log_w: np.ndarray | None = field(repr=False, default=None)
    knees: tuple = ()
    sample_size: int | None = None

    @property
    def knee(self) -> int | None:
        """The elbow's pick (``None`` when the elbow was not asked for or found no knee)."""
        return self.picks.get("elbow")

    def to_table(self) -> str:
        """The per-``k`` values as a Markdown table; each criterion's pick is starred.

        Returns
        -------
        table : str
            One row per ``k``, then a line with every criterion's pick.
        """
        columns = [("inertia", self.inertia, "elbow", "{:.6g}")]
        for name, values, digits in (
            ("silhouette", self.silhouette, "{:.4f}"),
            ("calinski_harabasz", self.calinski_harabasz, "{:.6g}"),
            ("davies_bouldin", self.davies_bouldin, "{:.4f}"),
            ("gap", self.gap, "{:.4f}"),
        ):
            if values is not None:
                columns.append((name, values, name, digits))
        header = ["k"] + [name for name, *_ in columns]
        if self.s_k is not None:
            header.append("s_k")
        rows = []
        for i, k in enumerate(self.k_values):
            row = [str(int(k))]
            for _, values, criterion, digits in columns:
                text = "-" if not np.isfinite(values[i]) else digits.format(float(values[i]))
                row.append(text + (" *" if self.picks.get(criterion) == int(k) else ""))
            if self.s_k is not None:
                row.append("-" if not np.isfinite(self.s_k[i]) else f"{float(self.s_k[i]):.4f}")
            rows.append(row)
        widths = [max(len(header[j]), *(len(row[j]) for row in rows)) for j in range(len(header))]
        lines = [
            "| " + " | ".join(text.rjust(width) for text, width in zip(header, widths)) + " |",
            "|" + "|".join("-" * (width + 1) + ":" for width in widths) + "|",
        ]
        lines += ["| " + " | ".join(text.rjust(width) for text, width in zip(row, widths)) + " |" for row in rows]
        picks = ", ".join(f"{name}: {'-' if k is None else k}" for name, k in self.picks.items())
        lines.append("")
        lines.append(f"chosen k (* in the table) by {picks}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_table()

    def to_dict(self) -> dict:
        """Plain Python values (lists, floats, ints; NaN as None), ready for JSON."""

        def listed(values: np.ndarray | None) -> list | None:
            if values is None:
                return None
            return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]

        return {
            "k": [int(k) for k in self.k_values],
            "inertia": listed(self.inertia),
            "silhouette": listed(self.silhouette),
            "calinski_harabasz": listed(self.calinski_harabasz),
            "davies_bouldin": listed(self.davies_bouldin),
            "gap": listed(self.gap),
            "s_k": listed(self.s_k),
            "picks": {name: (None if k is None else int(k)) for name, k in self.picks.items()},
            "silhouette_sample_size": self.sample_size,
        }

    def plot(self, axes: Any = None) -> list:
        """One panel per criterion (:func:`kgpu.plot.plot_choose_k`); returns the Axes."""
        from .plot import plot_choose_k

        return plot_choose_k(self, axes=axes)


# ------------------------------------------------------------ validation
def check_k_range(k_range: Any, n_samples: int) -> np.ndarray:
    """Validate the values of ``k`` to try and return them sorted.

    Parameters
    ----------
    k_range : iterable of int
        E.g. ``range(1, 11)`` or ``[2, 4, 8]``.
    n_samples : int

    Returns
    -------
    k_values : ndarray of int64, increasing

    Raises
    ------
    TypeError
        For a single number or non-integer values.
    ValueError
        For an empty range, duplicates, or a ``k`` outside ``[1, n_samples]``.
    """
    if isinstance(k_range, (numbers.Number, str, bytes)) or not isinstance(k_range, Iterable):
        raise TypeError(f"k_range must be an iterable of ints such as range(1, 11), got {k_range!r}.")
    values = list(k_range)
    if not values:
        raise ValueError("k_range is empty: give at least one number of clusters, e.g. range(1, 11).")
    for k in values:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
            raise TypeError(f"k_range must hold ints, got {k!r}.")
    k_values = np.array(sorted(int(k) for k in values), dtype=np.int64)
    if np.any(np.diff(k_values) == 0):
        raise ValueError(f"k_range holds a duplicate value: {sorted(values)}.")
    if k_values[0] < 1:
        raise ValueError(f"k_range contains {k_values[0]}: every number of clusters must be >= 1.")
    if k_values[-1] > n_samples:
        raise ValueError(
            f"k_range contains {k_values[-1]} but X has only {n_samples} samples: "
            "every number of clusters must be <= n_samples."
        )
    return k_values


def _check_criteria(criteria: Any) -> tuple:
    if isinstance(criteria, str):
        criteria = (criteria,)
    chosen = tuple(criteria)
    if not chosen:
        raise ValueError(f"criteria is empty: name at least one of {CRITERIA}.")
    for name in chosen:
        if name not in CRITERIA:
            raise ValueError(f"unknown criterion {name!r}: criteria must be taken from {CRITERIA}.")
    return tuple(name for name in CRITERIA if name in chosen)


def _check_n_refs(n_refs: Any) -> int:
    if isinstance(n_refs, bool) or not isinstance(n_refs, numbers.Integral):
        raise TypeError(f"n_refs must be an int, got {n_refs!r}.")
    if n_refs < 1:
        raise ValueError(f"n_refs must be >= 1 (reference data sets per k), got {n_refs}.")
    return int(n_refs)


def _check_reference(reference: Any) -> str:
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}.")
    return reference


def _resolve_sample_size(sample_size: Any, n_samples: int) -> int | None:
    """``"auto"``: every row up to :data:`AUTO_SILHOUETTE_ROWS`, a sample beyond."""
    if isinstance(sample_size, str) and sample_size == "auto":
        return None if n_samples <= AUTO_SILHOUETTE_ROWS else AUTO_SILHOUETTE_ROWS
    sample_size = check_sample_size(sample_size)
    return None if sample_size is None or sample_size >= n_samples else sample_size


def _estimator_template(estimator: Any, random_state: Any) -> Any:
    if estimator is None:
        from ._kmeans import KMeans

        return KMeans(n_init="auto", random_state=random_state)
    if not hasattr(estimator, "get_params") or not hasattr(estimator, "fit"):
        raise TypeError(
            "estimator must be a scikit-learn compatible clustering estimator "
            f"(e.g. kgpu.KMeans()), got {estimator!r}."
        )
    if "n_clusters" not in estimator.get_params(deep=False):
        raise TypeError(
            f"estimator {type(estimator).__name__} has no n_clusters parameter: "
            "choosing k needs an estimator such as kgpu.KMeans, kgpu.KMedians or kgpu.KMedoids."
        )
    return estimator


# ------------------------------------------------------------------ sweep
class _Sweep:
    """Validated data on the compute backend, and fits and scores on it.

    Parameters
    ----------
    placed : Placement
        The data on the compute namespace.
    template : estimator
        Cloned with ``n_clusters=k`` for every fit.
    budget_mib : float or None
        Memory budget of the scoring kernels.
    """

    def __init__(self, placed: Placement, template: Any, budget_mib: float | None):
        self.placed = placed
        self.xp = placed.xp
        self.template = template
        self.budget_mib = budget_mib
        # kgpu estimators compute where their input lives; others get NumPy.
        self.fits_on_device = "backend" in template.get_params(deep=False)
        self._host_X: np.ndarray | None = None
        # Dispersions are computed in the data's working scale (kgpu._scale),
        # so that data near the largest or smallest floats keeps finite,
        # nonzero sums of squares; every criterion is a ratio or a log, and
        # the scale is a power of two, so no criterion changes.
        self.frame = Frame(None, fit_frame(placed.X, xp=placed.xp, center=False, budget_mib=budget_mib).exponent)

    @property
    def n_samples(self) -> int:
        return int(self.placed.X.shape[0])

    def fit(self, k: int, X: Any, X_host: np.ndarray | None = None, fit_params: dict | None = None) -> tuple[Any, EncodedLabels]:
        """A clone of the template fitted with ``n_clusters=k``, and its labels as codes."""
        model = clone(self.template).set_params(n_clusters=int(k))
        if self.fits_on_device:
            model.fit(X, **(fit_params or {}))
        else:
            model.fit(to_numpy(X) if X_host is None else X_host, **(fit_params or {}))
        labels = move_to(model.labels_, self.xp, device_of(X))
        return model, compact_codes(labels, int(k), xp=self.xp)

    def fit_data(self, k: int, fit_params: dict | None = None) -> tuple[Any, EncodedLabels]:
        if not self.fits_on_device and self._host_X is None:
            self._host_X = to_numpy(self.placed.X)
        return self.fit(k, self.placed.X, self._host_X, fit_params)

    def stats(self, X: Any, labels: EncodedLabels):
        """:func:`cluster_stats` of ``X`` in the sweep's working scale (``within_ss`` in working units)."""
        return cluster_stats(self.frame.apply(X), labels.codes, labels.n_labels, xp=self.xp, budget_mib=self.budget_mib)

    def log_w(self, stats: Any) -> float:
        """``log W`` in the data's units, from :meth:`stats` (finite even where ``W`` overflows)."""
        return _log(stats.within_ss) + 2 * self.frame.exponent * math.log(2.0)


def _objective(model: Any, sweep: _Sweep, labels: EncodedLabels, stats: Any = None) -> tuple[float, float]:
    """The model's own objective (``inertia_``), else the within-cluster sum of squares.

    Returns ``(in the data's units, in the sweep's working units)``; the knee
    is found on the second, which stays finite at extreme magnitudes.
    """
    value = getattr(model, "inertia_", None)
    # Outside the working scale an objective may have overflowed or underflowed to 0.
    if value is not None and np.isfinite(float(value)) and (float(value) != 0 or sweep.frame.exponent == 0):
        return float(value), sweep.frame.restore_distances(float(value), -2)
    if stats is None:
        stats = sweep.stats(sweep.placed.X, labels)
    return sweep.frame.restore_distances(stats.within_ss, 2), stats.within_ss


class _SilhouetteRows:
    """The rows the silhouette is computed on (all, or a host-drawn sample), fixed for every k."""

    def __init__(self, sweep: _Sweep, metric: Any, sample_size: Any, random_state: Any):
        self.sweep = sweep
        self.metric = _check_silhouette_metric(metric)
        self.sample_size = _resolve_sample_size(sample_size, sweep.n_samples)
        xp, X = sweep.xp, sweep.placed.X
        self.rows = None
        self.X = X
        if self.sample_size is not None:
            rows = sample_indices(sweep.n_samples, self.sample_size, random_state)
            self.rows = move_to(rows, xp, device_of(X))
            self.X = xp.take(X, self.rows, axis=0)
        # The silhouette does not change in the working frame, where float32 keeps its digits.
        self.X = _in_working_frame(self.X, self.metric, xp=xp, budget_mib=sweep.budget_mib)

    def score(self, labels: EncodedLabels) -> float:
        """Mean silhouette, NaN when undefined (fewer than 2 clusters, or one per row)."""
        xp = self.sweep.xp
        if self.rows is not None:
            labels = compact_codes(xp.take(labels.codes, self.rows, axis=0), labels.n_labels, xp=xp)
        if not 1 < labels.n_labels < self.X.shape[0]:
            return math.nan
        values = silhouette_kernel(self.X, labels.codes, labels.n_labels, self.metric, xp=xp, budget_mib=self.sweep.budget_mib)
        return float(xp.mean(values))


def _defined(n_labels: int, n_samples: int) -> bool:
    return 1 < n_labels < n_samples


# ------------------------------------------------------------ gap statistic
def reference_sampler(X: Any, reference: str, *, xp: Any, budget_mib: float | None = None) -> Callable[[np.random.RandomState], np.ndarray]:
    """A function drawing one reference data set for the gap statistic, on the host.

    Parameters
    ----------
    X : array of shape (n, d)
        The data, on the compute namespace; only its summaries (bounding box,
        mean, principal axes) come to the host.
    reference : {"uniform", "pca"}
        ``"uniform"``: uniform over the bounding box of the columns.
        ``"pca"``: uniform over the box of the data's principal components,
        rotated back (Tibshirani et al.'s second method: it follows the shape
        of elongated data).
    xp : namespace
    budget_mib : float or None

    Returns
    -------
    draw : callable
        ``draw(random_state) -> ndarray of shape (n, d), float64``.
    """
    n_rows, n_features = X.shape
    if reference == "uniform":
        low = to_numpy(xp.min(X, axis=0)).astype(np.float64)
        high = to_numpy(xp.max(X, axis=0)).astype(np.float64)

        def draw_uniform(random_state: np.random.RandomState) -> np.ndarray:
            return random_state.uniform(low, high, size=(n_rows, n_features))

        return draw_uniform

    blocks = row_blocks(n_rows, block_rows(n_rows, 4 * n_features * 8, xp, budget_mib))
    device = device_of(X)

    def column_sums(start: int, stop: int) -> Any:
        return xp.sum(xp.astype(X[start:stop, :], xp.float64), axis=0)

    mean = to_numpy(_add_all(map_blocks(column_sums, blocks, xp))) / n_rows
    mean_on_device = xp.asarray(mean, device=device)

    def scatter(start: int, stop: int) -> Any:
        centered = xp.astype(X[start:stop, :], xp.float64) - mean_on_device
        return xp.matmul(xp.permute_dims(centered, (1, 0)), centered)

    # Principal axes from the d x d scatter matrix: no n x d decomposition.
    _, axes = np.linalg.eigh(to_numpy(_add_all(map_blocks(scatter, blocks, xp))))
    axes_on_device = xp.asarray(axes, device=device)

    def projected_box(start: int, stop: int) -> tuple[Any, Any]:
        projected = xp.matmul(xp.astype(X[start:stop, :], xp.float64) - mean_on_device, axes_on_device)
        return xp.min(projected, axis=0), xp.max(projected, axis=0)

    boxes = map_blocks(projected_box, blocks, xp)
    low = np.min(np.stack([to_numpy(box[0]) for box in boxes]), axis=0)
    high = np.max(np.stack([to_numpy(box[1]) for box in boxes]), axis=0)

    def draw_pca(random_state: np.random.RandomState) -> np.ndarray:
        return random_state.uniform(low, high, size=(n_rows, n_features)) @ axes.T + mean

    return draw_pca


def _add_all(parts: list) -> Any:
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _log(value: float) -> float:
    return math.log(value) if value > 0 else -math.inf


def _reference_log_w(sweep: _Sweep, k_values: np.ndarray, n_refs: int, reference: str, random_state: Any, bar: Any) -> np.ndarray:
    """``log W*_kb`` for ``n_refs`` reference sets drawn from ``random_state``: ``(n_refs, n_k)``."""
    xp, X = sweep.xp, sweep.placed.X
    draw = reference_sampler(X, reference, xp=xp, budget_mib=sweep.budget_mib)
    random_state = check_random_state(random_state)
    dtype = np.float32 if X.dtype == xp.float32 else np.float64
    ref_log_w = np.empty((n_refs, k_values.size))
    for b in range(n_refs):
        reference_host = draw(random_state).astype(dtype)
        reference_data = move_to(reference_host, xp, device_of(X))
        for i, k in enumerate(k_values):
            _, labels = sweep.fit(int(k), reference_data, reference_host)
            ref_log_w[b, i] = sweep.log_w(sweep.stats(reference_data, labels))
            bar.update(1)
    return ref_log_w


def gap_pick(k_values: np.ndarray, gap: np.ndarray, s_k: np.ndarray) -> int:
    """Tibshirani et al.'s rule: the smallest ``k`` with ``Gap(k) >= Gap(k') - s_k'``.

    ``k'`` is the next value in ``k_values`` (``k + 1`` for a full range).
    When no ``k`` satisfies the rule, the largest ``k`` is returned with a
    warning: the range is probably too small.
    """
    for i in range(k_values.size - 1):
        if gap[i] >= gap[i + 1] - s_k[i + 1]:
            return int(k_values[i])
    warnings.warn(
        f"No k in {list(map(int, k_values))} satisfies Gap(k) >= Gap(k+1) - s_(k+1): "
        f"returning the largest, {int(k_values[-1])}. Try a wider k_range.",
        UserWarning,
        stacklevel=3,
    )
    return int(k_values[-1])


def _gap_summary(log_w: np.ndarray, ref_log_w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_refs = ref_log_w.shape[0]
    with np.errstate(invalid="ignore"):
        gap = ref_log_w.mean(axis=0) - log_w
        sd_k = ref_log_w.std(axis=0)
    return gap, sd_k * math.sqrt(1.0 + 1.0 / n_refs), sd_k


# ------------------------------------------------------------- public API
def _start(X, k_range, estimator, random_state, backend, device, working_memory):
    placed = _place(X, backend, device)
    k_values = check_k_range(k_range, int(placed.X.shape[0]))
    sweep = _Sweep(placed, _estimator_template(estimator, random_state), _check_working_memory(working_memory))
    return sweep, k_values


def elbow(
    X: Any,
    k_range: Iterable[int],
    estimator: Any = None,
    *,
    sensitivity: float = 1.0,
    random_state: Any = None,
    backend: str | None = None,
    device: Any = None,
    working_memory: float | None = None,
    progress: bool | str = False,
    **fit_params: Any,
) -> ElbowResult:
    """Inertia for every ``k`` and the knee of the curve (Kneedle).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Any backend's array, list or frame.
    k_range : iterable of int
        Numbers of clusters to try (at least 3), e.g. ``range(1, 11)``.
    estimator : estimator or None
        A clustering estimator with an ``n_clusters`` parameter, cloned for
        every ``k`` (default ``kgpu.KMeans(n_init="auto", random_state=random_state)``).
        The curve is its objective, ``inertia_``.
    sensitivity : float, default=1.0
        Kneedle's ``S`` (see :func:`find_knee`).
    random_state : int, RandomState instance or None
        Seed of the default estimator.
    backend, device : see :class:`kgpu.KMeans`
        Where to compute (default: where ``X`` lives).
    working_memory : float or None
        MiB one block of the scoring kernels may use.
    progress : bool or "auto"
        Show a progress bar over the fits.
    **fit_params :
        Passed to ``estimator.fit`` for every ``k``, e.g. ``sample_weight``
        (the curve is then the weighted objective).

    Returns
    -------
    ElbowResult
    """
    sweep, k_values = _start(X, k_range, estimator, random_state, backend, device, working_memory)
    _need_points("elbow", k_values, 3)
    models, inertia, working_inertia = {}, [], []
    with progress_bar(progress, total=k_values.size, description="elbow", unit="fit") as bar:
        for k in k_values:
            model, labels = sweep.fit_data(int(k), fit_params)
            models[int(k)] = model
            value, working_value = _objective(model, sweep, labels)
            inertia.append(value)
            working_inertia.append(working_value)
            bar.update(1)
    inertia = np.array(inertia)
    knee = find_knee(k_values, np.array(working_inertia), sensitivity=sensitivity)
    return ElbowResult(
        k_values, inertia, None if knee.knee is None else int(knee.knee),
        tuple(int(k) for k in knee.knees), knee.difference, models,
    )


def _need_points(criterion: str, k_values: np.ndarray, minimum: int) -> None:
    if k_values.size < minimum:
        raise ValueError(
            f"the {criterion} criterion needs at least {minimum} values of k, got "
            f"{list(map(int, k_values))}: pass a longer k_range."
        )


def silhouette_sweep(
    X: Any,
    k_range: Iterable[int],
    estimator: Any = None,
    *,
    metric: str = "euclidean",
    sample_size: int | str | None = "auto",
    random_state: Any = None,
    backend: str | None = None,
    device: Any = None,
    working_memory: float | None = None,
    progress: bool | str = False,
    **fit_params: Any,
) -> SilhouetteSweepResult:
    """Mean silhouette for every ``k``; the best ``k`` has the highest.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    k_range : iterable of int
        ``k = 1`` is allowed but scores NaN (the silhouette needs 2 clusters).
    estimator : estimator or None
        As in :func:`elbow`.
    metric : {"euclidean", "sqeuclidean", "manhattan", "cosine"}
    sample_size : int, "auto" or None, default="auto"
        Rows the silhouette is computed on, the same rows for every ``k``,
        drawn like :func:`sklearn.metrics.silhouette_score` draws them.
        ``"auto"``: all rows up to 10,000, else a sample of 10,000 (the exact
        silhouette costs ``O(n^2)``). ``None``: all rows.
    random_state : int, RandomState instance or None
        Seed of the default estimator and of the sample.
    backend, device, working_memory, progress, **fit_params :
        As in :func:`elbow`. The silhouette itself is unweighted.

    Returns
    -------
    SilhouetteSweepResult
    """
    sweep, k_values = _start(X, k_range, estimator, random_state, backend, device, working_memory)
    silhouette_rows = _SilhouetteRows(sweep, metric, sample_size, random_state)
    models, scores = {}, []
    with progress_bar(progress, total=k_values.size, description="silhouette", unit="fit") as bar:
        for k in k_values:
            model, labels = sweep.fit_data(int(k), fit_params)
            models[int(k)] = model
            scores.append(silhouette_rows.score(labels))
            bar.update(1)
    scores = np.array(scores)
    return SilhouetteSweepResult(
        k_values, scores, _best(k_values, scores, larger_is_better=True),
        silhouette_rows.metric.name, silhouette_rows.sample_size, models,
    )


def _best(k_values: np.ndarray, scores: np.ndarray, *, larger_is_better: bool) -> int | None:
    """``k`` of the best finite score (the smallest such ``k`` on ties), or None."""
    finite = np.isfinite(scores)
    if not finite.any():
        return None
    ranked = np.where(finite, scores if larger_is_better else -scores, -np.inf)
    return int(k_values[int(np.argmax(ranked))])


def gap_statistic(
    X: Any,
    k_range: Iterable[int],
    n_refs: int = 10,
    reference: str = "uniform",
    random_state: Any = None,
    *,
    estimator: Any = None,
    backend: str | None = None,
    device: Any = None,
    working_memory: float | None = None,
    progress: bool | str = False,
) -> GapResult:
    """The gap statistic of Tibshirani, Walther & Hastie (2001).

    ``W_k`` is the pooled within-cluster sum of squares of the clustering
    with ``k`` clusters, ``sum_r D_r / (2 n_r)`` in the paper, which for
    squared Euclidean distances is ``sum_i ||x_i - mean[label_i]||^2`` (the
    K-Means inertia). ``B = n_refs`` reference data sets of the same shape are
    drawn on the host from ``random_state``, uniformly over the bounding box of
    the data (or of its principal components, ``reference="pca"``), and
    clustered the same way on the chosen backend. Then

    - ``Gap(k) = (1/B) sum_b log W*_kb - log W_k``,
    - ``sd_k`` = standard deviation of ``log W*_kb`` over ``b``,
    - ``s_k = sd_k sqrt(1 + 1/B)``,

    and the chosen ``k`` is the smallest with ``Gap(k) >= Gap(k+1) - s_(k+1)``.
    Unlike the other criteria it can answer ``k = 1`` (no cluster structure).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    k_range : iterable of int
        At least 2 values, usually ``range(1, k_max + 1)``.
    n_refs : int, default=10
        Reference data sets ``B``; each costs one fit per ``k``.
    reference : {"uniform", "pca"}, default="uniform"
    random_state : int, RandomState instance or None
        Seed of the reference draws and of the default estimator.
    estimator : estimator or None
        As in :func:`elbow`.
    backend, device, working_memory, progress :
        As in :func:`elbow`.

    Returns
    -------
    GapResult
    """
    n_refs = _check_n_refs(n_refs)
    reference = _check_reference(reference)
    sweep, k_values = _start(X, k_range, estimator, random_state, backend, device, working_memory)
    _need_points("gap", k_values, 2)
    models, log_w = {}, []
    with progress_bar(progress, total=k_values.size * (1 + n_refs), description="gap", unit="fit") as bar:
        for k in k_values:
            model, labels = sweep.fit_data(int(k))
            models[int(k)] = model
            log_w.append(sweep.log_w(sweep.stats(sweep.placed.X, labels)))
            bar.update(1)
        ref_log_w = _reference_log_w(sweep, k_values, n_refs, reference, random_state, bar)
    log_w = np.array(log_w)
    gap, s_k, sd_k = _gap_summary(log_w, ref_log_w)
    return GapResult(
        k_values, gap, s_k, sd_k, log_w, ref_log_w, gap_pick(k_values, gap, s_k),
        n_refs, reference, models,
    )


def choose_k(
    X: Any,
    k_range: Iterable[int],
    criteria: Iterable[str] = CRITERIA,
    estimator: Any = None,
    *,
    n_refs: int = 10,
    reference: str = "uniform",
    metric: str = "euclidean",
    sample_size: int | str | None = "auto",
    sensitivity: float = 1.0,
    random_state: Any = None,
    backend: str | None = None,
    device: Any = None,
    working_memory: float | None = None,
    progress: bool | str = False,
) -> ChooseKResult:
    """Fit every ``k`` once and apply every criterion to the same fits.

    With an int ``random_state`` each value equals what the one-criterion
    functions (:func:`elbow`, :func:`silhouette_sweep`, :func:`gap_statistic`,
    :func:`kgpu.metrics.calinski_harabasz_score`,
    :func:`kgpu.metrics.davies_bouldin_score`) give.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Any backend's array, list or frame.
    k_range : iterable of int
        Numbers of clusters to try, e.g. ``range(1, 11)``.
    criteria : iterable of str
        Any of ``"elbow"`` (knee of the inertia, needs 3 values of ``k``),
        ``"silhouette"`` (highest), ``"calinski_harabasz"`` (highest),
        ``"davies_bouldin"`` (lowest), ``"gap"`` (Tibshirani's rule, needs 2
        values of ``k``; costs ``n_refs`` extra fits per ``k``).
    estimator : estimator or None
        A clustering estimator with an ``n_clusters`` parameter (kgpu's
        KMeans, KMedians, KMedoids..., or a scikit-learn one), cloned with
        ``n_clusters=k`` for every ``k``. Default
        ``kgpu.KMeans(n_init="auto", random_state=random_state)``.
    n_refs, reference :
        Of the gap statistic (see :func:`gap_statistic`).
    metric, sample_size :
        Of the silhouette (see :func:`silhouette_sweep`).
    sensitivity : float
        Of the elbow (see :func:`find_knee`).
    random_state : int, RandomState instance or None
        Seed of the default estimator, the silhouette sample and the
        reference draws.
    backend, device : see :class:`kgpu.KMeans`
        Where to compute (default: where ``X`` lives). The data is moved there
        once; every fit and score runs there.
    working_memory : float or None
        MiB one block of the scoring kernels may use.
    progress : bool or "auto"
        Show a progress bar over the fits.

    Returns
    -------
    ChooseKResult

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from kgpu.select import choose_k
    >>> X, _ = make_blobs(n_samples=300, centers=3, random_state=0)
    >>> result = choose_k(X, range(1, 7), n_refs=3, random_state=0)
    >>> result.picks["gap"], result.picks["silhouette"]
    (3, 3)
    """
    criteria = _check_criteria(criteria)
    n_refs = _check_n_refs(n_refs)
    reference = _check_reference(reference)
    sweep, k_values = _start(X, k_range, estimator, random_state, backend, device, working_memory)
    if "elbow" in criteria:
        _need_points("elbow", k_values, 3)
    if "gap" in criteria:
        _need_points("gap", k_values, 2)
    silhouette_rows = _SilhouetteRows(sweep, metric, sample_size, random_state) if "silhouette" in criteria else None
    needs_stats = {"calinski_harabasz", "davies_bouldin", "gap"} & set(criteria)
    n_k = k_values.size
    values = {
        name: np.full(n_k, np.nan)
        for name in ("inertia", "working_inertia", "silhouette", "calinski_harabasz", "davies_bouldin", "log_w")
    }
    models = {}
    n_fits = n_k * (1 + (n_refs if "gap" in criteria else 0))
    with progress_bar(progress, total=n_fits, description="choose_k", unit="fit") as bar:
        for i, k in enumerate(k_values):
            model, labels = sweep.fit_data(int(k))
            models[int(k)] = model
            stats = sweep.stats(sweep.placed.X, labels) if needs_stats else None
            values["inertia"][i], values["working_inertia"][i] = _objective(model, sweep, labels, stats)
            if silhouette_rows is not None:
                values["silhouette"][i] = silhouette_rows.score(labels)
            if stats is not None:
                values["log_w"][i] = sweep.log_w(stats)
                if _defined(labels.n_labels, sweep.n_samples):
                    values["calinski_harabasz"][i] = calinski_harabasz_from_stats(stats, sweep.n_samples)
                    values["davies_bouldin"][i] = davies_bouldin_from_stats(stats)
            bar.update(1)
        ref_log_w = None
        if "gap" in criteria:
            ref_log_w = _reference_log_w(sweep, k_values, n_refs, reference, random_state, bar)

    picks: dict = {}
    result = ChooseKResult(k_values, values["inertia"], models=models, picks=picks)
    if "elbow" in criteria:
        knee = find_knee(k_values, values["working_inertia"], sensitivity=sensitivity)
        picks["elbow"] = None if knee.knee is None else int(knee.knee)
        result.knees = tuple(int(k) for k in knee.knees)
    if "silhouette" in criteria:
        result.silhouette = values["silhouette"]
        result.sample_size = silhouette_rows.sample_size
        picks["silhouette"] = _best(k_values, values["silhouette"], larger_is_better=True)
    if "calinski_harabasz" in criteria:
        result.calinski_harabasz = values["calinski_harabasz"]
        picks["calinski_harabasz"] = _best(k_values, values["calinski_harabasz"], larger_is_better=True)
    if "davies_bouldin" in criteria:
        result.davies_bouldin = values["davies_bouldin"]
        picks["davies_bouldin"] = _best(k_values, values["davies_bouldin"], larger_is_better=False)
    if "gap" in criteria:
        result.gap, result.s_k, _ = _gap_summary(values["log_w"], ref_log_w)
        result.log_w, result.ref_log_w = values["log_w"], ref_log_w
        picks["gap"] = gap_pick(k_values, result.gap, result.s_k)
    return result


__all__ = [
    "CRITERIA",
    "ChooseKResult",
    "ElbowResult",
    "GapResult",
    "Knee",
    "SilhouetteSweepResult",
    "check_k_range",
    "choose_k",
    "elbow",
    "find_knee",
    "gap_pick",
    "gap_statistic",
    "reference_sampler",
    "silhouette_sweep",
]
