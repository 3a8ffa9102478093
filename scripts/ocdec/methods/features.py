"""Feature tables for clustering: named features computed from the canonical star table, scaled.

The thesis used pmra/parallax, pmdec/parallax, their modulus and the parallax, min-max scaled
(``THESIS_FEATURES``). Proper motion divided by parallax is proportional to tangential velocity
(v_t = 4.74 |pm| / parallax km/s), which is nearly the same for all members of a cluster whatever
their distance error. Other methods can ask for other features and scalings by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

from ocdec.errors import OcdecError

THESIS_FEATURES = ("pmra_over_parallax", "pmdec_over_parallax", "pm_over_parallax", "parallax")


def _ratio(column: str) -> Callable[[pd.DataFrame], np.ndarray]:
    return lambda f: _col(f, column) / _col(f, "parallax")


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        raise OcdecError(f"star table has no column '{name}' (needed for the clustering features)")
    return frame[name].to_numpy(dtype=float)


# name -> function of the star table; every raw canonical column is also a feature by its own name.
DERIVED: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
    "pmra_over_parallax": _ratio("pmra"),
    "pmdec_over_parallax": _ratio("pmdec"),
    "pm_over_parallax": lambda f: np.hypot(_col(f, "pmra"), _col(f, "pmdec")) / _col(f, "parallax"),
    "pm": lambda f: np.hypot(_col(f, "pmra"), _col(f, "pmdec")),
}

SCALERS = {
    "minmax": MinMaxScaler,
    "standard": StandardScaler,
    "robust": RobustScaler,
}


def feature_values(frame: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """Unscaled (n, len(names)) float64 array of the named features."""
    if not names:
        raise OcdecError("no clustering features were named")
    columns = [DERIVED[name](frame) if name in DERIVED else _col(frame, name) for name in names]
    return np.column_stack(columns)


def build_features(
    frame: pd.DataFrame,
    names: Sequence[str] = THESIS_FEATURES,
    scaling: str | None = "minmax",
) -> tuple[np.ndarray, np.ndarray]:
    """Scaled float32 feature matrix of the stars where every feature is finite, and that mask.

    Returns ``(x, usable)`` with ``x`` of shape ``(usable.sum(), len(names))``. ``scaling`` is
    ``"minmax"`` (the thesis: each feature to [0, 1]), ``"standard"``, ``"robust"`` (median and
    inter-quartile range, so a far tail does not squash the cluster) or ``None``. Ratios by the
    parallax need parallax > 0: stars with parallax <= 0 count as unusable for those features.
    """
    if scaling is not None and scaling not in SCALERS:
        raise OcdecError(f"unknown feature scaling '{scaling}'; choose from {sorted(SCALERS)}")
    values = feature_values(frame, names)
    usable = np.isfinite(values).all(axis=1)
    if any(name.endswith("_over_parallax") for name in names):
        usable &= _col(frame, "parallax") > 0
    if not usable.any():
        raise OcdecError(f"no star has finite values of all features {list(names)}")
    x = values[usable]
    if scaling is not None:
        x = SCALERS[scaling]().fit_transform(x)
    return x.astype(np.float32), usable
