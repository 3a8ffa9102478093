"""Figures a person reads at a glance: per region (proper motions, parallax histogram,
colour-magnitude diagram, sky positions; one row per method), the K-Means silhouette sweep,
DEC training curves, and catalogue-wide offsets from the references.

Figures are built on :class:`matplotlib.figure.Figure` (no pyplot state, no GUI backend) with one
style (:data:`STYLE`), and saved atomically (PNG for the report, PDF on request). The per-region
figures, drawn for every region of a catalogue, use fixed margins in inches (:func:`fixed_grid`)
rather than constrained layout, which measures every tick label in an extra draw and was most of
their cost; log axes get plain-text tick labels (no mathtext). Large fields stay fast: field stars
are subsampled for display with a fixed seed (members are always all drawn) and the field scatter
is rasterized in vector formats. The catalogue-wide figures, drawn once, keep constrained layout.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from ocdec.errors import OcdecError
from ocdec.io import atomic_path
from ocdec.products import CATALOGUE_FIGURES, REGION_FIGURES

log = logging.getLogger(__name__)

STYLE: dict[str, Any] = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 9,
    "figure.titlesize": 13,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 110,
    "figure.dpi": 110,
    "image.cmap": "viridis",
}
FIELD_COLOR = "0.6"
MEMBER_COLOR = "#d62728"
REFERENCE_COLOR = "black"
# Group colours leave out red (members) and grey (field).
GROUP_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
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
LABEL_PMRA = r"$\mu_{\alpha*}$ (mas yr$^{-1}$)"
LABEL_PMDEC = r"$\mu_\delta$ (mas yr$^{-1}$)"
LABEL_PLX = r"parallax $\varpi$ (mas)"
LABEL_G = r"$G$ (mag)"
LABEL_BPRP = r"$G_{BP}-G_{RP}$ (mag)"
LABEL_RA = r"$\alpha$ (deg)"
LABEL_DEC = r"$\delta$ (deg)"
# A fixed title height: matplotlib otherwise measures every tick label to keep titles clear of
# top-side ticks (these axes have none), a third of a figure's drawing time.
TITLE_Y = 1.0
ROW_HEIGHT = 3.7  # inches per method's row in the methods figure
REGION_PLOTS = tuple(REGION_FIGURES)
CATALOGUE_PLOTS = tuple(CATALOGUE_FIGURES)


@dataclass
class Selection:
    """One method's result over a star table: which stars are members and which group each is in."""

    label: str
    stars: pd.DataFrame
    member: np.ndarray
    group: np.ndarray | None = None
    note: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_members(self) -> int:
        return int(np.count_nonzero(self.member))


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------

_STAR_COLUMNS = ("ra", "dec", "pmra", "pmdec", "parallax", "phot_g_mean_mag", "bp_rp")


