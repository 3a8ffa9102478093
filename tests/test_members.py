"""The default membership method on small synthetic fields: peak choice, probabilities, ensemble."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ocdec.errors import OcdecError
from ocdec.methods.default.dec_stage import jaccard, seed_agreement
from ocdec.methods.default.method import ClusterPriors, MemberSettings, run_default
from ocdec.methods.default.peaks import find_peaks, score_peaks
from ocdec.methods.default.stars import Astrometry, astrometric_errors
from synthetic_field import synthetic_field

FAST = MemberSettings(run_dec=False)


def _f1(member: np.ndarray, truth: np.ndarray) -> float:
    tp = int((member & truth).sum())
    return 2 * tp / (member.sum() + truth.sum())


@pytest.fixture(scope="module")
def field() -> pd.DataFrame:
    return synthetic_field()


@pytest.fixture(scope="module")
def two_clusters() -> pd.DataFrame:
    return synthetic_field(second=(3.0, -4.0, 2.0), seed=11)


def test_no_prior_finds_the_cluster_with_calibrated_probabilities(field) -> None:
    res = run_default(field, None, FAST)
    truth = field["true_member"].to_numpy()
    assert _f1(res.member, truth) > 0.95
    assert ((res.p_member >= 0) & (res.p_member <= 1)).all()
    assert np.array_equal(res.member, res.p_member >= 0.5)
    # Calibration: among stars given 0.2..0.8, the member fraction lies in the same range.
    mid = (res.p_member > 0.2) & (res.p_member < 0.8)
    if mid.sum() >= 10:
        assert 0.1 < truth[mid].mean() < 0.9
    # Stars outside the candidate window are not clustered.
    assert (res.group[res.p_member == 0] == -1).any()
    assert set(np.unique(res.group)) <= {-1, 0, 1}
    assert res.model["pmra"] == pytest.approx(-5.0, abs=0.05)
    assert res.model["parallax"] == pytest.approx(1.0, abs=0.01)


def test_a_mixture_that_leaves_its_group_is_not_found(field, monkeypatch, tmp_path) -> None:
    """The mixture starts on the target's peak; where its cluster settles on another clump of the
    field (two wide, dense simulated cones), the region is not found instead of reporting that
    clump's stars as the cluster's members."""
    from dataclasses import replace

    from ocdec.methods.default import method

    real = method.fit_cluster_model

    def walked_off(ast, peak, *args, **kwargs):
        model = real(ast, peak, *args, **kwargs)
        shift = np.array([shift_spreads * peak.pm_scale, 0.0, 0.0])
        return replace(model, mean=model.mean + shift)

    monkeypatch.setattr(method, "fit_cluster_model", walked_off)
    shift_spreads = method.MAX_MEMBERSHIP_DRIFT + 0.3  # the unshifted fit moved 0.2 at most
    res = run_default(field, None, FAST)
    assert res.target is None and not res.member.any()
    assert "left the group it started from" in res.reason and res.groups
    assert res.diagnostics["membership_drift"] > method.MAX_MEMBERSHIP_DRIFT
    # through the whole run: summary.json says why and keeps the evidence, nobody is a member
    from ocdec.characterize import characterize

    summary = characterize(field, tmp_path, settings=FAST)
    assert summary["status"] == "not_found" and "left the group" in summary["reason"]
    assert summary["diagnostics"]["rejected_peak"]["pm_scale"] > 0
    assert not pd.read_parquet(tmp_path / "members.parquet")["member"].any()
    assert not pd.read_csv(tmp_path / "groups.tsv", sep="\t")["target"].any()
    shift_spreads = method.MAX_MEMBERSHIP_DRIFT - 0.5  # within the limit: found as before
    res = run_default(field, None, FAST)
    assert res.target is not None and res.member.sum() > 50
    assert res.diagnostics["membership_drift"] < method.MAX_MEMBERSHIP_DRIFT


def test_catalogue_priors_choose_between_two_equal_clusters(two_clusters) -> None:
    truth = two_clusters["true_member"].to_numpy()
    # Dias-like priors: pm 2 mas/yr off, distance 15% off, centre and radius of the region.
    near_first = ClusterPriors(ra=120.0, dec=-30.0, radius_deg=0.3, pmra=-3.5, pmdec=1.5,
                               parallax=0.87)
    res = run_default(two_clusters, near_first, FAST)
    assert _f1(res.member, truth) > 0.95
    near_second = ClusterPriors(parallax=2.3, pmra=4.5, pmdec=-2.0)
    res2 = run_default(two_clusters, near_second, FAST)
    assert res2.member.sum() > 200 and _f1(res2.member, truth) < 0.05
    assert res2.model["parallax"] == pytest.approx(2.0, abs=0.02)


def test_peak_scores_use_sky_concentration(field) -> None:
    ast = Astrometry.from_stars(field)
    peaks = score_peaks(ast, find_peaks(ast, ClusterPriors()), ClusterPriors())
    assert peaks and peaks[0].concentration > 1.5  # a Plummer cluster in a uniform field
    assert peaks[0].score == max(p.score for p in peaks)


def test_same_seed_same_input_gives_bitwise_identical_output(field) -> None:
    a = run_default(field, None, MemberSettings(run_dec=False, seeds=(3, 4)))
    b = run_default(field, None, MemberSettings(run_dec=False, seeds=(3, 4)))
    assert np.array_equal(a.p_member, b.p_member)
    bag = MemberSettings(run_dec=False, seeds=(3, 4), bagging=True)
    c, d = run_default(field, None, bag), run_default(field, None, bag)
    assert np.array_equal(c.p_member, d.p_member)
    e = run_default(field, None, MemberSettings(run_dec=False, seeds=(5, 6), bagging=True))
    assert not np.array_equal(c.p_member, e.p_member)  # the seeds do drive the bootstrap
    assert e.seed_jaccard > 0.9 and e.seed_jaccard_min <= e.seed_jaccard


@pytest.mark.slow  # JAX compilation dominates (~10-30 s on 2 cores)
def test_dec_is_the_membership_model_and_reproducible(field) -> None:
    from ocdec.methods import dec
    from ocdec.methods.dec import DecSettings
    from ocdec.methods.default.method import default_dec_settings

    truth = field["true_member"].to_numpy()
    base = default_dec_settings(5)
    quick = DecSettings(**{**base.__dict__, "pretrain_epochs": 5, "cluster_epochs": 4})
    s = MemberSettings(seeds=(0, 1), dec=quick)
    before = dict(dec.TRACE_COUNTS)
    a = run_default(field, None, s)
    traced = {k: dec.TRACE_COUNTS[k] - before.get(k, 0) for k in dec.TRACE_COUNTS}
    b = run_default(field, None, s)
    # Bitwise identical for the same seeds and input.
    assert np.array_equal(a.p_member, b.p_member)
    assert np.array_equal(a.history["loss"], b.history["loss"])
    # p_member is DEC's: it differs from the mixture's posterior that initialised it ...
    mix = run_default(field, None, MemberSettings(seeds=(0, 1), run_dec=False))
    assert not np.array_equal(a.p_member, mix.p_member)
    # ... and is right.
    assert _f1(a.member, truth) > 0.95
    assert np.array_equal(a.member, a.p_member >= 0.5)
    assert (a.group[a.p_member > 0] >= 0).all()  # every star with a probability was clustered
    assert (a.group[a.member] == 0).all() and (a.group[~a.member] != 0).all()
    assert list(a.history.columns) == ["seed", "phase", "epoch", "loss", "label_change"]
    assert set(a.history["seed"]) == {0, 1}
    assert {"pretrain", "cluster"} == set(a.history["phase"])
    assert len(a.diagnostics["dec_seed_members"]) == 2
    assert a.diagnostics["dec_padded_to"] >= a.diagnostics["dec_stars"]
    assert 0.9 < a.seed_jaccard_min <= a.seed_jaccard <= 1
    # Two seeds, one padded bucket: each jitted program compiled at most once.
    for name in ("train_epoch_pretrain", "train_epoch_cluster", "predict"):
        assert traced.get(name, 0) <= 1


@pytest.mark.slow  # JAX compilation
def test_stars_whose_errors_swamp_the_cluster_keep_the_mixture_posterior(field) -> None:
    """Whitening by each star's own errors squeezes a very uncertain star onto the cluster
    whatever its motion; such stars get the deconvolved mixture's posterior, not DEC's q."""
    from ocdec.methods.dec import DecSettings
    from ocdec.methods.default.method import default_dec_settings

    rng = np.random.default_rng(3)
    blurred = field.copy()
    noisy = rng.random(len(blurred)) < 0.15
    for col in ("pmra", "pmdec", "parallax"):
        e = blurred[f"{col}_error"].to_numpy()
        blurred.loc[noisy, col] += rng.normal(0, np.sqrt(399) * e[noisy])  # errors x 20
        blurred.loc[noisy, f"{col}_error"] = 20 * e[noisy]
    quick = DecSettings(**{**default_dec_settings(5).__dict__, "pretrain_epochs": 5,
                           "cluster_epochs": 4})
    a = run_default(blurred, None, MemberSettings(seeds=(0,), dec=quick))
    mix = run_default(blurred, None, MemberSettings(seeds=(0,), run_dec=False))
    n_noisy_candidates = int((noisy & (mix.group >= 0)).sum())
    assert a.diagnostics["error_dominated"] >= 0.5 * n_noisy_candidates > 0
    cand = a.group >= 0
    np.testing.assert_array_equal(a.p_member[noisy & cand], mix.p_member[noisy & cand])
    assert not np.array_equal(a.p_member[~noisy & cand], mix.p_member[~noisy & cand])
    truth = blurred["true_member"].to_numpy()
    assert _f1(a.member[~noisy], truth[~noisy]) > 0.95
    every = run_default(blurred, None, MemberSettings(seeds=(0,), dec=quick,
                                                      dec_max_log_error_volume=None))
    assert every.diagnostics["error_dominated"] == 0
    assert not np.array_equal(every.p_member[noisy & cand], mix.p_member[noisy & cand])


def test_a_nearby_cluster_in_a_sparse_field_is_not_split_by_the_field_component() -> None:
    """A Hyades-like cluster (454 members, proper motions spread over ~10 mas/yr by depth and
    perspective) among only 20,000 field stars: the candidate window then holds almost only
    members, and a free field component took half of them (recall 0.39)."""
    from ocdec.data.simulate import SimulateSettings, simulate_field

    region = {"id": "Melotte_25", "ra": 66.725, "dec": 15.867, "radius_deg": 4.125,
              "distance_pc": 45.0}
    stars = simulate_field(region, SimulateSettings(n_field=20_000), 2023)
    truth = stars["true_member"].to_numpy()
    r = run_default(stars, ClusterPriors(ra=66.725, dec=15.867, radius_deg=4.125,
                                         parallax=22.2), FAST)
    assert _f1(r.member, truth) > 0.9


def test_field_floor_raises_only_narrow_directions() -> None:
    from ocdec.methods.default.mixture import at_least_as_wide

    ref = np.diag([1.0, 4.0, 0.01])
    wide = np.diag([100.0, 400.0, 1.0])
    np.testing.assert_array_equal(at_least_as_wide(wide, ref, 3.0), wide)
    narrow = np.diag([2.0, 400.0, 0.5])
    out = at_least_as_wide(narrow, ref, 3.0)
    np.testing.assert_allclose(np.diag(out), [9.0, 400.0, 0.5], rtol=1e-9)


def test_pad_bucket_sizes() -> None:
    from ocdec.methods.default.dec_stage import pad_bucket

    assert pad_bucket(10) == 1024 and pad_bucket(1024) == 1024
    assert pad_bucket(1025) == 2048 and pad_bucket(5000) == 8192


def test_jaccard_and_agreement() -> None:
    x = np.array([1, 1, 0, 0], bool)
    y = np.array([1, 0, 1, 0], bool)
    assert jaccard(x, y) == pytest.approx(1 / 3)
    assert jaccard(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
    assert seed_agreement([x, x, y]) == pytest.approx(((1 + 1 / 3 + 1 / 3) / 3, 1 / 3))
    assert seed_agreement([x]) == (1.0, 1.0)


def test_errors_fall_back_to_a_magnitude_model() -> None:
    stars = pd.DataFrame({"phot_g_mean_mag": [12.0, 18.0, np.nan],
                          "parallax_error": [np.nan, 0.5, np.nan]})
    e_pmra, e_pmdec, e_plx = astrometric_errors(stars)
    assert e_plx[1] == 0.5  # the file's own value wins
    assert e_plx[0] < 0.1 < np.interp(18.0, [17, 19], [0.1, 0.33])
    assert np.all(np.isfinite(e_pmra)) and np.array_equal(e_pmra, e_pmdec)


def test_bad_inputs_raise_one_line_errors(field) -> None:
    no_plx = field.drop(columns=["parallax"])
    with pytest.raises(OcdecError, match="parallax"):
        run_default(no_plx, None, FAST)
    nan = field.copy()
    nan[["pmra", "pmdec", "parallax"]] = np.nan
    with pytest.raises(OcdecError, match="no finite values"):
        run_default(nan, None, FAST)
    with pytest.raises(OcdecError, match="at least 50"):
        run_default(field.head(20), None, FAST)
    with pytest.raises(OcdecError, match="radius must be positive"):
        ClusterPriors(ra=1.0, dec=2.0, radius_deg=-1.0)
    # a flat field is not an error but a result (issue 10): no members, and why
    rng = np.random.default_rng(0)
    flat = field.copy()
    flat["pmra"] = rng.uniform(-50, 50, len(flat))
    flat["pmdec"] = rng.uniform(-50, 50, len(flat))
    flat["parallax"] = rng.uniform(0.2, 5, len(flat))
    result = run_default(flat, None, FAST)
    assert not result.member.any() and "no overdensity" in result.reason


def test_a_field_too_sparse_for_dec_keeps_the_mixture_answer() -> None:
    """With hardly any field star near the cluster DEC has no second group to learn: the method
    keeps the deconvolved mixture's members and says so, instead of failing the region."""
    from dataclasses import replace

    from ocdec.methods.default.method import default_dec_settings

    sparse = synthetic_field(n_field=100, n_cluster=300)
    dec = replace(default_dec_settings(), pretrain_epochs=2, cluster_epochs=2,
                  min_cluster_epochs=1)
    result = run_default(sparse, settings=MemberSettings(seeds=(0,), dec=dec))
    assert "mixture's posterior is kept" in result.diagnostics["dec_skipped"]
    truth = sparse["true_member"].to_numpy()
    assert (result.member & truth).sum() >= 0.95 * truth.sum()
    assert result.member.sum() <= 1.1 * truth.sum()


