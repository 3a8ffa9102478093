"""The per-region comparison table, as in the thesis: reference values against each method's result.

Rows: the reference (first reference row: SIMBAD or the offline table), every other reference, then
each method's selections (:mod:`ocdec.methods.registry`: K-Means, DEC, DEC filtered of thesis mode,
the default method, HDBSCAN where run). Columns: the mean
astrometry with errors, the number of stars, and the offset of each row from the reference in units
of the combined error, ``(x - x_ref) / sqrt(err^2 + err_ref^2)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ocdec.errors import OcdecError
from ocdec.io import write_tsv
from ocdec.methods.astrometry import ASTROMETRY, MEANS_WITH_ERRORS
from ocdec.methods.registry import REGISTRY
from ocdec.products import read_json
from ocdec.verdict import FOUND

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
    return read_json(path)


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


def method_rows(summaries: Mapping[str, Mapping[str, Any] | None]) -> list[dict[str, Any]]:
    """One row per selection of each method in ``summaries`` ({method: summary.json or None}),
    in registry order (the thesis's K-Means, DEC, DEC filtered, then the default method, ...).

    A method that did not run, or whose region was skipped, keeps its rows with NaN values and a
    note saying why, so every region's table has the same rows.
    """
    rows = []
    for name, spec in REGISTRY.items():
        if name not in summaries:
            continue
        summary = summaries[name]
        for sel in spec.selections:
            label = spec.selection_label(sel)
            if summary is None:
                rows.append(_method_row(label, None, f"{name} not run"))
            elif summary.get("status", FOUND) != FOUND:
                rows.append(_method_row(label, None, _status_note(summary)))
            else:
                params = (summary.get("selections") or {}).get(sel.key) if sel.key else summary
                rows.append(_method_row(label, params,
                                        _note(sel.note, summary) if params else
                                        "selection missing"))
    return rows


def _note(template: str, summary: Mapping[str, Any]) -> str:
    try:
        return template.format(**summary)
    except (KeyError, IndexError, ValueError):
        return ""


def _status_note(summary: Mapping[str, Any]) -> str:
    reason = summary.get("reason")
    return f"{summary.get('status')}: {reason}" if reason else str(summary.get("status"))


def comparison_table(
    references: Sequence[Mapping[str, Any]],
    summaries: Mapping[str, Mapping[str, Any] | None],
) -> pd.DataFrame:
    """The comparison table (columns :data:`COLUMNS`): the references, then every method of
    ``summaries`` ({method: its summary.json, None where it did not run}); offsets are from
    ``references[0]``."""
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
    rows += method_rows(summaries)
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
    survive), offsets in sigma to ``offset_decimals``, probabilities to four significant digits
    (a false-alarm probability of 1e-20 is not 0)."""
    out = table.copy()
    for col in out.columns:
        if not pd.api.types.is_float_dtype(out[col]):
            continue
        if col.endswith("_probability"):
            out[col] = out[col].map(lambda v: float(f"{v:.4g}") if np.isfinite(v) else v)
        else:
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
