"""Figures of the physical parameters: one cluster's CMD and radial profile, and the two
catalogue-wide figures (age against Galactocentric radius; ocdec against the literature).

Built on :class:`matplotlib.figure.Figure` (no pyplot state, no GUI backend), saved atomically.
"""

from __future__ import annotations

import logging
import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from ocdec.figure_layout import fixed_grid, plain_log_ticks, save_atomic

if TYPE_CHECKING:
    from astropy.table import Table

    from ocdec.physics.parameters import ParametersResult

log = logging.getLogger(__name__)


def save(fig: Figure, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Write ``fig`` atomically (format from the suffix)."""
    save_atomic(fig, path, dpi=dpi)


def parameters_figure(result: ParametersResult, title: str = "") -> Figure:
    """CMD (members coloured by p_member, best isochrone, its age band, the equal-mass binary
    sequence) and the radial profile with the King fit."""
    # fixed margins in inches, not constrained layout: its extra draw measuring every label was
    # most of the figure's time (as for the region figures, ocdec.results.figures.style)
    fig = Figure(figsize=(11, 5.2))
    grid = fixed_grid(fig, 1, 2, left=0.75, right=0.15, top=0.4, bottom=0.6, wgap=0.95,
                      width_ratios=[1, 1.1])
    ax_cmd, ax_rad = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    v = result.values
    members = result.members
    if members is not None and len(members):
        _cmd_panel(ax_cmd, result)
        _radial_panel(ax_rad, result)
    else:
        for ax in (ax_cmd, ax_rad):
            ax.text(0.5, 0.5, "no members fitted", ha="center", va="center", transform=ax.transAxes)
    status = v.get("status")
    head = f"{title}  " if title else ""
    if status == "ok":
        head += (f"log age {v['log_age']:.2f}, A_V {v['av']:.2f}, DM {v['distance_modulus']:.2f}, "
                 f"d {v['distance_pc']:.0f} pc, M_J {v['mass_msun']:.0f} Msun")
    else:
        head += f"{status}: {v.get('reason')}"
    fig.suptitle(head, fontsize=10)
    return fig


def _cmd_panel(ax: Any, result: ParametersResult) -> None:
    m = result.members
    order = np.argsort(m["weight"].to_numpy())
    sc = ax.scatter(m["bp_rp"].to_numpy()[order], m["g_used"].to_numpy()[order], s=6,
                    c=m["weight"].to_numpy()[order], cmap="viridis", vmin=0.5, vmax=1.0, lw=0)
    ax.figure.colorbar(sc, ax=ax, label="p_member", shrink=0.8)
    iso = result.isochrone
    if iso is not None:
        _line(ax, iso, color="crimson", lw=1.4, label="best isochrone")
        _line(ax, iso, dmag=-0.753, color="crimson", lw=0.9, ls=":", label="equal-mass binaries")
        if result.band is not None:
            for k, b in enumerate(result.band):
                _line(ax, b, color="orange", lw=0.9, ls="--",
                      label="log age 16/84" if k == 0 else None)
        ax.legend(loc="upper right", fontsize=8)
    g = m["g_used"].to_numpy()
    finite = g[np.isfinite(g)]
    if finite.size:
        ax.set_ylim(np.nanmax(finite) + 0.5, np.nanmin(finite) - 1.0)
    c = m["bp_rp"].to_numpy()
    c = c[np.isfinite(c)]
    if c.size:
        ax.set_xlim(np.min(c) - 0.3, np.max(c) + 0.3)
    ax.set_xlabel("BP - RP (mag)")
    ax.set_ylabel("G (mag; nearby members at the cluster distance)")


def _line(ax: Any, iso: np.ndarray, dmag: float = 0.0, **kwargs: Any) -> None:
    from ocdec.physics.isochrones import PHASES

    # draw phase blocks separately so the jump to core-helium burning is not a line
    start = 0
    for name, _, n in PHASES:
        seg = iso[start:start + n]
        start += n
        if name == "unevolved" or dmag == 0.0:
            ax.plot(seg[:, 1], seg[:, 0] + dmag, **kwargs)
            kwargs = {k: v for k, v in kwargs.items() if k != "label"}
        if dmag != 0.0:
            break


def _radial_panel(ax: Any, result: ParametersResult) -> None:
    from ocdec.physics.structure import king_profile

    m, st = result.members, result.structure
    r = m["radius_deg"].to_numpy()
    w = m["weight"].to_numpy()
    ok = np.isfinite(r)
    if not ok.any() or st is None:
        return
    r_max = float(r[ok].max())
    edges = np.linspace(0.0, r_max, 16)
    counts, _ = np.histogram(r[ok], bins=edges, weights=w[ok])
    area = np.pi * np.diff(edges**2)
    mid = 0.5 * (edges[1:] + edges[:-1])
    err = np.sqrt(np.maximum(counts, 1.0)) / area
    ax.errorbar(mid, counts / area, yerr=err, fmt="o", ms=4, color="k", label="members")
    # the profile was fitted to the members within the radius the field covers whole: its model
    # is drawn there, normalised as fitted, and beyond it the field's edge thins the annuli
    r_fit = st.fit_radius_deg if math.isfinite(st.fit_radius_deg) else r_max
    if math.isfinite(st.rc_deg) and math.isfinite(st.rt_deg):
        rr = np.linspace(1e-4, r_fit, 300)
        prof = king_profile(rr, st.rc_deg, st.rt_deg)
        norm = np.trapezoid(2 * np.pi * rr * prof, rr)
        n_tot = float(w[ok & (r <= r_fit)].sum())
        model = n_tot * (st.cluster_fraction * prof / norm + (1 - st.cluster_fraction)
                         / (np.pi * r_fit**2))
        extrapolated = " (extrapolated)" if st.status == "extrapolated" else ""
        ax.plot(rr, model, color="crimson", label=f"King: r_c {st.rc_deg:.3f}, "
                f"r_t {st.rt_deg:.3f} deg{extrapolated}")
    elif st.status == "unconstrained":
        ax.plot([], [], " ", label="King fit unconstrained")
    if math.isfinite(st.r50_deg):
        ax.axvline(st.r50_deg, color="grey", ls=":", label=f"r50 {st.r50_deg:.3f} deg")
    if r_fit < r_max:
        ax.axvline(r_fit, color="grey", ls="--", label=f"fitted within {r_fit:.3f} deg")
    ax.set_yscale("log")
    plain_log_ticks(ax)  # plain-text labels: the default mathtext ones are slow to lay out
    ax.set_xlabel("radius (deg)")
    ax.set_ylabel("members per deg²")
    ax.legend(fontsize=8)


def age_radius_figure(table: Table) -> Figure:
    """log age against Galactocentric radius for the clusters with ``status == "ok"``."""
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    ok = _ok_rows(table)
    r = np.asarray(table["r_gc_pc"], float)[ok] / 1000.0
    age = np.asarray(table["log_age"], float)[ok]
    lo = age - np.asarray(table["log_age_16"], float)[ok]
    hi = np.asarray(table["log_age_84"], float)[ok] - age
    ax.errorbar(r, age, yerr=[lo, hi], fmt="o", ms=4, capsize=0, color="k", lw=0.8)
    ax.set_xlabel("Galactocentric radius R_gc (kpc)")
    ax.set_ylabel("log age (yr)")
    ax.set_title(f"{int(ok.sum())} clusters")
    return fig


#: (ocdec column, literature column, axis label) for the comparison figure.
LITERATURE_PAIRS = (
    ("log_age", "lit_log_age", "log age"),
    ("av", "lit_av", "A_V (mag)"),
    ("distance_modulus", "lit_distance_modulus", "distance modulus (mag)"),
    ("mass_msun", "lit_mass_msun", "Jacobi mass (Msun)"),
)


def literature_figure(table: Table) -> Figure:
    """ocdec's values against the literature's (columns ``lit_*``; panels without any drawn
    empty with a note)."""
    fig = Figure(figsize=(12, 3.4), layout="constrained")
    axes = fig.subplots(1, len(LITERATURE_PAIRS))
    ok = _ok_rows(table)
    for ax, (ours, theirs, label) in zip(axes, LITERATURE_PAIRS, strict=True):
        ax.set_xlabel(f"literature {label}")
        ax.set_ylabel(f"ocdec {label}")
        if theirs not in table.colnames or ours not in table.colnames:
            ax.text(0.5, 0.5, f"no {theirs}", ha="center", va="center", transform=ax.transAxes)
            continue
        x = np.asarray(table[theirs], float)[ok]
        y = np.asarray(table[ours], float)[ok]
        good = np.isfinite(x) & np.isfinite(y)
        if not good.any():
            continue
        ax.plot(x[good], y[good], "o", ms=4, color="k")
        lims = [min(x[good].min(), y[good].min()), max(x[good].max(), y[good].max())]
        ax.plot(lims, lims, color="grey", lw=0.8)
        if ours == "mass_msun":
            ax.set_xscale("log")
            ax.set_yscale("log")
        d = y[good] - x[good] if ours != "mass_msun" else np.log10(y[good] / x[good])
        ax.set_title(f"median offset {np.median(d):+.3f} (n={int(good.sum())})", fontsize=9)
    return fig


def _ok_rows(table: Table) -> np.ndarray:
    if "status" not in table.colnames:
        return np.ones(len(table), dtype=bool)
    return np.array([str(s) == "ok" for s in table["status"]])
