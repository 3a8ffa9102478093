"""``fit_parameters``: distance, age, extinction, metallicity, structure and mass of one cluster.

The steps (each in its module): parallax zero points (:mod:`.zero_point`), the maximum-likelihood
distance (:mod:`.distance`), the isochrone fit of the CMD with the parallax distance as prior
(:mod:`.cmd_fit`), the King profile (:mod:`.structure`) and the masses and Jacobi radius
(:mod:`.mass`). Bad input never raises: the result says ``status: failed`` and why.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ocdec.physics import cmd_fit, distance, mass, structure, zero_point
from ocdec.physics.extinction import R_V
from ocdec.physics.isochrones import load_grid

# pandas where a table is read: a skipped region's parameters job imports none (its fixed cost)
if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

PROBABILITY_COLUMNS = ("p_member", "PMemb", "probs", "prob", "Prob", "proba", "probability")
RELEASES = ("dr2", "dr3")


@dataclass(frozen=True)
class ParametersSettings:
    """Settings of :func:`fit_parameters`."""

    cmd: cmd_fit.CmdSettings = field(default_factory=cmd_fit.CmdSettings)
    min_probability: float = 0.5  # members below it are ignored
    min_members: int = 10
    n_boot: int = 200  # bootstrap resamples for the mass
    #: Subtract Gaia's parallax zero point. False for simulated stars (ocdec.data.simulate adds
    #: no offset); None: True here, and the workflow decides from the stars' source.
    zero_point: bool | None = None


@dataclass
class ParametersResult:
    """What :func:`fit_parameters` found; :meth:`as_dict` is ``parameters.json``."""

    values: dict[str, Any]
    members: pd.DataFrame | None = None  # used members with weight, G used, radius, mass
    isochrone: np.ndarray | None = None  # best, observed: G, BP-RP, Mini, mass
    band: tuple[np.ndarray, np.ndarray] | None = None  # isochrones at log_age_16 and _84
    structure: structure.StructureResult | None = None

    @property
    def status(self) -> str:
        return str(self.values["status"])

    def as_dict(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in self.values.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return None if not math.isfinite(v) else round(v, 6)
    if isinstance(value, np.integer):
        return int(value)
    return value


def empty_values(n_members: int, release: str) -> dict[str, Any]:
    """``parameters.json`` with every value unknown and status failed (reason to be filled)."""
    nan = math.nan
    keys = ("distance_pc", "distance_pc_16", "distance_pc_84", "parallax_mas",
            "parallax_error_mas", "parallax_spread_mas", "parallax_zero_point_mas",
            "log_age", "log_age_16", "log_age_84", "age_myr", "av", "av_16", "av_84", "ebv",
            "distance_modulus", "distance_modulus_16", "distance_modulus_84",
            "feh", "feh_16", "feh_84", "ra", "dec", "r50_deg", "rc_deg", "rt_deg",
            "concentration", "r50_pc", "rc_pc", "rt_pc", "mass_msun", "mass_msun_16",
            "mass_msun_84", "mass_total_msun", "mass_total_msun_16", "mass_total_msun_84",
            "mass_observed_msun", "mass_limit_msun", "jacobi_radius_pc", "r_gc_pc",
            "cmd_outlier_fraction")
    out: dict[str, Any] = {"n_members": n_members, "release": release}
    out |= dict.fromkeys(keys, nan)
    out |= {"parallax_zero_point_method": None, "feh_fixed": True, "n_jacobi": None,
            "n_cmd_stars": 0, "isochrones": None, "king_fit": None, "status": "failed",
            "reason": None,
            "warnings": []}
    return out


def membership_weights(members: pd.DataFrame, min_probability: float) -> np.ndarray:
    """p_member (or PMemb, probs...) where present, else 1; zero below ``min_probability``."""
    import pandas as pd

    for name in PROBABILITY_COLUMNS:
        match = [c for c in members.columns if str(c).lower() == name.lower()]
        if match:
            p = pd.to_numeric(members[match[0]], errors="coerce").to_numpy(dtype=float)
            p = np.where(np.isfinite(p), p, 0.0)
            return np.where(p >= min_probability, np.clip(p, 0.0, 1.0), 0.0)
    return np.ones(len(members))


def fit_parameters(members: pd.DataFrame, *, release: str = "dr3",
                   settings: ParametersSettings | None = None,
                   field: tuple[np.ndarray, np.ndarray] | None = None) -> ParametersResult:
    """Physical parameters of the cluster whose members are ``members``.

    ``members`` has the canonical star columns (ra, dec, parallax, parallax_error,
    phot_g_mean_mag, bp_rp), optionally a membership probability (p_member, PMemb, probs) and
    the DR3 zero-point columns (:data:`ocdec.physics.zero_point.ZERO_POINT_COLUMNS`).
    ``release`` is "dr2" or "dr3". ``field``: every star's (ra, dec) of the field the members
    come from, so the King profile is fitted within the radius it covers whole
    (:func:`ocdec.physics.structure.covered_radius`; else the members' own). Never raises for
    bad data: see ``status`` and ``reason``.
    """
    start = time.perf_counter()
    s = settings or ParametersSettings()
    release = str(release).lower()
    w = membership_weights(members, s.min_probability) if len(members) else np.zeros(0)
    n_members = int(np.sum(w > 0))
    values = empty_values(n_members, release)
    result = ParametersResult(values)
    try:
        _run(members, w, release, s, result, field)
    except _Failed as failure:
        values["status"], values["reason"] = "failed", str(failure)
    values["runtime_s"] = round(time.perf_counter() - start, 3)
    if values["status"] == "failed":
        log.warning("parameters failed: %s", values["reason"])
    return result


class _Failed(Exception):
    """A reason to stop with ``status: failed``."""


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    import pandas as pd

    if name not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)


def _run(members: pd.DataFrame, w: np.ndarray, release: str, s: ParametersSettings,
         result: ParametersResult, field: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    values = result.values
    if release not in RELEASES:
        raise _Failed(f"unknown Gaia release {release!r} (known: {', '.join(RELEASES)})")
    if values["n_members"] < s.min_members:
        raise _Failed(f"too few members ({values['n_members']} with p_member >= "
                      f"{s.min_probability}; at least {s.min_members} needed)")
    keep = w > 0
    stars = members.loc[keep].reset_index(drop=True)
    w = w[keep]
    g, colour = _col(stars, "phot_g_mean_mag"), _col(stars, "bp_rp")
    if not np.isfinite(g).any() or not np.isfinite(colour).any():
        raise _Failed("no photometry: the members have no G or no BP-RP")

    if s.zero_point is None or s.zero_point:
        zp = zero_point.parallax_zero_point(stars, release)
    else:
        zp = zero_point.ZeroPoint(np.zeros(len(stars)), "none", 0)
    plx = _col(stars, "parallax") - zp.values
    values["parallax_zero_point_mas"] = float(np.average(zp.values, weights=w))
    values["parallax_zero_point_method"] = zp.method
    plx_err = _col(stars, "parallax_error")
    if not np.isfinite(plx_err).any():
        plx_err = distance.parallax_error_model(g)
        values["warnings"].append("no parallax errors: typical Gaia errors at each G used")
    try:
        dist = distance.cluster_distance(plx, plx_err, w, release)
    except ValueError as err:
        raise _Failed(f"distance: {err}") from err
    mu, sig_mu = dist.modulus
    values |= {"distance_pc": dist.distance_pc, "distance_pc_16": dist.distance_pc_16,
               "distance_pc_84": dist.distance_pc_84, "parallax_mas": dist.parallax,
               "parallax_error_mas": dist.parallax_error,
               "parallax_spread_mas": dist.parallax_spread}

    struct = structure.fit_structure(_col(stars, "ra"), _col(stars, "dec"), w, field)
    result.structure = struct
    values |= {"ra": struct.ra, "dec": struct.dec, "r50_deg": struct.r50_deg,
               "rc_deg": struct.rc_deg, "rt_deg": struct.rt_deg,
               "concentration": struct.concentration, "king_fit": struct.status,
               **struct.to_pc(dist.distance_pc)}
    if struct.status != "ok":
        values["warnings"].append(f"structure: {struct.reason}")

    g_used, g_spread = _depth_corrected(g, plx, plx_err, dist)
    grid = load_grid()
    values["isochrones"] = grid.describe()
    cmd = cmd_fit.fit_cmd(colour, g_used, w, grid, (mu, max(sig_mu, 0.01)), s.cmd, g_spread)
    values |= {"log_age": cmd.log_age[1], "log_age_16": cmd.log_age[0],
               "log_age_84": cmd.log_age[2], "av": cmd.av[1], "av_16": cmd.av[0],
               "av_84": cmd.av[2], "distance_modulus": cmd.distance_modulus[1],
               "distance_modulus_16": cmd.distance_modulus[0],
               "distance_modulus_84": cmd.distance_modulus[2], "feh": cmd.feh[1],
               "feh_16": cmd.feh[0], "feh_84": cmd.feh[2], "feh_fixed": cmd.feh_fixed,
               "n_cmd_stars": cmd.n_stars, "cmd_outlier_fraction": cmd.outlier_fraction}
    values["age_myr"] = 10 ** (cmd.log_age[1] - 6) if math.isfinite(cmd.log_age[1]) else math.nan
    values["ebv"] = cmd.av[1] / R_V
    result.members = stars.assign(weight=w, g_used=g_used,
                                  radius_deg=struct.radius_deg)
    if cmd.status != "ok":
        raise _Failed(f"isochrone fit: {cmd.reason}")

    b = cmd.best
    result.isochrone = cmd_fit.observed_isochrone(grid, b["mh"], b["log_age"], b["av"], b["dm"])
    result.band = tuple(cmd_fit.observed_isochrone(grid, b["mh"], a, b["av"], b["dm"])
                        for a in (cmd.log_age[0], cmd.log_age[2]))
    _masses(values, result, g_used, colour, w, dist.distance_pc, struct, s)
    values["status"] = "ok"


def _depth_corrected(g: np.ndarray, plx: np.ndarray, err: np.ndarray,
                     dist: distance.DistanceResult) -> tuple[np.ndarray, np.ndarray]:
    """G moved to the cluster distance where a member's parallax resolves the cluster's depth;
    elsewhere the depth is an extra G width (both only matter for nearby clusters)."""
    depth_mag = 5.0 / np.log(10.0) * dist.parallax_spread / dist.parallax
    spread = np.full(g.size, depth_mag)
    if depth_mag < 0.02:
        return g, spread
    resolved = np.isfinite(err) & (err < dist.parallax_spread) & (plx > 0)
    g_used = np.where(resolved, g + 5.0 * np.log10(np.where(plx > 0, plx, 1.0) / dist.parallax),
                      g)
    spread = np.where(resolved, 0.0, depth_mag)
    return g_used, spread


def _masses(values: dict[str, Any], result: ParametersResult, g: np.ndarray, colour: np.ndarray,
            w: np.ndarray, distance_pc: float, struct: structure.StructureResult,
            s: ParametersSettings) -> None:
    if not math.isfinite(struct.ra):
        values["warnings"].append("mass: no cluster centre, no Jacobi radius")
        return
    r_gc = mass.galactocentric_radius(struct.ra, struct.dec, distance_pc)
    radius_pc = struct.radius_deg * distance_pc * np.pi / 180.0
    m = mass.cluster_mass(g, colour, w, radius_pc, result.isochrone, r_gc, n_boot=s.n_boot)
    values |= {"mass_msun": m.mass_jacobi[1], "mass_msun_16": m.mass_jacobi[0],
               "mass_msun_84": m.mass_jacobi[2], "mass_total_msun": m.mass_total[1],
               "mass_total_msun_16": m.mass_total[0], "mass_total_msun_84": m.mass_total[2],
               "mass_observed_msun": m.mass_observed, "mass_limit_msun": m.mass_limit,
               "jacobi_radius_pc": m.jacobi_radius_pc, "n_jacobi": m.n_jacobi,
               "r_gc_pc": m.r_gc_pc}
    if result.members is not None:
        result.members["mass"] = m.member_mass
