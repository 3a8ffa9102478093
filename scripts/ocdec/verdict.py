"""Found or not found: how far a detection lies from the catalogue's cluster, and the groups table.

Every method's run ends with a verdict (:func:`decide`): ``found`` when the selection has members,
is compatible with the catalogue's cluster (:func:`prior_tension` within :data:`MAX_TENSION` on
every axis) and, where the method measures one, has a false-alarm probability of at most
:data:`MAX_FALSE_ALARM`; ``not_found`` with a reason otherwise. Both are results, not errors.

Tension units (docs/verdict.md has the measurements behind them): the centre offset in cone radii,
the proper-motion offset in units of :data:`PM_SIGMA` (pre-Gaia proper motions are good to a few
mas/yr), the parallax offset as |ln(parallax ratio)| in units of :data:`PLX_LOG_SIGMA` (catalogue
distances to ~25 %). Thresholds sit near the 99th percentile of Dias et al. (2002) against Hunt &
Reffert (2023) for 1,351 clusters in both: a true match passes, a cluster 15 mas/yr away does not.

``groups.tsv`` (:data:`GROUP_COLUMNS`) lists every significant overdensity of the cone with
``known_as``: the name of a published cluster it matches (:func:`known_as`), empty for a candidate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from ocdec.methods.priors import ClusterPriors

FOUND = "found"
NOT_FOUND = "not_found"
SKIPPED = "skipped"
# statuses that are results (the region ran); "skipped" and "failed" are not
RESULT_STATUSES = (FOUND, NOT_FOUND)

PM_SIGMA = 3.0  # mas/yr: typical error of a catalogue's (pre-Gaia) mean proper motion
PLX_LOG_SIGMA = 0.25  # catalogue distances are good to ~25 %
# Compatible with the catalogue's cluster when every tension is at most this. Dias vs Hunt &
# Reffert (1,351 clusters): 99 % of centres within 4.7 cone radii (98 %: 3.1), proper motions
# within 12.4 mas/yr (4.1 sigma), |ln parallax ratio| within 1.83 (7.3 sigma).
MAX_TENSION = {"centre": 3.0, "pm": 4.0, "parallax": 7.0}
# A detection is believed when a field without a cluster gives one this strong at most this often.
MAX_FALSE_ALARM = 0.01

GROUP_COLUMNS = ("group", "pmra", "pmdec", "parallax", "ra", "dec", "n_members", "significance",
                 "false_alarm_probability", "tension_centre", "tension_pm", "tension_parallax",
                 "compatible", "target", "known_as", "pm_width", "parallax_width")


def prior_tension(priors: ClusterPriors, pmra: float | None, pmdec: float | None,
                  parallax: float | None, ra: float | None = None,
                  dec: float | None = None, parallax_error: float | None = None
                  ) -> dict[str, float | None]:
    """How far a group lies from the catalogue's cluster: ``centre`` (cone radii), ``pm`` and
    ``parallax`` (in :data:`PM_SIGMA` / :data:`PLX_LOG_SIGMA` units) and ``max`` of those known;
    None where the catalogue or the group lacks the value.

    With the group's ``parallax_error``, the parallax tension is measured from the value within
    2 errors of the group's that is nearest the catalogue's: a distant cluster's mean parallax of
    0.01 +- 0.02 mas is not 8 sigma from a catalogue's 0.067 (Berkeley 29), though its log ratio
    is."""
    out: dict[str, float | None] = {"centre": None, "pm": None, "parallax": None}
    if priors.has_centre and priors.radius_deg and _finite(ra, dec):
        from ocdec.methods.default.sky import angular_separation_deg

        sep = angular_separation_deg(np.array([ra]), np.array([dec]), float(priors.ra),  # type: ignore[arg-type]
                                     float(priors.dec))[0]  # type: ignore[arg-type]
        out["centre"] = float(sep / priors.radius_deg)
    if priors.pmra is not None and priors.pmdec is not None and _finite(pmra, pmdec):
        out["pm"] = math.hypot(pmra - priors.pmra, pmdec - priors.pmdec) / PM_SIGMA  # type: ignore[operator]
    if priors.parallax is not None and _finite(parallax):
        plx = float(parallax)  # type: ignore[arg-type]
        if parallax_error is not None and _finite(parallax_error):
            reach = 2.0 * float(parallax_error)
            plx = min(max(priors.parallax, plx - reach), plx + reach)
        # a group at zero or negative parallax is as far from a positive prior as can be
        out["parallax"] = (abs(math.log(plx / priors.parallax)) / PLX_LOG_SIGMA
                           if plx > 0 else math.inf)
    known = [v for v in out.values() if v is not None]
    out["max"] = max(known) if known else None
    return out


def compatible(tension: Mapping[str, float | None]) -> bool:
    """Every known tension within :data:`MAX_TENSION`."""
    return all(tension.get(k) is None or tension[k] <= limit  # type: ignore[operator]
               for k, limit in MAX_TENSION.items())


def combined_tension(tension: Mapping[str, float | None]) -> float:
    """Quadrature sum of the known tensions, each over its threshold (0 without priors): the
    ranking of compatible groups, nearest the catalogue's cluster first."""
    return math.sqrt(sum((tension[k] / limit) ** 2 for k, limit in MAX_TENSION.items()  # type: ignore[operator]
                         if tension.get(k) is not None))


