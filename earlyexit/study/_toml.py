"""Reading a spec's TOML tables: the error that names file and key, and typed lookups."""

from __future__ import annotations

import math
from typing import Any


class SpecError(ValueError):
    """A study spec that cannot be used; the message names the file and the key."""


def _table(raw, key, where) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"{where}: [{key}] must be a table, but got {type(value).__name__}.")
    return value


def _known(table: dict, allowed: set, where: str, prefix: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(prefix + k for k in unknown)}; "
                        f"allowed: {', '.join(sorted(allowed))}.")


def _get(table: dict, key: str, kind, where: str, prefix: str, default: Any = ...):
    if key not in table:
        if default is ...:
            raise SpecError(f"{where}: missing key {prefix}{key}.")
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if not ok:
        raise SpecError(f"{where}: {prefix}{key} must be {kind.__name__}, but got {value!r}.")
    if kind is float and not math.isfinite(value):
        raise SpecError(f"{where}: {prefix}{key} must be finite, but got {value!r}.")
    return value
