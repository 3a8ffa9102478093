"""Isochrone fit of a cluster's colour-magnitude diagram (G against BP-RP) over the PARSEC grid.

Likelihood of member i (weighted by its membership probability w_i in the sum of logs):

    L_i = (1 - f_out) [(1 - f_bin) S_i(0) + f_bin/2 (S_i(0.3) + S_i(0.65))] + f_out / area

S_i(delta) is a two-dimensional Gaussian in the star's distance to the reddened isochrone (the
polyline through its evolutionary points) after shifting the star ``delta`` magnitudes fainter:
delta = 0 is a single star, 0.3 and 0.65 (each with an extra 0.15 and 0.10 mag width) cover the
band of unresolved binaries up to the equal-mass sequence 0.75 mag above. The widths combine the
photometric errors (a Gaia error model in G), an isochrone-mismatch floor, and differential
reddening (a fraction of the extinction). ``f_out / area`` is a uniform field-contaminant term.
The distance modulus has a Gaussian prior from the parallax distance; log age and A_0 flat.

The likelihood is evaluated with JAX over the whole grid: a coarse pass over every grid age and
A_0 in steps of 0.2 mag on every second isochrone point, single stars only (swept again with
the binary band in steps of 0.1 mag with the differential reddening of its optimum's extinction,
within :data:`SECOND_PASS_AV` of it), then a fine box around the best (9 ages 0.045 dex apart,
interpolating isochrones between grid ages, 9 A_0 0.04 mag apart, 7 distance moduli).
Percentiles 16/50/84 come from the fine grid's marginal posteriors, widened in quadrature by
model floors (:data:`SYSTEMATIC_FLOORS`): isochrone sets differ by more than the formal posterior
of hundreds of stars.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from ocdec.physics.isochrones import IsochroneGrid, interpolate_many

log = logging.getLogger(__name__)

BINARY_SHIFTS = ((0.3, 0.15), (0.65, 0.10))  # (mag brighter, extra width) of the binary band
#: Widths added in quadrature to the posterior 16/84 (isochrone-set systematics, grid steps).
SYSTEMATIC_FLOORS = {"log_age": 0.05, "av": 0.03, "distance_modulus": 0.02, "feh": 0.1}
#: Grid metallicities tried when [M/H] is free (open clusters: Netopil et al. 2016).
FREE_FEH_RANGE = (-1.0, 0.3)
#: The coarse pass: A_0 in steps of COARSE_AV_STEP (mag) on single stars, then swept again with
#: the binary band in steps of 0.1 mag with the differential reddening of its optimum's
#: extinction, SECOND_PASS_AV either side of it (single stars find the extinction within a few
#: tenths; 1.0 mag gave the same fits on the 29 Hunt & Reffert and 9 Babusiaux clusters at
#: twice the cost); on every COARSE_POINT_STEP-th isochrone point.
COARSE_AV_STEP = 0.2
SECOND_PASS_AV = 0.5
COARSE_POINT_STEP = 2


@dataclass(frozen=True)
class CmdSettings:
    """Settings of the isochrone fit."""

    feh: float | None = 0.0  # None: [M/H] free on the grid; default solar (see docs/physics.md)
    binary_fraction: float = 0.3
    outlier_fraction: float = 0.05
    colour_floor: float = 0.03  # mag, isochrone mismatch in BP-RP
    mag_floor: float = 0.05  # mag, in G
    differential_reddening: float = 0.1  # fraction of the extinction, as a spread
    av_max: float = 5.0
    log_age_range: tuple[float, float] = (6.0, 10.2)
    abs_g_max: float = 9.0  # fainter stars (M dwarfs) are poorly modelled in BP-RP
    g_max: float = 19.0  # apparent: BP-RP becomes unreliable fainter
    max_stars: int = 384
    min_stars: int = 10
    #: The log-likelihood is scaled by min(1, effective_stars / sum of weights): residuals from
    #: an isochrone are correlated (the isochrone set's own systematics), so hundreds of stars do
    #: not constrain age, extinction and distance as if independent. None: no tempering.
    effective_stars: float | None = 100.0
    seed: int = 0


@dataclass
class CmdResult:
    """Posterior summary of the isochrone fit; ``status`` "ok" or "failed" with ``reason``."""

    status: str
    reason: str | None = None
    log_age: tuple[float, float, float] = (math.nan,) * 3
    av: tuple[float, float, float] = (math.nan,) * 3
    distance_modulus: tuple[float, float, float] = (math.nan,) * 3
    feh: tuple[float, float, float] = (math.nan,) * 3
    feh_fixed: bool = True
    n_stars: int = 0
    outlier_fraction: float = math.nan
    best: dict[str, float] = field(default_factory=dict)


def photometric_errors(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Typical Gaia DR3 errors of BP-RP and G at magnitude ``g`` (Riello et al. 2021, Fig. 14)."""
    g = np.asarray(g, dtype=float)
    sig_col = 0.004 + 0.15 * 10 ** (0.4 * (np.clip(g, 5, 21) - 20.0))
    sig_g = 0.001 + 0.01 * 10 ** (0.4 * (np.clip(g, 5, 21) - 20.0))
    return sig_col, sig_g


