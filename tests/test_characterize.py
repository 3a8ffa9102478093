"""characterize: the products' exact names and contents, the command line, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from ocdec.characterize import characterize, write_skipped
from ocdec.cli import main
from ocdec.data.columns import CANONICAL_COLUMNS
from ocdec.io import read_provenance
from ocdec.methods.default.method import ClusterPriors, MemberSettings
from synthetic_field import synthetic_field

SUMMARY_KEYS = {"n_stars", "n_members", "pmra", "pmra_error", "pmdec", "pmdec_error", "parallax",
                "parallax_error", "ra", "dec", "r50_deg", "seeds", "seed_jaccard",
                "seed_jaccard_min", "method", "runtime_s", "status", "parameters", "stages"}
HISTORY = ["seed", "phase", "epoch", "loss", "label_change"]


@pytest.fixture(scope="module")
def field() -> pd.DataFrame:
    return synthetic_field(n_field=3000, n_cluster=200)


def test_default_products_follow_the_contract(field, tmp_path) -> None:
    stars = field.drop(columns=["true_member"])
    summary = characterize(stars, tmp_path, seed=2, n_seeds=3,
                           settings=MemberSettings(run_dec=False), provenance={"source": "test"})
    members = pd.read_parquet(tmp_path / "members.parquet")
    assert list(members.columns[:4]) == ["source_id", "p_member", "member", "group"]
    assert list(members.columns[4:]) == [c for c in CANONICAL_COLUMNS if c != "source_id"]
    assert len(members) == len(stars)
    assert np.array_equal(members["source_id"], stars["source_id"])
    assert members["p_member"].between(0, 1).all()
    assert np.array_equal(members["member"], members["p_member"] >= 0.5)
    assert read_provenance(tmp_path / "members.parquet")["source"] == "test"

    saved = json.loads((tmp_path / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(saved)
    assert saved["method"] == "default" and saved["status"] == "found"
    assert saved["seeds"] == [2, 3, 4]
    assert saved["n_members"] == int(members["member"].sum()) == summary["n_members"]
    # Top-level numbers are the members' parameters: means weighted by error and spread.
    sel = members[members["member"]]
    for col in ("pmra", "parallax"):
        x, e = sel[col].to_numpy(), sel[f"{col}_error"].to_numpy()
        w = 1 / (e**2 + max(x.var(ddof=1) - np.mean(e**2), 0))
        assert saved[col] == pytest.approx(np.sum(w * x) / np.sum(w))
        assert saved[f"{col}_error"] == pytest.approx(1 / math.sqrt(w.sum()))
    assert "robust" in saved["parameters"]
    truth = field["true_member"].to_numpy()
    tp = int((members["member"].to_numpy() & truth).sum())
    assert 2 * tp / (members["member"].sum() + truth.sum()) > 0.95
    hist = pd.read_csv(tmp_path / "history.tsv", sep="\t")
    assert list(hist.columns) == HISTORY
    assert not (tmp_path / "silhouette.tsv").exists()


def test_rows_without_ids_use_row_numbers(field, tmp_path) -> None:
    stars = field.drop(columns=["true_member", "source_id"])
    characterize(stars, tmp_path, n_seeds=1, settings=MemberSettings(run_dec=False))
    members = pd.read_parquet(tmp_path / "members.parquet")
    assert np.array_equal(members["source_id"], np.arange(len(stars)))


@pytest.mark.slow  # thesis mode trains DEC on the whole field (JAX compilation)
def test_thesis_products(field, tmp_path) -> None:
    from ocdec.methods.dec import DecSettings
    from ocdec.methods.thesis import ThesisSettings

    settings = ThesisSettings(k_values=(2, 3), dec=DecSettings(pretrain_epochs=1,
                                                               cluster_epochs=1))
    characterize(field.drop(columns=["true_member"]), tmp_path, method="thesis",
                 settings=settings, priors=ClusterPriors(pmra=-5.0, pmdec=3.0, parallax=1.0))
    members = pd.read_parquet(tmp_path / "members.parquet")
    for col in ("kmeans_group", "kmeans_member", "dec_group", "dec_member",
                "dec_filtered_member"):
        assert col in members
    assert np.array_equal(members["member"], members["dec_filtered_member"])
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["method"] == "thesis"
    assert set(saved["selections"]) == {"kmeans", "dec", "dec_filtered"}
    assert saved["n_members"] == saved["selections"]["dec_filtered"]["n_members"]
    sil = pd.read_csv(tmp_path / "silhouette.tsv", sep="\t")
    assert list(sil.columns) == ["k", "silhouette"] and list(sil["k"]) == [2, 3]
    assert list(pd.read_csv(tmp_path / "history.tsv", sep="\t").columns) == HISTORY


def test_skipped_region_still_writes_every_product(field, tmp_path) -> None:
    summary = write_skipped(tmp_path, "default", field.head(10), "too few usable stars")
    assert summary["status"] == "skipped" and summary["n_members"] == 0
    members = pd.read_parquet(tmp_path / "members.parquet")
    assert len(members) == 10 and not members["member"].any()
    assert (members["group"] == -1).all()
    assert json.loads((tmp_path / "summary.json").read_text())["reason"] == "too few usable stars"
    assert (tmp_path / "history.tsv").exists()


def test_cli_reads_vizier_names_and_writes_products(field, tmp_path, capsys) -> None:
    vizier = pd.DataFrame({
        "Source": field["source_id"], "RA_ICRS": field["ra"], "DE_ICRS": field["dec"],
        "Plx": field["parallax"], "e_Plx": field["parallax_error"], "pmRA": field["pmra"],
        "pmDE": field["pmdec"], "Gmag": field["phot_g_mean_mag"],
    })
    path = tmp_path / "field.csv"
    vizier.to_csv(path, index=False)
    out = tmp_path / "out"
    code = main(["characterize", str(path), "--out", str(out), "--ra", "120", "--dec", "-30",
                 "--radius", "0.5", "--pm-prior", "-4", "2", "--parallax-prior", "0.9",
                 "--seed", "1", "--n-seeds", "2", "--no-dec"])
    assert code == 0
    assert "members of" in capsys.readouterr().out
    saved = json.loads((out / "summary.json").read_text())
    assert saved["seeds"] == [1, 2]
    assert saved["priors"]["parallax"] == 0.9
    assert saved["pmra"] == pytest.approx(-5.0, abs=0.05)


@pytest.mark.parametrize("case", ["no_parallax", "all_nan", "too_few", "negative_radius"])
def test_cli_bad_input_one_line_error(field, tmp_path, capsys, case) -> None:
    stars = field.drop(columns=["true_member"])
    extra: list[str] = []
    if case == "no_parallax":
        stars = stars.drop(columns=["parallax", "parallax_error"])
    elif case == "all_nan":
        stars[["parallax", "pmra", "pmdec"]] = np.nan
    elif case == "too_few":
        stars = stars.head(12)
    else:
        extra = ["--ra", "1", "--dec", "2", "--radius", "-1"]
    path = tmp_path / "stars.csv"
    stars.to_csv(path, index=False)
    try:
        code = main(["characterize", str(path), "--out", str(tmp_path / "o"), "--no-dec", *extra])
    except SystemExit as stop:  # an option out of range: argparse, while the options are read
        code = stop.code
    err = capsys.readouterr().err.strip().splitlines()  # log lines (INFO) may precede it
    assert code == 2
    errors = [line for line in err if line.startswith("ocdec characterize: error:")]
    assert len(errors) == 1 and err[-1] == errors[0]
    assert not any("Traceback" in line for line in err)
    assert not (tmp_path / "o" / "summary.json").exists()


@pytest.mark.parametrize(("command", "option", "value"), [
    ("characterize", "--ra", "400"), ("characterize", "--ra", "360"),
    ("characterize", "--ra", "-1"), ("characterize", "--dec", "-90.01"),
    ("characterize", "--dec", "nan"), ("characterize", "--radius", "0"),
    ("characterize", "--radius", "-0.2"), ("characterize", "--radius", "inf"),
    ("download", "--ra", "400"), ("download", "--dec", "95"), ("download", "--radius", "0"),
])
def test_cone_options_out_of_range_are_refused_before_the_output_is_touched(
        field, tmp_path, capsys, command, option, value) -> None:
    """The user's --ra 400 ran and overwrote DIR; now each --ra, --dec, --radius is checked as the
    options are read, with one line naming the option, and DIR (or --out) is left as it was."""
    cone = {"--ra": "120", "--dec": "-49.93", "--radius": "0.2", option: value}
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("earlier run")
    path = tmp_path / "stars.csv"
    if command == "characterize":
        field.head(50).to_csv(path, index=False)
        argv = ["characterize", str(path), "--out", str(out), "--no-dec"]
    else:
        argv = ["download", "--region", "R", "--out", str(out / "r.parquet")]
    argv += [a for pair in cone.items() for a in pair]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"ocdec {command}: error: argument {option}: ")
    assert err[-1].endswith(f"got {value!r}") and not any("Traceback" in e for e in err)
    assert [p.name for p in out.iterdir()] == ["summary.json"]
    assert (out / "summary.json").read_text() == "earlier run"


def test_missing_column_and_column_without_values_are_told_apart(field, tmp_path,
                                                                  capsys) -> None:
    """A CSV without pmra says the file has no such column (the quality gate's words, what was
    looked for); one whose pmra is all blank says that, each naming the file."""
    no_pmra = tmp_path / "no_pmra.csv"
    field.drop(columns=["true_member", "pmra"]).to_csv(no_pmra, index=False)
    blank = tmp_path / "blank_pmra.csv"
    field.drop(columns=["true_member"]).assign(pmra=np.nan).to_csv(blank, index=False)
    for path, start, end in [
        (no_pmra, f"ocdec characterize: error: {no_pmra}: no column pmra, which the clustering "
                  "needs (looked for pmra: ", "is it named differently?"),
        (blank, f"ocdec characterize: error: {blank}: column pmra has no finite values in its "
                f"{len(field)} rows", "and the clustering needs them"),
    ]:
        out = tmp_path / path.stem
        assert main(["characterize", str(path), "--out", str(out), "--no-dec"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(start) and err[-1].endswith(end), err[-1]
        assert not (out / "summary.json").exists()


def test_a_reused_output_folder_keeps_only_this_runs_tables(field, tmp_path, capsys) -> None:
    """Run 1 writes members.fits and .vot; a failed run 2 leaves run 1's products whole; run 3,
    another field in Parquet alone, removes run 1's FITS and VOTable (and another method's
    silhouette.tsv) but no file ocdec did not name."""
    out = tmp_path / "out"
    first = tmp_path / "first.csv"
    field.drop(columns=["true_member"]).to_csv(first, index=False)
    cone = ["--ra", "120", "--dec", "-30", "--radius", "1", "--n-seeds", "1", "--no-dec"]
    assert main(["characterize", str(first), "--out", str(out), *cone,
                 "--format", "fits", "votable"]) == 0
    (out / "silhouette.tsv").write_text("k\tsilhouette\n2\t0.5\n")  # as thesis mode left it
    (out / "notes.txt").write_text("mine")
    (out / "members_old.fits").write_text("mine too")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"members.parquet", "members.fits", "members.vot", "summary.json"} <= set(before)

    broken = tmp_path / "broken.csv"
    field.drop(columns=["true_member", "pmdec"]).to_csv(broken, index=False)
    assert main(["characterize", str(broken), "--out", str(out), *cone]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    other = synthetic_field(n_field=2000, n_cluster=150, seed=11, cluster=(2.0, -6.0, 1.5))
    second = tmp_path / "second.csv"
    other.drop(columns=["true_member"]).to_csv(second, index=False)
    capsys.readouterr()
    assert main(["characterize", str(second), "--out", str(out), *cone]) == 0
    left = {p.name for p in out.iterdir()}
    assert not {"members.fits", "members.vot", "silhouette.tsv"} & left
    assert {"notes.txt", "members_old.fits", "members.parquet", "summary.json"} <= left
    assert (out / "notes.txt").read_text() == "mine"
    members = pd.read_parquet(out / "members.parquet")
    assert np.array_equal(members["source_id"], other["source_id"])
    assert json.loads((out / "summary.json").read_text())["pmra"] == pytest.approx(2.0, abs=0.1)


def test_a_field_inside_its_output_folder_is_never_removed(field, tmp_path) -> None:
    """The input may sit in --out under a product's name (members.csv); a folder no ocdec run
    wrote to loses nothing of its own, and a second run keeps the input too."""
    out = tmp_path / "out"
    out.mkdir()
    given = out / "members.csv"
    field.drop(columns=["true_member"]).to_csv(given, index=False)
    (out / "silhouette.tsv").write_text("a user's table of that name\n")
    cone = ["--ra", "120", "--dec", "-30", "--radius", "1", "--n-seeds", "1", "--no-dec"]
    # a fresh folder (no earlier run's summary.json): nothing of the user's is removed
    assert main(["characterize", str(given), "--out", str(out), *cone]) == 0
    assert given.is_file() and len(pd.read_csv(given)) == len(field)
    assert (out / "silhouette.tsv").read_text() == "a user's table of that name\n"
    # a folder the first run wrote to: another method's table name goes, the input stays
    assert main(["characterize", str(given), "--out", str(out), *cone]) == 0
    assert given.is_file() and len(pd.read_csv(given)) == len(field)
    assert not (out / "silhouette.tsv").exists()
    # asked for a CSV members table, the run would write over the field: refused, untouched
    before = given.read_bytes()
    assert main(["characterize", str(given), "--out", str(out), *cone, "--format", "csv"]) == 2
    assert given.read_bytes() == before


def test_faint_members_do_not_pull_the_mean() -> None:
    """A distant cluster: 50 bright members at parallax 0.15 +- 0.01 and 400 faint ones with
    errors of 0.5 mas drawn low by chance; the weighted mean stays at the cluster's, the plain
    mean does not, and the spread is still the members' own."""
    from ocdec.methods.astrometry import cluster_parameters, weighted_mean

    rng = np.random.default_rng(3)
    e = np.r_[np.full(50, 0.01), np.full(400, 0.5)]
    x = 0.15 + e * rng.standard_normal(e.size) - np.r_[np.zeros(50), np.full(400, 0.1)]
    mean, err = weighted_mean(x, e)
    assert abs(mean - 0.15) < 0.01 and abs(x.mean() - 0.15) > 0.05
    assert err == pytest.approx(1 / math.sqrt(np.sum(1 / e**2)), rel=0.2)
    stars = pd.DataFrame({"parallax": x, "parallax_error": e})
    params = cluster_parameters(stars, np.ones(e.size, bool))
    assert params["parallax"] == pytest.approx(mean)
    assert params["parallax_std"] == pytest.approx(x.std(ddof=1))


def test_found_line_leaves_out_what_a_method_does_not_give() -> None:
    from ocdec.cli.characterize import found_line

    base = {"n_members": 12, "n_stars": 300, "pmra": 1.0, "pmdec": -2.0, "parallax": 0.5,
            "runtime_s": 0.4}
    # a method of its own needs neither key (docs/adding-a-method.md)
    plain = found_line(base, "out")
    assert plain.startswith("found: 12 members of 300 stars") and "Jaccard" not in plain
    full = found_line({**base, "false_alarm_probability": 1e-9, "seed_jaccard": 0.95}, "out")
    assert "false-alarm probability 1.0e-09" in full and "seed Jaccard 0.950" in full
