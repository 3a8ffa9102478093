"""The simulate source: members recoverable as asked, Gaia-like errors, a field that looks like a
real cone, reproducibility, provenance and the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pygaia.errors.astrometric import parallax_uncertainty

from ocdec import cli
from ocdec.cli import main
from ocdec.data.columns import CANONICAL_COLUMNS
from ocdec.data.simulate import (
    SimulateSettings,
    region_seed,
    resolve_cluster,
    settings_from_mapping,
    simulate_field,
)
from ocdec.errors import OcdecError
from ocdec.io import read_provenance

M67 = {"id": "NGC_2682", "ra": 132.825, "dec": 11.8, "radius_deg": 0.6}
# an anonymous region: no literature entry, so the region's priors count
PLAIN = {"id": "Test_1", "ra": 100.0, "dec": 10.0, "radius_deg": 0.25, "parallax_prior": 2.0,
         "pmra_prior": 3.0, "pmdec_prior": -4.0}  # fmt: skip
ASKED = SimulateSettings(n_members=400, pmra=-11.0, pmdec=-3.0, parallax=1.15, r50_deg=0.15)


@pytest.fixture(scope="module")
def m67() -> pd.DataFrame:
    return simulate_field(M67, ASKED, seed=7)


def _sep_deg(frame: pd.DataFrame, ra0: float, dec0: float) -> np.ndarray:
    ra, dec = np.radians(frame["ra"]), np.radians(frame["dec"])
    cos = np.sin(dec) * np.sin(np.radians(dec0)) + np.cos(dec) * np.cos(np.radians(dec0)) * np.cos(
        ra - np.radians(ra0)
    )
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def test_columns_and_dtypes_are_canonical(m67: pd.DataFrame) -> None:
    assert list(m67.columns) == [*CANONICAL_COLUMNS, "true_member"]
    assert m67["source_id"].dtype == np.int64 and m67["source_id"].is_unique
    assert m67["true_member"].dtype == bool
    for name in CANONICAL_COLUMNS[1:]:
        assert m67[name].dtype == np.float64, name
    # DR3 carries RUWE; colours are BP - RP
    assert m67["ruwe"].notna().mean() > 0.5
    both = m67[["phot_bp_mean_mag", "phot_rp_mean_mag", "bp_rp"]].dropna()
    np.testing.assert_allclose(both["bp_rp"], both["phot_bp_mean_mag"] - both["phot_rp_mean_mag"])


def test_members_are_as_many_and_where_asked(m67: pd.DataFrame) -> None:
    members, field = m67[m67["true_member"]], m67[~m67["true_member"]]
    assert len(members) == ASKED.n_members
    assert len(field) > 5 * len(members)
    good = members[members["phot_g_mean_mag"] < 18]
    assert abs(good["pmra"].median() - ASKED.pmra) < 0.1
    assert abs(good["pmdec"].median() - ASKED.pmdec) < 0.1
    assert abs(good["parallax"].median() - ASKED.parallax) < 0.02
    # internal dispersion 0.8 km/s at 870 pc is ~0.2 mas/yr: bright members sit in a tight clump
    assert 0.05 < good["pmra"].std() < 0.6
    # compact on the sky (Plummer r50 = 0.15 deg) against a uniform field
    sep_members = _sep_deg(members, M67["ra"], M67["dec"])
    sep_field = _sep_deg(field, M67["ra"], M67["dec"])
    assert 0.1 < np.median(sep_members) < 0.2
    assert np.median(sep_field) > 0.35
    assert sep_members.max() <= M67["radius_deg"] + 1e-6 and sep_field.max() <= 0.6 + 1e-6
    # in proper motion the cluster stands out: few field stars share its motion
    near = np.hypot(m67["pmra"] - ASKED.pmra, m67["pmdec"] - ASKED.pmdec) < 0.5
    assert m67.loc[near & (m67["phot_g_mean_mag"] < 18), "true_member"].mean() > 0.8


def test_cluster_has_a_main_sequence_with_more_faint_stars(m67: pd.DataFrame) -> None:
    members = m67[m67["true_member"]].dropna(subset=["bp_rp"])
    g = members["phot_g_mean_mag"]
    assert (g > 18).sum() > (g < 15).sum()
    # redder is fainter along the main sequence (below the turn-off)
    ms = members[(g > 14) & (g < 19)]
    assert np.corrcoef(ms["phot_g_mean_mag"], ms["bp_rp"])[0, 1] > 0.7


def test_errors_grow_with_g_and_follow_pygaia(m67: pd.DataFrame) -> None:
    stars = m67.dropna(subset=["parallax_error"])
    bins = pd.cut(stars["phot_g_mean_mag"], [12, 15, 17, 19, 20.5])
    medians = stars.groupby(bins, observed=True)[["parallax_error", "pmra_error"]].median()
    assert medians["parallax_error"].is_monotonic_increasing
    assert medians["pmra_error"].is_monotonic_increasing
    model = parallax_uncertainty(stars["phot_g_mean_mag"].to_numpy().copy(), release="dr3") / 1e3
    ratio = np.median(stars["parallax_error"] / model)
    assert 0.9 < ratio < 1.15
    # the noise drawn matches the error reported: member parallax pulls have unit spread
    members = stars[stars["true_member"] & (stars["phot_g_mean_mag"] > 17)]
    pull = (members["parallax"] - ASKED.parallax) / members["parallax_error"]
    assert 0.8 < pull.std() < 1.25


def test_dr2_errors_are_larger_and_have_no_ruwe() -> None:
    settings = SimulateSettings(n_members=200, n_field=2000)
    dr3 = simulate_field(PLAIN, settings, seed=1)
    dr2 = simulate_field(PLAIN, SimulateSettings(n_members=200, n_field=2000, release="dr2"), 1)
    assert dr2["ruwe"].isna().all()
    assert np.nanmedian(dr2["parallax_error"]) > 1.2 * np.nanmedian(dr3["parallax_error"])
    assert np.nanmedian(dr2["pmra_error"]) > 1.6 * np.nanmedian(dr3["pmra_error"])


def test_field_looks_like_a_gaia_cone(m67: pd.DataFrame) -> None:
    field = m67[~m67["true_member"]]
    g, plx = field["phot_g_mean_mag"], field["parallax"]
    # counts rise to the faint limit, as Gaia's do
    hist = np.histogram(g, bins=[14, 15, 16, 17, 18, 19, 20])[0]
    assert (np.diff(hist) > 0).all()
    assert 0.3 < plx.median() < 1.5
    mad = 1.4826 * (field["pmra"] - field["pmra"].median()).abs().median()
    assert 2.0 < mad < 10.0
    # faint stars scatter to negative parallaxes, bright ones hardly do; kept as Gaia keeps them
    assert 0.05 < (plx[g > 19] < 0).mean() < 0.45
    assert (plx[g < 15] < 0).mean() < 0.02
    # the faintest rows lack astrometry, as 2-parameter sources do
    assert plx[g > 21].isna().mean() > 0.8 and plx[g < 19].isna().mean() < 0.05
    # star density per square degree as in real cones at |b| ~ 30 deg (2,000 to 20,000)
    density = len(m67) / (np.pi * 0.6**2)
    assert 2000 < density < 20000


def test_field_density_depends_on_galactic_latitude() -> None:
    settings = SimulateSettings(n_members=0)
    low = simulate_field({"ra": 280.0, "dec": -5.0, "radius_deg": 0.1}, settings, 1)  # b ~ -2
    high = simulate_field({"ra": 190.0, "dec": 30.0, "radius_deg": 0.1}, settings, 1)  # b ~ 87
    assert len(low) > 5 * len(high) > 0


def test_field_proper_motions_shrink_with_distance() -> None:
    settings = SimulateSettings(n_members=0, incomplete=False)
    field = simulate_field({"ra": 210.0, "dec": -60.0, "radius_deg": 0.15}, settings, 3)
    bright = field[field["phot_g_mean_mag"] < 17]
    near = bright[bright["parallax"] > 2]
    far = bright[bright["parallax"].between(0.2, 0.5)]
    speed = np.hypot(near["pmra"], near["pmdec"]).median()
    assert speed > 2 * np.hypot(far["pmra"], far["pmdec"]).median()


def test_same_seed_same_frame_other_seed_other_frame() -> None:
    settings = SimulateSettings(n_members=100)
    a = simulate_field(PLAIN, settings, seed=11)
    b = simulate_field(PLAIN, settings, seed=11)
    c = simulate_field(PLAIN, settings, seed=12)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) != len(c) or not np.allclose(a["ra"], c["ra"])


def test_region_seeds_and_settings_from_config() -> None:
    assert region_seed(0, "NGC_2682") == region_seed(0, "NGC_2682")
    assert len({region_seed(s, r) for s in (0, 1) for r in ("NGC_2682", "NGC_2516")}) == 4
    settings = settings_from_mapping({"release": "dr2", "n_members": 10})
    assert settings.release == "dr2" and settings.n_members == 10 and settings.g_limit == 21.0
    with pytest.raises(OcdecError, match="n_member"):
        settings_from_mapping({"n_member": 10})


def test_n_field_and_incomplete_switches() -> None:
    frame = simulate_field(PLAIN, SimulateSettings(n_members=50, n_field=1234, incomplete=False), 2)
    assert len(frame) == 1284 and frame["true_member"].sum() == 50
    assert frame["parallax"].notna().all() and frame["bp_rp"].notna().all()


def test_parameters_come_from_settings_then_literature_then_region() -> None:
    # NGC 2682 is in the literature table: Gaia's pm, not the pre-Gaia catalogue prior
    region = {**M67, "pmra_prior": -9.4, "pmdec_prior": -4.87, "distance_pc": 808}
    spec = resolve_cluster(region, SimulateSettings())
    assert spec.pmra == pytest.approx(-10.965) and spec.origin["pmra"] == "literature"
    assert spec.distance_pc == pytest.approx(1000 / 1.150)
    # the published count (1844, whole cluster) scaled to the Plummer share inside the cone
    assert spec.n_members == round(1844 * 0.6**2 / (0.6**2 + 0.170**2))
    spec = resolve_cluster(region, SimulateSettings(pmra=-12.0, distance_pc=900.0))
    assert spec.pmra == -12.0 and spec.distance_pc == 900.0
    spec = resolve_cluster(PLAIN, SimulateSettings())
    assert (spec.pmra, spec.pmdec, spec.distance_pc) == (3.0, -4.0, 500.0)
    assert spec.origin["pmra"] == "region"
    assert spec.r50_deg == pytest.approx(PLAIN["radius_deg"] / 3)
    # empty priors (as a TSV gives them) are absent; with none at all the cluster moves like the
    # disc around it
    bare = resolve_cluster({"ra": 100.0, "dec": 10.0, "radius_deg": 0.5, "pmra_prior": ""}, ASKED)
    assert bare.pmra == ASKED.pmra
    spec = resolve_cluster({"ra": 100.0, "dec": 10.0, "radius_deg": 0.5}, SimulateSettings())
    assert spec.origin["pmra"] == "default" and np.isfinite(spec.pmra)


def test_wide_near_cluster_shows_perspective() -> None:
    # Hyades-like: a common space motion projects to proper motions that change across the cone
    region = {"id": "Melotte_25", "ra": 66.725, "dec": 15.867, "radius_deg": 4.125}
    frame = simulate_field(region, SimulateSettings(n_field=0, r50_deg=2.0, n_members=600), 5)
    members = frame[frame["true_member"] & (frame["phot_g_mean_mag"] < 17)].dropna()
    slope = np.polyfit(members["ra"] - region["ra"], members["pmra"], 1)[0]
    assert abs(slope) > 1.0  # mas/yr per degree, well above the internal dispersion's noise
    assert abs(members["parallax"].median() - 21.232) < 0.5


@pytest.mark.parametrize(
    ("region", "settings", "match"),
    [
        ({**PLAIN, "radius_deg": 0}, SimulateSettings(), "radius_deg"),
        ({**PLAIN, "dec": 95}, SimulateSettings(), "dec"),
        (PLAIN, SimulateSettings(parallax=1.0, distance_pc=1000.0), "not both"),
        (PLAIN, SimulateSettings(release="dr9"), "unknown release"),
        (PLAIN, SimulateSettings(n_members=-1), "n_members"),
        (PLAIN, SimulateSettings(parallax=-2.0), "distance"),
        ({**PLAIN, "pmra_prior": "fast"}, SimulateSettings(), "pmra_prior"),
        (PLAIN, SimulateSettings(binary_fraction=1.5), "binary_fraction"),
        (PLAIN, SimulateSettings(n_field=-3), "n_field"),
        (PLAIN, SimulateSettings(distance_pc=1e6, n_members=10), "too far"),
    ],
)
def test_bad_input_is_a_one_line_error(
    region: dict, settings: SimulateSettings, match: str
) -> None:
    with pytest.raises(OcdecError, match=match) as err:
        simulate_field(region, settings, 0)
    assert "\n" not in str(err.value)


@pytest.fixture
def only_simulate(monkeypatch: pytest.MonkeyPatch) -> None:
    # the other subcommands belong to other modules; this file tests this one alone
    monkeypatch.setattr(cli, "COMMANDS", ("simulate",))


@pytest.mark.usefixtures("only_simulate")
def test_command_line_writes_parquet_with_provenance(tmp_path: Path) -> None:
    out = tmp_path / "sim" / "field.parquet"
    argv = ["simulate", "--ra", "100", "--dec", "10", "--radius", "0.4", "--out", str(out),
            "--n-members", "60", "--n-field", "700", "--pmra", "2.5", "--pmdec", "-1",
            "--parallax", "1.5", "--r50-deg", "0.1", "--seed", "3", "--release", "dr2"]  # fmt: skip
    assert main(argv) == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 760 and frame["true_member"].sum() == 60
    prov = read_provenance(out)
    assert prov["source"] == "simulate" and prov["seed"] == 3 and prov["rows"] == 760
    assert prov["settings"]["release"] == "dr2" and prov["cluster"]["pmra"] == 2.5
    assert [p.name for p in out.parent.iterdir()] == ["field.parquet"]  # no temporary left over


@pytest.mark.usefixtures("only_simulate")
def test_command_line_takes_a_region_from_a_region_table(tmp_path: Path) -> None:
    table = tmp_path / "regions.tsv"
    table.write_text(
        "id\tname\tra\tdec\tdiameter_arcmin\tradius_deg\tdistance_pc\tparallax_prior\t"
        "pmra_prior\tpmdec_prior\n"
        "Test_1\tTest 1\t100.0\t10.0\t20\t0.25\t500\t2.0\t3.0\t-4.0\n"
    )
    out = tmp_path / "t.parquet"
    argv = ["simulate", "--regions", str(table), "--region", "Test_1", "--out", str(out),
            "--n-members", "80", "--n-field", "300"]  # fmt: skip
    assert main(argv) == 0
    cluster = read_provenance(out)["cluster"]
    assert (cluster["pmra"], cluster["pmdec"], cluster["distance_pc"]) == (3.0, -4.0, 500.0)
    assert main([*argv[:4], "Nope", *argv[5:]]) == 2


@pytest.mark.usefixtures("only_simulate")
def test_command_line_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.parquet"
    assert main(["simulate", "--ra", "100", "--dec", "10", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--radius" in err[0]
    # a negative radius is refused while the options are read (argparse: usage, then one line)
    with pytest.raises(SystemExit) as stop:
        main(["simulate", "--ra", "1", "--dec", "1", "--radius", "-1", "--out", str(out)])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("ocdec simulate: error: argument --radius: expected a radius > 0 and <= "
                       "180 deg, got '-1'")
    assert not out.exists()


@pytest.mark.usefixtures("only_simulate")
@pytest.mark.parametrize(("option", "value"), [("--ra", "360"), ("--ra", "-0.5"),
                                               ("--dec", "-90.5"), ("--radius", "0"),
                                               ("--radius", "nan"), ("--ra", "inf")])
def test_command_line_refuses_a_cone_off_the_sky(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str) -> None:
    cone = {"--ra": "100", "--dec": "10", "--radius": "0.3", option: value}
    out = tmp_path / "x.parquet"
    with pytest.raises(SystemExit) as stop:
        main(["simulate", *[a for pair in cone.items() for a in pair], "--out", str(out)])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"ocdec simulate: error: argument {option}: ")
    assert value in err[-1] and not any("Traceback" in line for line in err)
    assert not out.exists()


@pytest.mark.usefixtures("only_simulate")
def test_region_name_alone_gives_literature_defaults_not_a_position(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--region NGC_2682 without --regions: the help says it names the cluster (its literature
    parameters), not its position; without a cone the error says so, with one the literature
    parameters are used."""
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    assert "give --ra, --dec and --radius too" in " ".join(capsys.readouterr().out.split())
    out = tmp_path / "m67.parquet"
    assert main(["simulate", "--region", "NGC_2682", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "give --ra, --dec, --radius" in err[0]
    assert "--region NGC_2682 alone names the cluster, not where it is" in err[0]
    assert not out.exists()
    argv = ["simulate", "--region", "NGC_2682", "--ra", "132.825", "--dec", "11.8", "--radius",
            "0.3", "--out", str(out), "--n-members", "50", "--n-field", "200"]  # fmt: skip
    assert main(argv) == 0
    cluster = read_provenance(out)["cluster"]
    assert cluster["pmra"] == -10.965 and cluster["origin"]["pmra"] == "literature"


@pytest.mark.slow
@pytest.mark.realdata
def test_field_matches_the_real_ruprecht_147_cone(shared_data: Path) -> None:
    """DR2 around Ruprecht 147 (l = 21, b = -12.6), parallax >= 1, compared within 1 deg of the
    centre at G < 18 where the real file is complete: counts, parallax and pm quartiles."""
    real = pd.read_csv(shared_data / "fields" / "ngc6774_rup147_dr2_r2deg_plxgt1.csv.gz")
    region = {"id": "NGC_6774", "ra": 289.0878, "dec": -16.3333, "radius_deg": 1.0}
    settings = SimulateSettings(n_members=0, release="dr2", g_limit=18.3)
    sim = simulate_field(region, settings, 1)

    def cut(frame: pd.DataFrame) -> pd.DataFrame:
        inside = _sep_deg(frame, region["ra"], region["dec"]) <= region["radius_deg"]
        return frame[inside & (frame["parallax"] >= 1) & (frame["phot_g_mean_mag"] < 18)]

    real, sim = cut(real), cut(sim)
    assert 0.75 < len(sim) / len(real) < 1.33
    for col, tol in (("parallax", 0.15), ("pmra", 1.5), ("pmdec", 1.5)):
        qr = np.quantile(real[col], [0.25, 0.5, 0.75])
        qs = np.quantile(sim[col], [0.25, 0.5, 0.75])
        assert np.all(np.abs(qr - qs) < tol * np.maximum(1, np.abs(qr) / 3)), (col, qr, qs)



def test_the_isochrone_fit_recovers_a_simulated_clusters_age_and_extinction() -> None:
    from ocdec.physics.parameters import ParametersSettings, fit_parameters

    # members on PARSEC's isochrone, reddened by the Fitzpatrick law: the fit's own physics, so
    # a 1 Gyr cluster comes back at its age (the schematic turn-off the simulator had before
    # gave log age 8.74 for 9.00, and A_V 0.32 for 0.20)
    settings = SimulateSettings(n_members=500, n_field=0, distance_pc=600.0, age_myr=1000.0,
                                a_v=0.2, pmra=0.0, pmdec=0.0, radial_velocity=0.0, r50_deg=0.1)
    frame = simulate_field({"id": "iso", "ra": 110.0, "dec": -20.0, "radius_deg": 0.6},
                           settings, seed=2)
    members = frame[frame["true_member"]].reset_index(drop=True)
    fitted = fit_parameters(members, release="dr3",
                            settings=ParametersSettings(zero_point=False)).as_dict()
    assert fitted["status"] == "ok"
    assert abs(fitted["log_age"] - 9.0) < 0.1
    assert abs(fitted["av"] - 0.2) < 0.08
    assert abs(fitted["distance_modulus"] - (5 * np.log10(600.0) - 5)) < 0.1


def test_field_motions_are_the_same_transformed_in_chunks(monkeypatch) -> None:
    """The field's motions are transformed a chunk of stars at a time (astropy's temporaries, about
    340 bytes a star, were most of a large cone's simulation memory): each star's motion depends
    on its own position and velocity alone, so any chunk size gives the same values, bit for
    bit, from the same draws."""
    from ocdec.data import galactic_model

    rng = np.random.default_rng(5)
    n = 1000
    ra, dec = rng.uniform(0, 360, n), rng.uniform(-80, 80, n)
    distance = rng.uniform(50, 5000, n)
    component = rng.integers(0, len(galactic_model.COMPONENTS), n)
    whole = galactic_model.proper_motions(np.random.default_rng(1), ra, dec, distance, component)
    monkeypatch.setattr(galactic_model, "TRANSFORM_CHUNK", 37)
    chunked = galactic_model.proper_motions(np.random.default_rng(1), ra, dec, distance,
                                            component)
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.ptp(whole[0]) > 1.0  # real motions, not a constant
