"""A small Galactic model for the field stars of a synthetic Gaia cone.

Components with the shapes of Juric et al. (2008, ApJ 673, 864): a thin disc (scale length
2.6 kpc, height 300 pc; 120 pc for its luminous young main-sequence stars), a thick disc (3.6 kpc,
900 pc) and an oblate power-law halo (n = 2.77, q = 0.64), their local shares tuned on real cones
(below); a local luminosity function in absolute G (giants separate); a dust layer (1 mag/kpc in
the plane, scale height 110 pc). Counts are integrated
along the line of sight to G <= limit, so the number of stars and their parallax distribution
follow the position on the sky. Kinematics: a flat rotation curve with each component's lag and
velocity ellipsoid, turned into proper motions by astropy's Galactocentric frame (which carries the
solar motion), so the field's proper motions correlate with parallax as in a real cone.

Checked against real cones (../shared/data/fields): Ruprecht 147 (DR2, l = 21, b = -13, 1 deg,
parallax >= 1, G < 18): counts within 4%, parallax and proper-motion quartiles within 0.15 mas
and 1.5 mas/yr (tests/test_simulate.py); TeachAstro M67 (DR3, b = +32, G <= 20): proper-motion
and parallax quantiles within ~1 mas/yr and 0.1 mas, blue (BP-RP < 0.6) fraction 1.5% vs 1.4%;
TeachAstro Pleiades (DR3, b = -23, 3 deg): negative-parallax share at G > 19 23% vs 27%, proper
motions ~0.6 mas/yr faster and ~20% broader than real, 7% fewer rows (too few at G > 18).
"""

from __future__ import annotations

from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.coordinates import ICRS, Galactocentric, SkyCoord

from ocdec.data import stellar_sequences as sequences

# astropy's defaults: R0 = 8.122 kpc, z_sun = 20.8 pc, v_sun = (12.9, 245.6, 7.78) km/s
GALCEN = Galactocentric()
R0_PC = float(GALCEN.galcen_distance.to_value(u.pc))
V_CIRC = 233.0  # km/s, flat; v_sun's y component minus the Sun's peculiar V

COMPONENTS = ("young", "thin", "thick", "halo")
# local density relative to the thin disc; geometry (pc)
# (Juric et al. give 0.12 and 0.005; lowered so the proper motions of the TeachAstro Pleiades DR3
# cone, 3 deg at b = -23, are matched: with them the field moves ~1 mas/yr too fast.)
_THICK_FRACTION, _HALO_FRACTION = 0.08, 0.002
_THIN_HR, _THIN_HZ, _THICK_HR, _THICK_HZ = 2600.0, 300.0, 3600.0, 900.0
# Luminous main-sequence stars (absolute G < 2.5: A and early F, younger than ~1 Gyr) have not yet
# been heated: a thin layer of their own, without which high-latitude cones get far too many
# blue stars (checked on the TeachAstro M67 cone at b = +32).
_YOUNG_MG, _YOUNG_HZ = 2.5, 120.0
_HALO_N, _HALO_Q, _HALO_CORE = 2.77, 0.64, 500.0
# Velocity ellipsoids (sigma_R, sigma_phi, sigma_z) and rotation lag, km/s.
_KINEMATICS = {
    "young": ((20.0, 12.0, 9.0), 0.0),
    "thin": ((30.0, 20.0, 16.0), 5.0),
    "thick": ((65.0, 45.0, 40.0), 50.0),
    "halo": ((140.0, 100.0, 95.0), V_CIRC),
}
_COLOUR_OFFSET = {
    "young": 0.0,
    "thin": 0.0,
    "thick": -0.06,
    "halo": -0.15,
}  # metal-poor stars are bluer

# Local luminosity function of dwarfs, log10 stars pc^-3 mag^-1 against absolute G (shape after
# the Gaia Catalogue of Nearby Stars, Gaia Collaboration, Smart et al. 2021).
_LF_MG = np.array([-5.0, -3.0, -1.0, 1.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0,
                   13.0, 14.0, 15.0, 16.0, 17.0])  # fmt: skip
