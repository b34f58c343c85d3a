"""kgpu: centroid clustering written once against the Python array API.

The same kernels run on NumPy (all CPU cores), CuPy and PyTorch (CPU or CUDA),
and any namespace array-api-compat wraps, behind scikit-learn's estimator API.

Names are imported on first use (module ``__getattr__``): ``import kgpu`` and
``kgpu --version`` stay fast, and ``from kgpu import KMeans`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> module that defines it (a module maps to itself).
_MODULE_OF = {
    "KMeans": "._kmeans",
    "k_means": "._kmeans",
    "kmeans_plusplus": "._kmeans",
    "KMedians": "._kmedians",
    "KMedoids": "._kmedoids",
    "MiniBatchKMeans": "._minibatch",
    "BisectingKMeans": "._bisecting",
    "quantize_colors": "._quantize",
    "best_backend": "._backend",
    "save": "._model",
    "load": "._model",
    "metrics": ".metrics",
    "plot": ".plot",
    "select": ".select",
}

__all__ = ["KMeans", "k_means", "kmeans_plusplus", "KMedians", "KMedoids", "MiniBatchKMeans", "BisectingKMeans", "quantize_colors", "best_backend", "metrics", "plot", "select", "save", "load", "__version__"]

if TYPE_CHECKING:  # what static tools see; at run time __getattr__ imports on demand
    from . import metrics, plot, select
    from ._backend import best_backend
    from ._bisecting import BisectingKMeans
    from ._kmeans import KMeans, k_means, kmeans_plusplus
    from ._kmedians import KMedians
    from ._kmedoids import KMedoids
    from ._minibatch import MiniBatchKMeans
    from ._model import load, save
    from ._quantize import quantize_colors


def __getattr__(name: str) -> Any:
    module_name = _MODULE_OF.get(name)
    if module_name is None:
        raise AttributeError(f"module 'kgpu' has no attribute {name!r}")
    module = importlib.import_module(module_name, __name__)
    value = module if module_name == f".{name}" else getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
