"""The per-region comparison table, as in the thesis: reference values against each method's result.

Rows: the reference (first reference row: SIMBAD or the offline table), every other reference, then
K-Means, DEC, DEC filtered (thesis mode selections) and the default method. Columns: the mean
astrometry with errors, the number of stars, and the offset of each row from the reference in units
of the combined error, ``(x - x_ref) / sqrt(err^2 + err_ref^2)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ocdec.errors import OcdecError
from ocdec.io import write_tsv
from ocdec.methods.astrometry import ASTROMETRY, MEANS_WITH_ERRORS

COLUMNS = (
    "method",
    "kind",
    "n_stars",
    *MEANS_WITH_ERRORS,
    "pmra_offset_sigma",
    "pmdec_offset_sigma",
    "parallax_offset_sigma",
    "note",
)
# Thesis-mode selections in summary.json["selections"], with the labels the report shows.
THESIS_SELECTIONS = (("kmeans", "K-Means"), ("dec", "DEC"), ("dec_filtered", "DEC filtered"))
DEFAULT_LABEL = "default"


def offset_sigma(value: float, error: float, ref: float, ref_error: float) -> float:
    """(value - ref) in units of the combined error; a missing error counts as zero, and NaN when
    both are missing (an offset with no error has no significance)."""
    if not (math.isfinite(value) and math.isfinite(ref)):
        return math.nan
    e1 = error if math.isfinite(error) else 0.0
    e2 = ref_error if math.isfinite(ref_error) else 0.0
    combined = math.hypot(e1, e2)
    return (value - ref) / combined if combined > 0 else math.nan


def read_summary(path: str | Path | None) -> dict[str, Any] | None:
    """A characterize summary.json, or None where the path is None or absent."""
    if path is None or not Path(path).exists():
        return None
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise OcdecError(f"{path}: not valid JSON: {err}") from err


def _num(mapping: Mapping[str, Any] | None, key: str) -> float:
    if not mapping:
        return math.nan
    value = mapping.get(key)
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def _method_row(label: str, params: Mapping[str, Any] | None, note: str = "") -> dict[str, Any]:
    row: dict[str, Any] = {"method": label, "kind": "method", "note": note}
    row["n_stars"] = _num(params, "n_members")
    for col in ASTROMETRY:
        row[col] = _num(params, col)
        row[f"{col}_error"] = _num(params, f"{col}_error")
    return row


def method_rows(
    default_summary: Mapping[str, Any] | None, thesis_summary: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Rows for K-Means, DEC, DEC filtered (from thesis ``selections``) and the default method.

    A method that did not run, or whose region was skipped, keeps its row with NaN values and a note
    saying why, so every region's table has the same rows.
    """
    rows = []
    if thesis_summary is None:
        rows += [_method_row(label, None, "thesis mode not run") for _, label in THESIS_SELECTIONS]
    elif thesis_summary.get("status", "done") != "done":
        note = _status_note(thesis_summary)
        rows += [_method_row(label, None, note) for _, label in THESIS_SELECTIONS]
    else:
        selections = thesis_summary.get("selections") or {}
        for key, label in THESIS_SELECTIONS:
            params = selections.get(key)
            if params is None and key == "dec_filtered":
                params = thesis_summary  # top-level numbers of thesis mode are dec_filtered's
            note = (
                f"k = {thesis_summary.get('kmeans_k')}"
                if key == "kmeans" and "kmeans_k" in thesis_summary
                else ""
            )
            rows.append(_method_row(label, params, note if params else "selection missing"))
    if default_summary is None:
        rows.append(_method_row(DEFAULT_LABEL, None, "default method not run"))
    elif default_summary.get("status", "done") != "done":
        rows.append(_method_row(DEFAULT_LABEL, None, _status_note(default_summary)))
    else:
        rows.append(_method_row(DEFAULT_LABEL, default_summary, ""))
    return rows


def _status_note(summary: Mapping[str, Any]) -> str:
    reason = summary.get("reason")
    return f"{summary.get('status')}: {reason}" if reason else str(summary.get("status"))


def comparison_table(
    references: Sequence[Mapping[str, Any]],
    default_summary: Mapping[str, Any] | None,
    thesis_summary: Mapping[str, Any] | None,
) -> pd.DataFrame:
    """The comparison table (columns :data:`COLUMNS`); offsets are from ``references[0]``."""
    rows: list[dict[str, Any]] = []
    for i, ref in enumerate(references):
        row = {
            "method": str(ref.get("source", "reference")),
            "kind": "reference" if i == 0 else "literature",
            "n_stars": _num(ref, "n_stars"),
            "note": str(ref.get("detail", "") or ""),
        }
        for col in ASTROMETRY:
            row[col] = _num(ref, col)
            row[f"{col}_error"] = _num(ref, f"{col}_error")
        rows.append(row)
    rows += method_rows(default_summary, thesis_summary)
    ref = rows[0] if references else None
    for i, row in enumerate(rows):
        for col in ASTROMETRY:
            row[f"{col}_offset_sigma"] = (
                math.nan
                if ref is None or i == 0
                else offset_sigma(row[col], row[f"{col}_error"], ref[col], ref[f"{col}_error"])
            )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["n_stars"] = table["n_stars"].astype("Float64").round().astype("Int64")
    return table


def rounded(table: pd.DataFrame, decimals: int = 5, offset_decimals: int = 2) -> pd.DataFrame:
    """A copy for people to read: values and errors to ``decimals`` places (errors of 0.0006 mas
    survive), offsets in sigma to ``offset_decimals``."""
    out = table.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].round(offset_decimals if col.endswith("_sigma") else decimals)
    return out


def write_comparison(path: str | Path, table: pd.DataFrame) -> None:
    write_tsv(path, rounded(table))


def read_comparison(path: str | Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", keep_default_na=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise OcdecError(f"{path}: cannot read the comparison table: {err}") from err


def reference_row(table: pd.DataFrame) -> dict[str, Any] | None:
    """The row offsets are measured from (``kind == "reference"``), or None."""
    hit = table[table["kind"] == "reference"]
    return None if hit.empty else hit.iloc[0].to_dict()


def as_float(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if np.isfinite(out) else math.nan
