"""Synthetic Gaia cones with a known open cluster (the ``simulate`` source).

A field is the cluster (a Plummer sphere with an internal velocity dispersion; Kroupa masses on
the PARSEC isochrone of its age, white dwarfs and unresolved binaries, at its distance behind its
extinction: :mod:`ocdec.data.cluster_photometry`, the physics the isochrone fit uses) plus field
stars from :mod:`ocdec.data.galactic_model` (counts, distances and proper
motions that depend on the position on the sky), observed with Gaia-like uncertainties
(:mod:`ocdec.data.simulated_errors`) and the archive's faint-end incompleteness. The result has
the canonical columns of
:mod:`ocdec.data.columns` and a ``true_member`` truth column.

Cluster parameters are taken, in order, from the settings, from a small literature table for the
five thesis clusters (Hunt & Reffert 2023 astrometry, so the simulated cluster sits where Gaia sees
it, not at the pre-Gaia catalogue prior), from the region's catalogue priors, and from generic
defaults.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord

from ocdec import __version__
from ocdec.data import cluster_photometry as photometry
from ocdec.data import galactic_model as galaxy
from ocdec.data import simulated_errors as gaia_errors
from ocdec.data import stellar_sequences as sequences
from ocdec.data.columns import CANONICAL_COLUMNS
from ocdec.errors import OcdecError
from ocdec.io import check_writable, write_parquet

log = logging.getLogger(__name__)

KM_S_PER_MAS_YR_KPC = 4.740470463  # km/s of 1 mas/yr at 1 kpc
M_MIN, M_MAX = 0.08, 8.0  # Msun; heavier stars leave neutron stars or black holes, not in Gaia


@dataclass(frozen=True)
class SimulateSettings:
    """What to simulate; ``None`` means: take it from the literature table, region or defaults."""

    n_members: int | None = None  # members inside the cone
    n_field: int | None = None  # None: the Galactic model's count for this cone
    distance_pc: float | None = None
    parallax: float | None = None  # mas; an alternative to distance_pc
    pmra: float | None = None
    pmdec: float | None = None
    radial_velocity: float | None = None  # km/s; sets the perspective effects across the field
    r50_deg: float | None = None  # Plummer half-number radius on the sky
    velocity_dispersion: float | None = None  # km/s, one-dimensional, internal
    age_myr: float | None = None
    a_v: float | None = None  # cluster extinction; None: the dust model at the cluster distance
    release: str = "dr3"
    g_limit: float = 21.0
    binary_fraction: float = 0.3
    incomplete: bool = True  # faint rows without astrometry or BP/RP, as the archive has
    field_density_scale: float = 1.0


@dataclass(frozen=True)
class ClusterSpec:
    """The cluster as simulated (recorded in the provenance)."""

    ra: float
    dec: float
    distance_pc: float
    pmra: float
    pmdec: float
    radial_velocity: float
    r50_deg: float
    velocity_dispersion: float
    age_myr: float
    a_v: float
    n_members: int
    origin: dict[str, str]  # parameter -> "settings" | "literature" | "region" | "default"


# Hunt & Reffert 2023 (DR3) mean astrometry, r50 and member counts; RV from Dias et al. 2002;
# ages and extinctions literature-like round values.
LITERATURE: dict[str, dict[str, float]] = {
    "NGC_2682": dict(pmra=-10.965, pmdec=-2.906, parallax=1.150, r50_deg=0.170, n_members=1844,
                     radial_velocity=33.6, age_myr=4000.0, a_v=0.12, velocity_dispersion=0.8),
    "NGC_2516": dict(pmra=-4.634, pmdec=11.226, parallax=2.427, r50_deg=0.446, n_members=3784,
                     radial_velocity=23.1, age_myr=150.0, a_v=0.30, velocity_dispersion=0.7),
    "NGC_2632": dict(pmra=-35.943, pmdec=-12.903, parallax=5.404, r50_deg=1.013, n_members=1314,
                     radial_velocity=34.8, age_myr=700.0, a_v=0.08, velocity_dispersion=0.5),
    "Melotte_22": dict(pmra=19.955, pmdec=-45.457, parallax=7.378, r50_deg=1.146, n_members=1721,
                       radial_velocity=5.9, age_myr=125.0, a_v=0.12, velocity_dispersion=0.6),
    "Melotte_25": dict(pmra=104.136, pmdec=-28.732, parallax=21.232, r50_deg=4.209, n_members=927,
                       radial_velocity=39.3, age_myr=650.0, a_v=0.0, velocity_dispersion=0.3),
}  # fmt: skip
DEFAULTS: dict[str, float] = dict(
    distance_pc=1000.0, radial_velocity=0.0, velocity_dispersion=0.6, age_myr=500.0, n_members=500
)

OUTPUT_COLUMNS = (*CANONICAL_COLUMNS, "true_member")


def simulate_field(
    region: Mapping[str, Any], settings: SimulateSettings, seed: int
) -> pd.DataFrame:
    """A synthetic Gaia cone of ``region`` (keys ``ra``, ``dec``, ``radius_deg``; optional ``id``,
    ``distance_pc``, ``parallax_prior``, ``pmra_prior``, ``pmdec_prior``) holding exactly the
    resolved ``n_members`` cluster stars, reproducible from ``seed``."""
    spec = resolve_cluster(region, settings)
    radius = _radius(region)
    release = gaia_errors.check_release(settings.release)
    _check_settings(settings)
    rng = np.random.default_rng(seed)
    centre = SkyCoord(ra=spec.ra * u.deg, dec=spec.dec * u.deg)

    members = _cluster_stars(rng, spec, centre, radius, settings)
    field = _field_stars(rng, centre, radius, settings, release)
    n_m = members["ra"].size
    stars = {key: np.concatenate([members[key], field[key]]) for key in members}
    truth = np.zeros(stars["ra"].size, dtype=bool)
    truth[:n_m] = True
    frame = _observe(rng, stars, truth, settings, release)
    log.info(
        "simulated %d stars (%d members, %d field) in %.3f deg around (%.4f, %.4f), %s",
        len(frame), n_m, len(frame) - n_m, radius, spec.ra, spec.dec, release,
    )  # fmt: skip
    return frame


def resolve_cluster(region: Mapping[str, Any], settings: SimulateSettings) -> ClusterSpec:
    """Cluster parameters from the settings, else the literature table, region priors, defaults."""
    ra, dec = _number(region, "ra"), _number(region, "dec")
    if ra is None or dec is None or not -90.0 <= dec <= 90.0:
        raise OcdecError(f"region {_region_name(region)}: needs finite ra and dec in [-90, 90]")
    radius = _radius(region)
    lit = LITERATURE.get(_region_name(region).replace(" ", "_"), {})
    origin: dict[str, str] = {}

    def pick(name: str, *region_keys: str, default: float | None = None) -> float | None:
        value = getattr(settings, name, None)
        if value is not None:
            origin[name] = "settings"
            return float(value)
        if name in lit:
            origin[name] = "literature"
            return float(lit[name])
        for key in region_keys:
            found = _number(region, key)
            if found is not None:
                origin[name] = "region"
                return found
        origin[name] = "default"
        return default

    if settings.distance_pc is not None and settings.parallax is not None:
        raise OcdecError("give the cluster's distance or its parallax, not both")
    if settings.distance_pc is not None:
        distance, origin["distance_pc"] = float(settings.distance_pc), "settings"
    else:
        plx = pick("parallax", "parallax_prior")
        dist = None if plx is not None else _number(region, "distance_pc")
        if plx is not None:
            distance = 1000.0 / plx if plx > 0 else math.nan
            origin["distance_pc"] = origin["parallax"]
        elif dist is not None:
            distance, origin["distance_pc"] = dist, "region"
        else:
            distance, origin["distance_pc"] = DEFAULTS["distance_pc"], "default"
        origin.pop("parallax", None)
    if not (math.isfinite(distance) and distance > 0):
        raise OcdecError(f"region {_region_name(region)}: cluster distance/parallax must be > 0")

    pmra = pick("pmra", "pmra_prior")
    pmdec = pick("pmdec", "pmdec_prior")
    if pmra is None or pmdec is None:
        # no proper motion anywhere: let the cluster move like the disc around it
        disc = galaxy.mean_proper_motion(ra, dec, distance)
        pmra = disc[0] if pmra is None else pmra
        pmdec = disc[1] if pmdec is None else pmdec
    r50 = pick("r50_deg", default=radius / 3.0)
    n_members = pick("n_members", default=DEFAULTS["n_members"])
    if origin["n_members"] == "literature" and r50 is not None and r50 > 0:
        # published counts are for the whole cluster: keep the Plummer share inside the cone
        n_members *= radius**2 / (radius**2 + r50**2)
    a_v = pick("a_v")
    if a_v is None:
        gal = SkyCoord(ra=ra * u.deg, dec=dec * u.deg).galactic
        a_v = float(galaxy.extinction_av(np.array([distance]), np.array([gal.b.deg]))[0])
    spec = ClusterSpec(
        ra=ra,
        dec=dec,
        distance_pc=distance,
        pmra=float(pmra),
        pmdec=float(pmdec),
        radial_velocity=float(pick("radial_velocity", default=DEFAULTS["radial_velocity"])),
        r50_deg=float(r50),
        velocity_dispersion=float(
            pick("velocity_dispersion", default=DEFAULTS["velocity_dispersion"])
        ),
        age_myr=float(pick("age_myr", default=DEFAULTS["age_myr"])),
        a_v=float(a_v),
        n_members=int(round(n_members)),
        origin=origin,
    )
    _check_spec(spec)
    return spec


def simulate_to_parquet(
    path: str | Path, region: Mapping[str, Any], settings: SimulateSettings, seed: int
) -> pd.DataFrame:
    """Simulate ``region`` and write it atomically to ``path`` with its provenance."""
    frame = simulate_field(region, settings, seed)
    write_parquet(path, frame, provenance(region, settings, seed, frame))
    return frame


def provenance(
    region: Mapping[str, Any], settings: SimulateSettings, seed: int, frame: pd.DataFrame
) -> dict[str, Any]:
    spec = resolve_cluster(region, settings)
    return {
        "source": "simulate",
        "region": _region_name(region),
        "ra": float(region["ra"]),
        "dec": float(region["dec"]),
        "radius_deg": _radius(region),
        "seed": int(seed),
        "settings": asdict(settings),
        "cluster": asdict(spec),
        "rows": len(frame),
        "n_members": int(frame["true_member"].sum()),
        "source_id": "row number in sky order (synthetic)",
        "versions": {"ocdec": __version__, "numpy": np.__version__, "pandas": pd.__version__},
    }


def region_seed(seed: int, region_id: str) -> int:
    """A seed of its own for each region from one configured seed (stable across runs and
    platforms, unlike ``hash``), so regions simulated with the same config differ."""
    return int(seed) * 1_000_003 + zlib.crc32(region_id.encode("utf-8"))


def settings_from_mapping(values: Mapping[str, Any] | None, where: str = "simulate"
                          ) -> SimulateSettings:
    """Settings from a config mapping (:func:`ocdec.settings.from_mapping`): null or absent keys
    take the library's choice, unknown keys are refused naming them."""
    from ocdec.settings import from_mapping

    values = {k: v for k, v in (values or {}).items() if v is not None}
    return from_mapping(SimulateSettings, values, where)


