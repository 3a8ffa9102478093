"""Reference rows and cluster names shared by every reference source.

A *reference row* is a plain dict with the keys of :data:`REFERENCE_KEYS` (``source`` names where
it comes from: "SIMBAD", "CG2018", "HR2023", "thesis table", ...; ``detail`` says more). Cluster
names are matched across catalogues through :func:`name_key` and the alias table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ocdec.methods.astrometry import MEANS_WITH_ERRORS

REFERENCE_KEYS = (
    "source",
    *MEANS_WITH_ERRORS,
    "n_stars",
)

# Names SIMBAD knows a cluster by when the catalogue's name is not one of its identifiers. Keys are
# normalised with name_key(); values are tried in order after the name and "Cl <name>".
ALIASES: dict[str, tuple[str, ...]] = {
    "MELOTTE22": ("M 45", "Pleiades"),
    "MELOTTE25": ("Hyades",),
    "MELOTTE20": ("alf Per Cluster",),
    "NGC2632": ("M 44", "Praesepe"),
    "NGC2682": ("M 67",),
    "NGC2168": ("M 35",),
    "NGC6705": ("M 11",),
    "NGC6494": ("M 23",),
    "NGC2287": ("M 41",),
    "NGC2099": ("M 37",),
    "NGC1912": ("M 38",),
}


def name_key(name: str) -> str:
    """A key that matches the spellings of one cluster name across catalogues.

    "NGC_2632", "NGC 2632", "ngc2632", "NGC 02632" and "Cl NGC 2632" all give "NGC2632"; leading
    zeros of numbers go (CG2018 writes "NGC_0188" in places, others "NGC 188").
    """
    text = str(name).strip().upper().replace("_", " ")
    text = re.sub(r"^CL\s+", "", text)
    text = re.sub(r"\bM\s*(\d)", r"M\1", text)
    parts = re.findall(r"[A-Z]+|\d+", text)
    return "".join(p.lstrip("0") or "0" if p.isdigit() else p for p in parts)


def display_name(region_id: str) -> str:
    """ "NGC_2682" -> "NGC 2682" (the slug's underscores back to spaces)."""
    return str(region_id).replace("_", " ").strip()


def candidate_names(name: str) -> list[str]:
    """Names to try on SIMBAD, in order: the name, "Cl <name>", then the alias table."""
    base = display_name(name)
    out = [base]
    if not base.upper().startswith("CL "):
        out.append(f"Cl {base}")
    out.extend(ALIASES.get(name_key(base), ()))
    seen: set[str] = set()
    return [n for n in out if not (n.casefold() in seen or seen.add(n.casefold()))]


def as_float(value: Any) -> float:
    try:
        out = float(np.ma.filled(np.ma.asarray(value, dtype=float), np.nan))
    except (TypeError, ValueError):
        return math.nan
    return out


def clean_row(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"source": str(row.get("source") or "reference")}
    for key in REFERENCE_KEYS[1:]:
        value = row.get(key)
        out[key] = math.nan if value is None else as_float(value)
    if row.get("detail"):
        out["detail"] = str(row["detail"])
    elif row.get("name") and isinstance(row.get("name"), str):
        out["detail"] = str(row["name"])
    # JSON has no NaN in strict readers; write_json emits NaN, which Python's json reads back.
    return out


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
