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
    "sphinx_copybutton",
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
templates_path: list[str] = []
# pages without sub-pages have nothing to list in the left sidebar
html_sidebars = {"index": [], "getting-started": []}
# copying an example copies the code, not the >>> prompts or the output
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = True


def _write_cli_help(app) -> None:
    """The command line's --help texts, for the API reference (api/cli.rst), made from the
    installed parser at each build so they never go stale."""
    import contextlib
    import io
    import os
    from pathlib import Path

    from napari_spectral_clusters.cli import main

    out = Path(app.srcdir) / "_generated"
    out.mkdir(exist_ok=True)
    os.environ["COLUMNS"] = "90"  # argparse wraps to the terminal; the page has one width
    for command in ("run", "demo"):
        text = io.StringIO()
        with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
            main([command, "--help"])
        (out / f"cli-{command}.txt").write_text(text.getvalue())


def setup(app):
    app.connect("builder-inited", _write_cli_help)
