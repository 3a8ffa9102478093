"""The look shared by every figure: :data:`STYLE`, colours, axis labels, fixed margins in inches
(:func:`fixed_grid`) and plain-text log ticks (both from :mod:`ocdec.figure_layout`), figures that
say why there is nothing to show, and saving (:func:`save_figure`); :func:`find_axes` finds a panel
a figure tagged.

The per-region figures, drawn for every region of a catalogue, use fixed margins rather than
constrained layout, which measures every tick label in an extra draw and was most of their cost;
log axes get plain-text tick labels (no mathtext).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
from matplotlib.figure import Figure

from ocdec.figure_layout import PNG_OPTIONS, fixed_grid, save_atomic
from ocdec.io import atomic_path

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


def region_title(region: Mapping[str, Any] | None) -> str:
    """A region's name for titles ("NGC 2682"; the id with spaces where there is no name)."""
    if not region:
        return ""
    name = region.get("name") or str(region.get("id", "")).replace("_", " ")
    return str(name)


def note(ax: Any, text: str) -> None:
    """A grey line of text in the middle of an Axes (why a panel is empty)."""
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


def legend_entries(ax: Any) -> tuple[list[Any], list[str]]:
    """An Axes' legend handles and labels, less those matplotlib hides ("_child0", ...)."""
    handles, labels = ax.get_legend_handles_labels()
    keep = [(h, lab) for h, lab in zip(handles, labels, strict=True) if not lab.startswith("_")]
    return [h for h, _ in keep], [lab for _, lab in keep]


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
    """:func:`message_figure` for a region without a result: "NGC 1: skipped" and the reason."""
    name = region if isinstance(region, str) else region_title(region)
    return message_figure(f"{name}: {status}", reason or "no reason recorded")


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save atomically; the format follows the suffix (.png, .pdf, .svg)."""
    path = Path(path)
    return save_atomic(fig, path, metadata=_metadata(path.suffix.lstrip(".").lower() or "png"))


def _metadata(fmt: str) -> dict[str, Any] | None:
    """No software version or date in a PNG or a PDF: the same figure, the same bytes."""
    return ({"Software": None} if fmt == "png"
            else {"Creator": None, "CreationDate": None} if fmt == "pdf" else None)


def save_formats(fig: Figure, out_dir: Path, stem: str, formats: Iterable[str]) -> list[Path]:
    """``{out_dir}/{stem}.{fmt}`` for every format."""
    return [save_figure(fig, out_dir / f"{stem}.{fmt}") for fmt in formats]


def save_copies(fig: Figure, out_dir: Path, stems: Sequence[str], formats: Iterable[str]
                ) -> list[Path]:
    """``{out_dir}/{stem}.{fmt}`` for every stem and format, ``fig`` drawn once per format and
    copied (a skipped region shows the same figure under every name); paths in stem order."""
    import shutil

    formats = list(formats)
    if not stems:
        return []
    first = {fmt: save_figure(fig, out_dir / f"{stems[0]}.{fmt}") for fmt in formats}
    written = list(first.values())
    for stem in stems[1:]:
        for fmt in formats:
            path = out_dir / f"{stem}.{fmt}"
            with atomic_path(path) as tmp:
                shutil.copyfile(first[fmt], tmp)
            written.append(path)
    return written


def save_retitled(fig: Figure, out_dir: Path, stems: tuple[str, str],
                  retitle: Callable[[Figure], None], formats: Iterable[str]) -> list[Path]:
    """``fig`` as ``{out_dir}/{stems[0]}.{fmt}``, then retitled (``retitle`` sets its suptitle
    anew) as ``stems[1]``, for every format; paths in stem order. A PNG's panels are drawn once:
    the figure is drawn without its title, kept, and each title drawn onto that drawing (the
    margins are fixed, so a title moves nothing, and nothing lies over it), the same bytes as a
    whole draw gives (tests/test_plots.py compares them); the other formats, and PNGs where
    savefig's settings differ from matplotlib's defaults (:func:`_plain_savefig`), are drawn
    whole each time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    formats = list(formats)
    title = fig._suptitle  # matplotlib keeps the suptitle's Text there
    if "png" not in formats or title is None or not _plain_savefig(fig):
        first = save_formats(fig, out_dir, stems[0], formats)
        retitle(fig)
        return first + save_formats(fig, out_dir, stems[1], formats)
    others = [fmt for fmt in formats if fmt != "png"]
    written = {stem: [] for stem in stems}  # type: dict[str, list[Path]]
    written[stems[0]] += save_formats(fig, out_dir, stems[0], others)
    original = fig.canvas
    canvas = FigureCanvasAgg(fig)
    try:
        title.set_visible(False)
        canvas.draw()
        panels = canvas.copy_from_bbox(fig.bbox)
        title.set_visible(True)
        for k, stem in enumerate(stems):
            if k:
                retitle(fig)
                title = fig._suptitle
                canvas.restore_region(panels)
                if others:
                    written[stem] += save_formats(fig, out_dir, stem, others)
            fig.draw_artist(title)
            path = out_dir / f"{stem}.png"
            with atomic_path(path) as tmp:
                # as savefig writes a PNG (FigureCanvasAgg.print_png), from the canvas as drawn
                mpl.image.imsave(tmp, canvas.buffer_rgba(), format="png", origin="upper",
                                 dpi=fig.dpi, metadata=_metadata("png"),
                                 pil_kwargs=dict(PNG_OPTIONS))
            written[stem].insert(formats.index("png"), path)
    finally:
        fig.set_canvas(original)  # as savefig leaves it (and the drawing's buffer goes)
    return written[stems[0]] + written[stems[1]]


def _plain_savefig(fig: Figure) -> bool:
    """Whether savefig, under the rcParams in force, writes a PNG of the canvas as drawn at the
    figure's dpi (a user's matplotlibrc may set another dpi, a tight box, a transparent or
    coloured background): only then does a kept drawing give savefig's bytes."""
    rc = mpl.rcParams
    return (rc["savefig.dpi"] in ("figure", fig.dpi) and rc["savefig.bbox"] in (None, "standard")
            and not rc["savefig.transparent"] and rc["savefig.facecolor"] == "auto"
            and rc["savefig.edgecolor"] == "auto")
