"""Plots for choosing k and judging a clustering (matplotlib, optional).

matplotlib is imported only when a plot is drawn, so ``import kgpu`` never
needs it; install it with ``pip install 'kgpu[plot]'``. Every function draws
on the given Axes (or on a new figure) and returns the Axes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._backend import device_of, move_to, namespace_of, to_numpy
from ._validation import check_data
from .metrics import check_sample_size, sample_indices, silhouette_samples

_PICK_STYLE = dict(color="tab:red", linestyle="--", linewidth=1.0)


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "kgpu.plot needs matplotlib, which is not installed: pip install 'kgpu[plot]'."
        ) from exc
    return plt


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    _, new_ax = _pyplot().subplots(figsize=(6, 4))
    return new_ax


def _mark_pick(ax: Any, k_values: np.ndarray, values: np.ndarray, chosen: int | None, label: str) -> None:
    """A dashed line and a red dot at the chosen ``k``."""
    if chosen is None:
        return
    where = np.flatnonzero(k_values == chosen)
    ax.axvline(chosen, label=f"{label}: k = {chosen}", **_PICK_STYLE)
    if where.size and np.isfinite(values[where[0]]):
        ax.plot([chosen], [values[where[0]]], "o", color="tab:red", markersize=8, zorder=3)


def plot_elbow(result: Any, ax: Any = None) -> Any:
    """Inertia against ``k`` with the knee marked.

    Parameters
    ----------
    result : ElbowResult or ChooseKResult
        From :func:`kgpu.select.elbow` or :func:`kgpu.select.choose_k`.
    ax : matplotlib Axes or None
        Where to draw (default: a new figure).

    Returns
    -------
    ax : matplotlib Axes
    """
    ax = _axes(ax)
    k_values = np.asarray(result.k_values)
    inertia = np.asarray(result.inertia, dtype=np.float64)
    ax.plot(k_values, inertia, "o-", color="tab:blue", label="inertia")
    _mark_pick(ax, k_values, inertia, result.knee, "knee")
    ax.set_xlabel("number of clusters k")
    ax.set_ylabel("inertia")
    ax.set_title("Elbow (Kneedle)")
    ax.set_xticks(k_values)
    ax.legend(loc="upper right")
    return ax


def plot_gap(result: Any, ax: Any = None) -> Any:
    """``Gap(k)`` with ``±s_k`` error bars and the chosen ``k`` marked.

    Parameters
    ----------
    result : GapResult or ChooseKResult
        From :func:`kgpu.select.gap_statistic`, or :func:`kgpu.select.choose_k`
        run with the ``"gap"`` criterion.
    ax : matplotlib Axes or None

    Returns
    -------
    ax : matplotlib Axes
    """
    if getattr(result, "gap", None) is None:
        raise ValueError("this result holds no gap statistic: run choose_k with 'gap' in criteria.")
    chosen = result.picks.get("gap") if hasattr(result, "picks") else result.best_k
    ax = _axes(ax)
    k_values = np.asarray(result.k_values)
    gap = np.asarray(result.gap, dtype=np.float64)
    ax.errorbar(k_values, gap, yerr=np.asarray(result.s_k, dtype=np.float64), fmt="o-", capsize=4,
                color="tab:blue", label="Gap(k) ± s_k")
    _mark_pick(ax, k_values, gap, chosen, "chosen")
    ax.set_xlabel("number of clusters k")
    ax.set_ylabel("gap")
    ax.set_title("Gap statistic")
    ax.set_xticks(k_values)
    ax.legend(loc="best")
    return ax


def plot_silhouette(
    X: Any,
    labels: Any,
    ax: Any = None,
    *,
    metric: str = "euclidean",
    sample_size: int | None = None,
    random_state: Any = None,
    backend: str | None = None,
    device: Any = None,
    working_memory: float | None = None,
) -> Any:
    """Per-cluster silhouette plot: one blade per cluster, values sorted.

    Each horizontal blade shows the silhouettes of one cluster's samples from
    largest to smallest; the dashed line is the mean over all samples.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Any backend's array; the silhouettes are computed there.
    labels : array-like of shape (n_samples,)
    ax : matplotlib Axes or None
    metric : {"euclidean", "sqeuclidean", "manhattan", "cosine"}
    sample_size : int or None
        Plot this many rows drawn as :func:`kgpu.metrics.silhouette_score`
        draws them (all when ``None``).
    random_state : int, RandomState instance or None
    backend, device, working_memory :
        See :func:`kgpu.metrics.silhouette_samples`.

    Returns
    -------
    ax : matplotlib Axes
    """
    sample_size = check_sample_size(sample_size)
    X_valid = check_data(X)
    labels_host = np.asarray(to_numpy(labels) if hasattr(labels, "shape") else labels)
    if sample_size is not None and sample_size < X_valid.shape[0]:
        if labels_host.shape != (X_valid.shape[0],):
            raise ValueError(
                f"labels has shape {labels_host.shape} but X has {X_valid.shape[0]} samples: "
                "one label per sample is needed."
            )
        rows = sample_indices(X_valid.shape[0], sample_size, random_state)
        xp = namespace_of(X_valid)
        X_valid = xp.take(X_valid, move_to(rows, xp, device_of(X_valid)), axis=0)
        labels_host = labels_host[rows]
    values = to_numpy(silhouette_samples(
        X_valid, labels_host, metric=metric, backend=backend, device=device, working_memory=working_memory,
    )).astype(np.float64)
    ax = _axes(ax)
    cluster_names, codes = np.unique(labels_host, return_inverse=True)
    colors = _pyplot().get_cmap("tab10") if len(cluster_names) <= 10 else _pyplot().get_cmap("viridis", len(cluster_names))
    gap = max(2, int(0.02 * values.size))
    bottom = gap
    ticks = []
    for code, name in enumerate(cluster_names):
        blade = np.sort(values[codes.reshape(-1) == code])[::-1]
        top = bottom + blade.size
        ax.fill_betweenx(np.arange(bottom, top), 0, blade, color=colors(code % colors.N), alpha=0.8, linewidth=0)
        ticks.append(((bottom + top) / 2, str(name)))
        bottom = top + gap
    mean = float(values.mean())
    ax.axvline(mean, label=f"mean = {mean:.3f}", **_PICK_STYLE)
    ax.set_yticks([position for position, _ in ticks], [name for _, name in ticks])
    ax.set_ylim(0, bottom)
    ax.set_xlim(min(-0.1, float(values.min()) - 0.05), 1.0)
    ax.set_xlabel("silhouette coefficient")
    ax.set_ylabel("cluster")
    ax.set_title(f"Silhouette ({len(cluster_names)} clusters, {values.size} samples)")
    ax.legend(loc="best")
    return ax


def plot_choose_k(result: Any, axes: Any = None) -> list:
    """One panel per criterion of a :func:`kgpu.select.choose_k` result, picks marked.

    Parameters
    ----------
    result : ChooseKResult
    axes : sequence of matplotlib Axes or None
        One per panel: inertia, then each criterion computed (silhouette,
        Calinski-Harabasz, Davies-Bouldin, gap). Default: a new figure, one row.

    Returns
    -------
    axes : list of matplotlib Axes
    """
    panels = [("inertia", None)]
    for name in ("silhouette", "calinski_harabasz", "davies_bouldin", "gap"):
        if getattr(result, name, None) is not None:
            panels.append((name, result.picks.get(name)))
    if axes is None:
        _, created = _pyplot().subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
        axes = list(created[0])
    else:
        axes = list(np.ravel(axes))
        if len(axes) < len(panels):
            raise ValueError(f"this result has {len(panels)} panels but {len(axes)} Axes were given.")
    k_values = np.asarray(result.k_values)
    titles = {
        "silhouette": "Silhouette (higher is better)",
        "calinski_harabasz": "Calinski-Harabasz (higher is better)",
        "davies_bouldin": "Davies-Bouldin (lower is better)",
    }
    for ax, (name, chosen) in zip(axes, panels):
        if name == "inertia":
            plot_elbow(result, ax=ax)
        elif name == "gap":
            plot_gap(result, ax=ax)
        else:
            values = np.asarray(getattr(result, name), dtype=np.float64)
            ax.plot(k_values, values, "o-", color="tab:blue")
            _mark_pick(ax, k_values, values, chosen, "best")
            ax.set_xlabel("number of clusters k")
            ax.set_ylabel(name.replace("_", "-"))
            ax.set_title(titles[name])
            ax.set_xticks(k_values)
            if chosen is not None:
                ax.legend(loc="best")
    axes[0].figure.tight_layout()
    return axes[: len(panels)]


__all__ = ["plot_choose_k", "plot_elbow", "plot_gap", "plot_silhouette"]
