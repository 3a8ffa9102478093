"""The workflow's entry points for physical parameters: one region (``parameters_region``) and
the catalogue of all regions (``parameters_catalogue``).

A region whose method found nothing, or that the quality gate skipped, gets a ``parameters.json``
with status "skipped" or "not_fitted" and the reason (and a figure saying so), never a failed job:
the catalogue and summary still build. A fit that fails says ``status: failed`` (see
:func:`ocdec.physics.parameters.fit_parameters`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocdec.errors import OcdecError
from ocdec.io import check_writable, read_provenance, write_json
from ocdec.physics.parameters import (
    ParametersResult,
    ParametersSettings,
    empty_values,
    fit_parameters,
)
from ocdec.products import read_json
from ocdec.settings import from_mapping

# pandas where a table is read: a skipped region's parameters job imports none (its fixed cost)
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
#: Method summary statuses that mean "a cluster was found" (today "done"; "found" is coming).
FOUND = ("done", "ok", "found")
#: Config keys of the ``parameters`` section that the workflow reads, not ParametersSettings.
WORKFLOW_KEYS = ("method",)


def parameters_settings(config: Mapping[str, Any] | None) -> ParametersSettings:
    """ParametersSettings from the workflow's ``parameters`` section (unknown keys refused)."""
    values = {k: v for k, v in (config or {}).items() if k not in WORKFLOW_KEYS}
    return from_mapping(ParametersSettings, values, "parameters")


def _not_fitted(status: str, reason: str, n_members: int, release: str) -> ParametersResult:
    values = empty_values(n_members, release)
    values["status"], values["reason"] = status, reason
    return ParametersResult(values)


def _truth(provenance: Mapping[str, Any]) -> dict[str, float] | None:
    """The simulator's cluster (age, extinction, distance) as reference values, where simulated."""
    cluster = provenance.get("cluster") if provenance.get("source") == "simulate" else None
    if not isinstance(cluster, Mapping):
        return None
    out: dict[str, float] = {}
    try:
        if cluster.get("age_myr"):
            out["log_age"] = math.log10(float(cluster["age_myr"])) + 6.0
        if cluster.get("a_v") is not None:
            out["av"] = float(cluster["a_v"])
        if cluster.get("distance_pc"):
            out["distance_pc"] = float(cluster["distance_pc"])
            out["distance_modulus"] = 5.0 * math.log10(out["distance_pc"]) - 5.0
    except (TypeError, ValueError):
        return None
    return out or None


def _release(provenance: Mapping[str, Any], default: str) -> str:
    """The Gaia release the stars come from: the simulator's or download's own record first."""
    settings = provenance.get("settings")
    if isinstance(settings, Mapping) and settings.get("release"):
        return str(settings["release"]).lower()
    return str(provenance.get("release") or default).lower()


