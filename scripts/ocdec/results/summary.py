"""The catalogue summary, ``results/summary.tsv``: one row per region, whatever happened to it.

A region's row says its status (found; not_found and why; skipped and why; failed and why), star
counts, the default method's members, parameters and verdict (false-alarm probability, tension
with the catalogue, unknown groups in the cone), every other method's status, the thesis-mode
(DEC filtered) result beside it, offsets from the reference in units of the combined error, seed
agreement and runtime, and the cluster's physical parameters (ocdec.physics: distance, age,
extinction, [M/H], radii, Jacobi mass and radius) with their fit status. Not found is a result
(its row has no members); missing inputs make a
"failed" row that names what is missing rather than an error, so the summary and the report always
build.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ocdec import products
from ocdec.errors import OcdecError
from ocdec.io import write_tsv
from ocdec.methods.astrometry import ASTROMETRY, MEANS_WITH_ERRORS
from ocdec.methods.registry import PRIMARY, REGISTRY
from ocdec.products import read_json
from ocdec.progress import track
from ocdec.results.comparison import offset_sigma
from ocdec.verdict import FOUND, RESULT_STATUSES

log = logging.getLogger(__name__)

_OTHER_METHODS = tuple(name for name in REGISTRY if name != PRIMARY)
# the primary method's verdict (ocdec.verdict): how believable and how far from the catalogue
VERDICT_COLUMNS = ("false_alarm_probability", "tension_centre", "tension_pm", "tension_parallax",
                   "n_unknown_groups")
_OFFSETS = tuple(f"{col}_offset_sigma" for col in ASTROMETRY)


def _method_columns(method: str) -> tuple[str, ...]:
    """A non-primary method's columns: its status, count, own summary fields, means and
    offsets."""
    own = (f"{method}_{key}" for key in REGISTRY[method].summary_fields)
    return (f"{method}_status", f"{method}_n_members", *own,
            *(f"{method}_{c}" for c in MEANS_WITH_ERRORS), *(f"{method}_{c}" for c in _OFFSETS))


# Physical parameters (parameters.json, ocdec.physics) copied into the row, with the fit's status
# and reason as parameters_status / parameters_reason (ok, failed, skipped, not_fitted).
PHYSICS_COLUMNS = (
    "distance_pc", "distance_pc_16", "distance_pc_84",
    "parallax_mas", "parallax_error_mas", "parallax_zero_point_mas",
    "log_age", "log_age_16", "log_age_84",
    "av", "av_16", "av_84",
    "distance_modulus", "distance_modulus_16", "distance_modulus_84",
    "feh", "feh_16", "feh_84",
    "rc_pc", "rt_pc", "r50_pc", "king_fit",
    "mass_msun", "mass_msun_16", "mass_msun_84",
    "jacobi_radius_pc",
)

# ... of which these are words, not numbers (how the King fit went)
PHYSICS_TEXT = ("king_fit",)

# The primary method's (default) values are the region's own, unprefixed; every other registered
# method has its block of prefixed columns (thesis_pmra, hdbscan_n_members, ...), NaN where it was
# not run, so the table has the same columns whatever a run's methods.
COLUMNS = (
    "region",
    "name",
    "status",
    "reason",
    "n_input",
    "n_stars",
    "n_members",
    *VERDICT_COLUMNS,
    *MEANS_WITH_ERRORS,
    "pmra_std",
    "pmdec_std",
    "parallax_std",
    "ra",
    "dec",
    "r50_deg",
    "reference_source",
    *(f"reference_{c}" for c in MEANS_WITH_ERRORS),
    *_OFFSETS,
    *(col for method in _OTHER_METHODS for col in _method_columns(method)),
    "seeds",
    "seed_jaccard",
    "seed_jaccard_min",
    "runtime_s",
    *(f"{method}_runtime_s" for method in _OTHER_METHODS),
    "parameters_status",
    "parameters_reason",
    *PHYSICS_COLUMNS,
)
COUNT_COLUMNS = ("n_input", "n_stars", "n_members", "n_unknown_groups",
                 *(f"{m}_n_members" for m in _OTHER_METHODS))
# a method's own summary fields: whole numbers (thesis mode's kmeans_k) written as such, any
# other value as it is
METHOD_FIELD_COLUMNS = tuple(f"{m}_{k}" for m in _OTHER_METHODS
                             for k in REGISTRY[m].summary_fields)


def _num(mapping: Mapping[str, Any] | None, key: str) -> float:
    if not mapping:
        return math.nan
    try:
        value = mapping.get(key)
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def summary_row(
    region: Mapping[str, Any],
    *,
    status: Mapping[str, Any] | None = None,
    summaries: Mapping[str, Mapping[str, Any] | None] | None = None,
    references: Sequence[Mapping[str, Any]] = (),
    missing: Sequence[str] = (),
    error: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One region's row (keys :data:`COLUMNS`).

    ``status`` is status.json, ``summaries`` {method: its summary.json, None where absent},
    ``parameters`` the region's parameters.json (None: not run, the physical columns stay empty),
    ``references`` the region's reference rows (the first is the reference). ``missing`` names
    expected files that are absent and ``error`` an error message; either makes the row "failed"
    with that reason unless the region was skipped.
    """
    summaries = dict(summaries or {})
    region_id = str(region.get("id", region.get("region", "")))
    row: dict[str, Any] = {c: math.nan for c in COLUMNS}
    row.update(
        region=region_id,
        name=str(region.get("name") or region_id.replace("_", " ")),
        reason="",
        reference_source="",
        seeds="",
        parameters_status="",
        parameters_reason="",
    )
    row["n_input"] = _num(status, "n_input")
    row["n_stars"] = _num(status, "n_usable")
    row["status"], row["reason"] = _state(status, summaries, missing, error)
    ref = references[0] if references else None
    if ref is not None:
        row["reference_source"] = str(ref.get("source", ""))
        for col in ASTROMETRY:
            row[f"reference_{col}"] = _num(ref, col)
            row[f"reference_{col}_error"] = _num(ref, f"{col}_error")
    for method, summary in summaries.items():
        if summary is not None and method in _OTHER_METHODS:
            row[f"{method}_status"] = str(summary.get("status", ""))
        if summary is not None and summary.get("status", FOUND) in RESULT_STATUSES:
            _method_values(row, method, summary)
    if parameters is not None:
        row["parameters_status"] = str(parameters.get("status") or "")
        row["parameters_reason"] = str(parameters.get("reason") or "")
        for col in PHYSICS_COLUMNS:
            row[col] = (str(parameters.get(col) or "") if col in PHYSICS_TEXT
                        else _num(parameters, col))
    prefixes = ["", *(f"{m}_" for m in _OTHER_METHODS)]
    for prefix in prefixes:
        for col in ASTROMETRY:
            row[f"{prefix}{col}_offset_sigma"] = offset_sigma(
                row[f"{prefix}{col}"],
                row[f"{prefix}{col}_error"],
                row[f"reference_{col}"],
                row[f"reference_{col}_error"],
            )
    return row


