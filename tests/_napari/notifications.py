"""Capturing the notifications the napari glue shows, in tests."""


def capture_notifications(monkeypatch, kind: str) -> list[str]:
    """What the widget's modules show as ``show_<kind>`` notifications, in order."""
    import importlib
    import pkgutil

    import napari_spectral_clusters._napari as glue

    shown: list[str] = []
    for info in pkgutil.iter_modules(glue.__path__):
        module = importlib.import_module(f"{glue.__name__}.{info.name}")
        if hasattr(module, f"show_{kind}"):
            monkeypatch.setattr(module, f"show_{kind}", shown.append)
    return shown
