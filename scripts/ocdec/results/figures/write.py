"""Writing a region's and the catalogue's figures: read with :mod:`ocdec.results.figure_inputs`,
draw with :mod:`~ocdec.results.figures.region` and :mod:`~ocdec.results.figures.catalogue`, save
with :func:`~ocdec.results.figures.style.save_figure`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ocdec.methods.registry import PRIMARY
from ocdec.products import CATALOGUE_FIGURES, REGION_FIGURES
from ocdec.results.figure_inputs import read_region
from ocdec.results.figures.catalogue import catalogue_figures
from ocdec.results.figures.groups import groups_figure
from ocdec.results.figures.panels import DISPLAY_SEED, MAX_FIELD_POINTS
from ocdec.results.figures.region import (
    methods_figure,
    overview_figure,
    retitle_as_methods,
    silhouette_figure,
    training_figure,
)
from ocdec.results.figures.style import (
    message_figure,
    region_title,
    save_copies,
    save_formats,
    save_retitled,
    skipped_figure,
)

REGION_PLOTS = tuple(REGION_FIGURES)
CATALOGUE_PLOTS = tuple(CATALOGUE_FIGURES)


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
    out = Path(out_dir)
    written: list[Path] = []
    name = region_title(region)
    inputs = read_region(method_dirs, status)
    if inputs.skip is not None:
        state, why = inputs.skip
        # one drawing per format, copied under each name: most of a skipped region's plots job
        # is start-up, and every saved PNG is a draw
        stems = [stem for stem in REGION_PLOTS if stem != "groups"]
        if inputs.groups is None:
            stems.append("groups")
        written += save_copies(skipped_figure(region, why, state), out, stems, formats)
        if inputs.groups is not None:
            # a region where the cluster was not found still shows what the cone holds
            fig = groups_figure(inputs.groups, inputs.groups_summary, region)
            written += save_formats(fig, out, "groups", formats)
        return written
    reference = references[0] if references else None
    selections = inputs.selections
    primary = next((s for s in selections if s.label == PRIMARY), None)
    if primary is not None:
        fig = overview_figure(primary, region, reference, max_field=max_field, seed=seed)
    else:
        fig = message_figure(f"{name}: {PRIMARY} method",
                             f"the {PRIMARY} method has no result here")
    if primary is not None and len(selections) == 1:
        # one method: its row of the methods figure is the overview's panels, drawn once
        written += save_retitled(
            fig, out, ("overview", "methods"),
            lambda f: retitle_as_methods(f, selections, region, max_field=max_field, seed=seed),
            formats)
    else:
        written += save_formats(fig, out, "overview", formats)
        fig = methods_figure(selections, region, reference, max_field=max_field, seed=seed)
        written += save_formats(fig, out, "methods", formats)
    fig = silhouette_figure(inputs.silhouette, inputs.chosen_k,
                            f"{name}: K-Means silhouette sweep")
    written += save_formats(fig, out, "silhouette", formats)
    fig = training_figure(inputs.histories, f"{name}: DEC training curves")
    written += save_formats(fig, out, "training", formats)
    fig = groups_figure(inputs.groups, inputs.groups_summary, region)
    written += save_formats(fig, out, "groups", formats)
    return written


def catalogue_plots(
    out_dir: str | Path, summary: pd.DataFrame, formats: Sequence[str] = ("png",)
) -> list[Path]:
    """``{out_dir}/{name}.{fmt}`` for every catalogue figure, from the catalogue summary."""
    out = Path(out_dir)
    written: list[Path] = []
    for name, fig in catalogue_figures(summary).items():
        written += save_formats(fig, out, name, formats)
    return written
