import npe2
import pytest


@pytest.fixture(autouse=True, scope="session")
def _discover_plugins():
    """npe2.read/npe2.write look plugins up in the global manager: find ours first."""
    npe2.PluginManager.instance().discover()
