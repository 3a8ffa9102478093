"""Real fields for the verdict checks (issue 10), built from ../shared/data: a field with its
cluster removed, two clusters placed in one cone, Dias priors, and plausible priors for the
cluster-free fields. Shared by tests/test_verdict.py and the measurements in docs/verdict.md."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ocdec.data.columns import read_stars
from ocdec.methods.default.stars import astrometric_errors
from ocdec.methods.priors import ClusterPriors

ALPHA_PER = "melotte20_alphaper_dr2_r2deg_plxcut.csv"
PRAESEPE = "ngc2632_praesepe_dr2_r2deg_plxcut.csv"
RUP147 = "ngc6774_rup147_dr2_r2deg_plxgt1.csv.gz"
NGC188 = "ngc188_dr2_r1deg_plx0.4-0.7.csv"
ORION = "catalogue_sample/multi_misc_dados_orion.csv.gz"
HR2023 = "cluster_tables/ucc_curated/HUNT2023.csv"
CG2020 = "cluster_tables/cantat-gaudin2020_table1_full.csv"
# the issue's: alpha Per's centre with Praesepe's Dias motion and parallax
PRAESEPE_AT_ALPHA_PER = ClusterPriors(ra=51.0792, dec=49.8617, radius_deg=2.0, pmra=-35.58,
                                      pmdec=-12.90, parallax=5.35)


def dias_table(shared: Path) -> pd.DataFrame:
    from ocdec.data.catalogue import read_dias_catalogue, regions_from_catalogue

    table = read_dias_catalogue(shared / "openclust_dias2002")
    return regions_from_catalogue(table, min_diameter_arcmin=0.0).set_index("id")


def dias_priors(dias: pd.DataFrame, region: str, *, centre_only: bool = False,
                shift: tuple[float, float, float, float] | None = None) -> ClusterPriors:
    """A Dias region's priors (``centre_only``: centre and radius alone); ``shift`` moves the
    centre as :func:`move_field` moves stars (from ra0, dec0 to ra1, dec1)."""
    row = dias.loc[region]

    def value(key: str) -> float | None:
        v = float(row[key])
        return v if math.isfinite(v) else None

    ra, dec = value("ra"), value("dec")
    if shift is not None:
        ra, dec = (float(v[0]) for v in move(np.array([ra]), np.array([dec]), *shift))
    if centre_only:
        return ClusterPriors(ra=ra, dec=dec, radius_deg=value("radius_deg"))
    return ClusterPriors(ra=ra, dec=dec, radius_deg=value("radius_deg"),
                         pmra=value("pmra_prior"), pmdec=value("pmdec_prior"),
                         parallax=value("parallax_prior"))


def field(shared: Path, name: str) -> pd.DataFrame:
    return read_stars(shared / "fields" / name)


def rup147_without_cluster(shared: Path) -> pd.DataFrame:
    """Ruprecht 147's field less its published members (Gaia Collaboration 2018 table A1b,
    NGC6774) and every star within 3 mas/yr of its Cantat-Gaudin 2018 proper motion and 3 sigma
    of its parallax (the star's error; a DR2 model against G, the file has none)."""
    from ocdec.results.cluster_tables import cluster_table_reference, read_cluster_table
    from ocdec.results.validation import read_published

    stars = field(shared, RUP147)
    members = read_published(shared / "babusiaux2018_A10" / "GaiaHRD_tab1b.tsv", "NGC6774")
    cg = read_cluster_table(shared / "cluster_tables" / "cantat-gaudin2018_table1_vizier.tsv")
    ref = cluster_table_reference(cg, "Ruprecht_147")
    assert ref is not None
    pmra, pmdec, plx = ref["pmra"], ref["pmdec"], ref["parallax"]
    e_plx = astrometric_errors(stars)[2]
    near = ((np.hypot(stars["pmra"] - pmra, stars["pmdec"] - pmdec) < 3.0)
            & (np.abs(stars["parallax"] - plx) < 3 * e_plx))
    listed = stars["source_id"].isin(set(members["source_id"].dropna().astype("int64")))
    return stars[~(near | listed)].reset_index(drop=True)


def move(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float, ra1: float, dec1: float
         ) -> tuple[np.ndarray, np.ndarray]:
    """Positions moved so that (ra0, dec0) lands on (ra1, dec1), keeping each star's tangent-plane
    offset (gnomonic projection about the old centre, inverse about the new)."""
    from ocdec.methods.default.sky import tangent_plane

    xi, eta = (np.radians(v) for v in tangent_plane(ra, dec, ra0, dec0))
    d1, r1 = math.radians(dec1), math.radians(ra1)
    rho = np.hypot(xi, eta)
    c = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        dec_new = np.arcsin(np.cos(c) * math.sin(d1)
                            + np.where(rho > 0, eta * np.sin(c) * math.cos(d1) / rho, 0.0))
    ra_new = r1 + np.arctan2(xi * np.sin(c),
                             rho * math.cos(d1) * np.cos(c) - eta * math.sin(d1) * np.sin(c))
    return np.degrees(ra_new) % 360.0, np.degrees(dec_new)


# NGC 188's field is moved to 1.2 deg north of Praesepe's centre, inside Praesepe's 2 deg cone.
def two_clusters(shared: Path, dias: pd.DataFrame
                 ) -> tuple[pd.DataFrame, tuple[float, float, float, float]]:
    """Praesepe's and NGC 188's fields in one cone: NGC 188's stars moved so its Dias centre sits
    1.2 deg north of Praesepe's. Returns the stars and the shift
    (ra0, dec0, ra1, dec1) that moves NGC 188's priors too."""
    a, b = field(shared, PRAESEPE), field(shared, NGC188)
    p, q = dias.loc["NGC_2632"], dias.loc["NGC_188"]
    shift = (float(q["ra"]), float(q["dec"]), float(p["ra"]), float(p["dec"]) + 1.2)
    b = b.copy()
    b["ra"], b["dec"] = move(b["ra"].to_numpy(float), b["dec"].to_numpy(float), *shift)
    return pd.concat([a, b], ignore_index=True), shift


def empty_fields(shared: Path) -> list[Path]:
    return sorted((shared / "fields" / "catalogue_sample").glob("empty_*"))


def plausible_priors(stars: pd.DataFrame) -> ClusterPriors:
    """No Dias entry names these fields: a catalogue cluster at the field's centre, a 1 deg cone,
    the field's median proper motion and 1 mas (a typical Dias distance of 1 kpc)."""
    from ocdec.methods.astrometry import sky_centre_and_r50

    c = sky_centre_and_r50(stars)
    return ClusterPriors(ra=c["ra"], dec=c["dec"], radius_deg=1.0,
                         pmra=float(stars["pmra"].median()),
                         pmdec=float(stars["pmdec"].median()), parallax=1.0)
