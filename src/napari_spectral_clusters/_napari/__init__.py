"""napari glue: the only place napari, magicgui or Qt is imported."""

#: The plugin's name in napari (``name`` in napari.yaml): what its sample, dock widget and
#: writer are asked for by.
PLUGIN = "napari-spectral-clusters"
