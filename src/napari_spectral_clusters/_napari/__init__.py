"""napari glue: the only place napari, magicgui or Qt is imported."""
