"""Figure layout without a layout engine, shared by the region figures
(:mod:`ocdec.results.figures`) and the physical-parameters figure
(:mod:`ocdec.physics.figures`): margins and gaps in inches (:func:`fixed_grid`), plain-text log
ticks (:func:`plain_log_ticks`) and saving (:func:`save_atomic`, a PNG compressed as
:data:`PNG_OPTIONS` says). Constrained layout measures every tick label in an extra draw, and
mathtext tick labels are slow to lay out: for figures drawn for every region of a catalogue,
both were most of their cost. Light on imports (matplotlib, numpy and the standard library), so
that a job that draws only these figures imports no table library.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from ocdec.io import atomic_path

# zlib level 3, not Pillow's 6: a region's six PNGs are written in 0.1 s less; the scatter plots'
# files come out no larger (an overview 222 KB at 3, 242 KB at 6), line plots and message
# figures a few KB larger (a silhouette sweep 52 KB against 50.5 KB)
PNG_OPTIONS: dict[str, Any] = {"compress_level": 3}


def save_atomic(fig: Figure, path: str | os.PathLike[str], **savefig: Any) -> Path:
    """``fig.savefig`` to a temporary name, then renamed to ``path`` (the format from its
    suffix; a PNG compressed as :data:`PNG_OPTIONS` says); ``savefig``: savefig's other
    arguments."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt == "png":  # the vector formats' writers take no pil_kwargs
        savefig.setdefault("pil_kwargs", dict(PNG_OPTIONS))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, **savefig)
    return path


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
