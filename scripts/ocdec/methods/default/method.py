"""The default membership method: find the cluster's peak, fit cluster + field around it, DEC.

Plain clustering of a whole cone does not isolate a cluster of a few hundred stars among 10^5: the
field dominates every centroid. So the default works in steps:

1. **Peak search** (:func:`find_peaks`). Within parallax slabs, proper motions are binned on a grid
   whose cell follows the width a cluster at that parallax has (internal velocity dispersion times
   parallax, plus the measurement errors), and each cell's count is compared with the smooth local
   field around it. Peaks are ranked (:func:`score_peaks`) by that significance, by how
   concentrated their stars are on the sky, and by the catalogue priors where given (log-normal in
   parallax, 3 mas/yr Gaussian in proper motion): never by a literature answer.
2. **Candidates and the initial split** (:func:`fit_cluster_model`). Around the chosen peak, the
   stars within 12 "member spreads" (intrinsic width plus each star's own errors) are the
   candidates. A cluster + field mixture is fitted to them by extreme deconvolution (each star's
   errors convolved in): a Gaussian cluster core, a field Gaussian, a cluster halo at most 5 times
   the core's width where the core is narrower than the errors, and, where stars have positions, a
   Plummer sky profile for the cluster against the field's own star density. Its posterior is
   DEC's initialisation (and, with ``run_dec=False``, a fast stand-alone answer).
3. **DEC, the membership model** (:func:`dec_membership`). DEC (``ocdec.methods.dec.fit_dec``)
   with the weighted Student-t mixture layer (mixing weights, per-cluster scales; see
   ``ocdec.methods.dec``), k = 2,
   on :func:`dec_features` (whitened astrometric offsets, in which members form a unit ball, plus
   sky offsets in Plummer scales), started from the mixture's member/field split, one run per
   seed (5 by default), each padded to a power-of-two bucket so the ensemble compiles once.
   ``p_member`` is the seeds' mean of DEC's cluster soft assignment; ``member`` is p_member >= 0.5;
   the seeds' member sets give the agreement (mean and minimum pairwise Jaccard). Stars whose
   errors swamp the cluster's width (error volume over e^2 times the typical member's) are not
   given to DEC: whitening by a star's own errors squeezes such a star onto the cluster whatever
   its motion, and DEC's one Euclidean metric cannot tell it from a member; they keep the
   deconvolved mixture's posterior (``dec_max_log_error_volume``).

Measured (p_member >= 0.5 against CG18 / Gaia Coll. 2018, G <= 18, Dias priors): F1 Praesepe
0.965, alpha Per 0.970, NGC 188 0.978, Ruprecht 147 0.927, seed Jaccard 1.0. What did not work:
plain DEC's layer on these features (one scale, no weights, 32-32-8 encoder) shrank the cluster
to half (F1 0.72 Praesepe, 0.80 NGC 188); the mixture layer with that non-linear encoder still
did (it distorts the whitened geometry); a linear encoder trained during self-training collapsed
single seeds (held-back TeachAstro Pleiades and M67: one seed of five with half the members), so
the encoder is the pretrained linear one, whitened on the initial cluster, and self-training moves
the clustering layer (centroids, scales, weights). One broad field kernel let the cluster grow into
a dense field; the field is four groups (:func:`field_split`). Giving DEC every star, the deep
TeachAstro NGC 188 field (G <= 20, 200k stars; 15,500 of DEC's 20,000 nearest candidates fainter
than G = 19) came out with 4,294 members, bright members lost and faint field gained; with the
error-dominated stars left to the mixture it has 1,439 at pm (-2.324, -1.019) (Hunt & Reffert
2023: 1,338 at (-2.318, -1.015)). A per-star log error-volume term on the field groups' density
instead (the factor whitening hides) was measured worse on Ruprecht 147 (F1 0.927 -> 0.909).
Tangential velocities (``velocity_min_parallax``) are available for nearby clusters but off: on
the TeachAstro Hyades field they did not keep the mixture on the cluster, and on a simulated
Hyades among 60,000 field stars they over-selected (precision 0.61); the field component's floor
(``FIELD_MIN_SCALE``) is what keeps a nearby cluster in a sparse field whole.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from ocdec.errors import OcdecError
from ocdec.methods.base import MethodResult
from ocdec.methods.priors import ClusterPriors

log = logging.getLogger(__name__)

# 4.74047 km/s is 1 AU/yr: v_t [km/s] = 4.74 * pm [mas/yr] / parallax [mas].
KMS_PER_MASYR_KPC = 4.74047

# Gaia DR2 end-of-mission-like uncertainties against G (Lindegren et al. 2018, fig. 9/table B.2),
# used only where a file has no error columns; DR3 is better, so this errs on the wide side.
_G_GRID = np.array([10.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0])
_PLX_ERR = np.array([0.03, 0.04, 0.05, 0.07, 0.10, 0.18, 0.33, 0.70, 1.50])
_PM_ERR = np.array([0.05, 0.07, 0.09, 0.13, 0.20, 0.33, 0.60, 1.20, 2.50])


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


def astrometric_errors(stars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pmra, pmdec, parallax) uncertainties: the file's where present and finite, else a DR2-like
    model against G, else a typical mid-magnitude value."""
    g = _column(stars, "phot_g_mean_mag")
    g_filled = np.where(np.isfinite(g), g, 18.0)
    model_plx = np.interp(g_filled, _G_GRID, _PLX_ERR)
    model_pm = np.interp(g_filled, _G_GRID, _PM_ERR)
    e_plx = _column(stars, "parallax_error")
    has_plx = np.isfinite(e_plx) & (e_plx > 0)
    # Without pm errors, the model's (scaling the file's parallax error by the model's ratio
    # instead was measured worse: NGC 188 DR2 F1 0.968 -> 0.959).
    fallback_pm = model_pm
    e_plx = np.where(has_plx, e_plx, model_plx)
    out = []
    for col in ("pmra_error", "pmdec_error"):
        e = _column(stars, col)
        out.append(np.where(np.isfinite(e) & (e > 0), e, fallback_pm))
    return out[0], out[1], e_plx


