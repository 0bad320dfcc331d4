"""The documentation tells the truth: every public module is in the API reference, the
reference's examples (docstrings) and the pages' Python sessions run as doctests."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
import shutil
from pathlib import Path

import pytest

import napari_spectral_clusters
from napari_spectral_clusters.lazy import READ_ONCE_SHARE

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DATA = Path(__file__).resolve().parent / "data"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _documented_modules() -> list[str]:
    names = []
    for page in sorted((DOCS / "api").glob("*.rst")):
        names += re.findall(r"^\.\. automodule:: (\S+)", page.read_text(), re.M)
    return names


def _public_modules() -> list[str]:
    """Modules a user may import: no part of the dotted name starts with an underscore."""
    found = []
    prefix = "napari_spectral_clusters."
    for info in pkgutil.walk_packages(napari_spectral_clusters.__path__, prefix):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return found


def test_every_public_module_is_in_the_api_reference():
    documented = set(_documented_modules())
    missing = sorted(set(_public_modules()) - documented)
    assert not missing, f"public modules missing from docs/api: {missing}"


@pytest.mark.parametrize("module", _documented_modules())
def test_the_reference_examples_run(module):
    # each example imports what it uses (globs={}): it runs when pasted into a fresh session
    found = doctest.testmod(importlib.import_module(module), globs={}, optionflags=FLAGS)
    assert found.failed == 0


def test_the_reference_has_examples():
    attempted = sum(
        doctest.testmod(
            importlib.import_module(m), globs={}, optionflags=FLAGS, report=False
        ).attempted
        for m in _documented_modules()
    )
    assert attempted >= 150


PAGES = sorted(p.relative_to(DOCS) for p in DOCS.rglob("*.md") if "```pycon" in p.read_text())
SESSION = re.compile(r"^```pycon\n(.*?)^```", re.M | re.S)


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_the_pages_python_sessions_run(page, tmp_path, monkeypatch):
    """Each page's ``pycon`` blocks run in order, as one session, in a fresh folder holding
    the files the page opens (Samson.mat)."""
    shutil.copy(DATA / "hsi" / "Samson.mat", tmp_path / "Samson.mat")
    monkeypatch.chdir(tmp_path)
    # a page may change it to show the lazy path; it is given back after the test
    monkeypatch.setenv("SPECTRAL_CLUSTERS_READ_ONCE_SHARE", str(READ_ONCE_SHARE))
    text = (DOCS / page).read_text()
    session = "\n".join(SESSION.findall(text))
    test = doctest.DocTestParser().get_doctest(session, {}, str(page), str(DOCS / page), 0)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test)
    found = runner.summarize(verbose=False)
    assert found.attempted > 0 and found.failed == 0
