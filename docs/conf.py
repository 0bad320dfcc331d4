"""Sphinx configuration of the documentation site (built in CI with warnings as errors).

Build locally:  uv run --locked --extra docs sphinx-build -W --keep-going docs docs/_build/html
"""

from importlib.metadata import version as _version

project = "napari-spectral-clusters"
author = "napari-spectral-clusters developers"
copyright = "napari-spectral-clusters developers"
release = _version("napari-spectral-clusters")  # set once, in src/.../__init__.py
version = release

extensions = [
    "myst_parser",  # pages are Markdown, like the README they grew from
    "numpydoc",  # docstrings are numpydoc
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "images/README*"]
myst_heading_anchors = 3

autosummary_generate = True
autodoc_default_options = {"members": True, "imported-members": False}
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
numpydoc_show_class_members = False  # autosummary lists them
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False


html_theme = "pydata_sphinx_theme"  # the PyData theme napari's own site builds on
html_title = "napari-spectral-clusters"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path: list[str] = []