def thin_field(frame: pd.DataFrame, max_field: int, seed: int) -> pd.DataFrame:
    """Keep every member and a random ``max_field`` of the field stars (as a lower field density
    would give), in the original order."""
    field = np.flatnonzero(~frame["true_member"].to_numpy())
    if field.size <= max_field:
        return frame
    drop = np.random.default_rng(seed).choice(field, field.size - max_field, replace=False)
    keep = np.ones(len(frame), dtype=bool)
    keep[drop] = False
    log.info("field thinned from %d to %d stars (max_field_stars)", field.size, max_field)
    return frame.loc[keep].reset_index(drop=True)


def simulate_region(
    path: str | Path, region: Mapping[str, Any], config: Mapping[str, Any]
) -> pd.DataFrame:
    """The simulate rule: the workflow's ``simulate`` config section (``seed``, optional
    ``max_field_stars``, the rest :class:`SimulateSettings` fields) for ``region``, written
    atomically to ``path`` with its provenance."""
    check_writable(path, "stars")
    values = dict(config)
    if "seed" not in values:
        raise OcdecError("simulate: the config needs a seed")
    seed = int(values.pop("seed"))
    max_field = values.pop("max_field_stars", None)
    settings = settings_from_mapping(values)
    frame = simulate_field(region, settings, seed)
    meta = provenance(region, settings, seed, frame)
    if max_field is not None:
        frame = thin_field(frame, int(max_field), seed)
        meta.update(max_field_stars=int(max_field), rows=len(frame))
    write_parquet(path, frame, meta)
    return frame