_LF_LOG = np.array([-7.0, -6.0, -4.9, -3.9, -3.25, -2.9, -2.65, -2.55, -2.55, -2.5, -2.35, -2.25,
                    -2.2, -2.15, -2.2, -2.35, -2.6, -2.9, -3.3])  # fmt: skip
_OLD_TURNOFF_MG = 3.8  # thick disc and halo have no dwarfs brighter than an old turn-off
# Giants per pc^3 locally: red clump and the RGB between its base and tip.
_CLUMP_DENSITY, _RGB_DENSITY = 1.0e-4, 1.5e-4
# Scale on the luminosity function, calibrated on real cones of known size (DR3): the TeachAstro
# Pleiades cone (3 deg, no magnitude cut: 257,000 rows; the model gives 238,000) and the Hyades
# region (4.125 deg: ~434,000 rows in DR2, the model 443,000 with DR2's smaller source count).
DENSITY_NORM = 1.54

# Dust layer
_DUST_AV_PER_PC, _DUST_HZ = 1.0e-3, 110.0

_M_EDGES = np.arange(-5.0, 17.0 + 1e-9, 0.2)
_D_EDGES = np.geomspace(2.0, 80000.0, 361)


@dataclass
class FieldStars:
    distance_pc: np.ndarray
    abs_g: np.ndarray
    bp_rp0: np.ndarray
    a_v: np.ndarray
    pmra: np.ndarray
    pmdec: np.ndarray
    component: np.ndarray  # index into COMPONENTS


def extinction_av(distance_pc: np.ndarray, b_deg: np.ndarray) -> np.ndarray:
    """A_V to ``distance_pc`` through a dust layer of exponential height, at Galactic latitude b."""
    s = np.maximum(np.abs(np.sin(np.radians(b_deg))), 1e-6)
    return _DUST_AV_PER_PC * _DUST_HZ / s * -np.expm1(-distance_pc * s / _DUST_HZ)


def _luminosity_functions() -> np.ndarray:
    """(component, magnitude bin) stars per pc^3 at the Sun, dwarfs and giants together."""
    centres = 0.5 * (_M_EDGES[1:] + _M_EDGES[:-1])
    width = np.diff(_M_EDGES)
    dwarfs = 10.0 ** np.interp(centres, _LF_MG, _LF_LOG) * width
    giants = _giant_lf(centres, width)
    old = np.where(centres >= _OLD_TURNOFF_MG, dwarfs, 0.0)
    young = np.where(centres < _YOUNG_MG, dwarfs, 0.0)
    thin = dwarfs - young + giants
    return DENSITY_NORM * np.stack([young, thin, old + giants, old + giants])


def _giant_lf(centres: np.ndarray, width: np.ndarray) -> np.ndarray:
    clump = _CLUMP_DENSITY * np.exp(-0.5 * ((centres - sequences.RED_CLUMP[0]) / 0.25) ** 2)
    clump /= np.sqrt(2.0 * np.pi) * 0.25
    # more giants low on the branch: dN/dM rises by 10^0.25 per magnitude fainter
    on_rgb = (centres <= sequences.RGB_BASE[0]) & (centres >= sequences.RGB_TIP[0])
    rgb = np.where(on_rgb, 10.0 ** (0.25 * (centres - sequences.RGB_BASE[0])), 0.0)
    rgb *= _RGB_DENSITY / max(float((rgb * width).sum()), 1e-30)
    return (clump + rgb) * width


def _giant_fractions() -> np.ndarray:
    """(component, magnitude bin) fraction of giants among the stars of the bin."""
    centres = 0.5 * (_M_EDGES[1:] + _M_EDGES[:-1])
    giants = DENSITY_NORM * _giant_lf(centres, np.diff(_M_EDGES))
    total = _luminosity_functions()
    has_giants = np.array([name != "young" for name in COMPONENTS], dtype=float)[:, None]
    share = np.divide(giants[None, :], total, out=np.zeros_like(total), where=total > 0)
    return share * has_giants


