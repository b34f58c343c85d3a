"""Model files: a fitted estimator as one ``.npz`` of arrays plus JSON metadata.

The file holds only numeric arrays and one string array of JSON, and is read
with ``np.load(allow_pickle=False)``: opening a model file from someone else
cannot run code. It records what :meth:`predict` needs to give the fit's
labels again:

- the algorithm (estimator class) and its parameters, the metric included;
- the centers (``cluster_centers_``), the medoid indices of K-Medoids, and for
  Bisecting K-Means the tree of splits with the centers of every node;
- ``n_features_in_``, the feature names (from a frame, or given to
  :func:`save`), the input's dtype and the kgpu version.

:func:`load` rebuilds the estimator with those attributes set, so predicting
runs the estimator's own code (Bisecting K-Means walks the tree of splits).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

#: Identifies the file type; bumped when the layout changes incompatibly.
FORMAT_NAME = "kgpu-model"
FORMAT_VERSION = 1

#: Estimator classes a model file may name (nothing else is ever instantiated).
ESTIMATORS = ("KMeans", "MiniBatchKMeans", "KMedians", "KMedoids", "BisectingKMeans")

#: Fitted scalar attributes kept in the metadata when present.
_SCALAR_ATTRIBUTES = ("inertia_", "n_iter_", "n_steps_", "backend_")

#: Parameters that only say how to display or where to compute, not what was fitted.
_RUNTIME_PARAMS = ("progress", "verbose", "device")


class ModelFileError(ValueError):
    """A model file that cannot be read, with a message naming the file."""


def save(model: Any, path: str | os.PathLike, *, feature_names: Any = None, input_dtype: Any = None) -> Path:
    """Write a fitted kgpu estimator to a model file.

    Parameters
    ----------
    model : KMeans, MiniBatchKMeans, KMedians, KMedoids or BisectingKMeans
        A fitted estimator.
    path : str or path-like
        The file to write (conventionally ``*.kgpu``); written to a temporary
        file beside it and moved into place, so a reader never sees half a model.
    feature_names : sequence of str or None
        Names of the columns (e.g. a CSV header); defaults to the estimator's
        ``feature_names_in_`` when it was fitted on a frame.
    input_dtype : dtype or None
        dtype of the data the model was fitted on; defaults to the centers' dtype.

    Returns
    -------
    path : Path

    Raises
    ------
    TypeError
        When ``model`` is not a kgpu estimator.
    ValueError
        When it is not fitted, or ``feature_names`` does not have one name per feature.
    """
    from ._backend import to_numpy
    from ._io import atomic_path

    name = type(model).__name__
    if name not in ESTIMATORS or not type(model).__module__.startswith("kgpu."):
        raise TypeError(f"kgpu.save writes kgpu estimators ({', '.join(ESTIMATORS)}); got {type(model).__name__}.")
    if not hasattr(model, "cluster_centers_"):
        raise ValueError(f"This {name} is not fitted yet: call fit before saving it.")
    centers = np.asarray(to_numpy(model.cluster_centers_))
    arrays: dict[str, np.ndarray] = {"cluster_centers": centers}
    params, array_params, unsaved = _params(model, arrays)
    names = feature_names if feature_names is not None else getattr(model, "feature_names_in_", None)
    if names is not None:
        names = [str(feature) for feature in names]
        if len(names) != model.n_features_in_:
            raise ValueError(f"feature_names has {len(names)} names for {model.n_features_in_} features.")
    metadata: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kgpu_version": _kgpu_version(),
        "estimator": name,
        "params": params,
        "array_params": array_params,
        "unsaved_params": unsaved,
        "n_features": int(model.n_features_in_),
        "n_clusters": int(centers.shape[0]),
        "feature_names": names,
        "fitted_on_frame": hasattr(model, "feature_names_in_"),
        "input_dtype": str(np.dtype(input_dtype) if input_dtype is not None else centers.dtype),
        "attributes": {
            attribute: _json_scalar(getattr(model, attribute))
            for attribute in _SCALAR_ATTRIBUTES if hasattr(model, attribute)
        },
    }
    if hasattr(model, "medoid_indices_"):
        arrays["medoid_indices"] = np.asarray(to_numpy(model.medoid_indices_), dtype=np.int64)
    if hasattr(model, "split_tree_"):
        metadata["split_tree"] = [{field: _json_scalar(value) for field, value in split._asdict().items()}
                                  for split in model.split_tree_]
        arrays["leaf_nodes"] = np.asarray(model.leaf_nodes_, dtype=np.int64)
        arrays["node_centers"] = np.asarray(to_numpy(model.node_centers_))
    # A 0-d unicode array: stored as plain text in the archive, no pickle needed.
    arrays["metadata"] = np.array(json.dumps(metadata))
    path = Path(path)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)
    return path


def load(path: str | os.PathLike) -> Any:
    """Read a model file written by :func:`save` (or ``kgpu fit``).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    model : estimator
        Fitted, with ``cluster_centers_``, ``n_features_in_`` and what its
        ``predict`` uses; ``model_metadata_`` holds the file's metadata (kgpu
        version, input dtype, feature names...). Training labels are not stored.

    Raises
    ------
    ModelFileError
        Missing, truncated or foreign file; a model naming an unknown estimator.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such file.")
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory, expected a model file.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{path}: not a kgpu model file (cannot read it as .npz: {exc}).") from None
    if "metadata" not in arrays or "cluster_centers" not in arrays:
        raise ModelFileError(f"{path}: not a kgpu model file (no metadata or centers).")
    try:
        metadata = json.loads(str(arrays.pop("metadata")))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: damaged model metadata ({exc}).") from None
    if metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: not a kgpu model file.")
    if metadata.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model format {metadata['format_version']} is newer than this kgpu reads "
            f"({FORMAT_VERSION}); it was written by kgpu {metadata.get('kgpu_version')}."
        )
    name = metadata.get("estimator")
    if name not in ESTIMATORS:
        raise ModelFileError(f"{path}: unknown estimator {name!r}; kgpu models are {', '.join(ESTIMATORS)}.")
    import kgpu

    params = dict(metadata["params"])
    for param, key in metadata.get("array_params", {}).items():
        params[param] = arrays[key]
    model = getattr(kgpu, name)(**params)
    centers = arrays["cluster_centers"]
    if centers.ndim != 2 or centers.shape != (metadata["n_clusters"], metadata["n_features"]):
        raise ModelFileError(f"{path}: centers of shape {centers.shape} do not match the metadata.")
    model.cluster_centers_ = centers
    model.n_features_in_ = int(metadata["n_features"])
    if metadata.get("fitted_on_frame") and metadata.get("feature_names"):
        model.feature_names_in_ = np.asarray(metadata["feature_names"], dtype=object)
    for attribute, value in metadata.get("attributes", {}).items():
        setattr(model, attribute, value)
    if "medoid_indices" in arrays:
        model.medoid_indices_ = arrays["medoid_indices"]
    if "split_tree" in metadata:
        from ._bisecting import Bisection

        model.split_tree_ = [Bisection(**split) for split in metadata["split_tree"]]
        model.leaf_nodes_ = arrays["leaf_nodes"]
        model.node_centers_ = arrays["node_centers"]
    model.model_metadata_ = metadata
    return model


def _params(model: Any, arrays: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """JSON-ready parameters, and where the array-valued ones went.

    An array parameter (an explicit ``init``) is stored in ``arrays`` under
    ``param_<name>``. Returns the scalar parameters, ``{name: array key}``,
    and the names of those that cannot be stored (a callable ``init``, a
    ``RandomState``): :func:`load` leaves those at their defaults.
    """
    from ._backend import to_numpy

    params: dict[str, Any] = {}
    array_params: dict[str, str] = {}
    unsaved: list[str] = []
    for name, value in model.get_params(deep=False).items():
        if name in _RUNTIME_PARAMS:
            continue
        if value is None or isinstance(value, (bool, str)):
            params[name] = value
        elif isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
            params[name] = _json_scalar(value)
        elif hasattr(value, "shape") and not callable(value):
            arrays[f"param_{name}"] = np.asarray(to_numpy(value))
            array_params[name] = f"param_{name}"
        else:
            unsaved.append(name)
    return params, array_params, unsaved


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _kgpu_version() -> str:
    from . import __version__

    return __version__


__all__ = ["ModelFileError", "load", "save"]
