"""Regions from the Dias et al. (2002) catalogue, the region table and its validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from ocdec import cli
from ocdec.data.catalogue import (
    FETCHED_NAME,
    KNOWN_COLUMNS,
    REGION_COLUMNS,
    fetch_dias_catalogue,
    read_dias_catalogue,
    read_regions,
    regions_from_catalogue,
    slugify,
    write_regions,
)
from ocdec.errors import OcdecError

REPO = Path(__file__).resolve().parents[1]
DIAS = "openclust_dias2002"


@pytest.fixture
def only_my_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI imports every command module; other helpers' modules may not exist yet.
    monkeypatch.setattr(cli, "COMMANDS", ("regions", "quality"))


@pytest.fixture(scope="module")
def dias(shared_data: Path) -> Table:
    return read_dias_catalogue(shared_data / DIAS)


@pytest.fixture(scope="module")
def regions(dias: Table) -> pd.DataFrame:
    return regions_from_catalogue(dias)


def raw_line(shared_data: Path, name: str) -> str:
    for line in (shared_data / DIAS / "clusters.dat").read_text().splitlines():
        if line[:17].strip() == name:
            return line
    raise AssertionError(name)


@pytest.mark.realdata
def test_b_ocl_v35_gives_243_regions_above_25_arcmin(regions: pd.DataFrame) -> None:
    assert len(regions) == 243
    assert (regions["diameter_arcmin"] > 25).all()
    assert regions["id"].is_unique
    assert list(regions.columns) == list(REGION_COLUMNS)
    # NGC 2682 has a diameter of exactly 25 arcmin, so the strict selection leaves it out.
    assert "NGC_2682" not in set(regions["id"])
    assert {"Melotte_22", "Melotte_25", "NGC_2516", "NGC_2632"} <= set(regions["id"])


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["Melotte 22", "NGC 2516", "Blanco 1", "Collinder 302"])
def test_region_values_follow_the_catalogue_text(
    shared_data: Path, regions: pd.DataFrame, name: str
) -> None:
    # An independent reading of the fixed-width line, using the byte ranges of the ReadMe.
    line = raw_line(shared_data, name)
    ra = 15 * (int(line[18:20]) + int(line[21:23]) / 60 + int(line[24:26]) / 3600)
    dec = int(line[28:30]) + int(line[31:33]) / 60 + int(line[34:36]) / 3600
    dec = -dec if line[27] == "-" else dec
    diameter = float(line[41:47])
    distance = float(line[48:53]) if line[48:53].strip() else np.nan
    pmra = float(line[67:74]) if line[67:74].strip() else np.nan
    row = regions.set_index("name").loc[name]
    assert row["id"] == name.replace(" ", "_")
    assert row["ra"] == pytest.approx(ra, abs=1e-9)
    assert row["dec"] == pytest.approx(dec, abs=1e-9)
    assert row["radius_deg"] == pytest.approx(1.5 * diameter / 2 / 60)
    np.testing.assert_allclose(row["parallax_prior"], 1000 / distance)
    np.testing.assert_allclose(row["pmra_prior"], pmra)


@pytest.mark.realdata
def test_catalogue_location_may_be_dir_readme_or_data(shared_data: Path, dias: Table) -> None:
    for location in (shared_data / DIAS / "ReadMe.txt", shared_data / DIAS / "clusters.dat"):
        table = read_dias_catalogue(location)
        assert len(table) == len(dias) == 2167
        assert table["Cluster"].tolist() == dias["Cluster"].tolist()


@pytest.mark.realdata
def test_radius_factor_and_threshold_are_configurable(dias: Table) -> None:
    wide = regions_from_catalogue(dias, min_diameter_arcmin=25, radius_factor=2.0)
    assert np.allclose(wide["radius_deg"], 2.0 * wide["diameter_arcmin"] / 120)
    inclusive = regions_from_catalogue(dias, min_diameter_arcmin=24.99)
    assert "NGC_2682" in set(inclusive["id"]) and len(inclusive) > 243


@pytest.mark.realdata
def test_shipped_region_table_is_the_catalogue_selection(regions: pd.DataFrame) -> None:
    shipped = read_regions(REPO / "config" / "regions.tsv")
    pd.testing.assert_frame_equal(shipped, regions, check_exact=False, rtol=1e-12)


@pytest.mark.realdata
def test_regions_command_writes_the_table(
    shared_data: Path, tmp_path: Path, only_my_commands: None, regions: pd.DataFrame
) -> None:
    out = tmp_path / "regions.tsv"
    readme = shared_data / DIAS / "ReadMe.txt"
    assert cli.main(["regions", "--catalogue", str(readme), "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(read_regions(out), regions, check_exact=False, rtol=1e-12)


def test_slugs() -> None:
    assert slugify("NGC 2682") == "NGC_2682"
    assert slugify(" Alessi  J2327+55 ") == "Alessi_J2327+55"
    assert slugify("Skiff J0058+68.4") != slugify("Skiff J0058-68.4")
    with pytest.raises(OcdecError):
        slugify("  ")


def small_regions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["NGC_2682", "Melotte_22"],
            "name": ["NGC 2682", "Melotte 22"],
            "ra": [132.825, 56.75],
            "dec": [11.8, 24.1167],
            "diameter_arcmin": [25.0, 120.0],
            "radius_deg": [0.3125, 1.5],
            "distance_pc": [808.0, np.nan],
            "parallax_prior": [1000 / 808, np.nan],
            "pmra_prior": [np.nan, 19.88],
            "pmdec_prior": [np.nan, -45.0],
        }
    )


def test_region_table_round_trips_with_empty_priors(tmp_path: Path) -> None:
    frame = small_regions()
    write_regions(frame, tmp_path / "r.tsv")
    text = (tmp_path / "r.tsv").read_text().splitlines()
    assert text[0].split("\t") == list(REGION_COLUMNS)
    assert "\t\t" in text[1]  # missing priors are empty cells, not "nan"
    pd.testing.assert_frame_equal(read_regions(tmp_path / "r.tsv"), frame)


def test_unknown_columns_are_kept(tmp_path: Path) -> None:
    frame = small_regions().assign(note=["M67", "Pleiades"])
    write_regions(frame, tmp_path / "r.tsv")
    assert read_regions(tmp_path / "r.tsv")["note"].tolist() == ["M67", "Pleiades"]


def test_known_columns_are_the_regions_schema_s() -> None:
    import yaml

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "regions.schema.yaml").read_text())
    assert set(KNOWN_COLUMNS) == set(schema["properties"])


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("parralax_prior", "parallax_prior"),
        ("Parallax_Prior", "parallax_prior"),
        ("pm_ra_prior", "pmra_prior"),
        ("pmdec_prio", "pmdec_prior"),
        ("distnace_pc", "distance_pc"),
        ("diametre_arcmin", "diameter_arcmin"),
        ("expected_star", "expected_stars"),
        ("raduis_deg", "radius_deg"),  # a required column: named as a typo, not only as missing
    ],
)
def test_misspelt_column_is_refused_naming_the_known_one(
    tmp_path: Path, typo: str, meant: str
) -> None:
    frame = small_regions()
    if meant in frame.columns:
        frame = frame.rename(columns={meant: typo})
    else:
        frame[typo] = 1000.0
    path = tmp_path / "regions.tsv"
    frame.to_csv(path, sep="\t", index=False)
    with pytest.raises(OcdecError) as info:
        read_regions(path)
    message = str(info.value)
    assert f"{path}: line 1: unknown column {typo!r}: did you mean {meant}?" in message
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize(
    "extra",
    ["notes", "Cluster", "pmRA", "pmDE", "Dist", "Diam", "RAJ2000", "e_Plx", "source", "age",
     "parallax_error", "pmra_error", "pmdec_error", "distance_error", "rv_prior", "alt_name"],
)
def test_unrelated_extra_columns_are_kept(tmp_path: Path, extra: str) -> None:
    frame = small_regions().assign(**{extra: ["a", "b"]})
    path = tmp_path / "regions.tsv"
    frame.to_csv(path, sep="\t", index=False)
    assert read_regions(path)[extra].tolist() == ["a", "b"]


def test_only_a_column_the_table_lacks_is_taken_for_misspelt(tmp_path: Path) -> None:
    # beside parallax_prior, parallax_priors is a column of the user's; without it, a typo
    path = tmp_path / "regions.tsv"
    small_regions().assign(parallax_priors=[1.0, 2.0]).to_csv(path, sep="\t", index=False)
    assert "parallax_priors" in read_regions(path).columns
    small_regions().rename(columns={"parallax_prior": "parallax_priors"}).to_csv(
        path, sep="\t", index=False
    )
    with pytest.raises(OcdecError, match="did you mean parallax_prior"):
        read_regions(path)


@pytest.mark.parametrize("other", ["parallax_error", "distance_kpc", "diameter_arcsec"])
def test_another_quantity_of_a_known_column_is_not_a_typo(tmp_path: Path, other: str) -> None:
    # the known column it resembles is absent, yet it ends in a word of its own (an error, a
    # unit): a column of the user's, kept
    known = {"parallax_error": "parallax_prior", "distance_kpc": "distance_pc",
             "diameter_arcsec": "diameter_arcmin"}[other]
    path = tmp_path / "regions.tsv"
    small_regions().rename(columns={known: other}).to_csv(path, sep="\t", index=False)
    assert other in read_regions(path).columns
    # a typo of the last word is still one
    small_regions().rename(columns={"pmra_prior": "pmra_prio"}).to_csv(path, sep="\t",
                                                                       index=False)
    with pytest.raises(OcdecError, match="did you mean pmra_prior"):
        read_regions(path)


def test_expected_stars_is_a_number_where_given(tmp_path: Path) -> None:
    path = tmp_path / "regions.tsv"
    small_regions().assign(expected_stars=["5000", ""]).to_csv(path, sep="\t", index=False)
    values = read_regions(path)["expected_stars"]
    assert values.iloc[0] == 5000.0 and np.isnan(values.iloc[1])
    assert "expected_stars" not in read_regions(edited(tmp_path, {})).columns
    small_regions().assign(expected_stars=["-1", ""]).to_csv(path, sep="\t", index=False)
    with pytest.raises(OcdecError, match="line 2 .NGC_2682.: column 'expected_stars' is -1"):
        read_regions(path)


def edited(tmp_path: Path, changes: dict[tuple[int, str], Any]) -> Path:
    """A region table file with ``changes`` ({(row, column): value}) applied."""
    frame = small_regions().astype(object)
    for (row, column), value in changes.items():
        frame.loc[row, column] = value
    path = tmp_path / "regions.tsv"
    frame.to_csv(path, sep="\t", index=False)
    return path


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({(1, "id"): "NGC_2682"}, "line 3: duplicated id 'NGC_2682' (first on line 2)"),
        ({(1, "radius_deg"): 0}, "line 3 (Melotte_22): column 'radius_deg' is 0, must be > 0"),
        ({(0, "radius_deg"): -1}, "line 2 (NGC_2682): column 'radius_deg' is -1, must be > 0"),
        ({(0, "dec"): "11d48m"}, "line 2 (NGC_2682): column 'dec' value '11d48m' is not a number"),
        ({(0, "ra"): ""}, "line 2 (NGC_2682): column 'ra' is empty"),
        ({(1, "dec"): 95}, "column 'dec' is 95"),
        ({(1, "radius_deg"): 45}, "line 3 (Melotte_22): column 'radius_deg' is 45, must be <= 30"),
        ({(1, "id"): "Melotte 22"}, "line 3: id 'Melotte 22' has characters unsafe"),
    ],
)
def test_bad_region_tables_are_named(
    tmp_path: Path, changes: dict[tuple[int, str], Any], expected: str
) -> None:
    path = edited(tmp_path, changes)
    with pytest.raises(OcdecError) as info:
        read_regions(path)
    message = str(info.value)
    assert expected in message and str(path) in message
    assert len(message.splitlines()) == 1


def test_region_table_without_radius_or_rows(tmp_path: Path) -> None:
    path = tmp_path / "regions.tsv"
    small_regions().drop(columns="radius_deg").to_csv(path, sep="\t", index=False)
    with pytest.raises(OcdecError, match="lacks column.*radius_deg"):
        read_regions(path)
    path.write_text("")
    with pytest.raises(OcdecError, match="empty"):
        read_regions(path)
    path.write_text("\t".join(REGION_COLUMNS) + "\n")
    with pytest.raises(OcdecError, match="no rows"):
        read_regions(path)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [({(1, "id"): "NGC_2682"}, "duplicated id 'NGC_2682'"), ({(0, "radius_deg"): 0}, "radius")],
)
def test_check_command_rejects_bad_region_table_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], only_my_commands: None,
    changes: dict[tuple[int, str], Any], expected: str,
) -> None:
    path = edited(tmp_path, changes)
    code = cli.main(["regions", "--check", str(path)])
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and expected in err and "regions.tsv" in err


def test_check_command_accepts_a_good_table(tmp_path: Path, only_my_commands: None) -> None:
    write_regions(small_regions(), tmp_path / "r.tsv")
    assert cli.main(["regions", "--check", str(tmp_path / "r.tsv")]) == 0


def test_check_command_names_the_columns_it_ignores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], only_my_commands: None
) -> None:
    path = tmp_path / "r.tsv"
    write_regions(small_regions().assign(notes=["a", "b"], Dist=[1, 2]), path)
    assert cli.main(["regions", "--check", str(path)]) == 0
    err = capsys.readouterr().err
    assert "2 regions, valid" in err
    assert "2 column(s) ocdec does not read, kept and ignored: notes, Dist" in err
    write_regions(small_regions().assign(expected_stars=[1000, 2000]), path)
    assert cli.main(["regions", "--check", str(path)]) == 0
    assert "ignored" not in capsys.readouterr().err


def test_check_command_refuses_a_misspelt_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], only_my_commands: None
) -> None:
    path = tmp_path / "r.tsv"
    small_regions().rename(columns={"parallax_prior": "parralax_prior"}).to_csv(
        path, sep="\t", index=False
    )
    assert cli.main(["regions", "--check", str(path)]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "'parralax_prior': did you mean parallax_prior?" in err and str(path) in err


def test_regions_command_reports_missing_catalogue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], only_my_commands: None
) -> None:
    out = tmp_path / "x.tsv"
    code = cli.main(["regions", "--catalogue", str(tmp_path / "none"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code != 0 and len(err.strip().splitlines()) == 1 and "none" in err
    assert not out.exists()


def vizier_form(dias: Table) -> Table:
    """B/ocl as VizieR serves it: sexagesimal RAJ2000/DEJ2000 strings instead of the parts."""
    table = Table()
    table["Cluster"] = dias["Cluster"]
    table["RAJ2000"] = [f"{h:02d} {m:02d} {s:02d}" for h, m, s in zip(
        dias["RAh"], dias["RAm"], dias["RAs"], strict=True)]
    table["DEJ2000"] = [f"{g}{d:02d} {m:02d} {s:02d}" for g, d, m, s in zip(
        dias["DE-"], dias["DEd"], dias["DEm"], dias["DEs"], strict=True)]
    for name in ("Class", "Diam", "Dist", "pmRA", "e_pmRA", "pmDE", "e_pmDE"):
        table[name] = dias[name]
    return table


class FakeVizier:
    """Stands in for astroquery's Vizier: records the request, answers with a prepared table."""

    def __init__(self, answer: Any = None, error: Exception | None = None, **kwargs: Any) -> None:
        self.answer, self.error, self.kwargs = answer, error, kwargs
        self.ROW_LIMIT = 50
        self.requested: list[str] = []

    def get_catalogs(self, catalog: str) -> Any:
        self.requested.append(catalog)
        if self.error is not None:
            raise self.error
        return self.answer