# --- the cluster ---------------------------------------------------------------------------------


def _cluster_stars(
    rng: np.random.Generator,
    spec: ClusterSpec,
    centre: SkyCoord,
    radius: float,
    settings: SimulateSettings,
) -> dict[str, np.ndarray]:
    """Exactly ``spec.n_members`` stars that pass the archive's magnitude selection."""
    n = spec.n_members
    if n == 0:
        return {k: np.empty(0) for k in ("ra", "dec", "distance", "g", "bp", "rp", "pmra", "pmdec")}
    # the members' own isochrone (a young cluster's brightest stars outshine an old one's tip)
    modulus = 5.0 * math.log10(spec.distance_pc / 10.0)
    if photometry.brightest_g(spec.age_myr, spec.a_v, modulus) > settings.g_limit + 0.5:
        raise OcdecError(
            f"cannot place members brighter than G = {settings.g_limit}: the cluster is too far"
            " or too extinguished"
        )
    kept: list[dict[str, np.ndarray]] = []
    have, batch = 0, max(4 * n, 2000)
    for _ in range(12):  # the batch doubles: up to ~10 million draws before giving up
        if have >= n:
            break
        draw = _cluster_batch(rng, spec, radius, settings, batch)
        keep = rng.random(draw["g"].size) < galaxy.selection(draw["g"], settings.g_limit)
        kept.append({k: v[keep] for k, v in draw.items()})
        have += int(keep.sum())
        batch = min(max(2 * batch, 2000), 2_000_000)
    if have < n:
        raise OcdecError(
            f"cannot place {n} members brighter than G = {settings.g_limit}: the cluster is too far"
            " or too extinguished"
        )
    stars = {k: np.concatenate([part[k] for part in kept])[:n] for k in kept[0]}

    # sky positions and line-of-sight velocities from the cluster's common space motion
    pos = centre.directional_offset_by(stars["pa"] * u.deg, stars["sep"] * u.deg)
    ra, dec = pos.ra.deg, pos.dec.deg
    pmra, pmdec = _cluster_proper_motions(rng, spec, ra, dec, stars["distance"])
    return {
        "ra": ra,
        "dec": dec,
        "distance": stars["distance"],
        "g": stars["g"],
        "bp": stars["bp"],
        "rp": stars["rp"],
        "pmra": pmra,
        "pmdec": pmdec,
    }