def describe_tension(tension: Mapping[str, float | None]) -> str:
    """ "centre 0.2 cone radii, pm 5.1 sigma (3 mas/yr), parallax 0.4 sigma (25 %)"."""
    parts = []
    if tension.get("centre") is not None:
        parts.append(f"centre {tension['centre']:.1f} cone radii")
    if tension.get("pm") is not None:
        parts.append(f"pm {tension['pm']:.1f} sigma ({PM_SIGMA:g} mas/yr)")
    if tension.get("parallax") is not None:
        parts.append(f"parallax {tension['parallax']:.1f} sigma ({PLX_LOG_SIGMA:.0%})")
    return ", ".join(parts) or "no catalogue values to compare"


def decide(n_members: int, tension: Mapping[str, float | None],
           false_alarm: float | None = None, reason: str | None = None) -> tuple[str, str]:
    """(status, reason): found only with members, compatible and (where measured) believable.
    ``reason``: the method's own not-found reason, which wins when there are no members."""
    if n_members == 0:
        return NOT_FOUND, reason or "no members"
    if not compatible(tension):
        return NOT_FOUND, ("the selection is incompatible with the catalogue's cluster: "
                           + describe_tension(tension))
    if false_alarm is not None and false_alarm > MAX_FALSE_ALARM:
        return NOT_FOUND, (f"false-alarm probability {false_alarm:.2g} exceeds "
                           f"{MAX_FALSE_ALARM:g}")
    return FOUND, ""


def tally(statuses: Any, unknown_groups: Any = ()) -> str:
    """ "12 regions: 9 found, 2 not found, 1 other; 3 unknown groups": the catalogue's count of
    verdicts (``statuses`` one per region) and of believable groups matching no published
    cluster."""
    statuses = [str(s) for s in statuses]
    found, missed = statuses.count(FOUND), statuses.count(NOT_FOUND)
    unknown = int(sum(float(v) for v in unknown_groups if _finite(_float(v))))
    return (f"{len(statuses)} regions: {found} found, {missed} not found, "
            f"{len(statuses) - found - missed} other; {unknown} unknown groups")


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None  # pandas' NA and non-numbers


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def groups_from_labels(stars: pd.DataFrame, labels: np.ndarray, priors: ClusterPriors,
                       target: int | None = None) -> pd.DataFrame:
    """groups.tsv rows of a method whose groups are star labels (HDBSCAN: every group it found,
    label -1 the field): median astrometry, sky centre, size, tension; ``target`` the label taken
    as the cluster (None: none). No significance or false-alarm probability."""
    import pandas as pd

    from ocdec.methods.astrometry import sky_centre_and_r50

    rows = []
    for g in np.unique(labels[labels >= 0]):
        sel = stars.loc[labels == g]
        med = {c: float(np.nanmedian(sel[c])) for c in ("pmra", "pmdec", "parallax")}
        sky = sky_centre_and_r50(sel)
        t = prior_tension(priors, med["pmra"], med["pmdec"], med["parallax"], sky["ra"],
                          sky["dec"])
        rows.append({"group": int(g), **med, "ra": sky["ra"], "dec": sky["dec"],
                     "n_members": len(sel), "significance": math.nan,
                     "false_alarm_probability": math.nan, "tension_centre": t["centre"],
                     "tension_pm": t["pm"], "tension_parallax": t["parallax"],
                     "compatible": compatible(t), "target": target is not None and g == target,
                     "known_as": "",
                     "pm_width": float(np.hypot(np.nanstd(sel["pmra"]), np.nanstd(sel["pmdec"]))
                                       / math.sqrt(2)),
                     "parallax_width": float(np.nanstd(sel["parallax"]))})
    return pd.DataFrame(rows, columns=list(GROUP_COLUMNS))


