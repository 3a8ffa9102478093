"""Physical parameters of open clusters: distance, age, extinction, structure, mass.

``fit_parameters``, ``ParametersSettings`` and ``ParametersResult`` are loaded on first use (the
isochrone fit imports JAX).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ParametersResult", "ParametersSettings", "fit_parameters"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ocdec.physics import parameters

        return getattr(parameters, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
