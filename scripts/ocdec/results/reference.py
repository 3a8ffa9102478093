"""Reference values of a cluster's mean proper motion and parallax: SIMBAD, an offline table, and
published cluster catalogues (Cantat-Gaudin 2018/2020, Hunt & Reffert 2023, VizieR exports).

Every source gives *reference rows*, plain dicts with the keys of :data:`REFERENCE_KEYS`
(``source`` names where the row comes from: "SIMBAD", "CG2018", "HR2023", "thesis table", ...;
``detail`` says more, e.g. SIMBAD's main identifier and bibcodes). The first row of a region's list
is *the* reference that the comparison measures offsets from.

The sources live in :mod:`ocdec.results.simbad`, :mod:`ocdec.results.cluster_tables` and the
offline table below; rows and names in :mod:`ocdec.results.reference_rows`. Their public names are
importable from here too.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ocdec.errors import OcdecError
from ocdec.io import write_json
from ocdec.methods.astrometry import MEANS_WITH_ERRORS
from ocdec.results.cluster_tables import (  # noqa: F401 (re-exported: one place to import from)
    cluster_table_reference,
    read_cluster_table,
    table_label,
)
from ocdec.results.reference_rows import (  # noqa: F401 (re-exported)
    ALIASES,
    REFERENCE_KEYS,
    as_float,
    candidate_names,
    clean_row,
    display_name,
    name_key,
    utc_now,
)
from ocdec.results.simbad import (  # noqa: F401 (re-exported)
    SIMBAD_COLUMNS,
    TapClient,
    fetch_simbad,
    pm_component_errors,
    simbad_query,
    simbad_reference,
)

log = logging.getLogger(__name__)

TABLE_COLUMNS = (
    "id",
    "name",
    *MEANS_WITH_ERRORS,
    "source",
)

# SIMBAD
# ---------------------------------------------------------------------------------------------





# ---------------------------------------------------------------------------------------------
# offline reference table (config/references.tsv)
# ---------------------------------------------------------------------------------------------


def load_reference_table(path: str | Path) -> pd.DataFrame:
    """Read the offline reference TSV (columns :data:`TABLE_COLUMNS`, ``n_stars`` optional)."""
    path = Path(path)
    try:
        table = pd.read_csv(
            path, sep="\t", comment="#", dtype={"id": str, "name": str, "source": str}
        )
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise OcdecError(f"{path}: cannot read the reference table: {err}") from err
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise OcdecError(f"{path}: reference table lacks column(s) {', '.join(missing)}")
    for col in REFERENCE_KEYS[1:]:
        if col not in table:
            table[col] = np.nan
        values = pd.to_numeric(table[col], errors="coerce")
        bad = values.isna() & table[col].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise OcdecError(
                f"{path}: row {row}, column {col}: not a number: {table[col][bad].iloc[0]!r}"
            )
        table[col] = values.astype(float)
    if table["id"].duplicated().any():
        dup = table["id"][table["id"].duplicated()].iloc[0]
        raise OcdecError(f"{path}: region id {dup!r} appears more than once")
    table["source"] = table["source"].fillna("reference table")
    return table


def reference_table_from_mapping(
    mapping: Mapping[str, Mapping[str, Any]], source: str = "reference table"
) -> pd.DataFrame:
    """The same table from config's ``{region_id: {pmra: ..., pmra_error: ..., ...}}`` form."""
    rows = []
    for region_id, values in (mapping or {}).items():
        if not isinstance(values, Mapping):
            raise OcdecError(f"reference table: entry {region_id!r} is not a mapping of values")
        unknown = set(values) - set(TABLE_COLUMNS) - {"n_stars"}
        if unknown:
            raise OcdecError(
                f"reference table: entry {region_id!r} has unknown key(s) {sorted(unknown)}"
            )
        row = {
            "id": str(region_id),
            "name": values.get("name") or display_name(region_id),
            "source": values.get("source") or source,
        }
        for col in REFERENCE_KEYS[1:]:
            value = values.get(col)
            try:
                row[col] = math.nan if value is None else float(value)
            except (TypeError, ValueError) as err:
                raise OcdecError(
                    f"reference table: {region_id}.{col}: not a number: {value!r}"
                ) from err
        rows.append(row)
    return pd.DataFrame(rows, columns=[*TABLE_COLUMNS, "n_stars"])


def table_reference(table: pd.DataFrame, region_id: str, name: str | None = None) -> dict | None:
    """The offline table's row for a region (by id, else by normalised name), or None."""
    keys = {name_key(region_id)} | ({name_key(name)} if name else set())
    hit = table[table["id"] == region_id]
    if hit.empty:
        hit = table[table["id"].map(name_key).isin(keys) | table["name"].map(name_key).isin(keys)]
    if hit.empty:
        return None
    return clean_row(hit.iloc[0].to_dict())


# one region's references, on disk
# ---------------------------------------------------------------------------------------------


def region_references(
    region_id: str,
    name: str | None = None,
    *,
    simbad: bool = False,
    simbad_cache: str | Path | None = None,
    client: TapClient | None = None,
    reference_table: pd.DataFrame | None = None,
    cluster_tables: Iterable[pd.DataFrame] = (),
    retries: int = 3,
    wait_s: float = 2.0,
    timeout_s: float = 60.0,
) -> list[dict[str, Any]]:
    """Reference rows for one region, the comparison's reference first.

    Order: SIMBAD (when ``simbad``), then the offline table's row, then each cluster table that
    lists the cluster. A SIMBAD failure is logged and the offline rows stand in (a run without the
    network still ends in a comparison); it is an error only when nothing else is available.
    """
    name = name or display_name(region_id)
    rows: list[dict[str, Any]] = []
    simbad_error: OcdecError | None = None
    if simbad:
        try:
            if simbad_cache is not None:
                rows.append(
                    simbad_reference(
                        name,
                        simbad_cache,
                        client=client,
                        retries=retries,
                        wait_s=wait_s,
                        timeout_s=timeout_s,
                    )
                )
            else:
                rows.append(
                    fetch_simbad(
                        name, client=client, retries=retries, wait_s=wait_s, timeout_s=timeout_s
                    )
                )
        except OcdecError as err:
            log.warning("%s: no SIMBAD reference: %s", region_id, err)
            simbad_error = err
    if reference_table is not None:
        row = table_reference(reference_table, region_id, name)
        if row is not None:
            rows.append(row)
    for table in cluster_tables:
        row = cluster_table_reference(table, region_id, name)
        if row is not None:
            rows.append(row)
    if simbad_error is not None and not rows:
        raise simbad_error
    if not rows:
        log.warning("%s: no reference values in any source", region_id)
    return rows


def write_references(path: str | Path, region_id: str, name: str, rows: Sequence[Mapping]) -> None:
    """``resources/reference/{region}.json``: {"region", "name", "utc", "references": [rows]}.

    A SIMBAD row is also stored under "simbad", so the same file serves as SIMBAD's cache.
    """
    clean = [clean_row(r) for r in rows]
    simbad = next((r for r in clean if r["source"] == "SIMBAD"), None)
    write_json(
        path,
        {"region": region_id, "name": name, "utc": utc_now(), "references": clean,
         "simbad": simbad},
    )


def read_references(path: str | Path) -> list[dict[str, Any]]:
    """The reference rows stored by :func:`write_references` (NaN where a value is missing)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise OcdecError(f"{path}: cannot read reference values: {err}") from err
    return [clean_row(r) for r in data.get("references", [])]


