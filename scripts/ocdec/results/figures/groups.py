"""The groups of a region (groups.tsv): every significant overdensity in proper motion and on the
sky, the target marked, known clusters named, the catalogue's values shown; drawn for found and
not-found regions alike, so a "not found" says what the cone holds instead."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ocdec.figure_layout import fixed_grid
from ocdec.results.figures.style import (
    FIELD_COLOR,
    LABEL_DEC,
    LABEL_PLX,
    LABEL_PMDEC,
    LABEL_PMRA,
    LABEL_RA,
    MEMBER_COLOR,
    REFERENCE_COLOR,
    STYLE,
    message_figure,
    note,
    region_title,
)
from ocdec.verdict import MAX_FALSE_ALARM

KNOWN_COLOR = "#1f77b4"
CANDIDATE_COLOR = "#ff7f0e"


def _kind(row: Any) -> tuple[str, str]:
    """(legend label, colour): the target, a known cluster, a believable candidate, or noise."""
    fap = pd.to_numeric(pd.Series([row.false_alarm_probability]), errors="coerce").iloc[0]
    if bool(row.target):
        return "target", MEMBER_COLOR
    if isinstance(row.known_as, str) and row.known_as:
        return "known cluster", KNOWN_COLOR
    if not fap > MAX_FALSE_ALARM:
        return "candidate (unknown)", CANDIDATE_COLOR
    return f"not believable (FAP > {MAX_FALSE_ALARM:g})", FIELD_COLOR


def groups_figure(groups: pd.DataFrame | None, summary: Mapping[str, Any] | None,
                  region: Mapping[str, Any] | str) -> Figure:
    """Proper-motion plane, parallax against total proper motion, and sky: one marker per group
    (area by member count), labelled with its index and known name; the catalogue's values as a
    black cross (and its cone on the sky). The title gives the verdict."""
    name = region if isinstance(region, str) else region_title(region)
    summary = summary or {}
    verdict = str(summary.get("status", ""))
    if groups is None or groups.empty:
        reason = summary.get("reason") or "no significant group in the cone"
        return message_figure(f"{name}: {verdict or 'no groups'}", str(reason))
    priors = summary.get("priors") or {}
    with mpl.rc_context(STYLE):
        # fixed margins (style.py): constrained layout's extra draw was 40 % of this figure's
        # time, drawn for every region
        fig = Figure(figsize=(15.0, 4.8))
        grid = fixed_grid(fig, 1, 3, left=0.8, right=0.25, top=0.9, bottom=0.6, wgap=0.9)
        ax_pm, ax_plx, ax_sky = (fig.add_subplot(grid[0, c]) for c in range(3))
        n = pd.to_numeric(groups["n_members"], errors="coerce").fillna(1).to_numpy(float)
        size = 20 + 180 * np.sqrt(n / max(n.max(), 1.0))
        seen: set[str] = set()
        for i, row in enumerate(groups.itertuples()):
            label, colour = _kind(row)
            kw = {"s": size[i], "color": colour, "edgecolor": "black", "linewidth": 0.5,
                  "label": None if label in seen else label, "zorder": 3}
            seen.add(label)
            text = f"{int(row.group)}" + (f" {row.known_as}" if isinstance(row.known_as, str)
                                          and row.known_as else "")
            ax_pm.scatter(row.pmra, row.pmdec, gid="groups:pm", **kw)
            ax_pm.annotate(text, (row.pmra, row.pmdec), fontsize=8, xytext=(4, 4),
                           textcoords="offset points")
            ax_plx.scatter(math.hypot(row.pmra, row.pmdec), row.parallax, gid="groups:plx", **kw)
            ax_plx.annotate(text, (math.hypot(row.pmra, row.pmdec), row.parallax), fontsize=8,
                            xytext=(4, 4), textcoords="offset points")
            if np.isfinite([row.ra, row.dec]).all():
                ax_sky.scatter(row.ra, row.dec, gid="groups:sky", **kw)
                ax_sky.annotate(text, (row.ra, row.dec), fontsize=8, xytext=(4, 4),
                                textcoords="offset points")
        _catalogue(ax_pm, ax_plx, ax_sky, priors)
        ax_pm.set(xlabel=LABEL_PMRA, ylabel=LABEL_PMDEC, title="proper motion")
        # the units written as on the other panels and figures
        ax_plx.set(xlabel=r"total proper motion $\mu$ (mas yr$^{-1}$)", ylabel=LABEL_PLX,
                   title="parallax")
        ax_sky.set(xlabel=LABEL_RA, ylabel=LABEL_DEC, title="sky centre")
        ax_sky.invert_xaxis()
        ax_pm.legend(loc="best", fontsize=8)
        if not np.isfinite(pd.to_numeric(groups["ra"], errors="coerce")).any():
            note(ax_sky, "no positions in this field")
        reason = summary.get("reason")
        fig.suptitle(f"{name}: {verdict}" + (f" ({reason})" if reason else ""), fontsize=10,
                     wrap=True, y=1.0 - 0.08 / fig.get_figheight(), va="top")
    return fig


def _catalogue(ax_pm: Any, ax_plx: Any, ax_sky: Any, priors: Mapping[str, Any]) -> None:
    """The catalogue's proper motion, parallax and cone, where known."""
    kw = {"marker": "x", "color": REFERENCE_COLOR, "ms": 10, "mew": 2, "ls": "none"}
    pmra, pmdec, plx = priors.get("pmra"), priors.get("pmdec"), priors.get("parallax")
    if pmra is not None and pmdec is not None:
        ax_pm.plot(pmra, pmdec, label="catalogue", gid="groups:catalogue", **kw)
    if plx is not None:
        if pmra is not None and pmdec is not None:
            ax_plx.plot(math.hypot(pmra, pmdec), plx, **kw)
        else:
            ax_plx.axhline(plx, color=REFERENCE_COLOR, ls="--", lw=1)
    ra, dec, radius = priors.get("ra"), priors.get("dec"), priors.get("radius_deg")
    if ra is not None and dec is not None:
        ax_sky.plot(ra, dec, **kw)
        if radius:
            t = np.linspace(0, 2 * math.pi, 200)
            ax_sky.plot(ra + radius * np.cos(t) / max(math.cos(math.radians(dec)), 1e-3),
                        dec + radius * np.sin(t), color=REFERENCE_COLOR, lw=0.8, ls=":")
