"""Bisecting K-Means: split one cluster in two with 2-means, until there are k.

Each split runs kgpu's Lloyd kernel (:func:`kgpu._lloyd.lloyd`) with two
centers on the rows of the chosen cluster (gathered by an index array, weights
kept), on the same backend as the fit; on NumPy the split is the operation
``"bisect"`` of the kernel table, compiled passes whose cost is O(rows) with
no fixed cost per iteration (:mod:`kgpu._kernels.cpu_numba_bisect`). The clusters form a binary tree; the
final clusters are its leaves, labelled left to right (scikit-learn's
convention), and :func:`descend` assigns new rows by walking down the tree.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, NamedTuple

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._assign import assignment_block_rows, center_scores, itemsize as _itemsize, weighted_inertia
from ._backend import device_of, move_to, to_numpy
from ._base import Placement, fitted_backend_name, warn_if_fewer_distinct_clusters
from ._blocks import map_blocks, row_blocks
from ._distances import homogeneous, homogeneous_operand
from ._scale import IDENTITY, Frame, frame_view
from ._kmeans import KMeans, mean_feature_variance, weighted_mean
from ._elkan import check_algorithm, hamerly
from ._kernels.dispatch import ANY_BACKEND, call, register
from ._lloyd import assign_cost_to_current, lloyd
from . import _sparse
from ._minibatch import SEEDING_METHODS, batch_rows_of, seed_centers, take_host_ids
from ._sparse import is_sparse
from ._progress import check_progress
from ._segment import segment_weight
from ._validation import check_n_clusters, check_non_negative_float, check_positive_int

#: Values of ``bisecting_strategy``.
BISECTING_STRATEGIES = ("biggest_inertia", "largest_cluster")


class Bisection(NamedTuple):
    """One split of the tree (an entry of ``BisectingKMeans.split_tree_``).

    Nodes are numbered in the order they are created: the root (all the data)
    is node 0, and split number ``step`` (from 0) turns node ``parent`` into
    nodes ``2 * step + 1`` (``left``) and ``2 * step + 2`` (``right``).

    Attributes
    ----------
    step : int
        Order of the split, from 0.
    parent, left, right : int
        Node split, and the two nodes made from it.
    parent_size, left_size, right_size : int
        Rows in each node.
    parent_weight, left_weight, right_weight : float
        Total sample weight of each node (its size when unweighted).
    parent_inertia : float
        Weighted sum of squared distances of the parent's rows to its center,
        before the split.
    left_inertia, right_inertia : float
        The same for each child, about its own center, after the split.
    n_iter : int
        Lloyd iterations of the 2-means run kept for this split.
    """

    step: int
    parent: int
    left: int
    right: int
    parent_size: int
    left_size: int
    right_size: int
    parent_weight: float
    left_weight: float
    right_weight: float
    parent_inertia: float
    left_inertia: float
    right_inertia: float
    n_iter: int

    @property
    def inertia_after(self) -> float:
        """Inertia of the two children together: ``left_inertia + right_inertia``."""
        return self.left_inertia + self.right_inertia


class _Node:
    """A cluster of the tree while fitting: its rows, center and statistics."""

    __slots__ = ("node_id", "indices", "center", "size", "weight", "inertia")

    def __init__(self, node_id: int, indices: Any, center: Any, size: int, weight: float, inertia: float):
        self.node_id = node_id
        self.indices = indices  # integer array on the compute device, or None for "every row"
        self.center = center  # (d,), input coordinates, compute namespace
        self.size = size
        self.weight = weight
        self.inertia = inertia


class Split(NamedTuple):
    """A 2-means split of one cluster (output of :func:`bisect`).

    Attributes
    ----------
    centers : array of shape (2, d)
        Left and right centers, in the coordinates of the input rows.
    labels : integer array of shape (m,)
        0 (left) or 1 (right) for each row of the cluster.
    sizes, weights, inertias : ndarray of shape (2,) (host)
        Rows, total weight and weighted inertia of each side.
    n_iter : int
    """

    centers: Any
    labels: Any
    sizes: np.ndarray
    weights: np.ndarray
    inertias: np.ndarray
    n_iter: int


def bisect(
    X: Any,
    sample_weight: Any,
    *,
    seed: Callable[[Any, Any, Any], Any],
    n_init: int,
    max_iter: int,
    tol: float,
    center_rows: bool,
    xp: Any,
    budget_mib: float | None = None,
    algorithm: str = "lloyd",
) -> Split:
    """Split the rows ``X`` in two (operation ``"bisect"``).

    Runs the implementation the kernel table picks for ``xp``
    (:mod:`kgpu._kernels.dispatch`): on NumPy, the whole 2-means run compiled
    (:mod:`kgpu._kernels.cpu_numba_bisect`); :func:`bisect_reference` is the
    array-API reference, documented there. SciPy sparse rows, which no
    kernel table entry takes, go to the reference directly.
    """
    if is_sparse(X):
        return bisect_reference(
            X, sample_weight, seed=seed, n_init=n_init, max_iter=max_iter, tol=tol, center_rows=center_rows,
            xp=xp, budget_mib=budget_mib, algorithm=algorithm,
        )
    return call(
        "bisect", X, sample_weight, seed=seed, n_init=n_init, max_iter=max_iter, tol=tol, center_rows=center_rows,
        xp=xp, budget_mib=budget_mib, algorithm=algorithm,
    )


@register("bisect", ANY_BACKEND, name="array-api")
def bisect_reference(
    X: Any,
    sample_weight: Any,
    *,
    seed: Callable[[Any, Any, Any], Any],
    n_init: int,
    max_iter: int,
    tol: float,
    center_rows: bool,
    xp: Any,
    budget_mib: float | None = None,
    algorithm: str = "lloyd",
) -> Split:
    """Split the rows ``X`` in two by Lloyd's 2-means, best of ``n_init`` seedings.

    Parameters
    ----------
    X : array of shape (m, d), float32 or float64
        Rows of the cluster to split.
    sample_weight : array of shape (m,)
    seed : callable
        ``seed(X_work, sample_weight, offset) -> centers`` of shape (2, d) in the
        working coordinates ``X_work = X - offset``.
    n_init : int
        Seedings tried; the run of least inertia is kept (a later run must be
        better by a relative ``1e-6``, as in scikit-learn).
    max_iter : int
    tol : float
        Relative tolerance: Lloyd stops when the summed squared center shift is
        at most ``tol`` times the mean per-feature variance of these rows.
    center_rows : bool
        Cluster ``X`` minus its weighted mean (better precision).
    xp : namespace
    budget_mib : float or None
        Memory budget of one distance block.
    algorithm : {"lloyd", "elkan"}
        The 2-means iterations: :func:`kgpu._lloyd.lloyd` or
        :func:`kgpu._elkan.hamerly` (same result).

    Returns
    -------
    Split
    """
    if is_sparse(X):
        return _bisect_sparse(X, sample_weight, seed=seed, n_init=n_init, max_iter=max_iter, tol=tol)
    n_rows, n_features = X.shape
    has_weight = bool(xp.any(sample_weight > 0))
    offset = weighted_mean(X, sample_weight, xp=xp) if center_rows and has_weight else None
    design = homogeneous(X, xp=xp, offset=offset)
    X_work = design[:, :-1]
    absolute_tol = tol * mean_feature_variance(X_work, sample_weight, xp=xp) if tol > 0 and has_weight else 0.0
    rows_per_block = assignment_block_rows(n_rows, 2, n_features, _itemsize(X, xp), xp, budget_mib)
    # Rows of no weight cannot be drawn as seeds; if the cluster has none of
    # weight, seed as if unweighted (Lloyd still uses the true weights).
    seed_weight = sample_weight if has_weight else xp.ones_like(sample_weight)
    best = None
    for _ in range(n_init):
        centers = seed(X_work, seed_weight, offset)
        iterate = hamerly if algorithm == "elkan" else lloyd
        result = iterate(design, sample_weight, centers, max_iter=max_iter, tol=absolute_tol, rows_per_block=rows_per_block, xp=xp)
        if best is None or result.inertia < best.inertia * (1 - 1e-6):
            best = result
    point_cost = assign_cost_to_current(X_work, best.centers, best.labels, xp=xp, rows_per_block=rows_per_block)
    sizes = to_numpy(segment_weight(best.labels, 2, xp=xp, dtype=xp.float64))
    weights = to_numpy(segment_weight(best.labels, 2, sample_weight, xp=xp, dtype=xp.float64))
    weighted_cost = xp.astype(sample_weight, xp.float64) * xp.astype(point_cost, xp.float64)
    inertias = to_numpy(segment_weight(best.labels, 2, weighted_cost, xp=xp, dtype=xp.float64))
    centers = best.centers if offset is None else best.centers + offset
    return Split(centers, best.labels, sizes.astype(np.int64), weights, inertias, best.n_iter)


def _restore_inertias(split: Bisection, frame: Frame) -> Bisection:
    """A split record with its inertias in the data's units (see :mod:`kgpu._scale`)."""
    if frame.exponent == 0:
        return split
    return split._replace(**{
        name: frame.restore_distances(getattr(split, name), 2)
        for name in ("parent_inertia", "left_inertia", "right_inertia")
    })


