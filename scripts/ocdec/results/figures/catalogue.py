"""The catalogue-wide figures, drawn once from the catalogue summary (results/summary.tsv): each
region's offsets from its reference (:func:`offsets_figure`) and recovered against reference
values (:func:`recovered_figure`), one marker per method. They keep constrained layout.

Methods come from :mod:`ocdec.methods.registry`: the primary method's columns are unprefixed
(pmra, pmra_offset_sigma), every other method's are prefixed with its name (thesis_pmra, ...);
a method is drawn where its offset columns are present and not all empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ocdec.methods.astrometry import ASTROMETRY
from ocdec.methods.registry import PRIMARY, REGISTRY
from ocdec.results.figures.style import (
    GROUP_COLORS,
    LABEL_PLX,
    LABEL_PMDEC,
    LABEL_PMRA,
    MEMBER_COLOR,
    REFERENCE_COLOR,
    STYLE,
    legend_entries,
    note,
)
from ocdec.verdict import FOUND, tally

SIGMA_TICKS = (-1000, -100, -10, -3, -1, 0, 1, 3, 10, 100, 1000)
_COLUMN_LABELS = {"pmra": LABEL_PMRA, "pmdec": LABEL_PMDEC, "parallax": LABEL_PLX}
# The primary method's marker, then the others' in registry order.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")
_COLOURS = (MEMBER_COLOR, *GROUP_COLORS)


@dataclass(frozen=True)
class MethodMarker:
    """How one method is drawn: its column prefix ("" for the primary), legend label, marker,
    colour and vertical offset within a region's row of the offsets figure."""

    prefix: str
    label: str
    marker: str
    colour: str
    shift: float


def method_markers(summary: pd.DataFrame) -> list[MethodMarker]:
    """The methods with results in ``summary``, primary first, then in registry order: each one's
    ``{prefix}{col}_offset_sigma`` columns present and not all NaN. A method with several
    selections is labelled with its last (its final one, whose numbers the summary holds), e.g.
    "thesis (DEC filtered)"."""
    names = [PRIMARY, *(m for m in REGISTRY if m != PRIMARY)]
    found = []
    for name in names:
        prefix = "" if name == PRIMARY else f"{name}_"
        keys = [f"{prefix}{col}_offset_sigma" for col in ASTROMETRY]
        if any(k in summary and pd.to_numeric(summary[k], errors="coerce").notna().any()
               for k in keys):
            found.append((name, prefix))
    step = min(0.3, 0.6 / max(len(found) - 1, 1))
    out = []
    for i, (name, prefix) in enumerate(found):
        spec = REGISTRY[name]
        label = name
        if len(spec.selections) > 1:
            label += f" ({spec.selection_label(spec.selections[-1])})"
        out.append(MethodMarker(prefix, label, _MARKERS[i % len(_MARKERS)],
                                _COLOURS[i % len(_COLOURS)], (i - (len(found) - 1) / 2) * step))
    return out


def _numbers(summary: pd.DataFrame, key: str) -> pd.Series:
    return pd.to_numeric(summary.get(key), errors="coerce")


def offsets_figure(summary: pd.DataFrame) -> Figure:
    """Offset of each region's result from its reference, in units of the combined error
    (symmetric-log axis: both 0.5 and 500 sigma stay readable); regions without a result say why."""
    regions = list(summary["region"])
    markers = method_markers(summary)
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(13.0, 1.6 + 0.32 * max(len(regions), 1)), layout="constrained")
        axes = fig.subplots(1, 3, sharey=True)
        y = np.arange(len(regions))
        for ax, col in zip(axes, ASTROMETRY, strict=True):
            _offsets_panel(ax, summary, col, markers, y)
        labels = []
        for _, row in summary.iterrows():
            status = str(row.get("status", ""))
            labels.append(str(row["region"]) + ("" if status == FOUND else f" ({status})"))
        axes[0].set_yticks(y, labels)
        axes[0].set_ylim(len(regions) - 0.5, -0.5)
        handles, hl = legend_entries(axes[0])
        fig.legend(handles, hl, loc="outside lower center", ncols=max(len(markers), 2),
                   frameon=False)
        fig.suptitle(
            "Offsets from the reference in units of the combined error "
            "(grey band: |offset| < 1σ; dotted: 3σ)"
        )
    return fig


