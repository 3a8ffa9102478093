"""Honest member counts (issue 10): how many members the field's stars can vouch for, against how
many the method selected, and how stable the selection is when the field is resampled.

* **On the sky** (:func:`sky_count_check`): the selected stars' positions are split at twice the
  fitted Plummer scale; with the field's own star density (which follows the footprint) and the
  Plummer profile, the inner and outer counts give the number of cluster-like and field-like
  stars among the selection (two equations, two unknowns). A selection inflated by field stars
  shows as field-like stars spread over the cone; a cluster whose excess is below three times the
  field's noise inside its core is *below the field limit*.
* **Bootstrap of the field** (:func:`bootstrap_stability`): the mixture refitted on Poisson
  resamples of its window; the spread of the member count and the overlap of the member sets.
  Seeds of DEC all start from the same mixture and agree by construction; resampling the field
  does not.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ocdec.methods.default.mixture import ClusterModel

INNER_SCALES = 2.0  # the core region: within this many Plummer scales of the centre
LIMIT_SIGMA = 3.0  # an excess below this many times the field's noise in the core is not vouched
MIN_DETERMINANT = 0.25  # below: the cluster's profile and the field's are too alike to separate


def sky_count_check(model: ClusterModel, selected: np.ndarray) -> dict[str, Any]:
    """Cluster-like and field-like counts among the selected candidates (boolean over
    ``model.candidates``), from their positions; empty without a sky model."""
    sky, fitted = model.sky_model, model.sky
    if sky is None or fitted is None:
        return {}
    x0, y0, a = fitted
    rows = model.candidates[selected]
    r = np.hypot(sky.xi[rows] - x0, sky.eta[rows] - y0)
    inner = r < INNER_SCALES * a
    n_in, n_out = int(inner.sum()), int((~inner).sum())
    gx, gy = np.meshgrid(sky.centres, sky.centres, indexing="ij")
    cell_inner = np.hypot(gx - x0, gy - y0) < INNER_SCALES * a
    field = sky.field_density_grid * sky.cell_area
    pf_in = float(field[cell_inner].sum() / max(field.sum(), 1e-300))
    prof = ((1 + ((gx - x0) ** 2 + (gy - y0) ** 2) / a**2) ** -2) * sky.occupied
    pp_in = float(prof[cell_inner].sum() / max(prof.sum(), 1e-300))
    det = pf_in * (1 - pp_in) - (1 - pf_in) * pp_in  # = pf_in - pp_in
    out: dict[str, Any] = {"sky_inner_selected": n_in, "sky_outer_selected": n_out,
                           "sky_field_fraction_inner": pf_in,
                           "sky_cluster_fraction_inner": pp_in}
    if abs(det) < MIN_DETERMINANT:
        # the cluster fills the field like the field does (a nearby cluster in its own cone)
        out.update(expected_members=None, field_like_selected=None, field_limit=None,
                   below_field_limit=None)
        return out
    n_cluster = (pf_in * n_out - (1 - pf_in) * n_in) / det
    n_field = (n_in * (1 - pp_in) - n_out * pp_in) / det
    limit = LIMIT_SIGMA * math.sqrt(max(n_field, 0.0) * pf_in + 1.0)
    out.update(expected_members=float(max(n_cluster, 0.0)),
               field_like_selected=float(max(n_field, 0.0)), field_limit=float(limit),
               below_field_limit=bool(n_cluster < limit))
    return out


def bootstrap_stability(per_boot: list[np.ndarray], threshold: float) -> dict[str, Any]:
    """Member counts of the bootstrap refits, their coefficient of variation and the mean
    pairwise Jaccard overlap of their member sets."""
    sets = [p >= threshold for p in per_boot]
    counts = [int(s.sum()) for s in sets]
    out: dict[str, Any] = {"bootstrap_members": counts}
    if len(sets) < 2:
        return out
    mean = float(np.mean(counts))
    jac = []
    for a, b in itertools.combinations(sets, 2):
        union = int((a | b).sum())
        jac.append(1.0 if union == 0 else int((a & b).sum()) / union)
    out.update(bootstrap_count_cv=float(np.std(counts) / mean) if mean > 0 else None,
               bootstrap_jaccard=float(np.mean(jac)))
    return out