def fit_cmd(colour: np.ndarray, gmag: np.ndarray, weight: np.ndarray, grid: IsochroneGrid,
            dm_prior: tuple[float, float], settings: CmdSettings | None = None,
            gmag_spread: np.ndarray | None = None) -> CmdResult:
    """Fit age, A_0, distance modulus (and [M/H] when ``settings.feh`` is None).

    ``dm_prior`` is (mean, sigma) of the distance modulus from the parallaxes; ``gmag_spread`` an
    optional per-star extra G width (the cluster's depth). Never raises for bad data: a failed
    fit comes back with ``status="failed"`` and a reason.
    """
    s = settings or CmdSettings()
    stars = _select(colour, gmag, weight, gmag_spread, dm_prior[0], s)
    if stars is None or stars["w"].sum() < s.min_stars:
        n = 0 if stars is None else int(round(stars["w"].sum()))
        return CmdResult("failed", f"too few members with G and BP-RP for an isochrone fit "
                         f"({n} < {s.min_stars})")
    if s.feh is not None:
        mhs = [float(s.feh)]
    else:
        mhs = [float(m) for m in grid.mh if FREE_FEH_RANGE[0] <= m <= FREE_FEH_RANGE[1]]
    lo_age = max(s.log_age_range[0], float(grid.log_age[0]))
    hi_age = min(s.log_age_range[1], float(grid.log_age[-1]))
    mu, sig = dm_prior
    posts, errors = [], []
    for mh in mhs:  # free [M/H]: one full fit per grid metallicity, compared by evidence
        try:
            coarse = _coarse(stars, grid, [mh], lo_age, hi_age, mu, sig, s)
            posts.append(_fine(stars, grid, coarse, lo_age, hi_age, mu, sig, s))
        except ValueError as err:
            errors.append(str(err))
    if not posts:
        return CmdResult("failed", errors[0], n_stars=int(stars["n"]))
    return _summarise(_combine(posts), stars, s, lo_age, hi_age)


def _combine(posts: list[dict]) -> dict:
    """One metallicity's posterior (the most probable), with the [M/H] marginal over all."""
    if len(posts) == 1:
        return posts[0]
    top = max(float(np.nanmax(p["logp"])) for p in posts)
    # evidence of each metallicity: its posterior mass on its grid (same cell sizes)
    log_z = np.array([top + np.log(np.nansum(np.exp(p["logp"] - top))) for p in posts])
    best = dict(posts[int(np.argmax(log_z))])
    best["feh_marginal"] = (np.array([p["mh"][0] for p in posts]), np.exp(log_z - log_z.max()))
    return best


