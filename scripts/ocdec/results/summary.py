"""The catalogue summary, ``results/summary.tsv``: one row per region, whatever happened to it.

A region's row says its status (done; skipped and why; failed and why), star counts, the default
method's members and parameters, the thesis-mode (DEC filtered) result beside it, offsets from the
reference in units of the combined error, seed agreement and runtime. Missing inputs make a
"failed" row that names what is missing rather than an error, so the summary and the report always
build.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ocdec.results.comparison import ASTROMETRY, offset_sigma
from ocdec.errors import OcdecError
from ocdec.io import write_tsv
from ocdec.methods.astrometry import MEANS_WITH_ERRORS

COLUMNS = (
    "region",
    "name",
    "status",
    "reason",
    "n_input",
    "n_stars",
    "n_members",
    *MEANS_WITH_ERRORS,
    "pmra_std",
    "pmdec_std",
    "parallax_std",
    "ra",
    "dec",
    "r50_deg",
    "reference_source",
    "reference_pmra",
    "reference_pmra_error",
    "reference_pmdec",
    "reference_pmdec_error",
    "reference_parallax",
    "reference_parallax_error",
    "pmra_offset_sigma",
    "pmdec_offset_sigma",
    "parallax_offset_sigma",
    "thesis_n_members",
    "thesis_kmeans_k",
    "thesis_pmra",
    "thesis_pmra_error",
    "thesis_pmdec",
    "thesis_pmdec_error",
    "thesis_parallax",
    "thesis_parallax_error",
    "thesis_pmra_offset_sigma",
    "thesis_pmdec_offset_sigma",
    "thesis_parallax_offset_sigma",
    "seeds",
    "seed_jaccard",
    "seed_jaccard_min",
    "runtime_s",
    "thesis_runtime_s",
)


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
    default: Mapping[str, Any] | None = None,
    thesis: Mapping[str, Any] | None = None,
    references: Sequence[Mapping[str, Any]] = (),
    missing: Sequence[str] = (),
    error: str | None = None,
) -> dict[str, Any]:
    """One region's row (keys :data:`COLUMNS`).

    ``status`` is status.json, ``default`` / ``thesis`` the summary.json of each method (None where
    absent), ``references`` the region's reference rows (the first is the reference). ``missing``
    names expected files that are absent and ``error`` an error message; either makes the row
    "failed" with that reason unless the region was skipped.
    """
    region_id = str(region.get("id", region.get("region", "")))
    row: dict[str, Any] = {c: math.nan for c in COLUMNS}
    row.update(
        region=region_id,
        name=str(region.get("name") or region_id.replace("_", " ")),
        reason="",
        reference_source="",
        seeds="",
    )
    row["n_input"] = _num(status, "n_input")
    row["n_stars"] = _num(status, "n_usable")
    state, reason = "done", ""
    if status is not None and status.get("status") not in (None, "ok", "done"):
        state, reason = str(status["status"]), str(status.get("reason") or "")
    elif error:
        state, reason = "failed", error
    elif missing:
        state, reason = "failed", "missing " + ", ".join(missing)
    else:
        for label, summary in (("default", default), ("thesis", thesis)):
            if summary is not None and summary.get("status", "done") not in ("done", "ok"):
                state = str(summary["status"])
                reason = f"{label}: {summary.get('reason') or 'no reason recorded'}"
                break
        if default is None and thesis is None:
            state, reason = "failed", "no method result"
    row["status"], row["reason"] = state, reason

    ref = references[0] if references else None
    if ref is not None:
        row["reference_source"] = str(ref.get("source", ""))
        for col in ASTROMETRY:
            row[f"reference_{col}"] = _num(ref, col)
            row[f"reference_{col}_error"] = _num(ref, f"{col}_error")
    if default is not None and default.get("status", "done") == "done":
        if math.isnan(row["n_stars"]):
            row["n_stars"] = _num(default, "n_stars")
        row["n_members"] = _num(default, "n_members")
        for col in ASTROMETRY:
            row[col] = _num(default, col)
            row[f"{col}_error"] = _num(default, f"{col}_error")
            row[f"{col}_std"] = _num(default.get("parameters") or default, f"{col}_std")
        for key in ("ra", "dec", "r50_deg", "seed_jaccard", "seed_jaccard_min", "runtime_s"):
            row[key] = _num(default, key)
        seeds = default.get("seeds")
        row["seeds"] = " ".join(str(s) for s in seeds) if isinstance(seeds, list) else ""
    if thesis is not None and thesis.get("status", "done") == "done":
        params = (thesis.get("selections") or {}).get("dec_filtered") or thesis
        row["thesis_n_members"] = _num(params, "n_members")
        row["thesis_kmeans_k"] = _num(thesis, "kmeans_k")
        row["thesis_runtime_s"] = _num(thesis, "runtime_s")
        for col in ASTROMETRY:
            row[f"thesis_{col}"] = _num(params, col)
            row[f"thesis_{col}_error"] = _num(params, f"{col}_error")
    for prefix in ("", "thesis_"):
        for col in ASTROMETRY:
            row[f"{prefix}{col}_offset_sigma"] = offset_sigma(
                row[f"{prefix}{col}"],
                row[f"{prefix}{col}_error"],
                row[f"reference_{col}"],
                row[f"reference_{col}_error"],
            )
    return row


def _read_json(path: str | Path | None, missing: list[str]) -> dict[str, Any] | None:
    if path is None:
        return None
    path = Path(path)
    if not path.exists():
        missing.append(str(path))
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise OcdecError(f"{path}: not valid JSON: {err}") from err


def summary_row_from_files(
    region: Mapping[str, Any],
    *,
    status_path: str | Path | None = None,
    default_summary_path: str | Path | None = None,
    thesis_summary_path: str | Path | None = None,
    reference_path: str | Path | None = None,
    comparison_path: str | Path | None = None,
) -> dict[str, Any]:
    """:func:`summary_row` reading the files; absent files make a "failed" row naming them (a
    skipped region needs no method files). The reference comes from ``reference_path`` (the
    region's reference JSON) or else from the reference row of ``comparison_path``."""
    from ocdec.results.comparison import read_comparison, reference_row
    from ocdec.results.reference import read_references

    missing: list[str] = []
    status = _read_json(status_path, missing)
    default = _read_json(default_summary_path, missing)
    thesis = _read_json(thesis_summary_path, missing)
    refs: list[dict[str, Any]] = []
    if reference_path and Path(reference_path).exists():
        refs = read_references(reference_path)
    elif comparison_path and Path(comparison_path).exists():
        ref = reference_row(read_comparison(comparison_path))
        if ref is not None:
            refs = [{**ref, "source": ref["method"]}]
    skipped = status is not None and status.get("status") not in (None, "ok", "done")
    return summary_row(
        region,
        status=status,
        default=default,
        thesis=thesis,
        references=refs,
        missing=[] if skipped else missing,
    )


def summary_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    table = pd.DataFrame(list(rows), columns=list(COLUMNS))
    for col in ("n_input", "n_stars", "n_members", "thesis_n_members", "thesis_kmeans_k"):
        table[col] = pd.to_numeric(table[col], errors="coerce").round().astype("Int64")
    return table


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
) -> pd.DataFrame:
    """The summary rule in one call: read every region's files, write ``outputs["table"]`` and the
    catalogue figures (``outputs[name]`` for name in :data:`ocdec.results.figures.CATALOGUE_PLOTS`, and
    ``outputs[f"{name}_pdf"]`` where present).

    ``inputs`` holds lists of paths under "status" (results/{region}/status.json), "comparison"
    (results/{region}/comparison.tsv) and one key per method ("default", "thesis":
    results/{region}/{method}/summary.json). Region order follows "status", or ``regions`` (rows
    with "id" and optionally "name") where given.
    """
    from ocdec.results.figures import CATALOGUE_PLOTS, offsets_figure, recovered_figure, save_figure

    status = _by_region(inputs.get("status"), 1)
    comparison = _by_region(inputs.get("comparison"), 1)
    default = _by_region(inputs.get("default"), 2)
    thesis = _by_region(inputs.get("thesis"), 2)
    if regions is None:
        regions = [{"id": rid} for rid in (list(status) or list(default) or list(thesis))]
    rows = []
    for region in regions:
        rid = str(region["id"])
        rows.append(
            summary_row_from_files(
                region,
                status_path=status.get(rid),
                # a method the workflow runs must have its file; absent ones make a failed row
                default_summary_path=default.get(rid, f"results/{rid}/default/summary.json")
                if "default" in inputs
                else None,
                thesis_summary_path=thesis.get(rid, f"results/{rid}/thesis/summary.json")
                if "thesis" in inputs
                else None,
                comparison_path=comparison.get(rid),
            )
        )
    table = write_summary(outputs["table"], rows)
    figures = {"offsets": offsets_figure, "recovered": recovered_figure}
    for name in CATALOGUE_PLOTS:
        for key in (name, f"{name}_pdf"):
            if outputs.get(key):
                save_figure(figures[name](table), outputs[key])
    return table
