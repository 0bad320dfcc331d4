import npe2
import pytest


@pytest.fixture(autouse=True, scope="session")
def _discover_plugins():
    """npe2.read/npe2.write look plugins up in the global manager: find ours first."""
    npe2.PluginManager.instance().discover()


@pytest.fixture(autouse=True)
def _private_settings(tmp_path, monkeypatch):
    """Widget settings go to a fresh folder per test, never to the user's own."""
    from qtpy.QtCore import QSettings

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path))
