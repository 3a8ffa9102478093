"""Scaling fits of the benchmark's fields and the projected time of a catalogue.

Power laws (time = a n^b) per stage and end to end, and the affine model (a fixed cost per region
plus a cost per star) that the verdict uses; the catalogue's regions counted by the simulator's
Galactic model, and the thesis's catalogue (169 regions, 75 million stars).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench import (
    CANONICAL,
    GOAL_CATALOGUE_S,
    GOAL_STARS_PER_S,
    PIPELINES,
    REGION_ROWS,
    THESIS_REGIONS,
    THESIS_STARS,
)


def power_law(n: Sequence[float], t: Sequence[float]) -> dict[str, float] | None:
    """Least squares of log t = log a + b log n; None with fewer than two usable points."""
    pts = [(x, y) for x, y in zip(n, t, strict=True) if x > 0 and y is not None and y > 0]
    if len(pts) < 2:
        return None
    lx, ly = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    b, log_a = np.polyfit(lx, ly, 1)
    resid = ly - (log_a + b * lx)
    return {"a": float(math.exp(log_a)), "b": float(b), "points": len(pts),
            "rms_log": float(np.sqrt(np.mean(resid**2)))}


def affine(n: Sequence[float], t: Sequence[float]) -> dict[str, Any] | None:
    """Least squares of t = c + s n (a fixed cost per region plus a cost per star), with s >= 0
    (a negative slope, which noise or a step such as DEC being skipped on large fields can give,
    becomes s = 0, c = mean). ``s_fitted`` and ``s_err``: the unconstrained slope and its
    standard error (NaN with fewer than three points), so a projection can say how well the cost
    per star is known; ``clamped``: the slope or the fixed cost was set to 0. None with fewer than
    two usable points."""
    pts = [(x, y) for x, y in zip(n, t, strict=True) if x > 0 and y is not None and y > 0]
    if len(pts) < 2:
        return None
    from scipy.stats import linregress

    x, y = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    line = linregress(x, y)
    slope, intercept = line.slope, line.intercept
    fitted = float(slope)
    err = float(line.stderr) if len(pts) > 2 else math.nan
    clamped = False
    if slope < 0:
        slope, intercept, clamped = 0.0, float(y.mean()), True
    if intercept < 0:
        slope, intercept, clamped = float((x * y).sum() / (x * x).sum()), 0.0, True
    return {"c": float(intercept), "s": float(slope), "points": len(pts), "s_fitted": fitted,
            "s_err": err, "clamped": clamped}


def predict(fit: dict[str, float] | None, n: np.ndarray | float) -> Any:
    if fit is None:
        return None
    n = np.asarray(n, dtype=float)
    if "s" in fit:
        return fit["c"] + fit["s"] * n
    return fit["a"] * n ** fit["b"]


def expected_rows(region: dict[str, Any], release: str = "dr2", g_limit: float = 21.0,
                  seed: int = 0) -> float:
    """Expected number of rows in the region's cone by the simulator's Galactic model (the count
    ``simulate_field`` draws its Poisson number from when ``n_field`` is not given)."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    from ocdec.data import galactic_model as galaxy
    from ocdec.data import simulate as sim
    from ocdec.data import simulated_errors as gaia_errors

    radius = float(region["radius_deg"])
    centre = SkyCoord(ra=float(region["ra"]) * u.deg, dec=float(region["dec"]) * u.deg)
    frame = centre.skyoffset_frame()
    grid_lon, grid_lat = sim._grid(radius)
    grid = SkyCoord(lon=grid_lon * u.deg, lat=grid_lat * u.deg, frame=frame).galactic
    per_sr = np.array([line.per_sr for line in galaxy.sight_lines(grid, g_limit)])
    lon, lat = sim._uniform_in_cone(np.random.default_rng(seed), 20000, radius)
    share = np.bincount(sim._nearest(lon, lat, radius), minlength=len(grid))
    solid_angle = 2.0 * math.pi * (1.0 - math.cos(math.radians(radius)))
    expected = solid_angle * float(per_sr @ share) / share.sum()
    return expected * gaia_errors.SOURCE_COUNT[release] / gaia_errors.SOURCE_COUNT["dr3"]


def catalogue_counts(regions_path: Path, release: str, min_rows: int) -> dict[str, Any]:
    from ocdec.data.catalogue import read_regions

    regions = read_regions(regions_path)
    counts = {str(r["id"]): expected_rows(r, release) for r in regions.to_dict("records")}
    kept = {k: v for k, v in counts.items() if v >= min_rows}
    return {"release": release, "min_rows": min_rows, "n_regions_all": len(counts),
            "n_regions": len(kept), "total_rows": float(sum(kept.values())),
            "largest": [[k, round(v)] for k, v in sorted(kept.items(), key=lambda kv: -kv[1])[:5]],
            "rows": kept}


