"""kgpu: centroid clustering written once against the Python array API.

The same kernels run on NumPy (all CPU cores), CuPy and PyTorch (CPU or CUDA),
and any namespace array-api-compat wraps, behind scikit-learn's estimator API.
"""

from ._backend import best_backend
from ._kmeans import KMeans, kmeans_plusplus

__version__ = "0.1.0"

__all__ = ["KMeans", "kmeans_plusplus", "best_backend", "__version__"]