def _column(stars: pd.DataFrame, name: str) -> np.ndarray:
    if name not in stars:
        return np.full(len(stars), np.nan)
    return pd.to_numeric(stars[name], errors="coerce").to_numpy(dtype=float)


def angular_separation_deg(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> np.ndarray:
    """Great-circle separation (haversine, stable at small angles)."""
    r1, d1, r0, d0 = map(np.radians, (ra, dec, ra0, dec0))
    h = np.sin((d1 - d0) / 2) ** 2 + np.cos(d1) * np.cos(d0) * np.sin((r1 - r0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


@dataclass
class Astrometry:
    """The usable stars' astrometry as plain arrays (row index into the input in ``rows``)."""

    rows: np.ndarray
    pmra: np.ndarray
    pmdec: np.ndarray
    parallax: np.ndarray
    e_pmra: np.ndarray
    e_pmdec: np.ndarray
    e_plx: np.ndarray
    g: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    has_sky: bool = field(default=False)

    @classmethod
    def from_stars(cls, stars: pd.DataFrame) -> Astrometry:
        for col in ("pmra", "pmdec", "parallax"):
            if col not in stars or not np.isfinite(_column(stars, col)).any():
                raise OcdecError(f"column {col!r} is missing or has no finite values")
        pmra, pmdec, plx = (_column(stars, c) for c in ("pmra", "pmdec", "parallax"))
        e_pmra, e_pmdec, e_plx = astrometric_errors(stars)
        ok = np.isfinite(pmra) & np.isfinite(pmdec) & np.isfinite(plx)
        rows = np.flatnonzero(ok)
        ra, dec = _column(stars, "ra")[rows], _column(stars, "dec")[rows]
        has_sky = bool(np.isfinite(ra).mean() > 0.99) if rows.size else False
        return cls(rows, pmra[rows], pmdec[rows], plx[rows], e_pmra[rows], e_pmdec[rows],
                   e_plx[rows], _column(stars, "phot_g_mean_mag")[rows], ra, dec, has_sky)

    def __len__(self) -> int:
        return int(self.rows.size)

    def as_velocities(self) -> Astrometry:
        """The same stars with proper motions replaced by tangential velocities (km/s),
        v = 4.74 pm / parallax, errors propagated (pm and parallax errors, first order). A nearby
        cluster's deep extent spreads its proper motions in proportion to 1/distance; its
        velocities stay compact. Stars with parallax <= 0 get NaN-free far-away values."""
        plx = np.where(self.parallax > 0, self.parallax, np.nan)
        k = KMS_PER_MASYR_KPC / plx
        vra, vdec = k * self.pmra, k * self.pmdec
        e_vra = k * np.hypot(self.e_pmra, self.pmra * self.e_plx / plx)
        e_vdec = k * np.hypot(self.e_pmdec, self.pmdec * self.e_plx / plx)
        far = ~np.isfinite(vra) | ~np.isfinite(vdec)
        big = 1e6
        return Astrometry(self.rows, np.where(far, big, vra), np.where(far, big, vdec),
                          self.parallax, np.where(far, 1.0, e_vra), np.where(far, 1.0, e_vdec),
                          self.e_plx, self.g, self.ra, self.dec, self.has_sky)


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


# ------------------------------------------------------------------- cluster + field mixture


@dataclass
class ClusterModel:
    """Gaussian cluster (intrinsic covariance) + Gaussian field in (pmra, pmdec, parallax), fitted
    by extreme deconvolution (Bovy et al. 2011) on the candidate window."""

    mean: np.ndarray  # (3,) cluster centre
    cov: np.ndarray  # (3, 3) intrinsic cluster covariance
    field_mean: np.ndarray
    field_cov: np.ndarray
    weight: float  # cluster fraction in the window
    candidates: np.ndarray  # indices into Astrometry of the window
    p_mixture: np.ndarray  # cluster responsibility of each candidate
    iterations: int
    sky: tuple[float, float, float] | None = None  # Plummer centre (xi, eta) and scale, deg
    sky_model: SkyModel | None = None
    fit: dict[str, Any] = field(default_factory=dict)
    halo: bool = False


def _stack(ast: Astrometry, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.stack([ast.pmra[idx], ast.pmdec[idx], ast.parallax[idx]], axis=1)
    err2 = np.stack([ast.e_pmra[idx], ast.e_pmdec[idx], ast.e_plx[idx]], axis=1) ** 2
    return x, err2


def _inv3(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and log-determinant of many symmetric 3x3 matrices (n, 3, 3) by the adjugate:
    several times faster than batched LAPACK at this size."""
    a, b, c = t[:, 0, 0], t[:, 0, 1], t[:, 0, 2]
    d, e, f = t[:, 1, 1], t[:, 1, 2], t[:, 2, 2]
    c00 = d * f - e * e
    c01 = c * e - b * f
    c02 = b * e - c * d
    c11 = a * f - c * c
    c12 = b * c - a * e
    c22 = a * d - b * b
    det = a * c00 + b * c01 + c * c02
    inv = np.stack([np.stack([c00, c01, c02], -1), np.stack([c01, c11, c12], -1),
                    np.stack([c02, c12, c22], -1)], axis=1) / det[:, None, None]
    return inv, np.log(det)


def _log_gauss(x: np.ndarray, mean: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log N(x_i | mean, T_i) and T_i^-1 for per-star covariances T (n, 3, 3)."""
    tinv, logdet = _inv3(t)
    d = x - mean
    maha = np.sum(d * (tinv @ d[:, :, None])[:, :, 0], axis=1)
    return -0.5 * (maha + logdet + x.shape[1] * math.log(2 * math.pi)), tinv


def _xd_update(x: np.ndarray, r: np.ndarray, mean: np.ndarray, cov: np.ndarray,
               tinv: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = x - mean
    vt = cov @ tinv  # (n, 3, 3): V T_i^-1
    b = mean + (vt @ d[:, :, None])[:, :, 0]
    w = r / max(r.sum(), 1e-300)
    new_mean = w @ b
    db = b - new_mean
    # sum_i w_i [(b_i - mu)(b_i - mu)^T + V - V T_i^-1 V]
    new_cov = (db * w[:, None]).T @ db + cov - np.tensordot(w, vt, axes=1) @ cov
    new_cov = 0.5 * (new_cov + new_cov.T) + np.diag(floor)
    return new_mean, new_cov


HALO_SCALE = 5.0  # the widest the cluster halo may be, in units of the core's width
# The narrowest the field component may be, in units of the cluster core's width along every axis.
# The candidate window spans 12 member spreads, so a real field in it is far wider; where the
# window holds almost only members (a nearby cluster in a sparse field), a free field component
# settled on half of the cluster (simulated Hyades, 20,000 field stars: recall 0.39).
FIELD_MIN_SCALE = 3.0


def at_least_as_wide(cov: np.ndarray, ref: np.ndarray, scale: float) -> np.ndarray:
    """``cov`` with every eigenvalue, in the frame where ``ref`` is the identity, raised to at
    least scale^2: no direction narrower than ``scale`` times ``ref``'s width along it."""
    chol = np.linalg.cholesky(ref)
    inv = np.linalg.inv(chol)
    vals, vecs = np.linalg.eigh(inv @ cov @ inv.T)
    if vals.min() >= scale**2:
        return cov
    raised = (vecs * np.maximum(vals, scale**2)) @ vecs.T
    out = chol @ raised @ chol.T
    return 0.5 * (out + out.T)


class SkyModel:
    """Positions in the likelihood: a Plummer cluster profile against the field's own star density.

    The field density is a smoothed 2-d histogram of all usable stars on the tangent plane, so any
    footprint (cone, box, holes) is handled; the Plummer profile is normalised over the occupied
    cells of that same grid.
    """

    def __init__(self, ast: Astrometry, ra0: float, dec0: float, cells: int = 40) -> None:
        self.ra0, self.dec0 = ra0, dec0
        self.xi, self.eta = tangent_plane(ast.ra, ast.dec, ra0, dec0)
        lo = np.minimum(self.xi.min(), self.eta.min())
        hi = np.maximum(self.xi.max(), self.eta.max())
        self.edges = np.linspace(lo, hi + 1e-9, cells + 1)
        h, _, _ = np.histogram2d(self.xi, self.eta, bins=(self.edges, self.edges))
        self.cell_area = float((self.edges[1] - self.edges[0]) ** 2)
        smooth = ndimage.gaussian_filter(h, 1.0, mode="constant")
        self.occupied = ndimage.binary_dilation(h > 0) & (smooth > 0)
        dens = np.where(self.occupied, smooth, 0.0)
        self.field_density_grid = dens / (dens.sum() * self.cell_area)
        self.centres = 0.5 * (self.edges[1:] + self.edges[:-1])
        self.ix = np.clip(np.digitize(self.xi, self.edges) - 1, 0, cells - 1)
        self.iy = np.clip(np.digitize(self.eta, self.edges) - 1, 0, cells - 1)

    def log_field(self, idx: np.ndarray) -> np.ndarray:
        d = self.field_density_grid[self.ix[idx], self.iy[idx]]
        return np.log(np.maximum(d, 1e-12))

    def log_cluster(self, idx: np.ndarray, x0: float, y0: float, a: float) -> np.ndarray:
        gx, gy = np.meshgrid(self.centres, self.centres, indexing="ij")
        prof = (1 + ((gx - x0) ** 2 + (gy - y0) ** 2) / a**2) ** -2
        norm = float((prof * self.occupied).sum() * self.cell_area)
        r2 = (self.xi[idx] - x0) ** 2 + (self.eta[idx] - y0) ** 2
        return -2 * np.log1p(r2 / a**2) - math.log(norm)

    def update(self, idx: np.ndarray, r: np.ndarray) -> tuple[float, float, float]:
        w = r / max(r.sum(), 1e-12)
        x0, y0 = float(w @ self.xi[idx]), float(w @ self.eta[idx])
        rad = np.hypot(self.xi[idx] - x0, self.eta[idx] - y0)
        order = np.argsort(rad)
        cum = np.cumsum(w[order])
        a = float(rad[order][np.searchsorted(cum, 0.5)])
        return x0, y0, max(a, 2 * (self.edges[1] - self.edges[0]))


def tangent_plane(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic projection (degrees) about (ra0, dec0)."""
    r, d, r0, d0 = map(np.radians, (ra, dec, ra0, dec0))
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(r - r0)
    xi = np.cos(d) * np.sin(r - r0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(r - r0)) / cosc
    return np.degrees(xi), np.degrees(eta)


def _e_step(x: np.ndarray, s: np.ndarray, fit: dict[str, Any], sky: SkyModel | None,
            sky_idx: np.ndarray | None, sky_f: np.ndarray | None = None
            ) -> tuple[np.ndarray, float, list[np.ndarray], list[np.ndarray]]:
    """Per-component responsibilities (n, K), mean log-likelihood, inverse total covariances.

    Components ``0 .. n_cluster - 1`` are the cluster (they share its sky profile), the rest the
    field."""
    use_sky = fit.get("sky") is not None and sky is not None and sky_idx is not None
    if use_sky:
        ls_c = sky.log_cluster(sky_idx, *fit["sky"])  # type: ignore[union-attr, misc]
        ls_f = sky.log_field(sky_idx) if sky_f is None else sky_f  # type: ignore[union-attr]
    logs, tinvs = [], []
    for j, (m, c, w) in enumerate(zip(fit["means"], fit["covs"], fit["weights"], strict=True)):
        lj, tinv = _log_gauss(x, m, c + s)
        if use_sky:
            lj = lj + (ls_c if j < fit["n_cluster"] else ls_f)
        logs.append(math.log(max(w, 1e-300)) + lj)
        tinvs.append(tinv)
    stacked = np.stack(logs, axis=1)
    top = stacked.max(axis=1, keepdims=True)
    norm = top[:, 0] + np.log(np.exp(stacked - top).sum(axis=1))
    return np.exp(stacked - norm[:, None]), float(norm.mean()), tinvs, []


def responsibilities(ast: Astrometry, idx: np.ndarray, fit: dict[str, Any],
                     sky: SkyModel | None) -> np.ndarray:
    """p(cluster | star) under a fitted mixture, for stars ``idx``."""
    x, err2 = _stack(ast, idx)
    s = np.zeros((len(x), 3, 3))
    s[:, [0, 1, 2], [0, 1, 2]] = err2
    resp = _e_step(x, s, fit, sky, idx if sky is not None else None)[0]
    return resp[:, : fit["n_cluster"]].sum(axis=1)


def initial_fit(x: np.ndarray, mean: np.ndarray, cov: np.ndarray, halo: bool) -> dict[str, Any]:
    """Cluster core at the peak, optionally a wider cluster halo (binaries, unresolved systematic
    errors, escapers: the Gaussian core's tails are too thin for real clusters), broad field."""
    means, covs, weights = [mean], [cov], [0.4]
    if halo:
        means.append(mean.copy())
        covs.append(cov * HALO_SCALE**2)
        weights.append(0.1)
    means.append(np.median(x, axis=0))
    covs.append(np.cov(x, rowvar=False) + np.diag([1e-4] * 3))
    weights.append(1.0 - sum(weights))
    return {"means": means, "covs": covs, "weights": np.array(weights),
            "n_cluster": 2 if halo else 1, "sky": None}


def fit_mixture(x: np.ndarray, err2: np.ndarray, mean: np.ndarray, cov: np.ndarray,
                sky: SkyModel | None = None, sky_idx: np.ndarray | None = None,
                init: dict[str, Any] | None = None, max_iter: int = 200, tol: float = 1e-6,
                sample_weight: np.ndarray | None = None, halo: bool = True
                ) -> tuple[dict[str, Any], np.ndarray, int]:
    """Extreme-deconvolution EM (Bovy et al. 2011) of cluster core (+ halo) and field, with the sky
    profile of each where ``sky`` is given; deterministic. Returns the fit, the cluster
    responsibility of each star and the iterations run."""
    s = np.zeros((len(x), 3, 3))
    s[:, [0, 1, 2], [0, 1, 2]] = err2
    fit = dict(init) if init is not None else initial_fit(x, mean, cov, halo)
    fit["means"] = [np.array(m) for m in fit["means"]]
    fit["covs"] = [np.array(c) for c in fit["covs"]]
    sw = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, float)
    floor = np.array([1e-6, 1e-6, 1e-8])
    prev = -np.inf
    it = 0
    nc = fit["n_cluster"]
    resp = np.zeros((len(x), len(fit["means"])))
    sky_f = None
    if sky is not None and sky_idx is not None:
        sky_f = sky.log_field(sky_idx)
        if fit.get("sky") is None:
            d = x - mean
            core = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov + np.diag(err2.mean(0))), d) < 9
            fit["sky"] = sky.update(sky_idx, core.astype(float))
    else:
        fit["sky"] = None
    for it in range(1, max_iter + 1):  # noqa: B007 (returned: iterations used)
        resp, ll, tinvs, _ = _e_step(x, s, fit, sky, sky_idx, sky_f)
        w = sw[:, None] * resp
        fit["weights"] = np.clip(w.sum(axis=0) / sw.sum(), 1e-6, None)
        fit["weights"] /= fit["weights"].sum()
        for j in range(len(fit["means"])):
            fit["means"][j], fit["covs"][j] = _xd_update(x, w[:, j], fit["means"][j],
                                                         fit["covs"][j], tinvs[j], floor)
        if nc == 2:
            # The halo shares the core's centre and is at most HALO_SCALE times as wide: free, it
            # would grow into the field wherever faint stars' errors are large.
            fit["means"][1] = fit["means"][0].copy()
            ratio = np.trace(fit["covs"][1]) / np.trace(fit["covs"][0])
            if ratio > HALO_SCALE**2:
                fit["covs"][1] = fit["covs"][1] * (HALO_SCALE**2 / ratio)
        fit["covs"][-1] = at_least_as_wide(fit["covs"][-1], fit["covs"][0], FIELD_MIN_SCALE)
        if fit["sky"] is not None:
            fit["sky"] = sky.update(sky_idx, w[:, :nc].sum(axis=1))  # type: ignore[union-attr]
        if abs(ll - prev) < tol:
            break
        prev = ll
    _summarise_cluster(fit)
    return fit, resp[:, :nc].sum(axis=1), it


def _summarise_cluster(fit: dict[str, Any]) -> None:
    """The cluster as one distribution (moment-matched over its components): ``mean``, ``cov``,
    ``weight``; the core as ``core_mean``, ``core_cov``."""
    nc = fit["n_cluster"]
    w = np.asarray(fit["weights"][:nc], float)
    w = w / w.sum()
    means = np.array(fit["means"][:nc])
    mean = w @ means
    cov = sum(wj * (cj + np.outer(mj - mean, mj - mean))
              for wj, mj, cj in zip(w, means, fit["covs"][:nc], strict=True))
    fit.update({"mean": mean, "cov": cov, "weight": float(np.sum(fit["weights"][:nc])),
                "core_mean": fit["means"][0], "core_cov": fit["covs"][0]})


def member_covariances(cov: np.ndarray, err2: np.ndarray) -> np.ndarray:
    """(n, 3, 3): the cluster's intrinsic covariance plus each star's (diagonal) error variances,
    the spread a member has in (pmra, pmdec, parallax)."""
    t = np.repeat(cov[None, :, :], len(err2), axis=0)
    t[:, [0, 1, 2], [0, 1, 2]] += err2
    return t


def _window(ast: Astrometry, mean: np.ndarray, cov: np.ndarray, radius: float) -> np.ndarray:
    """Stars within a Mahalanobis radius of the cluster, counting each star's own errors."""
    x, err2 = _stack(ast, np.arange(len(ast)))
    # Cheap box first (the cluster is a tiny part of a large field), then the exact distance.
    reach = radius * np.sqrt(np.diag(cov)[None, :] + err2)
    box = np.flatnonzero(np.all(np.abs(x - mean) < reach, axis=1))
    t = member_covariances(cov, err2[box])
    d = x[box] - mean
    maha = np.sum(d * (_inv3(t)[0] @ d[:, :, None])[:, :, 0], axis=1)
    return box[maha < radius**2]


def fit_cluster_model(ast: Astrometry, peak: Peak, sigma_v_kms: float = 1.0,
                      window_sigma: float = 12.0, use_sky: bool = True,
                      max_fit_stars: int = 20_000, halo: bool = True,
                      velocity: bool = False) -> ClusterModel:
    """Start at the peak with a velocity-dispersion-sized cluster; fit; re-cut the window on the
    fitted cluster; fit again (with the sky profiles where the stars have positions).

    The second fit adds a cluster halo (``halo``) only where the first fit's intrinsic proper-motion
    width is below the members' median error: there the tails (binary orbits, underestimated errors
    of bright stars) are what a single Gaussian misses; with wide nearby clusters a halo would only
    soak up field stars of similar motion."""
    use_halo = False
    mean = np.array([peak.pmra, peak.pmdec, peak.parallax])
    # In tangential-velocity coordinates (``velocity``) the dispersion is sigma_v itself.
    pm_sig = sigma_v_kms if velocity else sigma_v_kms * peak.parallax / KMS_PER_MASYR_KPC
    # A nearby cluster's depth (about +-10 pc) is a parallax spread of several per cent.
    plx_rel = 0.06 if velocity else 0.02
    cov = np.diag([pm_sig**2, pm_sig**2, (plx_rel * peak.parallax) ** 2 + 1e-4])
    fit: dict[str, Any] = {}
    r = np.zeros(0)
    idx = np.zeros(0, dtype=int)
    it = 0
    sky: SkyModel | None = None
    for step in range(2):
        if step == 1 and use_sky and ast.has_sky:
            # The sky profile is centred on the astrometric members of the first fit.
            from ocdec.methods.astrometry import sky_centre_and_r50

            members = idx[r >= 0.5] if (r >= 0.5).sum() >= 5 else idx
            c = sky_centre_and_r50(pd.DataFrame({"ra": ast.ra[members], "dec": ast.dec[members]}))
            sky = SkyModel(ast, c["ra"], c["dec"])
        idx = _window(ast, mean, cov, window_sigma)
        if idx.size < 10:
            raise OcdecError(f"only {idx.size} stars near the peak at pm ({peak.pmra:.2f}, "
                             f"{peak.pmdec:.2f}), parallax {peak.parallax:.3f}: too few to fit")
        # EM on at most max_fit_stars (a fixed-seed random subset keeps the cluster fraction
        # unbiased); the responsibilities of the whole window follow from the fitted model.
        fit_idx = idx
        if idx.size > max_fit_stars:
            rng = np.random.default_rng(0)
            fit_idx = np.sort(rng.choice(idx, max_fit_stars, replace=False))
        x, err2 = _stack(ast, fit_idx)
        fit, r, it = fit_mixture(x, err2, mean, cov, sky=sky, sky_idx=fit_idx if sky else None,
                                 halo=use_halo)
        mean, cov = fit["core_mean"], fit["core_cov"]
        if fit_idx.size != idx.size:
            r = responsibilities(ast, idx, fit, sky)
        if step == 0 and halo:
            e_pm = np.hypot(ast.e_pmra[idx], ast.e_pmdec[idx]) / math.sqrt(2)
            width = math.sqrt(0.5 * (cov[0, 0] + cov[1, 1]))
            use_halo = bool((r >= 0.5).any() and width < np.median(e_pm[r >= 0.5]))
    mean, cov = fit["mean"], fit["cov"]
    return ClusterModel(mean=mean, cov=cov, field_mean=fit["means"][-1],
                        field_cov=fit["covs"][-1], weight=fit["weight"], candidates=idx,
                        p_mixture=r, iterations=it, sky=fit.get("sky"), sky_model=sky, fit=fit,
        halo=use_halo)


def whitened_features(ast: Astrometry, idx: np.ndarray, mean: np.ndarray,
                      cov: np.ndarray) -> np.ndarray:
    """Offsets from the cluster centre in units of a member's expected spread: L_i^-1 (x_i - mu)
    with L_i L_i^T = intrinsic covariance + the star's error covariance. Members form a unit ball
    whatever their distance and magnitude, so one Euclidean metric (DEC's) fits every star."""
    x, err2 = _stack(ast, idx)
    chol = np.linalg.cholesky(member_covariances(cov, err2))
    return np.linalg.solve(chol, (x - mean)[:, :, None])[:, :, 0]


def log_error_volume(ast: Astrometry, idx: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """log |L_i| = 0.5 log det(intrinsic covariance + the star's error covariance): in the whitened
    units of :func:`whitened_features` the field's density at a star is its density in proper
    motion and parallax times |L_i|, so a faint star near the cluster's centre faces a field that
    many times denser than a bright one does (what extreme deconvolution accounts for)."""
    return 0.5 * np.linalg.slogdet(member_covariances(cov, _stack(ast, idx)[1]))[1]


# ------------------------------------------------------------------------ the default method


@dataclass(frozen=True)
class MemberSettings:
    """Settings of the default method (see the module docstring)."""

    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    threshold: float = 0.5  # members: p_member >= threshold
    min_stars: int = 50  # fewer usable stars than this: an error, not a guess
    sigma_v_kms: float = 1.0
    window_sigma: float = 12.0  # candidate window, in member spreads (intrinsic + errors)
    use_sky: bool = True
    max_fit_stars: int = 20_000
    halo: bool = True  # a second, wider cluster component (heavier tails than one Gaussian)
    # Peaks nearer than this parallax (mas) are modelled in tangential velocity rather than
    # proper motion (a nearby cluster's depth spreads its proper motions); None: never. Off by
    # default: on the Hyades field it was measured no better (see the module docstring).
    velocity_min_parallax: float | None = None
    bootstrap_iter: int = 60  # EM iterations of each seed's bootstrap refit (warm started)
    bagging: bool = False  # p_member = mean of the seeds' bootstrap posteriors (else full fit)
    run_dec: bool = True
    dec_radius: float = 5.0  # DEC runs on candidates within this whitened radius ...
    dec_max_stars: int = 20_000  # ... and at most this many (nearest first)
    dec_field_groups: int = 4  # DEC models the field as this many groups (K-Means of the field)
    # DEC's encoder: one linear layer as wide as the features (the settings' ``hidden`` is then
    # replaced); a non-linear encoder distorts the whitened geometry (module docstring).
    dec_linear_encoder: bool = True
    # DEC runs on stars whose error volume is at most e^this times the typical member's (log
    # det of intrinsic + error covariance, over its median among the mixture's members); beyond,
    # errors swamp the cluster's width, whitening squeezes such stars onto the cluster whatever
    # their motion, and the deconvolved mixture's posterior is kept. None: DEC on every star.
    dec_max_log_error_volume: float | None = 2.0
    peaks: PeakSettings = field(default_factory=PeakSettings)
    dec: Any = None  # ocdec.methods.dec.DecSettings; None: DEFAULT_DEC below

    def __post_init__(self) -> None:
        if not self.seeds:
            raise OcdecError("at least one seed is needed")
        if not 0 < self.threshold <= 1:
            raise OcdecError(f"membership threshold must be in (0, 1], got {self.threshold}")


def default_dec_settings(n_features: int | None = None) -> Any:
    """DEC as the membership model (measurements in the module docstring): the weighted
    Student-t mixture layer (alpha = 20: near-Gaussian tails, as the whitened features have), a
    linear autoencoder of the input's width, pretrained, its latent whitened on the initial
    cluster and kept fixed during self-training (so no IDEC reconstruction term), a small
    learning rate, and the per-cluster stopping rule (every group changes by
    < 1 % between target updates, after at least 3 epochs) rather than 0.1 % of all labels."""
    from ocdec.methods.dec import DecSettings

    # The width is the features' (3, or 5 with sky offsets); run_default sets it (see
    # MemberSettings.dec_linear_encoder), so the value without n_features is a placeholder.
    hidden = (5,) if n_features is None else (n_features,)
    return DecSettings(hidden=hidden, pretrain_epochs=40, cluster_epochs=30, batch_size=256,
                       learning_rate=1e-4, alpha=20.0, min_cluster_epochs=3, cluster_tol=0.01,
                       reconstruction_weight=0.0, mixture=True, whiten_cluster=0,
                       train_encoder=False,
                       log_every_s=30.0)


@dataclass
class MembershipResult:
    p_member: np.ndarray  # (n_input,) in [0, 1]; 0 for stars without astrometry or off-window
    member: np.ndarray  # (n_input,) bool
    group: np.ndarray  # (n_input,) int: 0 cluster (member), 1 field candidate, -1 not a candidate
    history: pd.DataFrame  # DEC training curve (empty when DEC is not run)
    seeds: list[int]
    seed_jaccard: float
    seed_jaccard_min: float
    peak: Peak
    peaks: list[Peak]
    model: dict[str, Any]
    stages: dict[str, float]
    diagnostics: dict[str, Any] = field(default_factory=dict)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def seed_agreement(member_sets: list[np.ndarray]) -> tuple[float, float]:
    """Mean and minimum pairwise Jaccard index of the seeds' member sets (1, 1 for one seed)."""
    vals = [jaccard(member_sets[i], member_sets[j])
            for i in range(len(member_sets)) for j in range(i + 1, len(member_sets))]
    return (float(np.mean(vals)), float(np.min(vals))) if vals else (1.0, 1.0)


def run_default(stars: pd.DataFrame, priors: ClusterPriors | None = None,
                settings: MemberSettings | None = None) -> MembershipResult:
    """Members of the region's open cluster among ``stars`` (a canonical star table)."""
    import time

    priors = priors or ClusterPriors()
    settings = settings or MemberSettings()
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    ast = Astrometry.from_stars(stars)
    if len(ast) < settings.min_stars:
        raise OcdecError(f"only {len(ast)} stars with complete astrometry (pmra, pmdec, parallax);"
                         f" the default method needs at least {settings.min_stars}")
    peaks = score_peaks(ast, find_peaks(ast, priors, settings.peaks), priors, settings.peaks)
    if not peaks:
        raise OcdecError("no overdensity in proper motion and parallax stands out of the field "
                         f"(significance > {settings.peaks.min_significance}); no cluster found")
    peak = peaks[0]
    stages["peaks"] = time.perf_counter() - t0
    log.info("cluster peak: pm (%.3f, %.3f) mas/yr, parallax %.3f mas, significance %.1f, "
             "sky concentration %.2f, prior weight %.2f (%d peaks)", peak.pmra, peak.pmdec,
             peak.parallax, peak.significance, peak.concentration, peak.prior_weight, len(peaks))

    t0 = time.perf_counter()
    velocity = (settings.velocity_min_parallax is not None
                and peak.parallax >= settings.velocity_min_parallax)
    if velocity:
        k = KMS_PER_MASYR_KPC / peak.parallax
        ast = ast.as_velocities()
        peak = Peak(**{**peak.__dict__, "pmra": peak.pmra * k, "pmdec": peak.pmdec * k})
        log.info("nearby cluster (parallax %.2f mas): fitting tangential velocities (%.2f, %.2f)"
                 " km/s", peak.parallax, peak.pmra, peak.pmdec)
    model = fit_cluster_model(ast, peak, settings.sigma_v_kms, settings.window_sigma,
                              settings.use_sky, settings.max_fit_stars, settings.halo,
                              velocity=velocity)
    stages["mixture"] = time.perf_counter() - t0
    log.info("mixture: %d candidates, cluster centre (%.3f, %.3f, %.4f), intrinsic sd (%.3f, "
             "%.3f, %.4f), %d EM iterations", model.candidates.size, *model.mean,
             *np.sqrt(np.diag(model.cov)), model.iterations)

    n = len(stars)
    p_member = np.zeros(n)
    group = np.full(n, -1, dtype=np.int64)
    history = pd.DataFrame(columns=["seed", "phase", "epoch", "loss", "label_change"])
    diagnostics: dict[str, Any] = {"n_candidates": int(model.candidates.size)}
    t0 = time.perf_counter()
    if settings.run_dec:
        # DEC is the membership model: p_member is the seeds' mean of its cluster q.
        p_cand, per_seed, history, used, dec_diag = dec_membership(ast, model, settings)
        stages["dec"] = time.perf_counter() - t0
        diagnostics.update(dec_diag)
        rows = ast.rows[model.candidates[used]]
        p_member[rows] = np.clip(p_cand[used], 0.0, 1.0)
        group[rows] = np.where(p_cand[used] >= settings.threshold, 0, 1)
    else:
        # The mixture alone (fast, for tests and as a cross-check): its full-data posterior, with
        # bootstrap refits per seed measuring stability (``bagging``: their mean).
        per_seed = [_bootstrap_responsibilities(ast, model, seed, settings)
                    for seed in settings.seeds]
        p_cand = np.mean(per_seed, axis=0) if settings.bagging else model.p_mixture
        stages["ensemble"] = time.perf_counter() - t0
        rows = ast.rows[model.candidates]
        p_member[rows] = np.clip(p_cand, 0.0, 1.0)
        group[rows] = np.where(p_cand >= settings.threshold, 0, 1)
        diagnostics["bootstrap_members"] = [int((p >= settings.threshold).sum())
                                            for p in per_seed]
    member = p_member >= settings.threshold
    jac_mean, jac_min = seed_agreement([p >= settings.threshold for p in per_seed])
    return MembershipResult(
        p_member=p_member, member=member, group=group, history=history,
        seeds=list(settings.seeds), seed_jaccard=jac_mean, seed_jaccard_min=jac_min, peak=peak,
        peaks=peaks, model=_model_summary(model), stages=stages, diagnostics=diagnostics)


def _bootstrap_responsibilities(ast: Astrometry, model: ClusterModel, seed: int,
                                settings: MemberSettings) -> np.ndarray:
    """One ensemble member: refit the mixture on a Poisson bootstrap of the window (weights from
    ``seed``), warm started at the full fit; responsibilities of every candidate."""
    idx = model.candidates
    rng = np.random.default_rng(seed)
    fit_idx = idx
    if idx.size > settings.max_fit_stars:
        fit_idx = np.sort(rng.choice(idx, settings.max_fit_stars, replace=False))
    weights = rng.poisson(1.0, fit_idx.size).astype(float)
    x, err2 = _stack(ast, fit_idx)
    sky = model.sky_model
    fit, _, _ = fit_mixture(x, err2, model.mean, model.cov, sky=sky,
                            sky_idx=fit_idx if sky is not None else None, init=model.fit,
                            max_iter=settings.bootstrap_iter, sample_weight=weights,
                            halo=model.halo)
    return responsibilities(ast, idx, fit, sky)


def _model_summary(model: ClusterModel) -> dict[str, Any]:
    sd = np.sqrt(np.diag(model.cov))
    out: dict[str, Any] = {
        "pmra": float(model.mean[0]), "pmdec": float(model.mean[1]),
        "parallax": float(model.mean[2]), "pmra_sd": float(sd[0]), "pmdec_sd": float(sd[1]),
        "parallax_sd": float(sd[2]), "cluster_fraction": float(model.weight),
        "n_candidates": int(model.candidates.size), "em_iterations": int(model.iterations),
        "halo": model.halo,
    }
    if model.sky is not None and model.sky_model is not None:
        out["plummer_scale_deg"] = float(model.sky[2])
    return out


def dec_features(ast: Astrometry, model: ClusterModel, idx: np.ndarray) -> np.ndarray:
    """DEC's input for candidates ``idx`` (indices into ``model.candidates``): the whitened
    astrometric offsets (a member's expected spread is a unit ball at any distance and magnitude)
    and, where the stars have positions, the tangent-plane offsets from the fitted sky centre in
    units of the Plummer scale (members within about one unit, the field spread over the cone)."""
    z = whitened_features(ast, model.candidates[idx], model.mean, model.cov)
    if model.sky is not None and model.sky_model is not None:
        x0, y0, a = model.sky
        rows = model.candidates[idx]
        sky = np.stack([(model.sky_model.xi[rows] - x0) / a,
                        (model.sky_model.eta[rows] - y0) / a], axis=1)
        z = np.concatenate([z, sky], axis=1)
    return z


def field_split(x: np.ndarray, p0: np.ndarray, n_field: int) -> np.ndarray:
    """DEC's initial soft assignment: column 0 the mixture's cluster probability, the rest
    (1 - p0) split among ``n_field`` field groups by K-Means of the likely non-members (fixed
    random state): one broad field kernel is a poor model of a field that is dense on one side of
    the cluster, and lets the cluster group grow into it."""
    from sklearn.cluster import KMeans

    field_rows = p0 < 0.5
    n_field = max(1, min(n_field, int(field_rows.sum()) // 20))
    init = np.zeros((x.shape[0], 1 + n_field))
    init[:, 0] = p0
    if n_field == 1:
        init[:, 1] = 1 - p0
        return init
    km = KMeans(n_clusters=n_field, n_init=4, random_state=0).fit(x[field_rows])
    init[np.arange(x.shape[0]), 1 + km.predict(x)] = 1 - p0
    # A group no star fell into cannot place its centroid: drop it.
    return init[:, init.sum(axis=0) > 0]


def pad_bucket(n: int, smallest: int = 1024) -> int:
    """The padded size DEC runs at for ``n`` stars: the next power of two (at least ``smallest``),
    so that fields of similar size share one compilation."""
    return max(smallest, 1 << max(n - 1, 1).bit_length())


MIN_DEC_GROUP = 5  # stars DEC's cluster and field groups each need to start from


def dec_membership(ast: Astrometry, model: ClusterModel, settings: MemberSettings
                   ) -> tuple[np.ndarray, list[np.ndarray], pd.DataFrame, np.ndarray, dict]:
    """DEC as the membership model: a weighted Student-t mixture DEC (k = 2, cluster and field) on
    the candidates' :func:`dec_features`, started from the mixture's member/field split (centroids,
    mixing weights and scales), one run per seed. Returns p_member of every candidate (the seeds'
    mean of DEC's cluster soft assignment; 0 beyond ``dec_radius``), each seed's cluster q, the
    training history, the candidates DEC ran on and diagnostics."""
    from ocdec.methods.dec import fit_dec

    z3 = whitened_features(ast, model.candidates, model.mean, model.cov)
    radius = np.linalg.norm(z3, axis=1)
    vol = log_error_volume(ast, model.candidates, model.cov)
    likely = model.p_mixture >= 0.5
    excess = vol - np.median(vol[likely] if likely.any() else vol)
    informative = np.ones(vol.size, bool)
    if settings.dec_max_log_error_volume is not None:
        informative = excess < settings.dec_max_log_error_volume
    use = np.flatnonzero(informative & (radius < settings.dec_radius))
    if (model.p_mixture[use] < 0.5).sum() < MIN_DEC_GROUP:
        # Hardly any field near the cluster (sparse or simulated fields): give DEC every candidate
        # so that its field groups have stars to sit on.
        use = np.flatnonzero(informative)
    if use.size > settings.dec_max_stars:
        use = np.sort(use[np.argsort(radius[use], kind="stable")[: settings.dec_max_stars]])
    p0 = np.clip(model.p_mixture[use], 1e-4, 1 - 1e-4)
    if (p0 >= 0.5).sum() < MIN_DEC_GROUP or (p0 < 0.5).sum() < MIN_DEC_GROUP:
        raise OcdecError(f"{use.size} candidates near the cluster, {int((p0 >= 0.5).sum())} of "
                         f"them likely members: DEC needs at least {MIN_DEC_GROUP} members and "
                         f"{MIN_DEC_GROUP} field stars")
    x = dec_features(ast, model, use)
    dec_settings = settings.dec or default_dec_settings(x.shape[1])
    if settings.dec_linear_encoder and tuple(dec_settings.hidden) != (x.shape[1],):
        from dataclasses import replace

        dec_settings = replace(dec_settings, hidden=(x.shape[1],))
    init = field_split(x, p0, settings.dec_field_groups)
    pad = pad_bucket(use.size)
    histories, qs = [], []
    core = np.argsort(radius[use], kind="stable")[: max(5, use.size // 20)]
    for seed in settings.seeds:
        res = fit_dec(x, init.shape[1], dec_settings, seed, init_assignment=init, pad_to=pad)
        # Group 0 started on the members; check that it still holds the cluster centre.
        cl = int(np.argmax(res.q[core].mean(axis=0)))
        qs.append(res.q[:, cl].astype(np.float64))
        histories.append(res.history)
    p_use = np.mean(qs, axis=0)
    p_cand = np.zeros(model.candidates.size)
    p_cand[use] = p_use
    # Stars whose errors swamp the cluster's width keep the deconvolved mixture's posterior.
    blurred = np.flatnonzero(~informative)
    p_cand[blurred] = model.p_mixture[blurred]
    mix = model.p_mixture[use] >= settings.threshold
    diag = {"dec_stars": int(use.size), "dec_padded_to": int(pad),
            "error_dominated": int(blurred.size),
            "error_dominated_members": int((model.p_mixture[blurred] >= settings.threshold).sum()),
            "dec_jaccard_with_mixture": jaccard(p_use >= settings.threshold, mix),
            "dec_seed_members": [int((q >= settings.threshold).sum()) for q in qs],
            "mixture_members": int(mix.sum())}
    log.info("DEC on %d candidates (padded to %d): %d members (mixture initialisation %d), "
             "Jaccard with the initialisation %.3f", use.size, pad,
             int((p_use >= settings.threshold).sum()), int(mix.sum()),
             diag["dec_jaccard_with_mixture"])
    return (p_cand, qs, pd.concat(histories, ignore_index=True), np.union1d(use, blurred), diag)


class DefaultMethod:
    """ocdec's default method as a plug-in (:class:`ocdec.methods.base.Method`)."""

    name = "default"
    settings_class = MemberSettings
    member_columns: dict[str, str] = {}
    table_columns: dict[str, tuple[str, ...]] = {}

    def default_settings(self) -> MemberSettings:
        return MemberSettings(dec=default_dec_settings())

    def run(self, stars: pd.DataFrame, priors: ClusterPriors, settings: MemberSettings,
            seeds: Sequence[int]) -> MethodResult:
        from dataclasses import replace

        from ocdec.methods.astrometry import cluster_parameters

        result = run_default(stars, priors, replace(settings, seeds=tuple(seeds)))
        summary = {"seeds": result.seeds, "seed_jaccard": result.seed_jaccard,
                   "seed_jaccard_min": result.seed_jaccard_min, "stages": result.stages,
                   "peak": result.peak.as_dict(), "model": result.model,
                   "diagnostics": result.diagnostics}
        return MethodResult(p_member=result.p_member, member=result.member, group=result.group,
                            parameters=cluster_parameters(stars, result.member),
                            history=result.history, summary=summary)


METHOD = DefaultMethod()