def parameters_region(
    members_path: PathLike,
    summary_path: PathLike,
    out_json: PathLike,
    out_figure: PathLike | None = None,
    *,
    region: Mapping[str, Any] | None = None,
    release: str = "dr3",
    config: Mapping[str, Any] | None = None,
    jax_cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """One workflow job: a method's ``members.parquet`` and ``summary.json`` in,
    ``parameters.json`` (and its figure) out. Returns what ``parameters.json`` holds.

    ``config`` is the workflow's ``parameters`` section; its ``zero_point: null`` (the default)
    means on for real Gaia stars, off for simulated ones (the simulator adds no offset).
    ``jax_cache_dir``: JAX's persistent compilation cache, turned on only where a fit runs (a
    skipped or not-found region imports no JAX).
    """
    region = dict(region or {})
    check_writable(out_json)
    if out_figure is not None:
        check_writable(out_figure)
    settings = parameters_settings(config)
    summary = read_json(summary_path)
    if summary is None:
        raise OcdecError(f"{summary_path}: no such file (the method's summary)")
    provenance = read_provenance(members_path)
    release = _release(provenance, release)
    state = str(summary.get("status", "done"))
    n_found = int(summary.get("n_members") or 0)
    if state == "skipped":
        result = _not_fitted("skipped", str(summary.get("reason") or "region skipped"), 0,
                             release)
    elif state not in FOUND or n_found == 0:
        reason = summary.get("reason") or "no cluster found"
        result = _not_fitted("not_fitted", f"{summary.get('method', 'method')}: {reason}",
                             n_found, release)
    else:
        members, field = _members(members_path, settings.min_probability)
        if settings.zero_point is None:
            settings = _with_zero_point(settings, provenance.get("source") != "simulate")
        if jax_cache_dir is not None:
            from ocdec.compilation_cache import enable_compilation_cache

            enable_compilation_cache(jax_cache_dir)
        result = fit_parameters(members, release=release, settings=settings, field=field)
    # the method's proper motion (summary.json's, finite or null), so the catalogue's row gives
    # the cluster's whole astrometry
    for key in PROPER_MOTION:
        result.values[key] = summary.get(key) if state in FOUND else None
    values = result.as_dict()
    values["region"] = region.get("id")
    values["name"] = region.get("name") or region.get("id")
    truth = _truth(provenance)
    if truth:
        values["truth"] = truth
    write_json(out_json, values)
    if out_figure is not None:
        from ocdec.physics.figures import parameters_figure, save

        save(parameters_figure(result, str(values["name"] or "")), out_figure)
    log.info("parameters of %s: %s%s", values["region"], values["status"],
             f" ({values['reason']})" if values.get("reason") else "")
    return values


PROPER_MOTION = ("pmra", "pmra_error", "pmdec", "pmdec_error")


def _with_zero_point(settings: ParametersSettings, on: bool) -> ParametersSettings:
    from dataclasses import replace

    return replace(settings, zero_point=on)


def _members(path: PathLike, min_probability: float
             ) -> tuple[pd.DataFrame, tuple[np.ndarray, np.ndarray] | None]:
    """The rows of members.parquet that can count (p_member >= the threshold: a cone's table
    holds every star, the members are a few hundred of them), and every star's (ra, dec), the
    field's footprint the King profile is fitted within (None without positions)."""
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise OcdecError(f"{path}: cannot read as Parquet: {err}") from err
    field = None
    if {"ra", "dec"} <= set(frame.columns):
        field = (pd.to_numeric(frame["ra"], errors="coerce").to_numpy(float),
                 pd.to_numeric(frame["dec"], errors="coerce").to_numpy(float))
    if "p_member" in frame:
        frame = frame.loc[pd.to_numeric(frame["p_member"], errors="coerce") >= min_probability]
    return frame.reset_index(drop=True), field


def read_parameters(paths: Sequence[PathLike]) -> list[dict[str, Any]]:
    """Every region's ``parameters.json`` (a missing or broken one as a failed row)."""
    out = []
    for path in paths:
        try:
            out.append(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            out.append({"status": "failed", "reason": "no parameters: the region's jobs failed"})
        except (OSError, json.JSONDecodeError) as err:
            out.append({"status": "failed", "reason": f"{path}: {err}"})
    return out


def parameters_catalogue(
    parameter_paths: Sequence[PathLike],
    outputs: Mapping[str, PathLike],
    *,
    regions: Sequence[Mapping[str, Any]],
) -> Any:
    """The catalogue rule in one call: ``outputs["fits"]``, ``outputs["vot"]`` and the figures
    ``outputs["age_radius"]`` and ``outputs["parameters_literature"]`` from every region's
    ``parameters.json`` (same order as ``regions``). Returns the astropy Table."""
    from ocdec.physics.catalogue import build_catalogue, write_table
    from ocdec.physics.figures import age_radius_figure, literature_figure, save

    for path in outputs.values():
        check_writable(path)
    values = read_parameters(parameter_paths)
    rows = []
    for region, v in zip(regions, values, strict=True):
        row = dict(region)
        for key, value in (v.get("truth") or {}).items():
            row.setdefault(f"lit_{key}", value)
        rows.append(row)
    table = build_catalogue(values, rows)
    write_table(table, outputs["fits"], outputs["vot"])
    if outputs.get("age_radius"):
        save(age_radius_figure(table), outputs["age_radius"])
    if outputs.get("parameters_literature"):
        save(literature_figure(table), outputs["parameters_literature"])
    return table


def catalogue_after_failure(
    parameter_paths: Sequence[PathLike],
    outputs: Mapping[str, PathLike],
    *,
    regions: Sequence[Mapping[str, Any]],
) -> None:
    """The catalogue despite failed regions (the workflow's error handler, beside
    :func:`ocdec.results.failures.summary_after_failure`): a region without parameters.json is a
    failed row, so the report still builds; a rerun after the fix redoes the catalogue, whose
    inputs are then newer. Never raises (the real error is already reported)."""
    try:
        if all(Path(p).exists() for p in parameter_paths):
            return  # nothing of ours failed: the parameters_catalogue rule writes it
        parameters_catalogue(parameter_paths, outputs, regions=regions)
    except Exception:  # noqa: BLE001 (the workflow's own error is already reported)
        log.exception("the parameters catalogue could not be written after the failure")