def _cluster_batch(
    rng: np.random.Generator, spec: ClusterSpec, radius: float, settings: SimulateSettings, n: int
) -> dict[str, np.ndarray]:
    mass = sequences.kroupa_masses(rng, n, M_MIN, M_MAX)
    # PARSEC at the cluster's age, the isochrone fit's own physics (ocdec.data.cluster_photometry)
    abs_g, colour, dead = photometry.absolute_photometry(spec.age_myr, mass)
    if dead.any():
        abs_g[dead], colour[dead] = sequences.white_dwarfs(rng, int(dead.sum()))
    bp_abs, rp_abs = sequences.split_colour(abs_g, colour)
    # unresolved binaries among the living: a companion of mass ratio q ~ U(0.1, 1)
    binary = ~dead & (rng.random(n) < settings.binary_fraction)
    q_mass = mass * rng.uniform(0.1, 1.0, n)
    binary &= q_mass >= M_MIN
    c_g, c_col, _ = photometry.absolute_photometry(spec.age_myr, q_mass)
    c_bp, c_rp = sequences.split_colour(c_g, c_col)
    none = np.where(binary, 0.0, np.nan)
    abs_g = sequences.add_fluxes(abs_g, c_g + none)
    bp_abs = sequences.add_fluxes(bp_abs, c_bp + none)
    rp_abs = sequences.add_fluxes(rp_abs, c_rp + none)

    sep, depth = _plummer_offsets(rng, n, spec, radius)
    distance = spec.distance_pc + depth
    modulus = 5.0 * np.log10(distance / 10.0)
    g, bp, rp = photometry.reddened(abs_g, bp_abs, rp_abs, spec.a_v, modulus)
    return {"sep": sep, "pa": rng.uniform(0.0, 360.0, n), "distance": distance, "g": g, "bp": bp,
            "rp": rp}


