"""Settings from config mappings, one way: nested dataclasses, lists to tuples, unknown keys
refused.

Every settings class of ocdec is a (frozen) dataclass. :func:`apply_mapping` overrides the fields
of a base instance with a mapping from a config file, recursing into fields that are themselves
settings dataclasses (``dec:``, ``peaks:``), turning lists into tuples, and refusing a key that
is not a field with a one-line error that names it and where it was found.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from ocdec.errors import OcdecError

T = TypeVar("T")


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


def _nested_class(cls: type, name: str) -> type | None:
    """The dataclass a field holds, where its annotation names one (``X``, ``X | None``)."""
    hint = typing.get_type_hints(cls).get(name)
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
    return None


def apply_mapping(base: T, mapping: Mapping[str, Any] | None, where: str = "") -> T:
    """``base`` with the fields named in ``mapping`` replaced (see the module docstring).

    ``where`` is the config path for error messages (e.g. "characterize.default"). A nested
    mapping applies to the base's current value of that field, or to the field class's defaults
    where the base holds None.
    """
    if not mapping:
        return base
    if not dataclasses.is_dataclass(base):
        raise TypeError(f"{type(base).__name__} is not a settings dataclass")
    fields = {f.name for f in dataclasses.fields(base) if f.init}
    values: dict[str, Any] = {}
    for key, value in mapping.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise OcdecError(f"unknown setting {path!r} (known: {known})")
        current = getattr(base, key)
        nested = _nested_class(type(base), key)
        if isinstance(value, Mapping) and (dataclasses.is_dataclass(current) or nested):
            start = current if dataclasses.is_dataclass(current) else nested()  # type: ignore[misc]
            values[key] = apply_mapping(start, value, path)
        else:
            values[key] = _plain(value)
    try:
        return dataclasses.replace(base, **values)  # type: ignore[type-var]
    except (TypeError, ValueError) as err:
        raise OcdecError(f"settings {where or type(base).__name__}: {err}") from err


def from_mapping(cls: type[T], mapping: Mapping[str, Any] | None, where: str = "") -> T:
    """An instance of ``cls`` from its defaults and ``mapping`` (see :func:`apply_mapping`)."""
    return apply_mapping(cls(), mapping, where)


def settings_fields(cls: type) -> dict[str, Any]:
    """Every settings field of ``cls``, nested classes as dicts of theirs (for the schema test)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        nested = _nested_class(cls, f.name)
        out[f.name] = settings_fields(nested) if nested else None
    return out
