"""Names a package exports from its submodules, imported on first use (PEP 562).

Written here rather than taken from ``lazy_loader`` (scikit-image's choice): two small tables
do not earn a dependency.
"""

from importlib import import_module


def lazy_exports(package: str, table: dict[str, str], names: list[str]):
    """``__getattr__`` and ``__dir__`` for ``package``: ``table`` maps a name to the relative
    module that defines it; ``names`` is the package's ``__all__``."""

    def __getattr__(name: str):
        if name in table:
            return getattr(import_module(table[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(names)

    return __getattr__, __dir__
