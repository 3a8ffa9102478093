"""The four panels of a method's row (proper motions, parallax histogram, colour-magnitude
diagram, sky positions) and what they share: the axis limits every row uses
(:func:`display_window`) and the field stars shown (:func:`display_subsample`).

Large fields stay fast: field stars are subsampled for display with a fixed seed (members are
always all drawn) and the field scatter is rasterized in vector formats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.patches import Ellipse

from ocdec.figure_layout import plain_log_ticks
from ocdec.results.figure_inputs import Selection
from ocdec.results.figures.style import (
    FIELD_COLOR,
    GROUP_COLORS,
    LABEL_BPRP,
    LABEL_DEC,
    LABEL_G,
    LABEL_PLX,
    LABEL_PMDEC,
    LABEL_PMRA,
    LABEL_RA,
    MEMBER_COLOR,
    REFERENCE_COLOR,
    note,
)

MAX_FIELD_POINTS = 30_000
DISPLAY_SEED = 12345
PANELS = ("pm", "parallax", "cmd", "sky")
PANEL_TITLES = {
    "pm": "Proper motions",
    "parallax": "Parallax",
    "cmd": "Colour-magnitude",
    "sky": "Sky positions",
}


def display_subsample(
    n: int, max_points: int = MAX_FIELD_POINTS, seed: int = DISPLAY_SEED
) -> np.ndarray:
    """Indices of at most ``max_points`` of ``n`` rows, the same for the same n and seed."""
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_points, replace=False))


def column(stars: pd.DataFrame, name: str) -> np.ndarray:
    """A star column as floats, all NaN where the table lacks it."""
    if name in stars:
        return stars[name].to_numpy(dtype=float)
    return np.full(len(stars), np.nan)


def finite(*arrays: np.ndarray) -> np.ndarray:
    """Rows finite in every array."""
    ok = np.ones(len(arrays[0]), dtype=bool)
    for a in arrays:
        ok &= np.isfinite(a)
    return ok


def _robust_spread(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    if values.size < 3:
        return math.nan
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


@dataclass
class Window:
    """Axis limits a figure's rows share: proper-motion centre and half width, parallax range."""

    pm_centre: tuple[float, float]
    pm_half: float
    plx_range: tuple[float, float]


def display_window(selections: Sequence[Selection], reference: Mapping[str, Any] | None) -> Window:
    """Axis limits shared by every method's row so rows compare at a glance: centred on the members
    of the last selection that has any (the default method comes last), else on the reference."""
    base = next((s for s in reversed(selections) if s.n_members > 0), None)
    pmra_ref = float(reference.get("pmra", math.nan)) if reference else math.nan
    pmdec_ref = float(reference.get("pmdec", math.nan)) if reference else math.nan
    plx_ref = float(reference.get("parallax", math.nan)) if reference else math.nan
    if base is not None:
        m = base.member
        pmra, pmdec, plx = (column(base.stars, c)[m] for c in ("pmra", "pmdec", "parallax"))
        centre = (float(np.nanmedian(pmra)), float(np.nanmedian(pmdec)))
        spread = np.nanmax([_robust_spread(pmra), _robust_spread(pmdec), 0.1])
        plx_c, plx_s = float(np.nanmedian(plx)), _robust_spread(plx)
    elif math.isfinite(pmra_ref) and math.isfinite(pmdec_ref):
        centre, spread = (pmra_ref, pmdec_ref), 1.0
        plx_c, plx_s = plx_ref, math.nan
    else:
        stars = selections[0].stars if selections else pd.DataFrame()
        pmra, pmdec, plx = (column(stars, c) for c in ("pmra", "pmdec", "parallax"))
        centre = (
            (float(np.nanmedian(pmra)), float(np.nanmedian(pmdec))) if len(stars) else (0.0, 0.0)
        )
        spread = 3.0
        plx_c, plx_s = (float(np.nanmedian(plx)) if len(stars) else 1.0), math.nan
    if not all(map(math.isfinite, centre)):
        centre = (0.0, 0.0)
    half = float(np.clip(8.0 * spread, 2.0, 40.0))
    if math.isfinite(pmra_ref) and math.isfinite(pmdec_ref):
        # keep the reference in view even where a method is far off
        need = max(abs(pmra_ref - centre[0]), abs(pmdec_ref - centre[1])) * 1.15
        half = max(half, min(need, 80.0))
    if not math.isfinite(plx_c):
        plx_c = 1.0
    width = max(6.0 * plx_s if math.isfinite(plx_s) else 0.0, 0.6 * abs(plx_c), 0.5)
    plx_range = (max(plx_c - 2.0 * width, -1.0), plx_c + 2.0 * width)
    return Window(centre, half, plx_range)