def _densities(directions: SkyCoord, distances: np.ndarray) -> np.ndarray:
    """(direction, component, distance) density relative to the thin disc at the Sun."""
    n_dir, n_d = len(directions), distances.size
    along = SkyCoord(
        l=np.repeat(directions.l.deg, n_d) * u.deg,
        b=np.repeat(directions.b.deg, n_d) * u.deg,
        distance=np.tile(distances, n_dir) * u.pc,
        frame="galactic",
    ).transform_to(GALCEN)
    x, y, z = (c.to_value(u.pc).reshape(n_dir, n_d) for c in (along.x, along.y, along.z))
    r = np.hypot(x, y)
    thin = np.exp(-(r - R0_PC) / _THIN_HR - np.abs(z) / _THIN_HZ)
    thick = _THICK_FRACTION * np.exp(-(r - R0_PC) / _THICK_HR - np.abs(z) / _THICK_HZ)
    halo = _HALO_FRACTION * (R0_PC / np.maximum(np.hypot(r, z / _HALO_Q), _HALO_CORE)) ** _HALO_N
    young = np.exp(-(r - R0_PC) / _THIN_HR - np.abs(z) / _YOUNG_HZ)
    return np.stack([young, thin, thick, halo], axis=1)


def selection(g: np.ndarray, g_limit: float) -> np.ndarray:
    """Probability that a star of apparent G is in the archive: ~95% at g_limit, half at
    g_limit + 0.2, ~5% at g_limit + 0.5 (the TeachAstro DR3 cones with no magnitude cut hold 40%
    as many stars at G = 21-21.5 as at 20.5-21)."""
    return 0.5 * (1.0 - np.tanh((g - (g_limit + 0.2)) / 0.2))


@dataclass
class SightLine:
    """Star counts per sr in (component, distance bin, magnitude bin) cells along one direction."""

    weights: np.ndarray
    per_sr: float


def sight_lines(directions: SkyCoord, g_limit: float) -> list[SightLine]:
    """Star counts per sr along each of ``directions`` (Galactic), to the archive's faint limit."""
    d_mid = np.sqrt(_D_EDGES[1:] * _D_EDGES[:-1])
    volume = d_mid**2 * np.diff(_D_EDGES)  # pc^3 per sr
    dens = _densities(directions, d_mid) * volume  # (n_dir, 3, nd)
    m_mid = 0.5 * (_M_EDGES[1:] + _M_EDGES[:-1])
    lf = _luminosity_functions()[:, None, :]
    lines = []
    for k, b in enumerate(directions.b.deg):
        a_g = sequences.A_G_PER_AV * extinction_av(d_mid, np.full(d_mid.size, b))
        apparent = m_mid[None, :] + (5.0 * np.log10(d_mid / 10.0) + a_g)[:, None]  # (nd, nm)
        weights = dens[k][:, :, None] * lf * selection(apparent, g_limit)[None, :, :]
        lines.append(SightLine(weights=weights, per_sr=float(weights.sum())))
    return lines


