"""Array facts shared by the readers, writers and engine (no heavy imports here)."""


def is_lazy(data) -> bool:
    """A dask array (computed only as needed), as the readers return for big variables."""
    return hasattr(data, "dask") and hasattr(data, "chunks")