def _bisect_sparse(X, sample_weight, *, seed, n_init, max_iter, tol) -> Split:
    """:func:`bisect` of SciPy sparse rows (:mod:`kgpu._sparse`; never centered, never densified)."""
    weights = np.asarray(to_numpy(sample_weight), dtype=np.float64)
    has_weight = bool(np.any(weights > 0))
    absolute_tol = tol * _sparse.mean_feature_variance(X, weights) if tol > 0 and has_weight else 0.0
    seed_weight = sample_weight if has_weight else np.ones_like(sample_weight)
    x_sq_norms = _sparse.row_sq_norms(X)
    best = None
    for _ in range(n_init):
        centers = to_numpy(seed(X, seed_weight, None))
        result = _sparse.lloyd(X, weights, centers, max_iter=max_iter, tol=absolute_tol, x_sq_norms=x_sq_norms)
        if best is None or result.inertia < best.inertia * (1 - 1e-6):
            best = result
    labels = best.labels
    point_cost = _sparse._own_sq_distances(X, x_sq_norms, best.centers, labels)
    sizes = np.bincount(labels, minlength=2)
    side_weights = np.bincount(labels, weights=weights, minlength=2)
    inertias = np.bincount(labels, weights=weights * point_cost, minlength=2)
    return Split(best.centers, labels, sizes.astype(np.int64), side_weights, inertias, best.n_iter)