def test_a_dec_run_that_flips_to_the_field_keeps_the_mixture_answer(field, monkeypatch) -> None:
    """DEC whose members share almost nothing with the mixture's it started from has flipped to
    the field (as in deep simulated catalogue fields): the mixture's posterior is kept, and
    the diagnostics say why."""
    from dataclasses import replace

    import ocdec.methods.dec as dec_module
    from ocdec.methods.default.method import default_dec_settings

    real = dec_module.fit_dec

    def flipped(x, k, settings, seed, **kwargs):
        res = real(x, k, settings, seed, **kwargs)
        q = np.zeros_like(res.q)
        q[:, 0] = 1.0  # every candidate in the cluster's group: a flip to the field
        return replace(res, q=q)

    monkeypatch.setattr(dec_module, "fit_dec", flipped)
    dec = replace(default_dec_settings(), pretrain_epochs=2, cluster_epochs=2,
                  min_cluster_epochs=1)
    result = run_default(field, settings=MemberSettings(seeds=(0,), dec=dec, window_sigma=40.0,
                                                        dec_radius=100.0))
    assert "DEC flipped to the field" in result.diagnostics["dec_rejected"]
    truth = field["true_member"].to_numpy()
    assert _f1(result.member, truth) > 0.9


def _rowwise_e_step(x: np.ndarray, err2: np.ndarray, fit) -> tuple[np.ndarray, float]:
    """The mixture's E step as the (n, 3) arrays and row reductions wrote it before it ran on
    columns: responsibilities and mean log-likelihood."""
    logs = []
    for m, cov, w in zip(fit.means, fit.covs, fit.weights, strict=True):
        a, d, f = cov[0, 0] + err2[:, 0], cov[1, 1] + err2[:, 1], cov[2, 2] + err2[:, 2]
        b, c, e = cov[0, 1], cov[0, 2], cov[1, 2]
        c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
        det = a * c00 + b * c01 + c * c02
        prec = np.stack([c00, c01, c02, a * f - c * c, b * c - a * e, a * d - b * b], axis=1)
        prec /= det[:, None]
        dx = x - m
        u = np.stack([prec[:, 0] * dx[:, 0] + prec[:, 1] * dx[:, 1] + prec[:, 2] * dx[:, 2],
                      prec[:, 1] * dx[:, 0] + prec[:, 3] * dx[:, 1] + prec[:, 4] * dx[:, 2],
                      prec[:, 2] * dx[:, 0] + prec[:, 4] * dx[:, 1] + prec[:, 5] * dx[:, 2]],
                     axis=1)
        maha = np.sum(dx * u, axis=1)
        logs.append(math.log(w) + -0.5 * (maha + np.log(det) + 3 * math.log(2 * math.pi)))
    stacked = np.stack(logs, axis=1)
    top = stacked.max(axis=1, keepdims=True)
    norm = top[:, 0] + np.log(np.exp(stacked - top).sum(axis=1))
    return np.exp(stacked - norm[:, None]), float(norm.mean())


