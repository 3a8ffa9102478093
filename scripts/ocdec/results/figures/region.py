"""The per-region figures: every method's selection side by side (:func:`methods_figure`), the
primary method's four panels (:func:`overview_figure`), the K-Means silhouette sweep and the DEC
training curves. They draw what :mod:`ocdec.results.figure_inputs` read; they read no files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ocdec.figure_layout import fixed_grid, plain_log_ticks, plain_number
from ocdec.results.figure_inputs import Selection
from ocdec.results.figures.panels import (
    DISPLAY_SEED,
    MAX_FIELD_POINTS,
    PANEL_TITLES,
    PANELS,
    Window,
    column,
    display_subsample,
    display_window,
    panel_cmd,
    panel_parallax,
    panel_pm,
    panel_sky,
    reference_label,
    region_value,
)
from ocdec.results.figures.style import (
    FIELD_COLOR,
    GROUP_COLORS,
    MEMBER_COLOR,
    REFERENCE_COLOR,
    STYLE,
    TITLE_Y,
    message_figure,
    note,
    region_title,
)

ROW_HEIGHT = 3.7  # inches per method's row in the methods figure


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
        return message_figure(region_title(region) or "no results", "no method results to show")
    window = display_window(selections, reference)
    n = len(selections)
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(15.0, ROW_HEIGHT * n + 0.6))
        shown_cache: dict[int, np.ndarray] = {}
        for r, sel in enumerate(selections):
            key = id(sel.stars)
            if key not in shown_cache:
                shown_cache[key] = display_subsample(len(sel.stars), max_field, seed)
            axes = _method_row(fig, r, n, sel, window, region, reference, shown_cache[key])
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
        _suptitle(fig, title or _methods_title(selections, region, shown_cache))
    return fig


def retitle_as_methods(fig: Figure, selections: Sequence[Selection],
                       region: Mapping[str, Any] | None = None, *,
                       max_field: int = MAX_FIELD_POINTS, seed: int = DISPLAY_SEED) -> None:
    """Give a one-method figure (:func:`overview_figure`'s) the title :func:`methods_figure`
    gives the same selection, so that one drawing serves both: their panels are the same."""
    shown = {id(s.stars): display_subsample(len(s.stars), max_field, seed) for s in selections}
    with mpl.rc_context(STYLE):
        _suptitle(fig, _methods_title(selections, region, shown))


def _methods_title(selections: Sequence[Selection], region: Mapping[str, Any] | None,
                   shown: Mapping[int, np.ndarray]) -> str:
    return f"{region_title(region)}: members by method" + _subsample_note(selections, shown)


def _suptitle(fig: Figure, text: str) -> None:
    fig.suptitle(text, y=1.0 - 0.08 / fig.get_figheight(), va="top")


def _method_row(
    fig: Figure,
    r: int,
    n: int,
    sel: Selection,
    window: Window,
    region: Mapping[str, Any] | None,
    reference: Mapping[str, Any] | None,
    shown: np.ndarray,
) -> list[Any]:
    """Row ``r`` of ``n``: one selection's four panels, tagged "{label}:{panel}", and (where there
    are several rows) a header naming it."""
    height = fig.get_figheight()
    # each method's row: a band of ROW_HEIGHT inches under the figure title (0.35 in); its header
    # and the panel titles above the axes, tick labels and axis labels below
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
    return axes


def _subsample_note(selections: Sequence[Selection], shown: Mapping[int, np.ndarray]) -> str:
    shown_total = max(len(v) for v in shown.values())
    total = max(len(s.stars) for s in selections)
    if shown_total < total:
        return f"; field stars subsampled to {shown_total:,} of {total:,} for display"
    return ""


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
                label=f"{reference_label(reference)} (pm with error bars; parallax line)",
            )
        )
    has_positions = any(np.isfinite(column(s.stars, "ra")).any() for s in selections)
    if has_positions and math.isfinite(region_value(region, "radius_deg")):
        handles.append(Line2D([], [], color=REFERENCE_COLOR, ls="--", label="catalogue cone"))
    return handles


def overview_figure(
    selection: Selection,
    region: Mapping[str, Any] | None = None,
    reference: Mapping[str, Any] | None = None,
    *,
    max_field: int = MAX_FIELD_POINTS,
    seed: int = DISPLAY_SEED,
) -> Figure:
    """The four panels for one method (the primary): the figure for a quick look and the README."""
    p = selection.params or {}
    bits = [f"{selection.n_members} members"]
    for key, unit in (("pmra", " mas/yr"), ("pmdec", " mas/yr"), ("parallax", " mas")):
        v, e = p.get(key), p.get(f"{key}_error")
        if v is not None and e is not None and math.isfinite(float(v)) and math.isfinite(float(e)):
            bits.append(
                f"{'plx' if key == 'parallax' else key} {float(v):.3f} ± {float(e):.3f}{unit}"
            )
    title = f"{region_title(region)} ({selection.label} method): " + ", ".join(bits)
    return methods_figure([selection], region, reference, max_field=max_field, seed=seed,
                          title=title)


def silhouette_figure(
    silhouette: pd.DataFrame | None, chosen_k: int | None = None, title: str = ""
) -> Figure:
    """Silhouette score against k for the K-Means sweep, the chosen k marked."""
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(6.0, 4.0))
        ax = fig.add_subplot(fixed_grid(fig, 1, 1, left=0.8, right=0.2, top=0.45, bottom=0.6)[0])
        if silhouette is None or len(silhouette) == 0:
            note(ax, "no K-Means sweep (thesis mode not run)")
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


CHANGE_FLOOR = 1e-6  # the label-change panel's log axis: smaller changes (0) are drawn here
_TRAINING_PANELS = (
    ("pretraining", "reconstruction loss"),
    ("clustering", "clustering loss"),
    ("label change", "fraction of labels changed"),
)


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
            _training_row(axes[r], label, h, tol)
        fig.suptitle(title or "DEC training curves", y=1.0 - 0.08 / fig.get_figheight(), va="top")
    return fig


def _training_row(axes: Sequence[Any], label: str, h: pd.DataFrame, tol: float | None) -> None:
    """One method's three training panels, a line per seed."""
    seeds = sorted(pd.unique(h["seed"]))
    colours = {s: GROUP_COLORS[i % len(GROUP_COLORS)] for i, s in enumerate(seeds)}
    floored = False  # a change below the log axis's floor (no label changed) drawn at it
    for s in seeds:
        hs = h[h["seed"] == s]
        pre, clu = hs[hs["phase"] == "pretrain"], hs[hs["phase"] == "cluster"]
        axes[0].plot(pre["epoch"], pre["loss"], color=colours[s], label=f"seed {s}")
        axes[1].plot(clu["epoch"], clu["loss"], color=colours[s], label=f"seed {s}")
        lc = clu[np.isfinite(clu["label_change"].to_numpy(dtype=float))]
        floored |= bool((lc["label_change"] < CHANGE_FLOOR).any())
        axes[2].plot(
            lc["epoch"],
            lc["label_change"].clip(lower=CHANGE_FLOOR),
            "o-",
            ms=3,
            color=colours[s],
            label=f"seed {s}",
        )
    for ax, (name, ylabel) in zip(axes, _TRAINING_PANELS, strict=True):
        ax.set_title(f"{label}: {name}", y=TITLE_Y)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        drawn = [line for line in ax.lines if len(line.get_ydata())]
        if not drawn:  # e.g. the default method's DEC, which does not pretrain
            ax.set_xticks([])
            ax.set_yticks([])
            note(ax, f"no {name} epochs recorded")
            continue
        # whole epochs, one tick where only one was trained
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True, min_n_ticks=1))
        if all(np.nanmin(line.get_ydata()) > 0 for line in drawn):
            ax.set_yscale("log")
            plain_log_ticks(ax)
    if not any(len(line.get_ydata()) for line in axes[2].lines):
        return  # no label changes: neither the tolerance nor the seeds to show against them
    if floored:  # say so: 0 would read as one label in a million
        axes[2].text(0.02, 0.03, f"no label changed: drawn at {plain_number(CHANGE_FLOOR)}",
                     transform=axes[2].transAxes, fontsize=8, color="0.3", gid="floor")
    if tol is not None and tol > 0:
        axes[2].axhline(tol, color=REFERENCE_COLOR, ls="--", lw=1, label=f"tol = {tol:g}")
    axes[2].legend(loc="best", ncols=2 if len(seeds) > 3 else 1)