def _state(status: Mapping[str, Any] | None, summaries: Mapping[str, Mapping[str, Any] | None],
           missing: Sequence[str], error: str | None) -> tuple[str, str]:
    """The region's status and reason: the quality gate's, an error, missing files, the first
    method (primary first) without a result (skipped, failed), then the primary's verdict (found
    or not_found and why; the first method's where the primary did not run)."""
    if status is not None and status.get("status") not in (None, "ok"):
        return str(status["status"]), str(status.get("reason") or "")
    if error:
        return "failed", error
    if missing:
        return "failed", "missing " + ", ".join(missing)
    order = sorted(summaries, key=lambda m: m != PRIMARY)
    for method in order:
        summary = summaries[method]
        if summary is not None and summary.get("status", FOUND) not in RESULT_STATUSES:
            return (str(summary["status"]),
                    f"{method}: {summary.get('reason') or 'no reason recorded'}")
    first = next((summaries[m] for m in order if summaries[m] is not None), None)
    if first is None:
        return "failed", "no method result"
    verdict = str(first.get("status", FOUND))
    return verdict, "" if verdict == FOUND else str(first.get("reason") or "")


def _method_values(row: dict[str, Any], method: str, summary: Mapping[str, Any]) -> None:
    """Copy one finished method's numbers into the row (the primary's unprefixed)."""
    if method == PRIMARY:
        if math.isnan(row["n_stars"]):
            row["n_stars"] = _num(summary, "n_stars")
        row["n_members"] = _num(summary, "n_members")
        for col in ASTROMETRY:
            row[col] = _num(summary, col)
            row[f"{col}_error"] = _num(summary, f"{col}_error")
            row[f"{col}_std"] = _num(summary.get("parameters") or summary, f"{col}_std")
        for key in ("ra", "dec", "r50_deg", "seed_jaccard", "seed_jaccard_min", "runtime_s",
                    "false_alarm_probability", "n_unknown_groups"):
            row[key] = _num(summary, key)
        tension = summary.get("prior_tension") or {}
        for key in ("centre", "pm", "parallax"):
            row[f"tension_{key}"] = _num(tension, key)
        seeds = summary.get("seeds")
        row["seeds"] = " ".join(str(s) for s in seeds) if isinstance(seeds, list) else ""
        return
    if method not in REGISTRY:
        return
    row[f"{method}_n_members"] = _num(summary, "n_members")
    row[f"{method}_runtime_s"] = _num(summary, "runtime_s")
    for key in REGISTRY[method].summary_fields:
        row[f"{method}_{key}"] = _num(summary, key)
    for col in MEANS_WITH_ERRORS:
        row[f"{method}_{col}"] = _num(summary, col)