def test_mixture_e_step_on_columns_is_the_row_form_to_the_bit() -> None:
    """The E step runs on contiguous columns for speed; its numbers are those of the (n, 3) form
    and its row reductions, bit for bit (members.parquet stays byte for byte the same)."""
    from ocdec.methods.default import mixture

    rng = np.random.default_rng(3)
    n = 5000
    x = np.concatenate([rng.normal([1.0, -2.0, 0.6], [0.05, 0.05, 0.02], (300, 3)),
                        rng.normal([0.0, 0.0, 0.5], [3.0, 3.0, 0.4], (n - 300, 3))])
    err2 = rng.uniform(0.01, 0.6, (n, 3)) ** 2
    fit = mixture.initial_fit(x, np.array([1.0, -2.0, 0.6]), np.diag([0.05, 0.05, 0.02]) ** 2,
                              halo=True)
    resp, ll, terms = mixture._e_step(x, err2, fit, None, None)
    ref_resp, ref_ll = _rowwise_e_step(x, err2, fit)
    assert np.array_equal(resp, ref_resp) and ll == ref_ll
    # the M step's products take the terms as contiguous arrays, where they were slices of one
    # (n, 9) array: the same numbers
    joined = np.concatenate(terms[0], axis=1)
    floor = np.array([1e-6, 1e-6, 1e-8])
    new = mixture._xd_update(resp[:, 0], fit.means[0], fit.covs[0], terms[0], floor)
    old = mixture._xd_update(resp[:, 0], fit.means[0], fit.covs[0],
                             (joined[:, :6], joined[:, 6:]), floor)
    assert all(np.array_equal(a, b) for a, b in zip(new, old, strict=True))