@pytest.mark.realdata
def test_fetched_catalogue_gives_the_same_regions(
    tmp_path: Path, dias: Table, regions: pd.DataFrame
) -> None:
    fake = FakeVizier({"B/ocl/clusters": vizier_form(dias)})
    path = fetch_dias_catalogue(tmp_path, vizier=fake)
    assert path == tmp_path / FETCHED_NAME and fake.requested == ["B/ocl"]
    assert fake.ROW_LIMIT == -1  # astroquery's default of 50 rows would truncate the catalogue
    fetched = regions_from_catalogue(read_dias_catalogue(tmp_path))
    pd.testing.assert_frame_equal(fetched, regions, check_exact=False, rtol=1e-12)


@pytest.mark.realdata
def test_regions_fetch_builds_an_unlimited_default_client(
    tmp_path: Path, dias: Table, monkeypatch: pytest.MonkeyPatch, only_my_commands: None
) -> None:
    import astroquery.vizier

    made: list[FakeVizier] = []

    def factory(**kwargs: Any) -> FakeVizier:
        made.append(FakeVizier({"B/ocl/clusters": vizier_form(dias)}, **kwargs))
        return made[-1]

    monkeypatch.setattr(astroquery.vizier, "Vizier", factory)
    out = tmp_path / "regions.tsv"
    args = ["regions", "--fetch", "--catalogue", str(tmp_path / "bocl"), "--out", str(out)]
    assert cli.main(args) == 0
    assert made[0].kwargs["row_limit"] == -1 and "**" in made[0].kwargs["columns"]
    assert len(read_regions(out)) == 243


def test_fetch_failure_is_one_line(tmp_path: Path) -> None:
    fake = FakeVizier(error=ConnectionResetError("connection reset by peer\nmore detail"))
    with pytest.raises(OcdecError) as info:
        fetch_dias_catalogue(tmp_path, vizier=fake)
    assert str(info.value) == "VizieR B/ocl: download failed: connection reset by peer"
    assert not (tmp_path / FETCHED_NAME).exists()