def read_members(path: str | Path, extra: Sequence[str] = ()) -> pd.DataFrame:
    """members.parquet with just the columns the figures use (``extra``: a method's own
    selection columns)."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        names = set(pq.read_schema(path).names)
    except (OSError, Exception) as err:  # pyarrow raises its own error types
        raise OcdecError(f"{path}: cannot read members table: {err}") from err
    if "member" not in names:
        raise OcdecError(f"{path}: members table has no 'member' column")
    wanted = dict.fromkeys(("member", "group", "p_member", *_STAR_COLUMNS, *extra))
    return pd.read_parquet(path, columns=[c for c in wanted if c in names])


def method_selections(
    results: Mapping[str, tuple[pd.DataFrame | None, Mapping[str, Any] | None]],
) -> list[Selection]:
    """Every selection of each method in ``results`` ({method: (members, summary)}), in registry
    order (the thesis's K-Means, DEC, DEC filtered, then the default, ...); a method whose
    members table is absent is left out."""
    from ocdec.methods.registry import REGISTRY

    out: list[Selection] = []
    for name, spec in REGISTRY.items():
        members, summary = results.get(name, (None, None))
        if members is None:
            continue
        summary = dict(summary or {})
        for sel in spec.selections:
            if sel.member not in members:
                continue
            groups = members[sel.group].to_numpy() if sel.group in members else None
            params = (summary.get("selections") or {}).get(sel.key) or {} if sel.key else summary
            note = sel.note.format(**summary) if sel.note and _has_keys(sel.note, summary) else ""
            out.append(Selection(spec.selection_label(sel), members,
                                 members[sel.member].to_numpy(dtype=bool), groups, note, params))
    return out


def _has_keys(template: str, values: Mapping[str, Any]) -> bool:
    import string

    return all(f in values for _, f, _, _ in string.Formatter().parse(template) if f)


def display_subsample(
    n: int, max_points: int = MAX_FIELD_POINTS, seed: int = DISPLAY_SEED
) -> np.ndarray:
    """Indices of at most ``max_points`` of ``n`` rows, the same for the same n and seed."""
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_points, replace=False))


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _col(stars: pd.DataFrame, name: str) -> np.ndarray:
    if name in stars:
        return stars[name].to_numpy(dtype=float)
    return np.full(len(stars), np.nan)


def _finite(*arrays: np.ndarray) -> np.ndarray:
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
        pmra, pmdec, plx = (_col(base.stars, c)[m] for c in ("pmra", "pmdec", "parallax"))
        centre = (float(np.nanmedian(pmra)), float(np.nanmedian(pmdec)))
        spread = np.nanmax([_robust_spread(pmra), _robust_spread(pmdec), 0.1])
        plx_c, plx_s = float(np.nanmedian(plx)), _robust_spread(plx)
    elif math.isfinite(pmra_ref) and math.isfinite(pmdec_ref):
        centre, spread = (pmra_ref, pmdec_ref), 1.0
        plx_c, plx_s = plx_ref, math.nan
    else:
        stars = selections[0].stars if selections else pd.DataFrame()
        pmra, pmdec, plx = (_col(stars, c) for c in ("pmra", "pmdec", "parallax"))
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


def _reference_label(reference: Mapping[str, Any] | None) -> str:
    return f"reference ({reference.get('source', '')})" if reference else "reference"


def fixed_grid(
    fig: Figure,
    nrows: int,
    ncols: int,
    *,
    left: float,
    right: float,
    top: float,
    bottom: float,
    wgap: float = 0.0,
    hgap: float = 0.0,
    width_ratios: Sequence[float] | None = None,
) -> Any:
    """A GridSpec with margins and gaps given in inches (fixed layout: no layout engine pass at
    draw time). ``top``/``bottom`` are distances from the figure's top and bottom edges."""
    width, height = fig.get_size_inches()
    axes_w = max(width - left - right - (ncols - 1) * wgap, 0.1) / ncols
    axes_h = max(height - top - bottom - (nrows - 1) * hgap, 0.1) / nrows
    return fig.add_gridspec(
        nrows,
        ncols,
        left=left / width,
        right=1.0 - right / width,
        top=1.0 - top / height,
        bottom=bottom / height,
        wspace=wgap / axes_w,
        hspace=hgap / axes_h,
        width_ratios=width_ratios,
    )


def plain_log_ticks(ax: Any, axis: str = "y") -> None:
    """Plain-text tick labels on a log axis ("0.001", "2e-6"), both major and the labelled minor
    ticks: the default scientific labels are mathtext, whose layout is most of a small figure's
    drawing time."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(_PlainLogFormatter())
    target.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False))


class _PlainLogFormatter(mpl.ticker.LogFormatter):
    """LogFormatter's choice of which ticks to label, written by :func:`plain_number`."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return plain_number(x)


def plain_number(x: float) -> str:
    """Up to 4 significant digits, positional between 0.001 and 100000 ("0.01725", "10000"),
    else short scientific ("2e-6")."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    if 1e-3 <= abs(x) < 1e5:
        return np.format_float_positional(x, precision=4, fractional=False, trim="-")
    mantissa, exponent = f"{x:.3e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _note(ax: Any, text: str) -> None:
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        wrap=True,
        fontsize=10,
        color="0.3",
    )


# ---------------------------------------------------------------------------------------------
# panels
# ---------------------------------------------------------------------------------------------


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
    pmra, pmdec = _col(sel.stars, "pmra"), _col(sel.stars, "pmdec")
    field_idx = shown[~sel.member[shown]]
    field_idx = field_idx[_finite(pmra[field_idx], pmdec[field_idx])]
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
    m = sel.member & _finite(pmra, pmdec)
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
        label=_reference_label(reference),
        gid="reference",
    )


def panel_parallax(
    ax: Any, sel: Selection, window: Window, reference: Mapping[str, Any] | None
) -> None:
    """Histogram of field stars (grey) and members (red), log counts; the reference as a line."""
    plx = _col(sel.stars, "parallax")
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
            label=_reference_label(reference),
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
    g, c = _col(sel.stars, "phot_g_mean_mag"), _col(sel.stars, "bp_rp")
    ok = _finite(g, c)
    if not ok.any():
        _note(ax, "no photometry (G, BP-RP) in this field")
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
    ra, dec = _col(sel.stars, "ra"), _col(sel.stars, "dec")
    ok = _finite(ra, dec)
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
        _note(ax, "no positions (ra, dec)\nin this field:\nsky panel skipped")
        return
    ra0 = _region_value(region, "ra")
    dec0 = _region_value(region, "dec")
    if not math.isfinite(ra0):
        ra0 = float(np.nanmedian(ra[ok]))
    if not math.isfinite(dec0):
        dec0 = float(np.nanmedian(dec[ok]))
    ra = _wrap_ra(ra, ra0)
    field_idx = shown[~sel.member[shown] & ok[shown]]
    _scatter_field(ax, ra[field_idx], dec[field_idx])
    m = sel.member & ok
    _scatter_members(ax, ra[m], dec[m])
    radius = _region_value(region, "radius_deg")
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


def _region_value(region: Mapping[str, Any] | None, key: str) -> float:
    if not region:
        return math.nan
    try:
        value = float(region.get(key, math.nan))
    except (TypeError, ValueError):
        return math.nan
    return value


# ---------------------------------------------------------------------------------------------
# region figures
# ---------------------------------------------------------------------------------------------


def _region_title(region: Mapping[str, Any] | None) -> str:
    if not region:
        return ""
    name = region.get("name") or str(region.get("id", "")).replace("_", " ")
    return str(name)


def methods_figure(
    selections: Sequence[Selection],
    region: Mapping[str, Any] | None = None,
    reference: Mapping[str, Any] | None = None,
    *,
    max_field: int = MAX_FIELD_POINTS,
    seed: int = DISPLAY_SEED,
    title: str | None = None,
) -> Figure:
    """One row per method (proper motions, parallax, CMD, sky), sharing axis limits across rows."""
    if not selections:
        return message_figure(_region_title(region) or "no results", "no method results to show")
    window = display_window(selections, reference)
    n = len(selections)
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(15.0, ROW_HEIGHT * n + 0.6))
        height = fig.get_figheight()
        shown_cache: dict[int, np.ndarray] = {}
        for r, sel in enumerate(selections):
            key = id(sel.stars)
            if key not in shown_cache:
                shown_cache[key] = display_subsample(len(sel.stars), max_field, seed)
            shown = shown_cache[key]
            # each method's row: a band of ROW_HEIGHT inches under the figure title (0.35 in);
            # its header and the panel titles above the axes, tick labels and axis labels below
            band_top = 0.35 + ROW_HEIGHT * r
            grid = fixed_grid(
                fig,
                1,
                4,
                left=0.8,
                right=0.2,
                top=band_top + (0.6 if n > 1 else 0.35),
                bottom=height - band_top - ROW_HEIGHT + 0.6,
                wgap=0.95,
                width_ratios=[1, 1.15, 1, 1],
            )
            axes = [fig.add_subplot(grid[0, c]) for c in range(4)]
            panel_pm(axes[0], sel, window, reference, shown)
            panel_parallax(axes[1], sel, window, reference)
            panel_cmd(axes[2], sel, shown)
            panel_sky(axes[3], sel, region, shown)
            for ax, panel in zip(axes, PANELS, strict=True):
                ax.set_gid(f"{sel.label}:{panel}")  # lets tests and tools find a panel
            head = f"{sel.label}: {sel.n_members} members of {len(sel.stars):,} stars"
            if sel.note:
                head += f" ({sel.note})"
            if n > 1:
                fig.text(
                    0.01,
                    1.0 - (band_top + 0.05) / height,
                    head,
                    ha="left",
                    va="top",
                    fontsize=mpl.rcParams["figure.titlesize"] - 1,
                    fontweight="bold",
                    gid=f"{sel.label}:header",
                )
            if r == 0:
                for ax, p in zip(axes, PANELS, strict=True):
                    ax.set_title(PANEL_TITLES[p], y=TITLE_Y)
                handles = _legend_proxies(selections, reference, region)
                fig.legend(
                    handles=handles,
                    loc="lower center",
                    bbox_to_anchor=(0.5, 0.0),
                    ncols=len(handles),
                    frameon=False,
                )
        shown_total = max(len(v) for v in shown_cache.values())
        total = max(len(s.stars) for s in selections)
        sub_note = (
            f"; field stars subsampled to {shown_total:,} of {total:,} for display"
            if shown_total < total
            else ""
        )
        fig.suptitle(
            title or f"{_region_title(region)}: members by method{sub_note}",
            y=1.0 - 0.08 / height,
            va="top",
        )
    return fig


def _legend_proxies(
    selections: Sequence[Selection],
    reference: Mapping[str, Any] | None,
    region: Mapping[str, Any] | None,
) -> list[Any]:
    """Legend entries drawn once for the whole figure, with markers of readable size."""
    from matplotlib.lines import Line2D

    dot = {"marker": "o", "ls": "none", "ms": 6}
    handles = [Line2D([], [], color=FIELD_COLOR, label="field stars", **dot)]
    if any(s.group is not None for s in selections):
        handles.append(Line2D([], [], color=GROUP_COLORS[0], label="other groups (colours)", **dot))
    handles.append(Line2D([], [], color=MEMBER_COLOR, label="members", **dot))
    if reference:
        handles.append(
            Line2D(
                [],
                [],
                color=REFERENCE_COLOR,
                marker="+",
                ms=10,
                mew=2,
                ls="--",
                label=f"{_reference_label(reference)} (pm with error bars; parallax line)",
            )
        )
    has_positions = any(np.isfinite(_col(s.stars, "ra")).any() for s in selections)
    if has_positions and math.isfinite(_region_value(region, "radius_deg")):
        handles.append(Line2D([], [], color=REFERENCE_COLOR, ls="--", label="catalogue cone"))
    return handles


def _legend_entries(ax: Any) -> tuple[list[Any], list[str]]:
    handles, labels = ax.get_legend_handles_labels()
    keep = [(h, lab) for h, lab in zip(handles, labels, strict=True) if not lab.startswith("_")]
    return [h for h, _ in keep], [lab for _, lab in keep]


def overview_figure(
    selection: Selection,
    region: Mapping[str, Any] | None = None,
    reference: Mapping[str, Any] | None = None,
    *,
    max_field: int = MAX_FIELD_POINTS,
    seed: int = DISPLAY_SEED,
) -> Figure:
    """The four panels for one method (the default): the figure for a quick look and the README."""
    p = selection.params or {}
    bits = [f"{selection.n_members} members"]
    for key, unit in (("pmra", " mas/yr"), ("pmdec", " mas/yr"), ("parallax", " mas")):
        v, e = p.get(key), p.get(f"{key}_error")
        if v is not None and e is not None and math.isfinite(float(v)) and math.isfinite(float(e)):
            bits.append(
                f"{'plx' if key == 'parallax' else key} {float(v):.3f} ± {float(e):.3f}{unit}"
            )
    title = f"{_region_title(region)} ({selection.label} method): " + ", ".join(bits)
    fig = methods_figure(
        [selection], region, reference, max_field=max_field, seed=seed, title=title
    )
    return fig


def silhouette_figure(
    silhouette: pd.DataFrame | None, chosen_k: int | None = None, title: str = ""
) -> Figure:
    """Silhouette score against k for the K-Means sweep, the chosen k marked."""
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(6.0, 4.0))
        ax = fig.add_subplot(fixed_grid(fig, 1, 1, left=0.8, right=0.2, top=0.45, bottom=0.6)[0])
        if silhouette is None or len(silhouette) == 0:
            _note(ax, "no K-Means sweep (thesis mode not run)")
        else:
            s = silhouette.sort_values("k")
            ax.plot(s["k"], s["silhouette"], "o-", color=GROUP_COLORS[0], gid="silhouette")
            if chosen_k is None:
                chosen_k = int(s.loc[s["silhouette"].idxmax(), "k"])
            hit = s[s["k"] == chosen_k]
            if not hit.empty:
                ax.plot(
                    hit["k"],
                    hit["silhouette"],
                    "o",
                    ms=12,
                    mfc="none",
                    mec=MEMBER_COLOR,
                    mew=2,
                    label=f"chosen k = {chosen_k}",
                    gid="chosen",
                )
                ax.legend(loc="best")
            ax.set_xticks(s["k"].astype(int))
        ax.set_xlabel("number of clusters k")
        ax.set_ylabel("silhouette score (sampled)")
        fig.suptitle(title or "K-Means silhouette sweep")
    return fig


def training_figure(
    histories: Mapping[str, pd.DataFrame | None], title: str = "", tol: float | None = None
) -> Figure:
    """DEC training per method (rows) and seed (lines): pretraining loss, clustering loss, and the
    fraction of labels changed between target updates (log scales)."""
    items = [(k, v) for k, v in histories.items() if v is not None and len(v)]
    with mpl.rc_context(STYLE):
        if not items:
            return message_figure(title or "DEC training", "no DEC training history")
        fig = Figure(figsize=(14.0, 3.5 * len(items) + 0.5))
        grid = fixed_grid(
            fig, len(items), 3, left=0.9, right=0.2, top=0.7, bottom=0.6, wgap=1.15, hgap=1.0
        )
        axes = grid.subplots(squeeze=False)
        for r, (label, h) in enumerate(items):
            seeds = sorted(pd.unique(h["seed"]))
            colours = {s: GROUP_COLORS[i % len(GROUP_COLORS)] for i, s in enumerate(seeds)}
            for s in seeds:
                hs = h[h["seed"] == s]
                pre, clu = hs[hs["phase"] == "pretrain"], hs[hs["phase"] == "cluster"]
                axes[r, 0].plot(pre["epoch"], pre["loss"], color=colours[s], label=f"seed {s}")
                axes[r, 1].plot(clu["epoch"], clu["loss"], color=colours[s], label=f"seed {s}")
                lc = clu[np.isfinite(clu["label_change"].to_numpy(dtype=float))]
                axes[r, 2].plot(
                    lc["epoch"],
                    lc["label_change"].clip(lower=1e-6),
                    "o-",
                    ms=3,
                    color=colours[s],
                    label=f"seed {s}",
                )
            for c, (name, ylabel) in enumerate(
                (
                    ("pretraining", "reconstruction loss"),
                    ("clustering", "clustering loss"),
                    ("label change", "fraction of labels changed"),
                )
            ):
                ax = axes[r, c]
                ax.set_title(f"{label}: {name}", y=TITLE_Y)
                ax.set_xlabel("epoch")
                ax.set_ylabel(ylabel)
                if ax.lines and all(
                    np.nanmin(line.get_ydata()) > 0 for line in ax.lines if len(line.get_ydata())
                ):
                    ax.set_yscale("log")
                    plain_log_ticks(ax)
                if not ax.lines or not any(len(line.get_xdata()) for line in ax.lines):
                    _note(ax, f"no {name} epochs recorded")
            if tol is not None and tol > 0:
                axes[r, 2].axhline(
                    tol, color=REFERENCE_COLOR, ls="--", lw=1, label=f"tol = {tol:g}"
                )
            axes[r, 2].legend(loc="best", ncols=2 if len(seeds) > 3 else 1)
        fig.suptitle(title or "DEC training curves", y=1.0 - 0.08 / fig.get_figheight(), va="top")
    return fig


def figure_axes(fig: Figure) -> list[Any]:
    """Every Axes of a figure, including those inside subfigures."""
    out = list(fig.axes)
    for sub in getattr(fig, "subfigs", []):
        out += [ax for ax in figure_axes(sub) if ax not in out]
    return out


def find_axes(fig: Figure, gid: str) -> Any:
    """The Axes a figure function tagged ``gid`` (e.g. "default:pm")."""
    for ax in figure_axes(fig):
        if ax.get_gid() == gid:
            return ax
    raise KeyError(gid)


def message_figure(title: str, message: str) -> Figure:
    """A figure that says why there is nothing to show (a skipped or failed region)."""
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(8.0, 3.0))
        ax = fig.add_subplot(fixed_grid(fig, 1, 1, left=0.2, right=0.2, top=0.2, bottom=0.2)[0])
        ax.set_axis_off()
        ax.text(
            0.5,
            0.55,
            title,
            ha="center",
            va="center",
            fontsize=15,
            fontweight="bold",
            transform=ax.transAxes,
        )
        ax.text(
            0.5,
            0.3,
            message,
            ha="center",
            va="center",
            fontsize=12,
            wrap=True,
            transform=ax.transAxes,
            gid="message",
        )
    return fig


def skipped_figure(region: Mapping[str, Any] | str, reason: str, status: str = "skipped") -> Figure:
    name = region if isinstance(region, str) else _region_title(region)
    return message_figure(f"{name}: {status}", reason or "no reason recorded")


# ---------------------------------------------------------------------------------------------
# catalogue-wide figures (from results/summary.tsv)
# ---------------------------------------------------------------------------------------------

SIGMA_TICKS = (-1000, -100, -10, -3, -1, 0, 1, 3, 10, 100, 1000)
_METHOD_MARKERS = (
    ("", "default", "o", MEMBER_COLOR),
    ("thesis_", "thesis (DEC filtered)", "s", GROUP_COLORS[0]),
)


def offsets_figure(summary: pd.DataFrame) -> Figure:
    """Offset of each region's result from its reference, in units of the combined error
    (symmetric-log axis: both 0.5 and 500 sigma stay readable); regions without a result say why."""
    regions = list(summary["region"])
    n = max(len(regions), 1)
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(13.0, 1.6 + 0.32 * n), layout="constrained")
        axes = fig.subplots(1, 3, sharey=True)
        y = np.arange(len(regions))
        for ax, (col, label) in zip(
            axes,
            (("pmra", LABEL_PMRA), ("pmdec", LABEL_PMDEC), ("parallax", LABEL_PLX)),
            strict=True,
        ):
            ax.axvspan(-1, 1, color="0.85", lw=0)
            for x in (-3, 3):
                ax.axvline(x, color="0.5", ls=":", lw=1)
            ax.axvline(0, color=REFERENCE_COLOR, lw=0.8)
            for prefix, mlabel, marker, colour in _METHOD_MARKERS:
                key = f"{prefix}{col}_offset_sigma"
                if key in summary:
                    ax.plot(
                        pd.to_numeric(summary[key], errors="coerce"),
                        y + (0.15 if prefix else -0.15),
                        marker,
                        color=colour,
                        ls="none",
                        ms=6,
                        label=mlabel,
                        gid=f"offsets:{prefix}{col}",
                    )
            ax.set_xscale("symlog", linthresh=3)
            values = [
                pd.to_numeric(summary[f"{p}{col}_offset_sigma"], errors="coerce")
                for p, *_ in _METHOD_MARKERS
                if f"{p}{col}_offset_sigma" in summary
            ]
            finite = np.abs(np.concatenate([v.to_numpy(dtype=float) for v in values] or [[0.0]]))
            finite = finite[np.isfinite(finite)]
            lim = max(5.0, 1.4 * float(finite.max())) if finite.size else 5.0
            ax.set_xlim(-lim, lim)
            ticks = [t for t in SIGMA_TICKS if abs(t) <= lim]
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.xaxis.set_minor_locator(mpl.ticker.NullLocator())
            ax.set_xlabel(f"offset of {label.split(' (')[0]} (σ)")
            ax.set_title(label.split(" (")[0])
        labels = []
        for _, row in summary.iterrows():
            status = str(row.get("status", ""))
            labels.append(str(row["region"]) + ("" if status == "done" else f" ({status})"))
        axes[0].set_yticks(y, labels)
        axes[0].set_ylim(len(regions) - 0.5, -0.5)
        handles, hl = _legend_entries(axes[0])
        fig.legend(handles, hl, loc="outside lower center", ncols=2, frameon=False)
        fig.suptitle(
            "Offsets from the reference in units of the combined error "
            "(grey band: |offset| < 1σ; dotted: 3σ)"
        )
    return fig


def recovered_figure(summary: pd.DataFrame) -> Figure:
    """Recovered against reference parallax and proper motion (top, with the 1:1 line) and their
    difference (bottom), for every region with a result."""
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(13.0, 7.5), layout="constrained")
        axes = fig.subplots(2, 3)
        annotate = len(summary) <= 15
        for c, (col, label) in enumerate(
            (("pmra", LABEL_PMRA), ("pmdec", LABEL_PMDEC), ("parallax", LABEL_PLX))
        ):
            top, bottom = axes[0, c], axes[1, c]
            ref = pd.to_numeric(summary.get(f"reference_{col}"), errors="coerce")
            ref_e = pd.to_numeric(summary.get(f"reference_{col}_error"), errors="coerce").fillna(0)
            for prefix, mlabel, marker, colour in _METHOD_MARKERS:
                if f"{prefix}{col}" not in summary:
                    continue
                val = pd.to_numeric(summary[f"{prefix}{col}"], errors="coerce")
                err = pd.to_numeric(summary.get(f"{prefix}{col}_error"), errors="coerce").fillna(0)
                ok = np.isfinite(val) & np.isfinite(ref)
                top.errorbar(
                    ref[ok],
                    val[ok],
                    xerr=ref_e[ok],
                    yerr=err[ok],
                    fmt=marker,
                    color=colour,
                    ms=7 if prefix else 5,
                    mfc="none" if prefix else colour,
                    zorder=2 if prefix else 3,
                    label=mlabel,
                    gid=f"recovered:{prefix}{col}",
                )
                bottom.errorbar(
                    ref[ok],
                    (val - ref)[ok],
                    yerr=np.hypot(err, ref_e)[ok],
                    fmt=marker,
                    color=colour,
                    ms=7 if prefix else 5,
                    mfc="none" if prefix else colour,
                    zorder=2 if prefix else 3,
                    label=mlabel,
                )
                if annotate and not prefix:
                    for x, yv, name in zip(ref[ok], val[ok], summary["region"][ok], strict=True):
                        top.annotate(
                            str(name).replace("_", " "),
                            (x, yv),
                            xytext=(4, -10),
                            textcoords="offset points",
                            fontsize=8,
                            color="0.3",
                        )
            finite = ref[np.isfinite(ref)]
            if len(finite):
                lo, hi = float(finite.min()), float(finite.max())
                pad = max(0.1 * (hi - lo), 0.5)
                top.plot(
                    [lo - pad, hi + pad],
                    [lo - pad, hi + pad],
                    color=REFERENCE_COLOR,
                    lw=0.8,
                    ls="--",
                    label="1:1",
                )
            else:
                _note(top, "no region with both a result and a reference")
            bottom.axhline(0, color=REFERENCE_COLOR, lw=0.8, ls="--")
            top.set_xlabel(f"reference {label}")
            top.set_ylabel(f"recovered {label}")
            bottom.set_xlabel(f"reference {label}")
            bottom.set_ylabel(f"recovered − reference\n{label}")
        handles, hl = _legend_entries(axes[0, 0])
        fig.legend(handles, hl, loc="outside lower center", ncols=3, frameon=False)
        fig.suptitle("Recovered cluster parameters against the reference values")
    return fig


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save atomically; the format follows the suffix (.png, .pdf, .svg)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    metadata = (
        {"Software": None}
        if fmt == "png"
        else {"Creator": None, "CreationDate": None}
        if fmt == "pdf"
        else None
    )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, metadata=metadata)
    return path


def _save_all(fig: Figure, out_dir: Path, stem: str, formats: Iterable[str]) -> list[Path]:
    return [save_figure(fig, out_dir / f"{stem}.{fmt}") for fmt in formats]


def _read_tsv(path: str | Path | None) -> pd.DataFrame | None:
    if path is None or not Path(path).exists():
        return None
    return pd.read_csv(path, sep="\t")


def region_plots(
    out_dir: str | Path,
    region: Mapping[str, Any],
    *,
    method_dirs: Mapping[str, str | Path | None],
    references: Sequence[Mapping[str, Any]] = (),
    status: Mapping[str, Any] | None = None,
    formats: Sequence[str] = ("png",),
    max_field: int = MAX_FIELD_POINTS,
    seed: int = DISPLAY_SEED,
) -> list[Path]:
    """Write ``{out_dir}/{name}.{fmt}`` for every name in :data:`REGION_PLOTS` (always all of them,
    so the workflow's outputs exist): a skipped or failed region gets figures that say why.

    ``method_dirs`` maps each method run to its folder of characterize outputs (members.parquet,
    summary.json, history.tsv and its own tables, :mod:`ocdec.products`); ``status`` is the
    region's status.json.
    """
    from ocdec.methods.registry import PRIMARY, REGISTRY
    from ocdec.products import MethodProducts

    out = Path(out_dir)
    written: list[Path] = []
    name = _region_title(region)
    found = {m: MethodProducts(d, REGISTRY[m].tables) for m, d in method_dirs.items() if d}
    summaries = {m: p.summary for m, p in found.items()}
    reason = _skip_reason(status, found, summaries)
    if reason is not None:
        state, why = reason
        fig = skipped_figure(region, why, state)
        for stem in REGION_PLOTS:
            written += _save_all(fig, out, stem, formats)
        return written
    reference = references[0] if references else None
    results = {m: (_members_if(p, summaries[m]), summaries[m]) for m, p in found.items()}
    selections = method_selections(results)
    primary = next((s for s in selections if s.label == PRIMARY), None)
    if primary is not None:
        fig = overview_figure(primary, region, reference, max_field=max_field, seed=seed)
    else:
        fig = message_figure(f"{name}: {PRIMARY} method", f"the {PRIMARY} method has no result here")
    written += _save_all(fig, out, "overview", formats)
    written += _save_all(
        methods_figure(selections, region, reference, max_field=max_field, seed=seed),
        out,
        "methods",
        formats,
    )
    # the silhouette sweep of the first method that has one (thesis mode)
    sweep = next(((p.table("silhouette"), summaries[m]) for m, p in found.items()
                  if "silhouette" in p.files), (None, None))
    chosen = (sweep[1] or {}).get("kmeans_k")
    written += _save_all(
        silhouette_figure(
            sweep[0], int(chosen) if chosen else None, f"{name}: K-Means silhouette sweep"
        ),
        out,
        "silhouette",
        formats,
    )
    histories = {m: p.table("history") for m, p in found.items()}
    histories = {m: histories[m] for m in REGISTRY if m in histories}  # registry order
    written += _save_all(
        training_figure(histories, f"{name}: DEC training curves"), out, "training", formats
    )
    return written


def _members_if(found: Any, summary: Mapping[str, Any] | None) -> pd.DataFrame | None:
    if summary is not None and summary.get("status", "done") != "done":
        return None
    if not found.exists("members"):
        return None
    from ocdec.methods.registry import REGISTRY

    spec = REGISTRY[found.directory.name] if found.directory.name in REGISTRY else None
    extra = [c for s in (spec.selections if spec else ()) for c in (s.member, s.group) if c]
    return read_members(found.files["members"], extra)


def _skip_reason(
    status: Mapping[str, Any] | None, found: Mapping[str, Any],
    summaries: Mapping[str, Mapping[str, Any] | None],
) -> tuple[str, str] | None:
    if status is not None and status.get("status", "ok") not in ("ok", "done"):
        return str(status.get("status")), str(status.get("reason") or "")
    present = [s for s in summaries.values() if s is not None]
    if present and all(s.get("status", "done") != "done" for s in present):
        s = present[0]
        return str(s.get("status")), str(s.get("reason") or "")
    if found and not any(p.exists("members") for p in found.values()):
        return "failed", "no members table was produced"
    return None


def catalogue_figures(summary: pd.DataFrame) -> dict[str, Figure]:
    """The catalogue figures (:data:`CATALOGUE_PLOTS`) from the summary table."""
    return {"offsets": offsets_figure(summary), "recovered": recovered_figure(summary)}


def catalogue_plots(
    out_dir: str | Path, summary: pd.DataFrame, formats: Sequence[str] = ("png",)
) -> list[Path]:
    """``{out_dir}/{name}.{fmt}`` for every catalogue figure, from the catalogue summary."""
    out = Path(out_dir)
    written: list[Path] = []
    for name, fig in catalogue_figures(summary).items():
        written += _save_all(fig, out, name, formats)
    return written
