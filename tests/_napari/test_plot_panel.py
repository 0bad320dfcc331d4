"""The plot tabs follow the viewer's theme and let go of it when destroyed, even when napari
tore the viewer down first (CI saw 'Viewer object has no attribute _events' at teardown)."""

from napari.utils.events import EmitterGroup

from napari_spectral_clusters._napari.plot_panel import PlotPanel


class StandInViewer:
    """Just what the plot panel uses of a viewer: a theme and its change event."""

    theme = "dark"

    def __init__(self):
        self._events = EmitterGroup(source=self, theme=None)

    @property
    def events(self):
        return self._events  # AttributeError once torn down, as napari's own viewer


def test_destroyed_tabs_stop_following_the_theme_of_a_torn_down_viewer(qtbot):
    viewer = StandInViewer()
    panel = PlotPanel(viewer)
    live = StandInViewer()
    kept = PlotPanel(live)
    kept.tabs.deleteLater()
    qtbot.waitUntil(lambda: len(live.events.theme.callbacks) == 0, timeout=5000)
    del viewer._events  # napari deletes a closed viewer's events before its widgets go
    panel.tabs.deleteLater()
    qtbot.wait(50)  # destroyed fires here: no AttributeError caught in the Qt event loop