def project(fits: dict[str, Any], counts: dict[str, Any], model: str = "affine"
            ) -> dict[str, Any]:
    """Catalogue time from per-region fitted times: jobs one after another (each may use both
    cores), and with two single-core jobs side by side (total CPU seconds / 2, the ideal).
    ``model`` "affine" (fixed cost + cost per star; the default: fixed costs dominate small
    fields) or "power" (a n^b, unreliable outside the measured range when b is far from 1)."""
    rows = np.array(list(counts["rows"].values()), dtype=float)
    scale = THESIS_STARS / rows.sum() if rows.size else math.nan
    out: dict[str, Any] = {}
    suffix = "_affine" if model == "affine" else ""
    for pipeline in PIPELINES:
        wall_fit = fits.get(f"{pipeline}_wall{suffix}")
        cpu_fit = fits.get(f"{pipeline}_cpu{suffix}")
        if wall_fit is None:
            continue
        wall = float(np.sum(predict(wall_fit, rows)))
        cpu_half = float(np.sum(predict(cpu_fit, rows))) / 2 if cpu_fit else None
        if "s" in wall_fit:
            # fixed cost per region, cost per star: the thesis's regions and stars
            wall_75 = THESIS_REGIONS * wall_fit["c"] + THESIS_STARS * wall_fit["s"]
            cpu_75 = ((THESIS_REGIONS * cpu_fit["c"] + THESIS_STARS * cpu_fit["s"]) / 2
                      if cpu_fit else None)
        else:
            wall_75 = wall * scale
            cpu_75 = cpu_half * scale if cpu_half else None
        per_region = {"wall_s": wall, "cpu_s_over_2": cpu_half,
                      "stars_per_s": rows.sum() / wall,
                      "scaled_to_75M_wall_s": wall_75, "scaled_to_75M_cpu_s_over_2": cpu_75,
                      "region_434k_s": float(predict(wall_fit, REGION_ROWS))}
        per_region["meets_1h"] = per_region["scaled_to_75M_wall_s"] <= GOAL_CATALOGUE_S
        per_region["meets_21k_per_s"] = per_region["stars_per_s"] >= GOAL_STARS_PER_S
        out[pipeline] = per_region
    return out


def finish_scaling(report: dict[str, Any]) -> dict[str, Any]:
    """Fits and catalogue projections of a scaling report from its fields (also used to redo
    them from saved JSON, or over the fields of several runs, by ``report``)."""
    fields = sorted(report["fields"], key=lambda f: f["n_rows"])
    pipelines = [p for p in PIPELINES if any(p in f for f in fields)]
    report["sizes"] = [f["n_rows"] for f in fields]
    report["fits"] = fits = scaling_fits(fields, pipelines)
    counts = {"rows": {k: float(v) for k, v in report["catalogue"]["rows_by_region"].items()}}
    report["projection"] = project(fits, counts, "affine")
    report["projection_power_law"] = project(fits, counts, "power")
    top = max(report["sizes"])
    beyond = [v for v in counts["rows"].values() if v > top]
    report["catalogue"]["beyond_measured"] = {"largest_measured_rows": top,
                                              "n_regions": len(beyond),
                                              "rows": float(sum(beyond))}
    return report


def scaling_fits(fields: list[dict[str, Any]], pipelines: Sequence[str]) -> dict[str, Any]:
    fits: dict[str, Any] = {}
    for pipeline in pipelines:
        ok = [f for f in fields if f.get(pipeline, {}).get("total")]
        n = [f["n_rows"] for f in ok]
        fits[f"{pipeline}_wall"] = power_law(n, [f[pipeline]["total"]["wall_s"] for f in ok])
        fits[f"{pipeline}_cpu"] = power_law(n, [f[pipeline]["total"]["cpu_s"] for f in ok])
        fits[f"{pipeline}_rss"] = power_law(n, [f[pipeline]["total"]["peak_rss_mb"] for f in ok])
        fits[f"{pipeline}_wall_affine"] = affine(n, [f[pipeline]["total"]["wall_s"] for f in ok])
        fits[f"{pipeline}_cpu_affine"] = affine(n, [f[pipeline]["total"]["cpu_s"] for f in ok])
        fits[f"{pipeline}_stages"] = {
            stage: power_law(n, [f[pipeline]["stages"][stage]["wall_s"] for f in ok])
            for stage in CANONICAL}
    return fits
