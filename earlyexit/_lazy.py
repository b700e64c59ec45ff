"""Lazy package attributes (PEP 562): a package names what its heavy modules hold without importing them."""

from __future__ import annotations

import importlib


def lazy_attributes(package: str, table: dict[str, str]):
    """A module ``__getattr__`` that imports ``package.<table[name]>`` when ``name`` is first used."""
    def __getattr__(name: str):
        if name in table:
            return getattr(importlib.import_module(f"{package}.{table[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