def descend(
    X: Any,
    left_centers: Any,
    right_centers: Any,
    tree: "TreeTables",
    *,
    xp: Any,
    rows_per_block: int,
) -> Any:
    """Leaf label of every row, walking down the tree from the root.

    At each internal node a row goes to the child whose center is nearer
    (squared Euclidean; ties go left), as scikit-learn's ``predict`` does.

    Parameters
    ----------
    X : array of shape (n, d)
    left_centers, right_centers : arrays of shape (s, d)
        Centers of the children made by each split, in split order.
    tree : TreeTables
    xp : namespace
    rows_per_block : int

    Returns
    -------
    labels : integer array of shape (n,)
    """
    n_splits = left_centers.shape[0]
    device = device_of(left_centers)
    operand = homogeneous_operand(xp.concat([left_centers, right_centers], axis=0), xp=xp)
    split_of_node = xp.asarray(tree.split_of_node, device=device)
    left_child = xp.asarray(tree.left_child, device=device)
    right_child = xp.asarray(tree.right_child, device=device)
    label_of_node = xp.asarray(tree.label_of_node, device=device)

    sparse_centers = to_numpy(xp.concat([left_centers, right_centers], axis=0)) if is_sparse(X) else None

    def one_block(start: int, stop: int) -> Any:
        if sparse_centers is not None:
            scores = _sparse.center_scores(X[start:stop], sparse_centers)
        else:
            scores = center_scores(X[start:stop, :], operand, xp=xp)
        # (b * s,) flags: is the right child nearer at split s?
        goes_right = xp.reshape(scores[:, n_splits:] < scores[:, :n_splits], (-1,))
        block_offsets = xp.arange(stop - start, dtype=xp.int64, device=device) * n_splits
        node = xp.zeros(stop - start, dtype=xp.int64, device=device)
        for _ in range(tree.depth):
            split = xp.take(split_of_node, node)
            internal = split >= 0
            safe_split = xp.where(internal, split, xp.zeros_like(split))
            right = xp.take(goes_right, block_offsets + safe_split)
            child = xp.where(right, xp.take(right_child, safe_split), xp.take(left_child, safe_split))
            node = xp.where(internal, child, node)
        return xp.take(label_of_node, node)

    parts = map_blocks(one_block, row_blocks(X.shape[0], rows_per_block), xp)
    return parts[0] if len(parts) == 1 else xp.concat(parts)