# --- known clusters --------------------------------------------------------------------------

# A group is a published cluster when its sky centre is within this many of the cluster's r50 (or
# the floor, deg) and its motion and parallax within the widths below.
MATCH_R50 = 3.0
MATCH_SKY_FLOOR_DEG = 0.3
MATCH_PM_FLOOR = 1.0  # mas/yr, added to twice the group's proper-motion width
MATCH_PLX_REL = 0.2  # relative parallax tolerance, added to twice the group's parallax width


def known_as(groups: pd.DataFrame, table: pd.DataFrame | None,
             priors: ClusterPriors | None = None) -> list[str]:
    """For each group, the name of the published cluster it matches (nearest in proper motion
    among those matching in sky, motion and parallax; the first table that has one where several
    were read), "" where none: a candidate. ``table`` as read by
    :func:`ocdec.results.cluster_tables.read_cluster_table` (or several concatenated), names with
    spaces for underscores (CG2020's "Melotte_20" is "Melotte 20"). A group without a sky centre
    (a field without positions) is placed at the catalogue's centre, within its cone, where
    ``priors`` give one; else it is not named (motion and parallax alone match clusters all over
    the sky)."""
    if table is None or table.empty or groups.empty:
        return [""] * len(groups)
    if "source" in table and table["source"].nunique() > 1:
        names = [""] * len(groups)
        for source in table["source"].unique():  # in the order the tables were given
            found = known_as(groups, table[table["source"] == source].drop(columns="source"),
                             priors)
            names = [n or f for n, f in zip(names, found, strict=True)]
        return names
    from ocdec.methods.default.sky import angular_separation_deg

    pmra, pmdec, plx = (table[c].to_numpy(float) for c in ("pmra", "pmdec", "parallax"))
    ra, dec = table["ra"].to_numpy(float), table["dec"].to_numpy(float)
    r50 = np.nan_to_num(table["r50_deg"].to_numpy(float), nan=0.0)
    names = table["name"].astype(str).str.replace("_", " ").to_numpy()
    out = []
    for g in groups.itertuples():
        dpm = np.hypot(pmra - g.pmra, pmdec - g.pmdec)
        ok = dpm <= 2 * _width(g.pm_width) + MATCH_PM_FLOOR
        ok &= np.abs(plx - g.parallax) <= 2 * _width(g.parallax_width) + MATCH_PLX_REL * abs(
            g.parallax)
        centre, reach = (g.ra, g.dec), np.maximum(MATCH_R50 * r50, MATCH_SKY_FLOOR_DEG)
        if not _finite(g.ra, g.dec):
            if priors is None or not priors.has_centre:
                out.append("")
                continue
            centre = (priors.ra, priors.dec)
            reach = np.maximum(reach, priors.radius_deg or 0.0)
        sep = np.full(len(table), np.inf)
        near = ok & np.isfinite(ra) & np.isfinite(dec)
        sep[near] = angular_separation_deg(ra[near], dec[near], float(centre[0]),
                                           float(centre[1]))
        ok &= sep <= reach
        hits = np.flatnonzero(ok)
        out.append(str(names[hits[np.argmin(dpm[hits])]]) if hits.size else "")
    return out


def _width(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) else 0.0


def read_known(paths: Any) -> pd.DataFrame | None:
    """The published cluster tables (one path or several) as one table, None without any."""
    import pandas as pd

    from ocdec.results.cluster_tables import read_cluster_table

    if not paths:
        return None
    if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__"):
        paths = [paths]
    return pd.concat([read_cluster_table(p) for p in paths], ignore_index=True)
