"""The manifest is the table of contents: every command it names must import."""

from importlib import import_module

import npe2
import pytest

PLUGIN = "napari-spectral-clusters"
MANIFEST = npe2.PluginManifest.from_distribution(PLUGIN)


def test_manifest_is_the_installed_one():
    from napari_spectral_clusters import _napari

    assert MANIFEST.name == PLUGIN == _napari.PLUGIN  # the name the glue asks napari for
    assert {c.id for c in MANIFEST.contributions.commands} >= {
        f"{PLUGIN}.get_reader",
        f"{PLUGIN}.cluster_widget",
    }


@pytest.mark.parametrize("command", MANIFEST.contributions.commands, ids=lambda c: c.id)
def test_every_command_imports(command):
    module, _, attr = command.python_name.partition(":")
    assert callable(getattr(import_module(module), attr))


def test_contributions_name_declared_commands():
    declared = {c.id for c in MANIFEST.contributions.commands}
    contrib = MANIFEST.contributions
    used = [r.command for r in contrib.readers] + [w.command for w in contrib.writers]
    used += [s.command for s in contrib.sample_data] + [w.command for w in contrib.widgets]
    assert set(used) <= declared


def test_core_does_not_import_napari():
    import subprocess
    import sys

    code = (
        "import sys, napari_spectral_clusters, napari_spectral_clusters.io, "
        "napari_spectral_clusters.cli, napari_spectral_clusters.samples; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('napari', 'magicgui', 'qtpy', "
        "'PyQt6')]; print(bad); sys.exit(bool(bad))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