class TreeTables(NamedTuple):
    """The split tree as lookup tables (host, int64), for :func:`descend`.

    Attributes
    ----------
    split_of_node : ndarray of shape (n_nodes,)
        Split that divides each node, -1 for a leaf.
    left_child, right_child : ndarray of shape (n_splits,)
        Nodes made by each split.
    label_of_node : ndarray of shape (n_nodes,)
        Label of each leaf, -1 for an internal node.
    depth : int
        Splits on the longest root-to-leaf path.
    """

    split_of_node: np.ndarray
    left_child: np.ndarray
    right_child: np.ndarray
    label_of_node: np.ndarray
    depth: int


def tree_tables(splits: list[Bisection], leaf_nodes: np.ndarray) -> TreeTables:
    """Lookup tables of a tree from its splits and its leaves (in label order)."""
    n_nodes = 2 * len(splits) + 1
    split_of_node = np.full(n_nodes, -1, dtype=np.int64)
    depth_of_node = np.zeros(n_nodes, dtype=np.int64)
    for split in splits:
        split_of_node[split.parent] = split.step
        depth_of_node[[split.left, split.right]] = depth_of_node[split.parent] + 1
    label_of_node = np.full(n_nodes, -1, dtype=np.int64)
    label_of_node[leaf_nodes] = np.arange(leaf_nodes.shape[0])
    return TreeTables(
        split_of_node,
        np.array([split.left for split in splits], dtype=np.int64),
        np.array([split.right for split in splits], dtype=np.int64),
        label_of_node,
        int(depth_of_node.max()),
    )