def sample_sight_line(
    rng: np.random.Generator, line: SightLine, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Component index, distance (pc), absolute G and giant flag of ``n`` stars along ``line``."""
    flat = line.weights.ravel()
    cdf = np.cumsum(flat)
    cells = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    cells = np.minimum(cells, flat.size - 1)
    comp, d_idx, m_idx = np.unravel_index(cells, line.weights.shape)
    log_edges = np.log(_D_EDGES)
    log_d = log_edges[d_idx] + rng.random(n) * (log_edges[d_idx + 1] - log_edges[d_idx])
    abs_g = _M_EDGES[m_idx] + rng.random(n) * (_M_EDGES[m_idx + 1] - _M_EDGES[m_idx])
    giant = rng.random(n) < _giant_fractions()[comp, m_idx]
    return comp.astype(np.int8), np.exp(log_d), abs_g, giant


def colours(
    rng: np.random.Generator, abs_g: np.ndarray, component: np.ndarray, giant: np.ndarray
) -> np.ndarray:
    """Intrinsic BP-RP of field stars: dwarfs by absolute G, giants on the RGB or in the clump."""
    colour = sequences.dwarf_colour(abs_g)
    clump = giant & (np.abs(abs_g - sequences.RED_CLUMP[0]) < 0.6) & (rng.random(abs_g.size) < 0.7)
    phase = np.interp(abs_g, [sequences.RGB_TIP[0], sequences.RGB_BASE[0]], [1.0, 0.25])
    _, rgb_colour = sequences.giant_branch(phase, sequences.RGB_BASE)
    colour = np.where(giant, rgb_colour, colour)
    colour = np.where(clump, sequences.RED_CLUMP[1], colour)
    offsets = np.array([_COLOUR_OFFSET[c] for c in COMPONENTS])[component]
    return colour + offsets + rng.normal(0.0, 0.04, abs_g.size)


# Stars transformed at once by proper_motions: astropy's frame transforms with velocities hold
# about 340 bytes of temporaries per star (6 GB for a cone of 18 M stars); each star's motion
# depends on its own position and velocity alone, so chunks give the same values.
TRANSFORM_CHUNK = 1_000_000


def proper_motions(
    rng: np.random.Generator,
    ra: np.ndarray,
    dec: np.ndarray,
    distance_pc: np.ndarray,
    component: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """ICRS proper motions (mas/yr) of field stars drawn from each component's velocity ellipsoid
    around Galactic rotation, seen from the moving Sun."""
    n = ra.size
    x, y, z = np.empty(n), np.empty(n), np.empty(n)
    for part in _chunks(n):
        where = SkyCoord(ra=ra[part] * u.deg, dec=dec[part] * u.deg,
                         distance=distance_pc[part] * u.pc).transform_to(GALCEN)
        for out, c in zip((x, y, z), (where.x, where.y, where.z), strict=True):
            out[part] = c.to_value(u.pc)
    phi = np.arctan2(y, x)
    v_r, v_phi, v_z = np.empty(n), np.empty(n), np.empty(n)
    for index, name in enumerate(COMPONENTS):
        mask = component == index
        (s_r, s_phi, s_z), lag = _KINEMATICS[name]
        m = int(mask.sum())
        v_r[mask] = rng.normal(0.0, s_r, m)
        v_phi[mask] = rng.normal(V_CIRC - lag, s_phi, m)
        v_z[mask] = rng.normal(0.0, s_z, m)
    # astropy's Galactocentric frame: the Sun sits at negative x and rotation carries it toward +y,
    # so the rotation direction is (sin phi, -cos phi).
    vx = v_r * np.cos(phi) + v_phi * np.sin(phi)
    vy = v_r * np.sin(phi) - v_phi * np.cos(phi)
    pmra, pmdec = np.empty(n), np.empty(n)
    for part in _chunks(n):
        moving = Galactocentric(
            x=x[part] * u.pc,
            y=y[part] * u.pc,
            z=z[part] * u.pc,
            v_x=vx[part] * u.km / u.s,
            v_y=vy[part] * u.km / u.s,
            v_z=v_z[part] * u.km / u.s,
        ).transform_to(ICRS())
        pmra[part] = moving.pm_ra_cosdec.to_value(u.mas / u.yr)
        pmdec[part] = moving.pm_dec.to_value(u.mas / u.yr)
    return pmra, pmdec


def _chunks(n: int) -> list[slice]:
    return [slice(start, min(start + TRANSFORM_CHUNK, n))
            for start in range(0, n, TRANSFORM_CHUNK)]


def mean_proper_motion(ra: float, dec: float, distance_pc: float) -> tuple[float, float]:
    """Proper motion of a thin-disc star on a circular orbit at this position (a fallback for a
    cluster whose catalogue entry has none)."""
    pmra, pmdec = _circular_motion(np.array([ra]), np.array([dec]), np.array([distance_pc]))
    return float(pmra[0]), float(pmdec[0])


def _circular_motion(
    ra: np.ndarray, dec: np.ndarray, distance_pc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    where = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, distance=distance_pc * u.pc).transform_to(
        GALCEN
    )
    x, y, z = (c.to_value(u.pc) for c in (where.x, where.y, where.z))
    phi = np.arctan2(y, x)
    v = V_CIRC - _KINEMATICS["thin"][1]
    moving = Galactocentric(
        x=x * u.pc,
        y=y * u.pc,
        z=z * u.pc,
        v_x=v * np.sin(phi) * u.km / u.s,
        v_y=-v * np.cos(phi) * u.km / u.s,
        v_z=np.zeros_like(x) * u.km / u.s,
    ).transform_to(ICRS())
    return moving.pm_ra_cosdec.to_value(u.mas / u.yr), moving.pm_dec.to_value(u.mas / u.yr)