def reference_label(reference: Mapping[str, Any] | None) -> str:
    """The reference's legend label, naming its source."""
    return f"reference ({reference.get('source', '')})" if reference else "reference"


def _groups_colours(groups: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Colours of the groups other than the members' (those are red), in label order."""
    labels = np.asarray(groups)
    colours = np.empty(len(labels), dtype=object)
    colours[:] = FIELD_COLOR
    others = np.unique(labels[(labels >= 0) & ~member])
    for i, g in enumerate(others):
        colours[labels == g] = GROUP_COLORS[i % len(GROUP_COLORS)]
    return colours


def _scatter_field(ax: Any, x: np.ndarray, y: np.ndarray, alpha: float = 0.35) -> None:
    """Field stars: small, grey, rasterized (hundreds of thousands of points stay light)."""
    ax.scatter(x, y, s=2, c=FIELD_COLOR, alpha=alpha, lw=0, rasterized=True, label="field",
               gid="field")


def _scatter_members(ax: Any, x: np.ndarray, y: np.ndarray, label: str = "members",
                     alpha: float = 0.85) -> None:
    """Members: larger, red, drawn above the field."""
    ax.scatter(x, y, s=6, c=MEMBER_COLOR, alpha=alpha, lw=0, label=label, gid="members",
               zorder=3)


def panel_pm(
    ax: Any, sel: Selection, window: Window, reference: Mapping[str, Any] | None, shown: np.ndarray
) -> None:
    """Field grey, the method's other groups coloured, members red, the reference with errors."""
    pmra, pmdec = column(sel.stars, "pmra"), column(sel.stars, "pmdec")
    field_idx = shown[~sel.member[shown]]
    field_idx = field_idx[finite(pmra[field_idx], pmdec[field_idx])]
    if sel.group is not None:
        colours = _groups_colours(sel.group, sel.member)[field_idx]
        grouped = np.asarray(sel.group)[field_idx] >= 0
        _scatter_field(ax, pmra[field_idx[~grouped]], pmdec[field_idx[~grouped]], alpha=0.4)
        if grouped.any():
            ax.scatter(
                pmra[field_idx[grouped]],
                pmdec[field_idx[grouped]],
                s=2,
                c=list(colours[grouped]),
                alpha=0.5,
                lw=0,
                rasterized=True,
                label="other groups",
                gid="groups",
            )
    else:
        _scatter_field(ax, pmra[field_idx], pmdec[field_idx], alpha=0.4)
    m = sel.member & finite(pmra, pmdec)
    _scatter_members(ax, pmra[m], pmdec[m], label=f"members ({int(m.sum())})", alpha=0.8)
    _mark_reference_pm(ax, reference)
    cx, cy = window.pm_centre
    ax.set_xlim(cx - window.pm_half, cx + window.pm_half)
    ax.set_ylim(cy - window.pm_half, cy + window.pm_half)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(LABEL_PMRA)
    ax.set_ylabel(LABEL_PMDEC)


def _mark_reference_pm(ax: Any, reference: Mapping[str, Any] | None) -> None:
    if not reference:
        return
    x, y = float(reference.get("pmra", math.nan)), float(reference.get("pmdec", math.nan))
    if not (math.isfinite(x) and math.isfinite(y)):
        return
    xe, ye = (float(reference.get(k, math.nan)) for k in ("pmra_error", "pmdec_error"))
    ax.errorbar(
        [x],
        [y],
        xerr=[xe if math.isfinite(xe) else 0],
        yerr=[ye if math.isfinite(ye) else 0],
        fmt="+",
        ms=14,
        mew=1.8,
        color=REFERENCE_COLOR,
        ecolor=REFERENCE_COLOR,
        capsize=3,
        zorder=5,
        label=reference_label(reference),
        gid="reference",
    )


def panel_parallax(
    ax: Any, sel: Selection, window: Window, reference: Mapping[str, Any] | None
) -> None:
    """Histogram of field stars (grey) and members (red), log counts; the reference as a line."""
    plx = column(sel.stars, "parallax")
    lo, hi = window.plx_range
    bins = np.linspace(lo, hi, 61)
    ok = np.isfinite(plx)
    for rows, color, alpha, name in ((ok & ~sel.member, FIELD_COLOR, 0.55, "field"),
                                     (ok & sel.member, MEMBER_COLOR, 0.75, "members")):
        if name == "field" or np.any(rows):
            ax.hist(plx[rows], bins=bins, color=color, alpha=alpha, label=name,
                    histtype="stepfilled", gid=name)
    if reference and math.isfinite(float(reference.get("parallax", math.nan))):
        r = float(reference["parallax"])
        e = float(reference.get("parallax_error", math.nan))
        if math.isfinite(e) and e > 0:
            ax.axvspan(r - e, r + e, color=REFERENCE_COLOR, alpha=0.15, lw=0)
        ax.axvline(
            r,
            color=REFERENCE_COLOR,
            ls="--",
            lw=1.3,
            label=reference_label(reference),
            gid="reference",
        )
    ax.set_xlim(lo, hi)
    ax.set_yscale("log")
    plain_log_ticks(ax)
    # minor ticks at 2 and 5 only: the counts span decades, and each tick is an artist to draw
    ax.yaxis.set_minor_locator(mpl.ticker.LogLocator(subs=(2.0, 5.0)))
    ax.set_xlabel(LABEL_PLX)
    ax.set_ylabel("stars per bin")


def panel_cmd(ax: Any, sel: Selection, shown: np.ndarray) -> None:
    """G against BP-RP, brightest at the top: members over a grey field."""
    g, c = column(sel.stars, "phot_g_mean_mag"), column(sel.stars, "bp_rp")
    ok = finite(g, c)
    if not ok.any():
        note(ax, "no photometry (G, BP-RP) in this field")
        ax.set_xlabel(LABEL_BPRP)
        ax.set_ylabel(LABEL_G)
        ax.invert_yaxis()
        return
    field_idx = shown[~sel.member[shown] & ok[shown]]
    _scatter_field(ax, c[field_idx], g[field_idx])
    m = sel.member & ok
    _scatter_members(ax, c[m], g[m])
    # field percentiles keep outliers from squeezing the diagram; members are always inside
    cx, mx = c[ok], c[m]
    lo = min(np.percentile(cx, 0.5), mx.min() if mx.size else np.inf) - 0.2
    hi = max(np.percentile(cx, 99.5), mx.max() if mx.size else -np.inf) + 0.2
    ax.set_xlim(max(lo, -1.0), min(hi, 6.0))
    gy = g[ok]
    ax.set_ylim(np.max(gy) + 0.3, np.min(gy) - 0.3)  # inverted: bright stars on top
    ax.set_xlabel(LABEL_BPRP)
    ax.set_ylabel(LABEL_G)


def _wrap_ra(ra: np.ndarray, ra0: float) -> np.ndarray:
    return ra0 + ((ra - ra0 + 180.0) % 360.0 - 180.0)


def panel_sky(ax: Any, sel: Selection, region: Mapping[str, Any] | None, shown: np.ndarray) -> None:
    """RA/Dec (east to the left) with the catalogue cone; a note where there are no positions."""
    ra, dec = column(sel.stars, "ra"), column(sel.stars, "dec")
    ok = finite(ra, dec)
    ax.set_xlabel(LABEL_RA)
    ax.set_ylabel(LABEL_DEC)
    if not ok.any():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_xlabel("")
        ax.set_ylabel("")
        note(ax, "no positions (ra, dec)\nin this field:\nsky panel skipped")
        return
    ra0 = region_value(region, "ra")
    dec0 = region_value(region, "dec")
    if not math.isfinite(ra0):
        ra0 = float(np.nanmedian(ra[ok]))
    if not math.isfinite(dec0):
        dec0 = float(np.nanmedian(dec[ok]))
    ra = _wrap_ra(ra, ra0)
    field_idx = shown[~sel.member[shown] & ok[shown]]
    _scatter_field(ax, ra[field_idx], dec[field_idx])
    m = sel.member & ok
    _scatter_members(ax, ra[m], dec[m])
    radius = region_value(region, "radius_deg")
    cosd = max(math.cos(math.radians(dec0)), 1e-3)
    if math.isfinite(radius) and radius > 0:
        ax.add_patch(
            Ellipse(
                (ra0, dec0),
                2 * radius / cosd,
                2 * radius,
                fill=False,
                lw=1.3,
                ls="--",
                color=REFERENCE_COLOR,
                label=f"cone r = {radius:.2f} deg",
                gid="cone",
            )
        )
        ax.set_xlim(ra0 + 1.1 * radius / cosd, ra0 - 1.1 * radius / cosd)
        ax.set_ylim(dec0 - 1.1 * radius, dec0 + 1.1 * radius)
    elif not ax.xaxis_inverted():
        ax.invert_xaxis()
    ax.set_aspect(1.0 / cosd, adjustable="box")


def region_value(region: Mapping[str, Any] | None, key: str) -> float:
    """A number of the region's row (ra, dec, radius_deg), NaN where absent or not a number."""
    if not region:
        return math.nan
    try:
        value = float(region.get(key, math.nan))
    except (TypeError, ValueError):
        return math.nan
    return value