def _plummer_offsets(
    rng: np.random.Generator, n: int, spec: ClusterSpec, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Angular separation (deg, inside the cone) and line-of-sight depth (pc) in a Plummer sphere.

    Projected: N(<R) = R^2 / (R^2 + a^2) with a the half-number radius, truncated at the cone.
    Given R, the depth z has density ~ (1 + z^2 / b^2)^(-5/2), b^2 = a^2 + R^2: a Student t with
    4 degrees of freedom and scale b / 2.
    """
    a = math.radians(spec.r50_deg)
    r_max = math.radians(radius)
    u_max = r_max**2 / (r_max**2 + a**2)
    x = rng.random(n) * u_max
    sep = a * np.sqrt(x / (1.0 - x))
    b_pc = spec.distance_pc * np.tan(np.hypot(a, sep))
    depth = 0.5 * b_pc * rng.standard_t(4.0, n)
    # the tail of t4 is long: keep every member in front of the Sun and inside 3 b
    depth = np.clip(depth, -np.minimum(3.0 * b_pc, 0.5 * spec.distance_pc), 3.0 * b_pc)
    return np.degrees(sep), depth


def _cluster_proper_motions(
    rng: np.random.Generator,
    spec: ClusterSpec,
    ra: np.ndarray,
    dec: np.ndarray,
    distance: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Each member moves with the cluster's space velocity plus an isotropic internal dispersion,
    projected at its own position and distance (so a wide, near cluster shows perspective)."""
    centre = SkyCoord(
        ra=spec.ra * u.deg,
        dec=spec.dec * u.deg,
        distance=spec.distance_pc * u.pc,
        pm_ra_cosdec=spec.pmra * u.mas / u.yr,
        pm_dec=spec.pmdec * u.mas / u.yr,
        radial_velocity=spec.radial_velocity * u.km / u.s,
    )
    v = centre.velocity
    n = ra.size
    kms = u.km / u.s
    where = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, distance=distance * u.pc).cartesian
    moving = SkyCoord(
        x=where.x,
        y=where.y,
        z=where.z,
        v_x=(v.d_x.to_value(kms) + spec.velocity_dispersion * rng.standard_normal(n)) * kms,
        v_y=(v.d_y.to_value(kms) + spec.velocity_dispersion * rng.standard_normal(n)) * kms,
        v_z=(v.d_z.to_value(kms) + spec.velocity_dispersion * rng.standard_normal(n)) * kms,
        representation_type="cartesian",
        differential_type="cartesian",
        frame="icrs",
    )
    moving.representation_type = "spherical"
    moving.differential_type = "sphericalcoslat"
    return moving.pm_ra_cosdec.to_value(u.mas / u.yr), moving.pm_dec.to_value(u.mas / u.yr)


