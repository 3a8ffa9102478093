"""The quality filter and the star-count gate.

Keeps stars with complete astrometry (and photometry, by default) and a positive parallax, then
applies the optional RUWE, parallax signal-to-noise and G-magnitude cuts. A region with fewer usable
stars than ``min_stars`` is not an error: it gets a "skipped" status record that downstream steps
carry through. A file that lacks a column the clustering needs (parallax, pmra, pmdec: often a
misnamed column) is an error naming it, not a skip: only the star count decides a skip.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ocdec.data.columns import ALIASES, drop_duplicate_stars
from ocdec.errors import OcdecError

log = logging.getLogger(__name__)

#: The clustering needs these; a field without any of them cannot be characterised.
ESSENTIAL = ("parallax", "pmra", "pmdec")
#: Required wherever the input has them at all (some exports carry no positions or errors).
ASTROMETRY = ("ra", "dec", "parallax", "pmra", "pmdec", "parallax_error", "pmra_error",
              "pmdec_error")
PHOTOMETRY = ("phot_g_mean_mag", "bp_rp")


@dataclass(frozen=True)
class QualitySettings:
    min_stars: int = 40000
    ruwe_max: float | None = None
    parallax_over_error_min: float | None = None
    g_max: float | None = None
    require_photometry: bool = True

    def __post_init__(self) -> None:
        if self.min_stars < 0:
            raise OcdecError(f"min_stars must be >= 0, got {self.min_stars}")
        for name in ("ruwe_max", "parallax_over_error_min", "g_max"):
            value = getattr(self, name)
            if value is not None and not np.isfinite(value):
                raise OcdecError(f"{name} must be a finite number or unset, got {value}")
        if self.ruwe_max is not None and self.ruwe_max <= 0:
            raise OcdecError(f"ruwe_max must be > 0, got {self.ruwe_max}")


def quality_settings(config: Mapping[str, Any] | None, where: str = "quality"
                     ) -> QualitySettings:
    """Settings from the workflow's ``quality`` section (:func:`ocdec.settings.from_mapping`:
    absent keys take the defaults, unknown keys are refused naming them)."""
    from ocdec.settings import from_mapping

    return from_mapping(QualitySettings, config, where)


def quality_region(
    stars_path: str | os.PathLike[str],
    out_stars: str | os.PathLike[str],
    out_status: str | os.PathLike[str],
    config: Mapping[str, Any] | QualitySettings | None,
    region: str | None = None,
) -> dict[str, Any]:
    """The quality rule: filter ``stars_path`` (any star table :func:`read_stars` reads), write
    the kept stars (Parquet, the input's provenance plus the status) and the status record
    (JSON); returns the status. ``config`` is the ``quality`` section or a settings instance."""
    from ocdec.allocator import release_freed_memory
    from ocdec.data.columns import read_stars
    from ocdec.io import check_writable, read_provenance, write_json, write_parquet

    settings = config if isinstance(config, QualitySettings) else quality_settings(config)
    check_writable(out_stars, "stars")
    check_writable(out_status, "status")
    frame = read_stars(stars_path)
    clean, status = apply_quality(frame, settings, region=region)
    provenance = read_provenance(stars_path)
    provenance.setdefault("source_id_is_row", bool(frame.attrs.get("source_id_is_row", False)))
    provenance["quality"] = status
    del frame  # the input, before the kept stars' Arrow copy is made
    release_freed_memory()
    write_parquet(out_stars, clean, provenance)
    write_json(out_status, status)
    return status


def require_essential(frame: pd.DataFrame) -> None:
    """Refuse, in one line naming them, a table without the columns the clustering needs
    (parallax, pmra, pmdec): a misnamed column must not quietly skip a region."""
    origin = frame.attrs.get("origin") or "star table"
    # Columns the file never had (the readers record them); a frame built in memory may only
    # lack them outright.
    absent = set(frame.attrs.get("absent_columns") or ()) | {
        c for c in ESSENTIAL if c not in frame.columns}
    absent_essential = [c for c in ESSENTIAL if c in absent]
    if absent_essential:
        looked_for = "; ".join(f"{c}: {'/'.join(ALIASES[c])}" for c in absent_essential)
        raise OcdecError(f"{origin}: no column {', '.join(absent_essential)}, which the "
                         f"clustering needs (looked for {looked_for}); is it named differently?")


def require_astrometry(frame: pd.DataFrame) -> None:
    """:func:`require_essential`, then refuse, in one line naming the table and the column, an
    essential column that is there but holds no finite value (a column of blanks or text)."""
    require_essential(frame)
    origin = frame.attrs.get("origin") or "star table"
    for col in ESSENTIAL:
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(values).any():
            raise OcdecError(f"{origin}: column {col} has no finite values in its {len(frame)} "
                             "rows (all empty or not numbers), and the clustering needs them")


def apply_quality(
    frame: pd.DataFrame, settings: QualitySettings, region: str | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Filter a canonical star table; return the kept stars and a status record.

    The status has ``status`` ("ok" or "skipped"), ``n_input``, ``n_usable`` and ``reason``, plus
    ``removed`` (stars removed per cut, in order), ``missing_columns`` (required columns the input
    lacks entirely, hence not applied) and ``settings``. ``region`` is put first when given.
    """
    origin = frame.attrs.get("origin") or "star table"
    require_essential(frame)
    frame = drop_duplicate_stars(frame, origin)
    n_input = len(frame)
    keep = np.ones(n_input, dtype=bool)
    removed: dict[str, int] = {}
    missing: list[str] = []

    def cut(label: str, passes: np.ndarray) -> None:
        nonlocal keep
        newly = keep & ~passes
        removed[label] = int(newly.sum())
        keep &= passes
        log.info("quality cut %-28s removed %8d, %8d left", label, removed[label], int(keep.sum()))

    required = list(ASTROMETRY) + (list(PHOTOMETRY) if settings.require_photometry else [])
    for column in required:
        values = _column(frame, column)
        if np.isnan(values).all() and column not in ESSENTIAL:
            # The export never had this column (e.g. no positions): it cannot be a cut.
            missing.append(column)
            continue
        cut(f"{column} present", np.isfinite(values))
    if missing:
        log.warning("input has no values in %s; not required there", ", ".join(missing))
    cut("parallax > 0", _column(frame, "parallax") > 0)

    if settings.ruwe_max is not None:
        ruwe = _column(frame, "ruwe")
        if np.isnan(ruwe).all():
            missing.append("ruwe")
            log.warning("ruwe_max %g set but the input has no RUWE (Gaia DR2?); cut not applied",
                        settings.ruwe_max)
        else:
            cut(f"ruwe <= {settings.ruwe_max:g}", ruwe <= settings.ruwe_max)
    if settings.parallax_over_error_min is not None:
        error = _column(frame, "parallax_error")
        if np.isnan(error).all():
            missing.append("parallax_error")
            log.warning("parallax_over_error_min set but the input has no parallax_error; "
                        "cut not applied")
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                snr = _column(frame, "parallax") / error
            cut(f"parallax/error >= {settings.parallax_over_error_min:g}",
                snr >= settings.parallax_over_error_min)
    if settings.g_max is not None:
        cut(f"phot_g_mean_mag <= {settings.g_max:g}",
            _column(frame, "phot_g_mean_mag") <= settings.g_max)

    clean = frame.loc[keep].reset_index(drop=True)
    clean.attrs = dict(frame.attrs)
    n_usable = len(clean)
    if n_usable >= settings.min_stars:
        state = "ok"
        reason = f"{n_usable} usable stars >= min_stars {settings.min_stars}"
    else:
        state = "skipped"
        reason = (
            f"only {n_usable} usable stars of {n_input}, fewer than min_stars {settings.min_stars}"
        )
        if n_input and all(np.isnan(_column(frame, c)).all() for c in ESSENTIAL[1:]):
            reason += " (the input has no proper motions)"
    log.info("quality: %s (%s)", state, reason)
    status: dict[str, Any] = {} if region is None else {"region": region}
    status.update(
        status=state,
        n_input=n_input,
        n_usable=n_usable,
        reason=reason,
        removed=removed,
        missing_columns=sorted(set(missing)),
        settings=asdict(settings),
    )
    return clean, status


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
