"""kgpu: centroid clustering written once against the Python array API.

The same kernels run on NumPy (all CPU cores), CuPy and PyTorch (CPU or CUDA),
and any namespace array-api-compat wraps, behind scikit-learn's estimator API.
"""

from ._backend import best_backend
from ._kmeans import KMeans, k_means, kmeans_plusplus
from ._kmedians import KMedians
from ._kmedoids import KMedoids
from ._minibatch import MiniBatchKMeans
from ._bisecting import BisectingKMeans
from ._quantize import quantize_colors
from . import metrics, plot, select

__version__ = "0.1.0"

__all__ = ["KMeans", "k_means", "kmeans_plusplus", "KMedians", "KMedoids", "MiniBatchKMeans", "BisectingKMeans", "quantize_colors", "best_backend", "metrics", "plot", "select", "__version__"]
