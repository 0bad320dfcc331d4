"""The widget's settings remembered between sessions (Qt's per-user settings store)."""

from __future__ import annotations

from . import PLUGIN

__all__ = ["restore_settings", "save_settings", "settings_store"]

#: Controls remembered between sessions.
_PERSISTENT = ("n_clusters", "random_state", "preprocessing", "steps", "palette")


def settings_store():
    from qtpy.QtCore import QSettings

    return QSettings(
        QSettings.Format.IniFormat,
        QSettings.Scope.UserScope,
        PLUGIN,
        "kmeans-widget",
    )


def save_settings(widget):
    settings = settings_store()
    for name in _PERSISTENT:
        settings.setValue(name, getattr(widget, name).value)
    settings.sync()


def restore_settings(widget) -> dict:
    """The user's saved settings on ``widget``'s controls; returns what they held before
    (their defaults)."""
    defaults = {name: getattr(widget, name).value for name in _PERSISTENT}
    settings = settings_store()
    for name in _PERSISTENT:
        control = getattr(widget, name)
        value = settings.value(name)
        if value is None:
            continue
        try:
            control.value = type(control.value)(value)
        except (ValueError, TypeError):
            continue  # a stale or hand-edited setting: keep the default
    return defaults
