"""Cluster the pixels of spectral cubes and pictures with KMeans.

The public API is pure (numpy in, numpy out); napari glue lives in ``_napari``. Names are
loaded on first use (PEP 562), so importing the package — as napari does to find the
manifest and the reader — does not import scikit-learn.
"""

from ._lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "cluster_image": ".cluster",
    "apply_model": ".cluster",
    "label_statistics": ".cluster",
    "sweep_k": ".cluster",
    "ProgressEvent": ".cluster",
    "ClusterModel": ".model",
    "ModelError": ".model",
    "ClusterResult": ".cluster",
    "ClusteringError": ".cluster",
    "Cancelled": ".cluster",
}
__all__ = [
    "Cancelled",
    "ClusterModel",
    "ClusterResult",
    "ClusteringError",
    "ModelError",
    "ProgressEvent",
    "__version__",
    "apply_model",
    "cluster_image",
    "label_statistics",
    "sweep_k",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
