"""Figures a person reads at a glance: per region (proper motions, parallax histogram,
colour-magnitude diagram, sky positions; one row per method), the K-Means silhouette sweep,
DEC training curves, and catalogue-wide offsets from the references.

Figures are built on :class:`matplotlib.figure.Figure` (no pyplot state, no GUI backend) with one
style, and saved atomically (PNG for the report, PDF on request). Reading is apart from drawing:

- :mod:`ocdec.results.figure_inputs`: what the figures read (members, selections, a region's
  products); no matplotlib.
- :mod:`.style`: the shared look, message figures, :func:`save_figure`, :func:`find_axes`.
- :mod:`.panels`: a method's four panels and the axis limits rows share.
- :mod:`.region`: the per-region figures (methods, overview, silhouette, training).
- :mod:`.catalogue`: the catalogue-wide figures (offsets, recovered), one marker per method.
- :mod:`.write`: :func:`region_plots` and :func:`catalogue_plots`, reading then drawing.

Methods are known only through :mod:`ocdec.methods.registry`, file names through
:mod:`ocdec.products`.
"""

from ocdec.figure_layout import fixed_grid, plain_log_ticks, plain_number
from ocdec.results.figure_inputs import (
    RegionInputs,
    Selection,
    method_selections,
    read_members,
    read_region,
)
from ocdec.results.figures.catalogue import (
    MethodMarker,
    catalogue_figures,
    method_markers,
    offsets_figure,
    recovered_figure,
)
from ocdec.results.figures.panels import (
    DISPLAY_SEED,
    MAX_FIELD_POINTS,
    PANEL_TITLES,
    PANELS,
    Window,
    display_subsample,
    display_window,
    panel_cmd,
    panel_parallax,
    panel_pm,
    panel_sky,
)
from ocdec.results.figures.region import (
    ROW_HEIGHT,
    methods_figure,
    overview_figure,
    silhouette_figure,
    training_figure,
)
from ocdec.results.figures.style import (
    FIELD_COLOR,
    GROUP_COLORS,
    MEMBER_COLOR,
    REFERENCE_COLOR,
    STYLE,
    figure_axes,
    find_axes,
    message_figure,
    save_figure,
    skipped_figure,
)
from ocdec.results.figures.write import (
    CATALOGUE_PLOTS,
    REGION_PLOTS,
    catalogue_plots,
    region_plots,
)

__all__ = [
    "CATALOGUE_PLOTS",
    "DISPLAY_SEED",
    "FIELD_COLOR",
    "GROUP_COLORS",
    "MAX_FIELD_POINTS",
    "MEMBER_COLOR",
    "PANELS",
    "PANEL_TITLES",
    "REFERENCE_COLOR",
    "REGION_PLOTS",
    "ROW_HEIGHT",
    "STYLE",
    "MethodMarker",
    "RegionInputs",
    "Selection",
    "Window",
    "catalogue_figures",
    "catalogue_plots",
    "display_subsample",
    "display_window",
    "figure_axes",
    "find_axes",
    "fixed_grid",
    "message_figure",
    "method_markers",
    "method_selections",
    "methods_figure",
    "offsets_figure",
    "overview_figure",
    "panel_cmd",
    "panel_parallax",
    "panel_pm",
    "panel_sky",
    "plain_log_ticks",
    "plain_number",
    "read_members",
    "read_region",
    "recovered_figure",
    "region_plots",
    "save_figure",
    "silhouette_figure",
    "skipped_figure",
    "training_figure",
]
