"""Step 1 of the default method: find the cluster's peak in proper motion and parallax.

Within parallax slabs, proper motions are binned on a grid whose cell follows the width a cluster at
that parallax has (internal velocity dispersion times parallax, plus the measurement errors), and
each cell's count is compared with the smooth local field around it (:func:`find_peaks`). Peaks are
ranked (:func:`score_peaks`) by that significance, by how concentrated their stars are on the sky,
and by the catalogue priors where given (log-normal in parallax, 3 mas/yr Gaussian in proper
motion): never by a literature answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from ocdec.errors import OcdecError
from ocdec.methods.default.sky import angular_separation_deg
from ocdec.methods.default.stars import Astrometry
from ocdec.methods.priors import ClusterPriors

# 4.74047 km/s is 1 AU/yr: v_t [km/s] = 4.74 * pm [mas/yr] / parallax [mas].
KMS_PER_MASYR_KPC = 4.74047


@dataclass(frozen=True)
class PeakSettings:
    sigma_v_kms: float = 1.0  # internal velocity dispersion that sets the pm cell at each parallax
    # The search is repeated with the dispersion times each factor: a nearby cluster's proper
    # motions spread with its depth and across the sky (the Hyades: several mas/yr), and at one
    # cell of 1 km/s it is diluted below a compact co-moving group (TeachAstro Hyades, no prior).
    scale_factors: tuple[float, ...] = (1.0, 2.5)
    slab_ratio: float = 1.12  # consecutive parallax slab centres differ by this factor
    slab_half_width: float = 0.12  # relative half-width of a slab (absolute floor below)
    min_plx_floor: float = 0.15  # mas: the deepest slab without a prior
    background_cells: int = 21  # side of the box (in cells) over which the local field is averaged
    min_significance: float = 5.0
    max_peaks: int = 12
    plx_prior_log_sigma: float = 0.25  # Dias distances are often 10-30% off
    pm_prior_sigma: float = 3.0  # mas/yr: pre-Gaia proper motions can be several mas/yr off


@dataclass(frozen=True)
class Peak:
    pmra: float
    pmdec: float
    parallax: float
    pm_scale: float  # mas/yr: the cell (cluster width) used at this parallax
    plx_half_width: float
    significance: float
    n_core: int = 0
    concentration: float = math.nan
    prior_weight: float = 1.0
    score: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}


def _slab_centres(ast: Astrometry, priors: ClusterPriors, s: PeakSettings) -> np.ndarray:
    good = ast.parallax[ast.parallax > 0]
    if good.size == 0:
        raise OcdecError("no star has a positive parallax")
    if priors.parallax is not None:
        # A wide bracket around the catalogue distance; the soft prior weight does the rest.
        lo, hi = priors.parallax / 2.5, priors.parallax * 2.5
    else:
        lo, hi = np.quantile(good, [0.01, 0.999])
    lo = max(lo, s.min_plx_floor, float(good.min()))
    hi = min(hi, float(good.max()))
    if hi <= lo:
        hi = lo * s.slab_ratio
    n = int(math.ceil(math.log(hi / lo) / math.log(s.slab_ratio))) + 1
    return lo * s.slab_ratio ** np.arange(n)


def find_peaks(ast: Astrometry, priors: ClusterPriors, s: PeakSettings | None = None) -> list[Peak]:
    """Overdensities in proper motion within parallax slabs: significance over the local field."""
    s = s or PeakSettings()
    peaks: list[Peak] = []
    for c in _slab_centres(ast, priors, s):
        half = c * s.slab_half_width
        # Only stars whose parallax error is small against the slab; floor so faint distant
        # clusters keep their members.
        in_slab = (np.abs(ast.parallax - c) < max(half, 0.05)) & (ast.e_plx < max(half, 0.08))
        idx = np.flatnonzero(in_slab)
        if idx.size < 20:
            continue
        e_pm = float(np.median(np.hypot(ast.e_pmra[idx], ast.e_pmdec[idx]) / math.sqrt(2)))
        for factor in s.scale_factors:
            scale = math.hypot(factor * s.sigma_v_kms * c / KMS_PER_MASYR_KPC, e_pm)
            peaks.extend(_slab_peaks(ast, idx, c, max(half, 0.05), scale, s))
    return _suppress_duplicates(peaks)


def _slab_peaks(ast: Astrometry, idx: np.ndarray, c: float, half: float, scale: float,
                s: PeakSettings) -> list[Peak]:
    x, y = ast.pmra[idx], ast.pmdec[idx]
    cell = scale / 2.0
    pad = s.background_cells * cell
    x0, x1 = np.quantile(x, [0.002, 0.998])
    y0, y1 = np.quantile(y, [0.002, 0.998])
    nx = int(min(600, max(8, math.ceil((x1 - x0 + 2 * pad) / cell))))
    ny = int(min(600, max(8, math.ceil((y1 - y0 + 2 * pad) / cell))))
    ex = x0 - pad + cell * np.arange(nx + 1)
    ey = y0 - pad + cell * np.arange(ny + 1)
    h, _, _ = np.histogram2d(x, y, bins=(ex, ey))
    # Counts in a Gaussian aperture of sigma = one cluster width, against the same aperture on the
    # local mean field; Poisson significance.
    sm = ndimage.gaussian_filter(h, sigma=2.0, mode="constant") * (2 * math.pi * 4.0)
    bg = ndimage.uniform_filter(h, size=s.background_cells, mode="constant") * (2 * math.pi * 4.0)
    sig = (sm - bg) / np.sqrt(bg + 1.0)
    local_max = (sig == ndimage.maximum_filter(sig, size=5)) & (sig > s.min_significance)
    out = []
    for i, j in zip(*np.nonzero(local_max), strict=True):
        out.append(Peak(pmra=float(ex[i] + cell / 2), pmdec=float(ey[j] + cell / 2), parallax=c,
                        pm_scale=scale, plx_half_width=half, significance=float(sig[i, j])))
    return out


def _suppress_duplicates(peaks: list[Peak]) -> list[Peak]:
    """The same cluster shows in neighbouring slabs and cells: keep the most significant."""
    kept: list[Peak] = []
    for p in sorted(peaks, key=lambda p: -p.significance):
        if any(abs(p.parallax - k.parallax) < 2 * max(p.plx_half_width, k.plx_half_width)
               and math.hypot(p.pmra - k.pmra, p.pmdec - k.pmdec) < 3 * max(p.pm_scale, k.pm_scale)
               for k in kept):
            continue
        kept.append(p)
    return kept


def _sky_concentration(ast: Astrometry, core: np.ndarray, control: np.ndarray,
                       priors: ClusterPriors) -> float:
    """r50 of the control stars over r50 of the core stars about the same centre (> 1: the core is
    concentrated on the sky like a cluster). NaN without positions or with too few stars."""
    if not ast.has_sky or core.sum() < 5 or control.sum() < 5:
        return math.nan
    if priors.has_centre:
        ra0, dec0 = float(priors.ra), float(priors.dec)  # type: ignore[arg-type]
    else:
        from ocdec.methods.astrometry import sky_centre_and_r50

        centre = sky_centre_and_r50(pd.DataFrame({"ra": ast.ra[core], "dec": ast.dec[core]}))
        ra0, dec0 = centre["ra"], centre["dec"]
    r_core = np.median(angular_separation_deg(ast.ra[core], ast.dec[core], ra0, dec0))
    r_ctrl = np.median(angular_separation_deg(ast.ra[control], ast.dec[control], ra0, dec0))
    return float(r_ctrl / max(r_core, 1e-6))


def score_peaks(ast: Astrometry, peaks: list[Peak], priors: ClusterPriors,
                s: PeakSettings | None = None) -> list[Peak]:
    """Attach sky concentration and prior weight to the most significant peaks, best score first.

    score = significance x concentration (clipped to [0.5, 3]) x prior weight, where the prior
    weight is a log-normal in parallax around the catalogue distance and a Gaussian of
    ``pm_prior_sigma`` around the catalogue proper motion (each 1 when absent).
    """
    s = s or PeakSettings()
    scored = []
    for p in peaks[: s.max_peaks]:
        in_slab = np.abs(ast.parallax - p.parallax) < p.plx_half_width
        dpm = np.hypot(ast.pmra - p.pmra, ast.pmdec - p.pmdec)
        core = in_slab & (dpm < 1.5 * p.pm_scale)
        control = in_slab & (dpm > 3 * p.pm_scale) & (dpm < 6 * p.pm_scale)
        conc = _sky_concentration(ast, core, control, priors)
        weight = priors.weight(p.pmra, p.pmdec, p.parallax, pm_scale=p.pm_scale,
                               pm_sigma=s.pm_prior_sigma, plx_log_sigma=s.plx_prior_log_sigma)
        c_term = 1.0 if math.isnan(conc) else min(max(conc, 0.5), 3.0)
        scored.append(Peak(**{**p.__dict__, "n_core": int(core.sum()), "concentration": conc,
                              "prior_weight": weight, "score": p.significance * c_term * weight}))
    return sorted(scored, key=lambda p: -p.score)