class BisectingKMeans(KMeans):
    """Bisecting K-Means: a tree of 2-means splits, on any array-API backend.

    Starting from one cluster holding all the data, the cluster chosen by
    ``bisecting_strategy`` is split in two by Lloyd's algorithm with two
    centers, until there are ``n_clusters`` clusters. The splits are kept in
    ``split_tree_``.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters (leaves of the tree).
    init : {"k-means++", "random"} or callable, default="random"
        Seeding of each 2-means run: greedy k-means++, or two distinct rows
        drawn ∝ ``sample_weight``; a callable
        ``init(X_cluster, 2, random_state) -> centers`` is called with the rows
        of the cluster being split, in the input's namespace and coordinates,
        and must return 2 centers.
    n_init : int, default=1
        2-means runs per split; the one of least inertia is kept.
    random_state : int, RandomState instance or None, default=None
        Seeds every draw (made on the host: same tree on every backend).
    max_iter : int, default=300
        Most Lloyd iterations per run.
    verbose : int, default=0
        Print every split when > 0.
    tol : float, default=1e-4
        A run stops when the summed squared center shift is at most ``tol``
        times the mean (weighted) per-feature variance of the cluster being
        split, or when no label changes.
    copy_x : bool, default=True
        Cluster each split's rows minus their weighted mean (better precision).
        The input is never modified either way.
    algorithm : {"lloyd", "elkan"}, default="lloyd"
        The 2-means iterations of every split: Lloyd's, or the same
        iterations skipping the distances Hamerly's bounds rule out (see
        :class:`kgpu.KMeans`). Same tree either way.
    bisecting_strategy : {"biggest_inertia", "largest_cluster"}, default="biggest_inertia"
        Which leaf to split next: the one of largest inertia (weighted sum of
        squared distances to its center), or the one of largest total weight
        (its number of rows when unweighted). Ties go to the leftmost leaf;
        leaves of fewer than 2 rows are never split.
    backend : {None, "auto", "numpy", "cupy", "torch", "array_api_strict"}, default=None
        Library that computes (see :class:`kgpu.KMeans`).
    device : object, default=None
        Device for ``backend``.
    working_memory : float or None, default=None
        Memory budget in MiB of one block of the distance matrix.

    progress : bool or "auto", default=False
        Show a progress bar (tqdm, on standard error) counting splits, with the inertia after each.
        ``"auto"`` shows it only when standard error is a terminal.
        Independent of ``verbose``.
    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
        Centers of the leaves, in label order.
    labels_ : integer array of shape (n_samples,)
        Leaf of every row. Leaves are labelled left to right (depth first,
        left child before right child), as scikit-learn does.
    inertia_ : float
        Weighted sum of squared distances of the rows to the center of their leaf.
    n_iter_ : int
        Lloyd iterations of all the kept 2-means runs together.
    n_features_in_ : int
    split_tree_ : list of Bisection
        The splits in the order they were made (see :class:`Bisection`).
    leaf_nodes_ : ndarray of shape (n_clusters,)
        Tree node of each label: label ``i`` is node ``leaf_nodes_[i]``.
    node_centers_ : array of shape (2 * n_clusters - 1, n_features)
        Center of every node of the tree, by node number (the root's is the
        weighted mean of the data); ``node_centers_[leaf_nodes_]`` is
        ``cluster_centers_``.
    backend_ : str
        Library the fit computed with.

    Notes
    -----
    ``predict`` walks down the tree: at each split a row goes to the nearer of
    the two child centers, until it reaches a leaf (scikit-learn's rule). This
    is usually, but not always, the nearest leaf center. ``transform`` gives the
    distances to every leaf center and ``score`` is minus the inertia to the
    nearest leaf center, both as in scikit-learn.

    With ``tol=0`` and no sample weights, a seed gives scikit-learn's tree:
    the seedings are drawn in the same order.

    Examples
    --------
    >>> import numpy as np
    >>> from kgpu import BisectingKMeans
    >>> X = np.array([[0, 0], [0, 1], [1, 0], [10, 0], [10, 1], [11, 0],
    ...               [20, 0], [20, 1], [21, 0]], dtype=float)
    >>> bkm = BisectingKMeans(n_clusters=3, random_state=0).fit(X)
    >>> bkm.labels_.tolist()
    [1, 1, 1, 0, 0, 0, 2, 2, 2]
    >>> [(split.parent, split.left, split.right) for split in bkm.split_tree_]
    [(0, 1, 2), (1, 3, 4)]
    >>> bkm.leaf_nodes_.tolist()
    [3, 4, 2]
    >>> bkm.predict(np.array([[19.0, 0.0]])).tolist()
    [2]
    """

    # Dask input is not supported: the splits need random access to the rows.
    _dask_engine = False

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | Callable = "random",
        n_init: int = 1,
        random_state: Any = None,
        max_iter: int = 300,
        verbose: int = 0,
        tol: float = 1e-4,
        copy_x: bool = True,
        algorithm: str = "lloyd",
        bisecting_strategy: str = "biggest_inertia",
        backend: str | None = None,
        device: Any = None,
        working_memory: float | None = None,
        progress: bool | str = False,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.random_state = random_state
        self.max_iter = max_iter
        self.verbose = verbose
        self.tol = tol
        self.copy_x = copy_x
        self.algorithm = algorithm
        self.bisecting_strategy = bisecting_strategy
        self.backend = backend
        self.device = device
        self.working_memory = working_memory
        self.progress = progress

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> "BisectingKMeans":
        """Build the tree of splits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NumPy, CuPy, PyTorch or any array-API array; lists and frames too.
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Used by the seeding, every Lloyd update, the inertias and the
            ``"largest_cluster"`` sizes.

        Returns
        -------
        self
        """
        n_clusters = check_n_clusters(self.n_clusters)
        n_init = check_positive_int(self.n_init, "n_init")
        max_iter = check_positive_int(self.max_iter, "max_iter")
        tol = check_non_negative_float(self.tol, "tol")
        # Every split is a 2-means: never the single cluster check_algorithm warns about.
        algorithm = check_algorithm(self.algorithm, 2, type(self).__name__)
        check_progress(self.progress)
        self._check_init_and_strategy()
        placement = self._place_rows(X, reset=True, streamable=False)
        xp, X_fit = placement.xp, placement.X
        n_samples = X_fit.shape[0]
        check_n_clusters(n_clusters, n_samples)
        sample_weight = self._place_weights(sample_weight, placement)
        random_state = check_random_state(self.random_state)
        # The tree is grown in the working frame (kgpu._scale): exact far from
        # the origin and at extreme magnitudes.
        frame = self._fit_working_frame(X_fit, sample_weight, xp=xp, center=bool(self.copy_x))
        X_fit = frame.apply(X_fit)

        sparse = is_sparse(X_fit)
        if sparse:
            root_center = _sparse.weighted_mean(X_fit, sample_weight).astype(X_fit.dtype)
        else:
            root_center = weighted_mean(X_fit, sample_weight, xp=xp)
        root_labels = xp.zeros(n_samples, dtype=xp.int64, device=placement.device)
        root = _Node(
            0, None, root_center, n_samples, float(xp.sum(xp.astype(sample_weight, xp.float64))),
            self._inertia(X_fit, sample_weight, root_center[None, :], root_labels, xp),
        )
        leaves = [root]  # always in left-to-right order
        node_centers = [root_center]  # indexed by node id
        splits: list[Bisection] = []
        with self._progress_bar(total=n_clusters - 1, unit="split") as bar:
            for step in range(n_clusters - 1):
                position = self._leaf_to_split(leaves)
                parent = leaves[position]
                rows = X_fit if parent.indices is None else batch_rows_of(X_fit, parent.indices, xp=xp)
                weights = sample_weight if parent.indices is None else xp.take(sample_weight, parent.indices, axis=0)
                split = bisect(
                    rows, weights, seed=self._seeder(placement, random_state, frame), n_init=n_init,
                    max_iter=max_iter, tol=tol, center_rows=bool(self.copy_x), xp=xp,
                    budget_mib=self.working_memory, algorithm=algorithm,
                )
                children = []
                for side in (0, 1):
                    members = xp.nonzero(split.labels == side)[0]
                    indices = members if parent.indices is None else xp.take(parent.indices, members)
                    children.append(_Node(
                        2 * step + 1 + side, indices, split.centers[side, :], int(split.sizes[side]),
                        float(split.weights[side]), float(split.inertias[side]),
                    ))
                leaves[position:position + 1] = children
                node_centers.extend(child.center for child in children)
                record = Bisection(
                    step, parent.node_id, children[0].node_id, children[1].node_id,
                    parent.size, children[0].size, children[1].size,
                    parent.weight, children[0].weight, children[1].weight,
                    parent.inertia, children[0].inertia, children[1].inertia, split.n_iter,
                )
                splits.append(record)
                if self.verbose:
                    print(
                        f"[BisectingKMeans] split {step}: node {record.parent} ({record.parent_size} rows, "
                        f"inertia {record.parent_inertia:.6g}) -> {record.left} ({record.left_size}), "
                        f"{record.right} ({record.right_size}); inertia {record.inertia_after:.6g}"
                    )
                bar.update(inertia=record.inertia_after)

        centers = xp.stack([leaf.center for leaf in leaves], axis=0)
        labels = self._leaf_labels(leaves, n_samples, xp, placement.device)
        warn_if_fewer_distinct_clusters(labels, n_clusters, xp=xp)
        self.split_tree_ = [_restore_inertias(split, frame) for split in splits]
        self.leaf_nodes_ = np.array([leaf.node_id for leaf in leaves], dtype=np.int64)
        self.node_centers_ = placement.to_input(frame.restore(xp.stack(node_centers, axis=0)))
        self.cluster_centers_ = placement.to_input(frame.restore(centers))
        self.labels_ = placement.to_input(labels)
        self.inertia_ = frame.restore_distances(self._inertia(X_fit, sample_weight, centers, labels, xp), 2)
        self.n_iter_ = int(sum(split.n_iter for split in splits))
        self.backend_ = fitted_backend_name(placement)
        return self

    def predict(self, X: Any) -> Any:
        """Leaf of each row, found by walking down the tree of splits.

        At every split a row goes to the nearer of the two child centers
        (ties to the left child), from the root to a leaf, as scikit-learn does.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : integer array of shape (n_samples,), in the namespace of ``X``
        """
        check_is_fitted(self, "split_tree_")
        placement = self._place_rows(X, reset=False, streamable=False)
        xp = placement.xp
        if not self.split_tree_:
            labels = xp.zeros(placement.X.shape[0], dtype=xp.int64, device=placement.device)
            return placement.to_input(labels)
        left_ids = [split.left for split in self.split_tree_]
        right_ids = [split.right for split in self.split_tree_]
        node_centers = xp.astype(move_to(self.node_centers_, xp, placement.device), placement.X.dtype)
        # Sparse rows are never centered: they meet the centers in the data's coordinates.
        frame = IDENTITY if is_sparse(placement.X) else self._stored_frame(placement, node_centers)
        node_centers = frame.apply(node_centers)
        left_centers = take_host_ids(node_centers, np.array(left_ids), xp=xp)
        right_centers = take_host_ids(node_centers, np.array(right_ids), xp=xp)
        tables = tree_tables(self.split_tree_, self.leaf_nodes_)
        n_rows, n_features = placement.X.shape
        rows_per_block = assignment_block_rows(
            n_rows, 2 * len(self.split_tree_), n_features, _itemsize(placement.X, xp), xp, self.working_memory
        )
        X_work = frame_view(placement.X, frame, xp=xp, device=placement.device)
        labels = descend(X_work, left_centers, right_centers, tables, xp=xp, rows_per_block=rows_per_block)
        return placement.to_input(labels)

    # ------------------------------------------------------------- helpers
    def _check_init_and_strategy(self) -> None:
        if isinstance(self.init, str):
            if self.init not in SEEDING_METHODS:
                raise ValueError(f"init must be one of {SEEDING_METHODS} or a callable; got {self.init!r}.")
        elif not callable(self.init):
            raise TypeError(
                f"init must be one of {SEEDING_METHODS} or a callable; got {type(self.init).__name__}. "
                "Bisecting K-Means seeds every split itself, so it takes no array of centers."
            )
        if self.bisecting_strategy not in BISECTING_STRATEGIES:
            raise ValueError(
                f"bisecting_strategy must be one of {BISECTING_STRATEGIES}; got {self.bisecting_strategy!r}."
            )
        if not isinstance(self.copy_x, (bool, np.bool_, numbers.Integral)):
            raise TypeError(f"copy_x must be a bool, got {self.copy_x!r}.")

    def _leaf_to_split(self, leaves: list[_Node]) -> int:
        """Position of the leaf to split next: largest score, leftmost on ties."""
        best_position, best_score = None, None
        for position, leaf in enumerate(leaves):
            if leaf.size < 2:
                continue
            score = leaf.inertia if self.bisecting_strategy == "biggest_inertia" else leaf.weight
            if best_score is None or score > best_score:
                best_position, best_score = position, score
        return best_position

    def _seeder(self, placement: Placement, random_state: np.random.RandomState, frame: Frame = IDENTITY):
        """``seed(X_work, sample_weight, offset)`` for :func:`bisect` (rows in the fit's working ``frame``)."""
        xp = placement.xp

        def seed(X_work: Any, sample_weight: Any, offset: Any) -> Any:
            if callable(self.init):
                X_cluster = X_work if offset is None else X_work + offset
                rows = X_cluster if is_sparse(X_cluster) else placement.to_input(frame.restore(X_cluster))
                centers = self.init(rows, 2, random_state)
                centers = frame.apply(self._check_centers(centers, placement, 2, "the init callable"))
                return centers if offset is None else centers - offset
            return seed_centers(self.init, X_work, sample_weight, 2, random_state, xp=xp)

        return seed

    @staticmethod
    def _inertia(X, sample_weight, centers, labels, xp) -> float:
        if is_sparse(X):
            return _sparse.inertia(X, to_numpy(sample_weight), to_numpy(centers), to_numpy(labels))
        return weighted_inertia(X, sample_weight, centers, labels, xp=xp)

    @staticmethod
    def _leaf_labels(leaves: list[_Node], n_samples: int, xp: Any, device: Any) -> Any:
        """Label of every row from the leaves' row indices (standard calls only)."""
        if len(leaves) == 1:
            return xp.zeros(n_samples, dtype=xp.int64, device=device)
        indices = xp.concat([leaf.indices for leaf in leaves])
        leaf_of_position = xp.concat([
            xp.full(leaf.size, label, dtype=xp.int64, device=device) for label, leaf in enumerate(leaves)
        ])
        # Every row is in exactly one leaf: sorting the row indices puts the
        # labels in row order.
        return xp.take(leaf_of_position, xp.argsort(indices))


__all__ = ["BisectingKMeans", "Bisection", "bisect", "descend"]