def _select(colour: np.ndarray, gmag: np.ndarray, weight: np.ndarray,
            spread: np.ndarray | None, mu: float, s: CmdSettings) -> dict | None:
    c = np.asarray(colour, dtype=float)
    g = np.asarray(gmag, dtype=float)
    w = np.asarray(weight, dtype=float)
    extra = np.zeros_like(g) if spread is None else np.nan_to_num(np.asarray(spread, float))
    ok = np.isfinite(c) & np.isfinite(g) & np.isfinite(w) & (w > 0)
    ok &= (g < s.g_max) & (g - mu < s.abs_g_max)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return None
    if idx.size > s.max_stars:
        # the bright end (turn-off, giants) carries the age: keep it all, sample the rest
        order = idx[np.argsort(g[idx])]
        n_bright = s.max_stars // 4
        rng = np.random.default_rng(s.seed)
        rest = rng.choice(order[n_bright:], s.max_stars - n_bright, replace=False)
        idx = np.sort(np.concatenate([order[:n_bright], rest]))
    sig_c, sig_g = photometric_errors(g[idx])
    n = idx.size
    size = -(-n // 128) * 128  # padded: one compiled program per bucket of 128
    pad = size - n

    def padded(x: np.ndarray, fill: float) -> np.ndarray:
        return np.concatenate([x, np.full(pad, fill)]).astype(np.float32)

    area = (np.ptp(c[idx]) + 1.0) * (np.ptp(g[idx]) + 2.0)
    return {
        "c": padded(c[idx], 0.0), "g": padded(g[idx], 0.0), "w": padded(w[idx], 0.0),
        "sc2": padded(sig_c**2 + s.colour_floor**2, 1.0),
        "sm2": padded(sig_g**2 + s.mag_floor**2 + extra[idx] ** 2, 1.0),
        "n": n, "index": idx, "log_area": float(np.log(area)),
    }


def _kernel():
    """The compiled grid likelihood (built once per process, on first use)."""
    if "fn" in _KERNEL:
        return _KERNEL["fn"]
    import jax
    import jax.numpy as jnp

    from ocdec.physics.extinction import gaia_extinction

    def star_terms(mg, x0, av, dm, connected, st, fb, fo, fdr, shifts):
        # fdr = (colour width, G width) of differential reddening, fixed during a pass so the
        # Gaussian normalisation does not pull the extinction down
        """Per-star log of the single, binary and outlier terms for one isochrone."""
        ag, ecol = gaia_extinction(x0, av, xp=jnp)
        cc, cm = x0 + ecol, mg + ag + dm
        valid = connected & jnp.isfinite(cc[:-1] + cc[1:] + cm[:-1] + cm[1:])
        ax, ay = jnp.where(valid, cc[:-1], 0.0), jnp.where(valid, cm[:-1], 0.0)
        bx = jnp.where(valid, cc[1:] - cc[:-1], 0.0)
        by = jnp.where(valid, cm[1:] - cm[:-1], 0.0)
        sc2 = st["sc2"] + fdr[0] ** 2
        sm2 = st["sm2"] + fdr[1] ** 2
        # (segment, star) arrays, the nearest segment a minimum over the leading axis: XLA's
        # CPU code then runs along the stars in vector lanes. In (star, segment) order it ran
        # the minimum over each star's segments element by element, with the distances fused
        # into it: the same values, bit for bit, 15 to 40 times slower (docs/performance.md).
        ax, ay, bx, by = ax[:, None], ay[:, None], bx[:, None], by[:, None]
        dx = st["c"][None, :] - ax
        dy0 = st["g"][None, :] - ay
        ux = (1.0 / sc2)[None, :]
        logs = []
        for shift, width in shifts:
            var_m = sm2 + width**2
            uy = (1.0 / var_m)[None, :]
            dy = dy0 + shift
            t = jnp.clip((dx * bx * ux + dy * by * uy) / (bx**2 * ux + by**2 * uy + 1e-12), 0, 1)
            d2 = (dx - t * bx) ** 2 * ux + (dy - t * by) ** 2 * uy
            d2 = jnp.min(jnp.where(valid[:, None], d2, jnp.inf), axis=0)
            logs.append(-0.5 * d2 - 0.5 * jnp.log(sc2 * var_m) - jnp.log(2 * jnp.pi))
        single = jnp.log1p(-fb) + logs[0]
        if len(logs) > 1:
            binary = jnp.log(fb / (len(logs) - 1)) + jax.scipy.special.logsumexp(
                jnp.stack(logs[1:]), axis=0)
            cluster = jnp.logaddexp(single, binary)
        else:
            binary = jnp.full_like(single, -jnp.inf)
            cluster = logs[0]
        outlier = jnp.log(fo) - st["log_area"]
        return jnp.log1p(-fo) + cluster, single, binary, outlier

    def total(mg, x0, av, dm, connected, st, fb, fo, fdr, shifts):
        cluster, _, _, outlier = star_terms(mg, x0, av, dm, connected, st, fb, fo, fdr, shifts)
        return jnp.sum(st["w"] * jnp.logaddexp(cluster, outlier))

    def grid(iso, avs, dms, connected, st, fb, fo, fdr, shifts):
        """log L over (ages, avs, dms); iso has shape (n_ages, K, 2)."""
        n_age, n_av = iso.shape[0], avs.shape[0]
        age_idx = jnp.repeat(jnp.arange(n_age), n_av)
        av_all = jnp.tile(avs, n_age)

        def one(args):
            i, av = args
            per_dm = jax.vmap(lambda dm: total(iso[i, :, 0], iso[i, :, 1], av, dm, connected,
                                               st, fb, fo, fdr, shifts))
            return per_dm(dms)

        # every extinction of one age at once: operations large enough for XLA's threads
        out = jax.lax.map(one, (age_idx, av_all), batch_size=n_av)
        return out.reshape(n_age, n_av, dms.shape[0])

    from ocdec.stored_programs import StoredProgram

    fn = {
        "grid": StoredProgram(grid, static_argnames=("shifts",)),
        "terms": StoredProgram(star_terms, static_argnames=("shifts",)),
    }
    _KERNEL["fn"] = fn
    return fn


_KERNEL: dict[str, dict] = {}


def _stars_jax(stars: dict) -> dict:
    return {k: stars[k] for k in ("c", "g", "w", "sc2", "sm2")} | {
        "log_area": np.float32(stars["log_area"])}


def _shifts(binaries: bool) -> tuple[tuple[float, float], ...]:
    return ((0.0, 0.0), *BINARY_SHIFTS) if binaries else ((0.0, 0.0),)


def _dr_widths(av: float, s: CmdSettings) -> np.ndarray:
    """Colour and G spreads of differential reddening: a fraction of E(BP-RP) and A_G at ``av``
    for a star of (BP-RP)_0 = 1."""
    from ocdec.physics.extinction import gaia_extinction

    a_g, e_col = gaia_extinction(1.0, av)
    return np.array([s.differential_reddening * e_col, s.differential_reddening * a_g],
                    dtype=np.float32)


def _loglike(stars: dict, grid: IsochroneGrid, mh: float, ages: np.ndarray, avs: np.ndarray,
             dms: np.ndarray, s: CmdSettings, binaries: bool = True,
             av_widths: float = 0.0) -> np.ndarray:
    iso = interpolate_many(grid, mh, ages)[:, :, :2].astype(np.float32)
    fn = _kernel()["grid"]
    out = fn(iso, avs.astype(np.float32), dms.astype(np.float32), grid.connected,
             _stars_jax(stars), np.float32(s.binary_fraction), np.float32(s.outlier_fraction),
             _dr_widths(av_widths, s), shifts=_shifts(binaries))
    return np.asarray(out, dtype=float) * _temper(stars, s)


def _temper(stars: dict, s: CmdSettings) -> float:
    if s.effective_stars is None:
        return 1.0
    return float(min(1.0, s.effective_stars / max(float(np.sum(stars["w"])), 1e-9)))


def _subset(stars: dict, n_max: int) -> dict:
    """The first ``n_max`` padded rows' worth of stars: bright end kept, for the coarse pass."""
    n = stars["n"]
    if n <= n_max:
        return stars
    keep = np.sort(np.random.default_rng(1).choice(n, n_max, replace=False))
    out = dict(stars)
    for k in ("c", "g", "w", "sc2", "sm2"):
        out[k] = stars[k][keep]
    out["n"] = n_max
    return out


def _coarse(stars: dict, grid: IsochroneGrid, mhs: list[float], lo_age: float, hi_age: float,
            mu: float, sig: float, s: CmdSettings) -> dict[str, float]:
    ages = grid.log_age[(grid.log_age >= lo_age - 1e-9) & (grid.log_age <= hi_age + 1e-9)]
    avs = np.arange(0.0, s.av_max + 1e-9, COARSE_AV_STEP)
    # one distance modulus for a tight prior, three for a loose one, and a second-pass window
    # of fixed length: the compiled programs' shapes come from a few fixed sets, so every region
    # after the first few loads them from the compilation cache instead of compiling (2-4 s)
    dms = mu + sig * np.array([-1.5, 0.0, 1.5]) if sig > 0.05 else np.array([mu])
    sub = _subset(stars, 256)
    # the coarse pass on every COARSE_POINT_STEP-th isochrone point: it only places the fine box
    # (which re-centres where its optimum lands on an edge), at a fraction of the cost
    thin = grid.thinned(COARSE_POINT_STEP)
    best: dict[str, float] = {"logp": -np.inf}
    for mh in mhs:
        # the whole extinction range on single stars alone, which only finds its extinction
        # (the binary band tripled this pass's cost, half a parameters job)
        logp = _loglike(sub, thin, mh, ages, avs, dms, s, binaries=False)
        first = float(avs[np.unravel_index(np.nanargmax(logp), logp.shape)[1]])
        # then, with the binary band and the differential-reddening widths of that extinction,
        # every age within SECOND_PASS_AV of it in steps of 0.1 mag (the widths are a tenth of
        # the reddening: they move the optimum by a few hundredths of a magnitude). The age comes
        # from this pass: single stars alone put NGC 6649 (A_V ~ 4.9) at log age 7.1, not 7.6
        near = _window(first, SECOND_PASS_AV, 0.1, 0.0, s.av_max)
        logp = _loglike(sub, thin, mh, ages, near, dms, s, av_widths=first)
        logp += -0.5 * ((dms - mu) / sig) ** 2
        i, j, k = np.unravel_index(np.nanargmax(logp), logp.shape)
        if logp[i, j, k] > best["logp"]:
            best = {"logp": float(logp[i, j, k]), "mh": mh, "log_age": float(ages[i]),
                    "av": float(near[j]), "dm": float(dms[k])}
    if not np.isfinite(best["logp"]):
        raise ValueError("the isochrone likelihood is not finite anywhere on the grid")
    log.debug("coarse isochrone fit: %s", best)
    return best


def _fine(stars: dict, grid: IsochroneGrid, coarse: dict[str, float], lo_age: float,
          hi_age: float, mu: float, sig: float, s: CmdSettings) -> dict:
    mh_vals = np.array([coarse["mh"]])
    centre = dict(coarse)
    half_dm = max(3.0 * sig, 0.1)
    for attempt in range(8):
        ages = _window(centre["log_age"], 0.18, 0.045, lo_age, hi_age)
        avs = _window(centre["av"], 0.16, 0.04, 0.0, s.av_max)
        dms = centre["dm"] + np.linspace(-half_dm, half_dm, 7)
        logp = np.stack([_loglike(stars, grid, mh, ages, avs, dms, s, av_widths=coarse["av"])
                         for mh in mh_vals])
        logp += -0.5 * ((dms - mu) / sig) ** 2
        if not np.isfinite(logp).any():
            raise ValueError("the isochrone likelihood is not finite near the coarse optimum")
        m, i, j, k = np.unravel_index(np.nanargmax(logp), logp.shape)
        edges = [(i, ages, lo_age, hi_age), (j, avs, 0.0, s.av_max), (k, dms, -99.0, 99.0)]
        moved = False
        new = []
        for idx, axis, lo, hi in edges:
            at_edge = idx in (0, axis.size - 1)
            at_limit = np.isclose(axis[idx], lo) or np.isclose(axis[idx], hi)
            # an optimum on the box's edge: the box is searched again centred on it. Not
            # jumping past it by half a box: the optimum then sat on the new box's other edge
            # and the box went back and forth (Wishing Well Cluster, NGC 2141)
            moved |= at_edge and not at_limit
            new.append(float(axis[idx]))
        centre = {"log_age": new[0], "av": new[1], "dm": new[2]}
        if not moved:
            return {"logp": logp, "mh": mh_vals, "log_age": ages, "av": avs, "dm": dms,
                    "best": {"mh": float(mh_vals[m]), **centre}}
        log.debug("fine box re-centred (attempt %d) on %s", attempt + 1, centre)
    raise ValueError("the isochrone fit did not converge: the posterior peak kept moving to the "
                     f"edge of the search box (last: {centre})")


def _window(centre: float, half: float, step: float, lo: float, hi: float) -> np.ndarray:
    """round(2 half / step) + 1 values ``step`` apart about ``centre``, the whole window moved
    inside [lo, hi] where it would cross a limit (a fixed length: one compiled shape); shorter
    only where [lo, hi] itself is."""
    n = int(round(2 * half / step)) + 1
    start = min(max(centre - half, lo), hi - (n - 1) * step)
    if start < lo - 1e-9:
        return np.unique(np.clip(centre + step * np.arange(-(n // 2), n // 2 + 1), lo, hi))
    return start + step * np.arange(n)


def _percentiles(axis: np.ndarray, prob: np.ndarray) -> tuple[float, float, float]:
    if axis.size == 1:
        return (float(axis[0]),) * 3
    prob = prob / prob.sum()
    cdf = np.cumsum(prob) - 0.5 * prob  # each grid value stands for its cell
    q = np.interp([0.15866, 0.5, 0.84134], cdf, axis)
    return float(q[0]), float(q[1]), float(q[2])


def _widen(q: tuple[float, float, float], floor: float) -> tuple[float, float, float]:
    lo, med, hi = q
    return (med - math.hypot(med - lo, floor), med, med + math.hypot(hi - med, floor))


def _summarise(post: dict, stars: dict, s: CmdSettings, lo_age: float,
               hi_age: float) -> CmdResult:
    logp = post["logp"]
    prob = np.exp(logp - np.nanmax(logp))
    prob = np.nan_to_num(prob)
    names = ("feh", "log_age", "av", "distance_modulus")
    axes = (post["mh"], post["log_age"], post["av"], post["dm"])
    summary = {}
    for ax_i, (name, axis) in enumerate(zip(names, axes, strict=True)):
        other = tuple(a for a in range(4) if a != ax_i)
        marginal = prob.sum(axis=other)
        if name == "feh" and "feh_marginal" in post:
            axis, marginal = post["feh_marginal"]
        q = _percentiles(axis, marginal)
        summary[name] = q if axis.size == 1 else _widen(q, SYSTEMATIC_FLOORS[name])
    lo, med, hi = summary["av"]
    summary["av"] = (max(lo, 0.0), med, hi)  # extinction is not negative
    best = post["best"]
    result = CmdResult("ok", log_age=summary["log_age"], av=summary["av"],
                       distance_modulus=summary["distance_modulus"], feh=summary["feh"],
                       feh_fixed=s.feh is not None, n_stars=int(stars["n"]), best=best)
    result.outlier_fraction = _outlier_fraction(stars, best, s)
    if np.isclose(best["log_age"], lo_age) or np.isclose(best["log_age"], hi_age):
        result.status, result.reason = "failed", (
            f"the best isochrone is at the edge of the age grid (log age {best['log_age']:.2f}): "
            "the members are outside the grid")
    elif np.isclose(best["av"], s.av_max):
        result.status, result.reason = "failed", (
            f"the best extinction is at the limit A_V = {s.av_max}: outside the grid")
    elif result.outlier_fraction > 0.5:
        result.status, result.reason = "failed", (
            f"no single isochrone describes the CMD: {100 * result.outlier_fraction:.0f}% of the "
            "members' weight falls in the outlier term")
    log.info("isochrone fit (%s): log age %.3f, A_V %.3f, DM %.3f, [M/H] %.2f; outliers %.2f",
             result.status, best["log_age"], best["av"], best["dm"], best["mh"],
             result.outlier_fraction)
    return result


def _outlier_fraction(stars: dict, best: dict[str, float], s: CmdSettings) -> float:
    from ocdec.physics.isochrones import load_grid

    iso = _best_isochrone(load_grid(), best)
    fn = _kernel()["terms"]
    cluster, _, _, outlier = fn(iso[:, 0], iso[:, 1], np.float32(best["av"]),
                                np.float32(best["dm"]), load_grid().connected,
                                _stars_jax(stars), np.float32(s.binary_fraction),
                                np.float32(s.outlier_fraction),
                                _dr_widths(best["av"], s), shifts=_shifts(True))
    cluster, outlier = np.asarray(cluster, float), float(outlier)
    p_out = 1.0 / (1.0 + np.exp(cluster - outlier))
    w = stars["w"][: stars["n"]]
    return float(np.sum(w * p_out[: stars["n"]]) / np.sum(w))


def _best_isochrone(grid: IsochroneGrid, best: dict[str, float]) -> np.ndarray:
    return interpolate_many(grid, best["mh"], np.array([best["log_age"]]))[0].astype(np.float32)


def observed_isochrone(grid: IsochroneGrid, mh: float, log_age: float, av: float,
                       dm: float) -> np.ndarray:
    """The isochrone as observed: columns (G, BP-RP, initial mass, mass), NaN where absent."""
    from ocdec.physics.extinction import gaia_extinction

    iso = interpolate_many(grid, mh, np.array([log_age]))[0]
    a_g, e_col = gaia_extinction(iso[:, 1], av)
    return np.column_stack([iso[:, 0] + a_g + dm, iso[:, 1] + e_col, iso[:, 2], iso[:, 3]])