# --- the field -----------------------------------------------------------------------------------


def _field_stars(
    rng: np.random.Generator,
    centre: SkyCoord,
    radius: float,
    settings: SimulateSettings,
    release: str,
) -> dict[str, np.ndarray]:
    """Field stars: sight lines on a grid across the cone carry the change of density with
    Galactic latitude; each star takes the distance/magnitude distribution of its nearest one."""
    grid_lon, grid_lat = _grid(radius)
    frame = centre.skyoffset_frame()
    grid = SkyCoord(lon=grid_lon * u.deg, lat=grid_lat * u.deg, frame=frame).galactic
    lines = galaxy.sight_lines(grid, settings.g_limit)
    per_sr = np.array([line.per_sr for line in lines])
    solid_angle = 2.0 * math.pi * (1.0 - math.cos(math.radians(radius)))

    if settings.n_field is not None:
        n = settings.n_field
    else:
        # cell areas by a pilot of uniform points, then a Poisson count of the expected number
        pilot_lon, pilot_lat = _uniform_in_cone(rng, 20000, radius)
        share = np.bincount(_nearest(pilot_lon, pilot_lat, radius), minlength=len(grid))
        expected = solid_angle * float(per_sr @ share) / share.sum() * settings.field_density_scale
        expected *= gaia_errors.SOURCE_COUNT[release] / gaia_errors.SOURCE_COUNT["dr3"]
        n = int(rng.poisson(expected))
    # positions: uniform in the cone, thinned by the density of the nearest sight line
    lon, lat, cell = (np.empty(0),) * 2 + (np.empty(0, dtype=np.intp),)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    have = 0
    while have < n:
        m = int(1.3 * (n - have)) + 100
        p_lon, p_lat = _uniform_in_cone(rng, m, radius)
        k = _nearest(p_lon, p_lat, radius)
        keep = rng.random(m) < per_sr[k] / per_sr.max()
        parts.append((p_lon[keep], p_lat[keep], k[keep]))
        have += int(keep.sum())
    if parts:
        lon, lat, cell = (np.concatenate([p[i] for p in parts])[:n] for i in range(3))
    sky = SkyCoord(lon=lon * u.deg, lat=lat * u.deg, frame=frame).icrs
    ra, dec = sky.ra.deg, sky.dec.deg
    b = sky.galactic.b.deg if n else np.empty(0)

    component = np.empty(n, dtype=np.int8)
    distance, abs_g, giant = np.empty(n), np.empty(n), np.empty(n, dtype=bool)
    for k, line in enumerate(lines):
        idx = np.flatnonzero(cell == k)
        if idx.size:
            component[idx], distance[idx], abs_g[idx], giant[idx] = galaxy.sample_sight_line(
                rng, line, idx.size
            )
    colour = galaxy.colours(rng, abs_g, component, giant)
    a_v = galaxy.extinction_av(distance, b)
    modulus = 5.0 * np.log10(distance / 10.0)
    bp_abs, rp_abs = sequences.split_colour(abs_g, colour)
    if n:
        pmra, pmdec = galaxy.proper_motions(rng, ra, dec, distance, component)
    else:
        pmra, pmdec = np.empty(0), np.empty(0)
    return {
        "ra": ra,
        "dec": dec,
        "distance": distance,
        "g": abs_g + modulus + sequences.A_G_PER_AV * a_v,
        "bp": bp_abs + modulus + sequences.A_BP_PER_AV * a_v,
        "rp": rp_abs + modulus + sequences.A_RP_PER_AV * a_v,
        "pmra": pmra,
        "pmdec": pmdec,
    }