def _read_json(path: str | Path | None, missing: list[str]) -> dict[str, Any] | None:
    if path is not None and not Path(path).exists():
        missing.append(str(path))
    return read_json(path)


def summary_row_from_files(
    region: Mapping[str, Any],
    *,
    status_path: str | Path | None = None,
    summary_paths: Mapping[str, str | Path | None] | None = None,
    reference_path: str | Path | None = None,
    comparison_path: str | Path | None = None,
    parameters_path: str | Path | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """:func:`summary_row` reading the files (``summary_paths``: {method: summary.json}); absent
    files make a "failed" row naming them (a skipped region needs no method files). The reference
    comes from ``reference_path`` (the region's reference JSON) or else from the reference row of
    ``comparison_path``. ``parameters_path`` is the region's parameters.json (optional; absent,
    its columns stay empty and the status says "missing")."""
    from ocdec.results.comparison import read_comparison, reference_row
    from ocdec.results.reference import read_references

    missing: list[str] = []
    status = _read_json(status_path, missing)
    summaries = {method: _read_json(path, missing)
                 for method, path in (summary_paths or {}).items()}
    refs: list[dict[str, Any]] = []
    if reference_path and Path(reference_path).exists():
        refs = read_references(reference_path)
    elif comparison_path and Path(comparison_path).exists():
        ref = reference_row(read_comparison(comparison_path))
        if ref is not None:
            refs = [{**ref, "source": ref["method"]}]
    skipped = status is not None and status.get("status") not in (None, "ok")
    parameters = None
    if parameters_path is not None:
        parameters = read_json(parameters_path) or {"status": "missing",
                                                    "reason": f"no {parameters_path}"}
    return summary_row(
        region,
        status=status,
        summaries=summaries,
        references=refs,
        missing=[] if skipped else missing,
        parameters=parameters,
        error=error,
    )


def summary_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    table = pd.DataFrame(list(rows), columns=list(COLUMNS))
    for col in COUNT_COLUMNS:
        table[col] = pd.to_numeric(table[col], errors="coerce").round().astype("Int64")
    for col in METHOD_FIELD_COLUMNS:
        values = pd.to_numeric(table[col], errors="coerce")
        known = values.dropna()
        if len(known) and np.isfinite(known).all() and (known == known.round()).all():
            table[col] = values.astype("Int64")
    return table


def verdict_counts(table: pd.DataFrame) -> str:
    """ "12 regions: 9 found, 2 not found, 1 other; 3 unknown groups" (the catalogue's tally)."""
    from ocdec.verdict import tally

    return tally(table["status"], pd.to_numeric(table["n_unknown_groups"], errors="coerce"))


def write_summary(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Write ``results/summary.tsv`` and return the table."""
    from ocdec.results.comparison import rounded

    table = summary_table(rows)
    write_tsv(path, rounded(table))
    return table


def read_summary_table(path: str | Path) -> pd.DataFrame:
    try:
        return pd.read_csv(
            path,
            sep="\t",
            dtype={
                "region": str,
                "name": str,
                "reason": str,
                "reference_source": str,
                "seeds": str,
                "parameters_status": str,
                "parameters_reason": str,
                **dict.fromkeys(PHYSICS_TEXT, str),
            },
        )
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise OcdecError(f"{path}: cannot read the summary table: {err}") from err


def _region_of(path: str | Path, depth: int) -> str:
    """The region id in a results path: results/{region}/status.json (depth 1),
    results/{region}/{method}/summary.json (depth 2)."""
    return Path(path).parents[depth - 1].name


def _by_region(paths: Any, depth: int) -> dict[str, str]:
    if paths is None:
        return {}
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return {_region_of(p, depth): str(p) for p in paths}


def catalogue_summary(
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    *,
    regions: Sequence[Mapping[str, Any]] | None = None,
    methods: Sequence[str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The summary rule in one call: read every region's files, write ``outputs["table"]`` and the
    catalogue figures (``outputs[name]`` for name in :data:`ocdec.products.CATALOGUE_FIGURES`, and
    ``outputs[f"{name}_pdf"]`` where present).

    ``inputs`` holds lists of paths under "status" (results/{region}/status.json), "comparison"
    (results/{region}/comparison.tsv), one key per method (results/{region}/{method}/
    summary.json) and optionally "parameters" (results/{region}/{method}/parameters.json);
    ``methods`` the methods run (default: the method keys of ``inputs``). Region order follows
    "status", or ``regions`` (rows with "id" and optionally "name") where given.
    ``errors`` ({region: reason}) marks regions whose jobs failed
    (:func:`ocdec.results.failures.summary_after_failure`).
    """
    from ocdec.results.figures import catalogue_figures, save_figure

    methods = [m for m in REGISTRY if m in inputs] if methods is None else list(methods)
    status = _by_region(inputs.get("status"), 1)
    comparison = _by_region(inputs.get("comparison"), 1)
    parameters = _by_region(inputs.get("parameters"), 2)
    per_method = {m: _by_region(inputs.get(m), 2) for m in methods}
    if regions is None:
        first = next(iter(per_method.values()), {})
        regions = [{"id": rid} for rid in (list(status) or list(first))]
    rows = []
    for region in track(regions, "catalogue summary", unit="regions"):
        rid = str(region["id"])
        # a method the workflow runs must have its file; absent ones make a failed row
        paths = {m: per_method[m].get(rid, str(products.method_dir("results", rid, m)
                                               / products.SUMMARY)) for m in methods}
        rows.append(summary_row_from_files(region, status_path=status.get(rid),
                                           summary_paths=paths,
                                           comparison_path=comparison.get(rid),
                                           parameters_path=parameters.get(rid),
                                           error=(errors or {}).get(rid)))
    table = write_summary(outputs["table"], rows)
    log.info("%s", verdict_counts(table))
    for name, fig in catalogue_figures(table).items():
        for key in (name, f"{name}_pdf"):
            if outputs.get(key):
                save_figure(fig, outputs[key])
    return table