def _offsets_panel(
    ax: Any, summary: pd.DataFrame, col: str, markers: Sequence[MethodMarker], y: np.ndarray
) -> None:
    """One quantity's offsets, every method's marker on each region's row."""
    ax.axvspan(-1, 1, color="0.85", lw=0)
    for x in (-3, 3):
        ax.axvline(x, color="0.5", ls=":", lw=1)
    ax.axvline(0, color=REFERENCE_COLOR, lw=0.8)
    values = []
    for m in markers:
        key = f"{m.prefix}{col}_offset_sigma"
        if key not in summary:
            continue
        values.append(_numbers(summary, key))
        ax.plot(values[-1], y + m.shift, m.marker, color=m.colour, ls="none", ms=6,
                label=m.label, gid=f"offsets:{m.prefix}{col}")
    ax.set_xscale("symlog", linthresh=3)
    finite = np.abs(np.concatenate([v.to_numpy(dtype=float) for v in values] or [[0.0]]))
    finite = finite[np.isfinite(finite)]
    lim = max(5.0, 1.4 * float(finite.max())) if finite.size else 5.0
    ax.set_xlim(-lim, lim)
    ticks = [t for t in SIGMA_TICKS if abs(t) <= lim]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(mpl.ticker.NullLocator())
    name = _COLUMN_LABELS[col].split(" (")[0]
    ax.set_xlabel(f"offset of {name} (σ)")
    ax.set_title(name)


def recovered_figure(summary: pd.DataFrame) -> Figure:
    """Recovered against reference parallax and proper motion (top, with the 1:1 line) and their
    difference (bottom), for every region with a result."""
    markers = method_markers(summary)
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(13.0, 7.5), layout="constrained")
        axes = fig.subplots(2, 3)
        for c, col in enumerate(ASTROMETRY):
            _recovered_column(axes[0, c], axes[1, c], summary, col, markers)
        handles, hl = legend_entries(axes[0, 0])
        fig.legend(handles, hl, loc="outside lower center", ncols=max(len(markers) + 1, 3),
                   frameon=False)
        fig.suptitle("Recovered cluster parameters against the reference values")
    return fig


def _recovered_column(
    top: Any, bottom: Any, summary: pd.DataFrame, col: str, markers: Sequence[MethodMarker]
) -> None:
    """One quantity: recovered against reference (top), their difference (bottom); the primary
    method's points filled and named where there are few regions, the others' open."""
    label = _COLUMN_LABELS[col]
    ref = _numbers(summary, f"reference_{col}")
    ref_e = _numbers(summary, f"reference_{col}_error").fillna(0)
    for m in markers:
        if f"{m.prefix}{col}" not in summary:
            continue
        val = _numbers(summary, f"{m.prefix}{col}")
        err = _numbers(summary, f"{m.prefix}{col}_error").fillna(0)
        ok = np.isfinite(val) & np.isfinite(ref)
        primary = not m.prefix
        look = {"fmt": m.marker, "color": m.colour, "ms": 5 if primary else 7,
                "mfc": m.colour if primary else "none", "zorder": 3 if primary else 2,
                "label": m.label}
        top.errorbar(ref[ok], val[ok], xerr=ref_e[ok], yerr=err[ok],
                     gid=f"recovered:{m.prefix}{col}", **look)
        bottom.errorbar(ref[ok], (val - ref)[ok], yerr=np.hypot(err, ref_e)[ok], **look)
        if primary and len(summary) <= 15:
            for x, yv, name in zip(ref[ok], val[ok], summary["region"][ok], strict=True):
                top.annotate(str(name).replace("_", " "), (x, yv), xytext=(4, -10),
                             textcoords="offset points", fontsize=8, color="0.3")
    finite = ref[np.isfinite(ref)]
    if len(finite):
        lo, hi = float(finite.min()), float(finite.max())
        pad = max(0.1 * (hi - lo), 0.5)
        top.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color=REFERENCE_COLOR, lw=0.8,
                 ls="--", label="1:1")
    else:
        note(top, "no region with both a result and a reference")
    bottom.axhline(0, color=REFERENCE_COLOR, lw=0.8, ls="--")
    top.set_xlabel(f"reference {label}")
    top.set_ylabel(f"recovered {label}")
    bottom.set_xlabel(f"reference {label}")
    bottom.set_ylabel(f"recovered − reference\n{label}")


def catalogue_figures(summary: pd.DataFrame) -> dict[str, Figure]:
    """The catalogue figures (:data:`ocdec.products.CATALOGUE_FIGURES`) from the summary table;
    each names the catalogue's tally of found, not found and unknown groups at the bottom."""
    figures = {"offsets": offsets_figure(summary), "recovered": recovered_figure(summary)}
    counts = tally(summary["status"] if "status" in summary else [],
                   _numbers(summary, "n_unknown_groups") if "n_unknown_groups" in summary
                   else [])
    for fig in figures.values():
        fig.text(0.01, 0.002, counts, fontsize=8, ha="left", va="bottom", gid="verdict_tally")
    return figures