def _grid(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Sight-line directions (offsets in deg): the centre, or for cones over 0.5 deg the 13 points
    of a lattice of step radius / 2 that lie within the cone."""
    if radius <= _SINGLE_LINE_RADIUS:
        return np.zeros(1), np.zeros(1)
    step = radius / 2.0
    return _LATTICE[:, 0] * step, _LATTICE[:, 1] * step


def _nearest(lon: np.ndarray, lat: np.ndarray, radius: float) -> np.ndarray:
    """Index of the sight line of :func:`_grid` nearest to each offset."""
    if radius <= _SINGLE_LINE_RADIUS:
        return np.zeros(lon.size, dtype=np.intp)
    step = radius / 2.0
    i = np.clip(np.rint(lon / step).astype(np.intp), -2, 2) + 2
    j = np.clip(np.rint(lat / step).astype(np.intp), -2, 2) + 2
    return _LATTICE_LOOKUP[i, j]


def _lattice() -> tuple[np.ndarray, np.ndarray]:
    """The 13 lattice points within 2 steps, and for every point of the 5x5 square its nearest."""
    i, j = np.meshgrid(np.arange(-2, 3), np.arange(-2, 3), indexing="ij")
    square = np.column_stack([i.ravel(), j.ravel()])
    points = square[np.hypot(square[:, 0], square[:, 1]) <= 2.0 + 1e-9]
    dist = np.hypot(*(square[:, None, :] - points[None, :, :]).transpose(2, 0, 1))
    return points.astype(float), np.argmin(dist, axis=1).reshape(5, 5)


_SINGLE_LINE_RADIUS = 0.5
_LATTICE, _LATTICE_LOOKUP = _lattice()


def _uniform_in_cone(
    rng: np.random.Generator, n: int, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (lon, lat in deg, in the cone's offset frame) uniform on the sphere within radius."""
    cos_r = math.cos(math.radians(radius))
    sep = np.arccos(1.0 - rng.random(n) * (1.0 - cos_r))
    pa = rng.uniform(0.0, 2.0 * math.pi, n)
    lat = np.arcsin(np.sin(sep) * np.cos(pa))
    lon = np.arctan2(np.sin(sep) * np.sin(pa), np.cos(sep))
    return np.degrees(lon), np.degrees(lat)


# --- observation ---------------------------------------------------------------------------------


def _observe(
    rng: np.random.Generator,
    stars: dict[str, np.ndarray],
    truth: np.ndarray,
    settings: SimulateSettings,
    release: str,
) -> pd.DataFrame:
    """Gaia-like noisy measurements in the canonical columns, rows in sky order like the archive."""
    n = truth.size
    g, bp, rp = stars["g"], stars["bp"], stars["rp"]
    err = gaia_errors.uncertainties(rng, g, bp, rp, release)
    parallax = 1000.0 / stars["distance"] + err.parallax * rng.standard_normal(n)
    pmra = stars["pmra"] + err.pmra * rng.standard_normal(n)
    pmdec = stars["pmdec"] + err.pmdec * rng.standard_normal(n)
    g_obs = g + err.g * rng.standard_normal(n)
    bp_obs = bp + err.bp * rng.standard_normal(n)
    rp_obs = rp + err.rp * rng.standard_normal(n)
    ruwe = gaia_errors.ruwe(rng, n) if release == "dr3" else np.full(n, np.nan)
    plx_err, pmra_err, pmdec_err = err.parallax, err.pmra, err.pmdec
    if settings.incomplete:
        no_astrometry, no_colour = gaia_errors.incomplete_rows(rng, g_obs)
        for values in (parallax, pmra, pmdec, plx_err, pmra_err, pmdec_err, ruwe):
            values[no_astrometry] = np.nan
        for values in (bp_obs, rp_obs):
            values[no_colour] = np.nan
    order = np.lexsort((stars["ra"], np.floor(stars["dec"] / 0.1)))
    columns = {
        "source_id": np.arange(n, dtype=np.int64),
        "ra": stars["ra"],
        "dec": stars["dec"],
        "parallax": parallax,
        "parallax_error": plx_err,
        "pmra": pmra,
        "pmra_error": pmra_err,
        "pmdec": pmdec,
        "pmdec_error": pmdec_err,
        "phot_g_mean_mag": g_obs,
        "phot_bp_mean_mag": bp_obs,
        "phot_rp_mean_mag": rp_obs,
        "bp_rp": bp_obs - rp_obs,
        "ruwe": ruwe,
        "true_member": truth,
    }
    # the reordered columns are new arrays: the frame takes them as they are (a copy of the whole
    # table beside them was a quarter of the simulation's peak memory)
    frame = pd.DataFrame(
        {
            name: (values if name == "source_id" else values[order])
            for name, values in columns.items()
        },
        copy=False,
    )
    for name in OUTPUT_COLUMNS:
        if name not in ("source_id", "true_member"):
            frame[name] = frame[name].astype(np.float64)
    return frame[list(OUTPUT_COLUMNS)]


# --- helpers -------------------------------------------------------------------------------------


def _number(region: Mapping[str, Any], key: str) -> float | None:
    """A finite number from the region row, or None (missing, empty, NaN)."""
    value = region.get(key)
    if isinstance(value, str):
        if not value.strip():
            return None
    elif value is None or pd.isna(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        name = _region_name(region)
        raise OcdecError(f"region {name}: {key} is not a number: {value!r}") from err
    return number if math.isfinite(number) else None


def _radius(region: Mapping[str, Any]) -> float:
    radius = _number(region, "radius_deg")
    if radius is None or not 0.0 < radius < 90.0:
        raise OcdecError(
            f"region {_region_name(region)}: radius_deg must be in (0, 90), got "
            f"{region.get('radius_deg')!r}"
        )
    return radius


def _region_name(region: Mapping[str, Any]) -> str:
    for key in ("id", "name"):
        value = region.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return "(unnamed)"


def _check_settings(settings: SimulateSettings) -> None:
    problems = []
    if settings.n_field is not None and settings.n_field < 0:
        problems.append(f"n_field must be >= 0, got {settings.n_field}")
    if not 0.0 <= settings.binary_fraction <= 1.0:
        problems.append(f"binary_fraction must be in [0, 1], got {settings.binary_fraction}")
    if not settings.field_density_scale >= 0.0:
        problems.append(f"field_density_scale must be >= 0, got {settings.field_density_scale}")
    if not 5.0 <= settings.g_limit <= 23.0:
        problems.append(f"g_limit must be in [5, 23], got {settings.g_limit}")
    if problems:
        raise OcdecError("; ".join(problems))


def _check_spec(spec: ClusterSpec) -> None:
    problems = []
    if spec.n_members < 0:
        problems.append(f"n_members must be >= 0, got {spec.n_members}")
    if not spec.r50_deg > 0:
        problems.append(f"r50_deg must be > 0, got {spec.r50_deg}")
    if spec.velocity_dispersion < 0:
        problems.append(f"velocity_dispersion must be >= 0, got {spec.velocity_dispersion}")
    if not spec.age_myr > 0:
        problems.append(f"age_myr must be > 0, got {spec.age_myr}")
    if spec.a_v < 0:
        problems.append(f"a_v must be >= 0, got {spec.a_v}")
    if problems:
        raise OcdecError("; ".join(problems))