def test_a_singular_star_gives_the_row_forms_nan_not_an_exception() -> None:
    """A star without errors under a degenerate covariance divides by a zero determinant: the
    compiled E step gives numpy's inf and NaN there, as the row form does, and raises nothing."""
    from ocdec.methods.default import mixture

    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 3))
    err2 = rng.uniform(0.01, 0.2, (50, 3)) ** 2
    err2[7] = 0.0
    fit = mixture.initial_fit(x, np.zeros(3), np.zeros((3, 3)), halo=False)
    with np.errstate(all="ignore"):
        resp, ll, _ = mixture._e_step(x, err2, fit, None, None)
        ref_resp, ref_ll = _rowwise_e_step(x, err2, fit)
    assert np.isnan(resp[7]).any() and np.isfinite(resp[np.arange(50) != 7]).all()
    assert np.array_equal(resp, ref_resp, equal_nan=True)
    assert ll == ref_ll or (math.isnan(ll) and math.isnan(ref_ll))


def test_the_warm_load_compiles_every_mixture_loop_a_fit_calls() -> None:
    """mixture_loops.load(), which the warm interpreter runs before it forks its jobs, compiles
    (or loads) the one variant of each loop that a fit then calls, with the sky profile and
    without, and a single component's terms: a job that met another would compile it (about a
    second) in every process. Run in a fresh interpreter, so that no earlier test has compiled
    them already."""
    import subprocess
    import sys

    code = """
import numpy as np
from ocdec.methods.default import mixture, mixture_loops
from ocdec.methods.default.stars import Astrometry
from ocdec.methods.default.sky import SkyModel
loops = (mixture_loops.precisions, mixture_loops.log_terms)
mixture_loops.load()
loaded = [set(f.overloads) for f in loops]
rng = np.random.default_rng(5)
n = 400
x = np.concatenate([rng.normal([1.0, -2.0, 0.6], 0.05, (80, 3)),
                    rng.normal([0.0, 0.0, 0.5], [3.0, 3.0, 0.4], (n - 80, 3))])
err2 = rng.uniform(0.01, 0.3, (n, 3)) ** 2
mean, cov = np.array([1.0, -2.0, 0.6]), np.diag([0.05, 0.05, 0.02]) ** 2
mixture.fit_mixture(x, err2, mean, cov, max_iter=3)
import pandas as pd
stars = pd.DataFrame({"ra": rng.normal(10.0, 0.5, n), "dec": rng.normal(20.0, 0.5, n),
                      "pmra": x[:, 0], "pmdec": x[:, 1], "parallax": x[:, 2],
                      "pmra_error": np.sqrt(err2[:, 0]), "pmdec_error": np.sqrt(err2[:, 1]),
                      "parallax_error": np.sqrt(err2[:, 2])})
ast = Astrometry.from_stars(stars, (10.0, 20.0), 1.0)
idx = np.arange(n)
mixture.fit_mixture(x, err2, mean, cov, sky=SkyModel(ast, 10.0, 20.0), sky_idx=idx, max_iter=3)
mixture._components(mixture._columns(x), mixture._columns(err2), [mean], [cov], np.zeros(1))
used = [set(f.overloads) for f in loops]
print(used == loaded, *(len(u) for u in used))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "1", "1"], out


def test_mixture_terms_match_the_full_3x3_algebra() -> None:
    from scipy.stats import multivariate_normal

    from ocdec.methods.default import mixture

    rng = np.random.default_rng(12)
    x = rng.normal(size=(50, 3))
    err2 = rng.uniform(0.01, 0.5, (50, 3)) ** 2
    a = rng.normal(size=(3, 3))
    cov = a @ a.T + 0.1 * np.eye(3)
    mean = np.array([0.1, -0.2, 0.3])
    # one component of weight 1: log w + log N is the log-density itself
    logs, _, (terms,) = mixture._components(mixture._columns(x), mixture._columns(err2), [mean],
                                            [cov], np.zeros(1))
    logp = logs[0]
    totals = cov[None] + np.stack([np.diag(e) for e in err2])
    expected = [multivariate_normal(mean, t).logpdf(xi) for xi, t in zip(x, totals, strict=True)]
    np.testing.assert_allclose(logp, expected, rtol=1e-10)
    inv = np.linalg.inv(totals)
    np.testing.assert_allclose(terms[1], np.einsum("nij,nj->ni", inv, x - mean), rtol=1e-9)
    # the M step against the textbook extreme-deconvolution update (Bovy et al. 2011)
    r = rng.random(50)
    new_mean, new_cov = mixture._xd_update(r, mean, cov, terms, np.zeros(3))
    b = mean + np.einsum("ij,njk,nk->ni", cov, inv, x - mean)
    w = r / r.sum()
    mu = w @ b
    big_b = cov - np.einsum("ij,njk,kl->nil", cov, inv, cov)
    expected_cov = np.einsum("n,ni,nj->ij", w, b - mu, b - mu) + np.einsum("n,nij->ij", w, big_b)
    np.testing.assert_allclose(new_mean, mu, rtol=1e-10)
    np.testing.assert_allclose(new_cov, expected_cov, rtol=1e-9, atol=1e-12)
