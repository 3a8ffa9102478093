"""Reading star files of every format and column naming into the canonical table."""

from __future__ import annotations

import gzip
from pathlib import Path

import astropy.units as u
import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from ocdec import cli
from ocdec.data.columns import CANONICAL_COLUMNS, normalise, read_stars
from ocdec.errors import OcdecError

FIELDS = "fields"
NGC188 = "ngc188_dr2_r1deg_plx0.4-0.7.csv"  # archive names, DR2
NGC103 = "ngc103_dr3_box_G18.5_asteca.csv"  # VizieR I/355 names, DR3
MAS_YR = u.mas / u.yr


@pytest.fixture
def only_my_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI imports every command module; other helpers' modules may not exist yet.
    monkeypatch.setattr(cli, "COMMANDS", ("regions", "quality"))


#: VizieR I/345 and I/355 labels and units of the canonical columns.
VIZIER = {
    "source_id": ("Source", None),
    "ra": ("RA_ICRS", u.deg),
    "dec": ("DE_ICRS", u.deg),
    "parallax": ("Plx", u.mas),
    "parallax_error": ("e_Plx", u.mas),
    "pmra": ("pmRA", MAS_YR),
    "pmra_error": ("e_pmRA", MAS_YR),
    "pmdec": ("pmDE", MAS_YR),
    "pmdec_error": ("e_pmDE", MAS_YR),
    "phot_g_mean_mag": ("Gmag", u.mag),
    "phot_bp_mean_mag": ("BPmag", u.mag),
    "phot_rp_mean_mag": ("RPmag", u.mag),
    "bp_rp": ("BP-RP", u.mag),
    "ruwe": ("RUWE", None),
}


def vizier_table(frame: pd.DataFrame, parallax_unit: u.UnitBase = u.mas) -> Table:
    """The columns ``frame`` has values in, re-expressed with VizieR names and units.

    Parallax and its error are written in ``parallax_unit`` (values scaled to match).
    """
    table = Table()
    for canonical, (label, unit) in VIZIER.items():
        values = frame[canonical].to_numpy()
        if canonical != "source_id" and np.isnan(values).all():
            continue  # absent from this export, as in the real file
        if canonical in ("parallax", "parallax_error"):
            values = values * (1.0 * u.mas).to_value(parallax_unit)
            unit = parallax_unit
        table[label] = values if unit is None else values * unit
    return table


@pytest.mark.realdata
@pytest.mark.slow
def test_every_real_field_reads_to_the_canonical_columns(shared_data: Path) -> None:
    for path in sorted(p for p in (shared_data / FIELDS).iterdir() if p.is_file()):
        frame = read_stars(path)
        raw = pd.read_csv(path)
        assert list(frame.columns) == list(CANONICAL_COLUMNS), path.name
        assert frame["source_id"].dtype == np.int64
        assert all(frame[c].dtype == np.float64 for c in CANONICAL_COLUMNS[1:])
        assert len(frame) == len(raw)
        plx = raw["parallax"] if "parallax" in raw else raw["Plx"]
        np.testing.assert_array_equal(frame["parallax"].to_numpy(), plx.to_numpy())
        if "source_id" in raw or "DR3Name" in raw:
            assert frame.attrs["source_id_is_row"] is False
        else:  # the TeachAstro exports carry no ids: row numbers stand in, and say so
            assert frame.attrs["source_id_is_row"] is True
            np.testing.assert_array_equal(frame["source_id"], np.arange(len(raw)))


@pytest.mark.realdata
def test_vizier_names_map_to_archive_columns(shared_data: Path) -> None:
    frame = read_stars(shared_data / FIELDS / NGC103)
    raw = pd.read_csv(shared_data / FIELDS / NGC103)
    pairs = {"ra": "RA_ICRS", "dec": "DE_ICRS", "parallax_error": "e_Plx", "pmra": "pmRA",
             "pmra_error": "e_pmRA", "pmdec": "pmDE", "pmdec_error": "e_pmDE",
             "phot_g_mean_mag": "Gmag", "bp_rp": "BP-RP", "source_id": "DR3Name"}
    for canonical, vizier in pairs.items():
        np.testing.assert_array_equal(frame[canonical].to_numpy(), raw[vizier].to_numpy())
    assert frame["ruwe"].isna().all() and frame["phot_bp_mean_mag"].isna().all()


@pytest.mark.realdata
def test_parallax_error_is_derived_from_parallax_over_error(shared_data: Path) -> None:
    name = "melotte20_alphaper_dr2_r2deg_plxcut.csv"
    frame = read_stars(shared_data / FIELDS / name)
    raw = pd.read_csv(shared_data / FIELDS / name)
    np.testing.assert_allclose(
        frame["parallax"] / frame["parallax_error"], raw["parallax_over_error"], rtol=1e-12
    )


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("field", [NGC188, NGC103])
def test_every_format_and_naming_gives_the_same_canonical_frame(
    shared_data: Path, tmp_path: Path, field: str
) -> None:
    # The first rows suffice to compare formats; the text VOTable writer is slow on a whole field.
    reference = read_stars(shared_data / FIELDS / field).iloc[:1500]
    viz = vizier_table(reference)
    files = {
        "vizier.fits": viz,
        "vizier.vot": viz,
        "vizier.ecsv": viz,
        "vizier.parquet": viz,
        # parallax stored in arcsec must arrive in mas
        "arcsec.ecsv": vizier_table(reference, u.arcsec),
        "arcsec.vot": vizier_table(reference, u.arcsec),
        "arcsec.fits": vizier_table(reference, u.arcsec),
    }
    for name, table in files.items():
        fmt = {"vot": "votable", "ecsv": "ascii.ecsv"}.get(name.split(".")[-1])
        table.write(tmp_path / name, format=fmt) if fmt else table.write(tmp_path / name)
    # Archive names with a lower-case twist, in the pandas-written formats.
    archive = reference.rename(columns={"parallax": "PARALLAX", "pmra": "pmRA"})
    archive.to_csv(tmp_path / "archive.csv.gz", index=False)
    archive.to_parquet(tmp_path / "archive.parquet", index=False)
    # VizieR DR3Name strings ("Gaia DR3 <id>") and DR2 lower-case e_plx, as in CDS exports.
    named = vizier_table(reference)
    named["DR2Name"] = [f"Gaia DR2 {i}" for i in reference["source_id"]]
    named.remove_column("Source")
    named.rename_column("e_Plx", "e_plx")
    named.write(tmp_path / "named.xml", format="votable")

    paths = sorted(tmp_path.iterdir())
    assert len(paths) == len(files) + 3
    for path in paths:
        frame = read_stars(path)
        pd.testing.assert_frame_equal(
            frame, reference, check_exact=False, rtol=1e-12, obj=path.name
        )
        assert frame.attrs["source_id_is_row"] is False


def test_units_are_converted_and_bad_units_named(tmp_path: Path) -> None:
    table = Table()
    table["RAJ2000"] = [np.pi] * u.rad
    table["DEJ2000"] = [0.5] * u.deg
    table["Plx"] = [0.002] * u.arcsec
    table["pmRA"] = [0.001] * u.arcsec / u.yr
    table["pmDE"] = [3.0] * MAS_YR
    table.write(tmp_path / "units.ecsv", format="ascii.ecsv")
    frame = read_stars(tmp_path / "units.ecsv")
    assert frame.loc[0, "ra"] == pytest.approx(180.0)
    assert frame.loc[0, "parallax"] == pytest.approx(2.0)
    assert frame.loc[0, "pmra"] == pytest.approx(1.0)
    assert frame.loc[0, "pmdec"] == pytest.approx(3.0)

    table["Plx"] = [1.0] * u.km / u.s
    table.write(tmp_path / "bad.ecsv", format="ascii.ecsv")
    with pytest.raises(OcdecError, match=r"bad\.ecsv.*'Plx'.*km / s"):
        read_stars(tmp_path / "bad.ecsv")


def test_colour_is_computed_from_bp_and_rp() -> None:
    frame = normalise(
        pd.DataFrame({"Plx": [1.0, 2.0], "BPmag": [15.0, np.nan], "RPmag": [14.2, 13.0]}), "test"
    )
    assert frame.loc[0, "bp_rp"] == pytest.approx(0.8)
    assert np.isnan(frame.loc[1, "bp_rp"])
    assert frame["phot_bp_mean_mag"].iloc[0] == 15.0


def test_normalise_keeps_truth_and_ids_from_an_astropy_table() -> None:
    table = Table({"source_id": [5, 7], "parallax": [1.0, 2.0] * u.mas,
                   "true_member": [True, False], "phot_variable_flag": ["A", "B"]})
    frame = normalise(table, "query")
    assert list(frame.columns) == [*CANONICAL_COLUMNS, "true_member"]
    assert frame["source_id"].tolist() == [5, 7]
    assert frame["true_member"].tolist() == [True, False]


def one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "empty"),
        ("header_only.csv", b"source_id,parallax\n", "no rows"),
        ("noplx.csv", b"source_id,ra,dec,pmra\n1,2,3,4\n", "no parallax column"),
        ("nothing.csv", b"a,b\n1,2\n", "no usable columns"),
        ("broken.fits", b"SIMPLE  = not really a FITS file", "cannot read as fits"),
        ("stars.h5", b"x", "unknown star-file format"),
        ("badid.csv", b"source_id,parallax\n12,1\nabc,2\n", "'source_id' row 1"),
    ],
)
def test_bad_files_give_one_line_errors(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(OcdecError) as info:
        read_stars(path)
    message = str(info.value)
    assert expected in message and name in message and one_line(message)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(OcdecError, match="nope.csv: no such file"):
        read_stars(tmp_path / "nope.csv")


def test_ecsv_content_behind_a_csv_suffix_is_read_with_units(tmp_path: Path) -> None:
    table = Table({"Plx": [0.001] * u.arcsec, "pmRA": [1.0] * MAS_YR})
    table.write(tmp_path / "table.ecsv", format="ascii.ecsv")
    with gzip.open(tmp_path / "table.csv.gz", "wb") as handle:
        handle.write((tmp_path / "table.ecsv").read_bytes())
    assert read_stars(tmp_path / "table.csv.gz").loc[0, "parallax"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"source_id,ra,dec,pmra,pmdec\n1,2,3,4,5\n", "no parallax column"), (b"", "empty")],
)
def test_cli_reports_bad_star_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], only_my_commands: None,
    content: bytes, expected: str,
) -> None:
    source = tmp_path / "stars.csv"
    source.write_bytes(content)
    out = tmp_path / "out.parquet"
    code = cli.main(["quality", str(source), "--out", str(out), "--status", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code != 0
    assert one_line(err) and expected in err and "stars.csv" in err
    assert not out.exists()


def test_unit_spellings_astropy_leaves_unrecognised_are_salvaged() -> None:
    table = Table({"Plx": [0.003], "RA_ICRS": [np.pi / 2]})
    table["Plx"].unit = u.Unit("Angle[arcsec]", parse_strict="silent")
    table["RA_ICRS"].unit = u.Unit("'rad'", parse_strict="silent")
    assert isinstance(table["Plx"].unit, u.UnrecognizedUnit)
    frame = normalise(table, "download")
    assert frame.loc[0, "parallax"] == pytest.approx(3.0)
    assert frame.loc[0, "ra"] == pytest.approx(90.0)
    table["Plx"].unit = u.Unit("furlongs", parse_strict="silent")
    with pytest.raises(OcdecError, match="download: column 'Plx' has unit 'furlongs'"):
        normalise(table, "download")


# -- rows without ids, repeated stars, formats told by content --------------------------------

GAIA_IDS = [4295806720 + 10**17 * k for k in range(1, 11)]  # above 2**53, as Gaia ids are


def _stars_csv(ids: list[str]) -> str:
    rows = [f"{sid},{130 + k * 0.01},{19 + k * 0.01},{1 + k * 0.1},{-36.0 + k},{-13.0 - k}"
            for k, sid in enumerate(ids)]
    return "EDR3Name,RA_ICRS,DE_ICRS,Plx,pmRA,pmDE\n" + "\n".join(rows) + "\n"


def test_rows_without_a_star_id_are_dropped_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ids = [f"Gaia EDR3 {i}" for i in GAIA_IDS]
    ids[3] = ids[7] = ""  # stars of a merged catalogue without a Gaia match
    path = tmp_path / "merged.csv"
    path.write_text(_stars_csv(ids))
    frame = read_stars(path)
    assert len(frame) == 8 and 0 not in frame["source_id"].to_numpy()
    expected = [i for k, i in enumerate(GAIA_IDS) if k not in (3, 7)]
    assert frame["source_id"].tolist() == expected  # 64-bit ids kept exact
    assert frame["parallax"].tolist() == pytest.approx(
        [1 + k * 0.1 for k in range(10) if k not in (3, 7)])
    assert "dropped 2 of 10 rows without a star id in column 'EDR3Name'" in caplog.text


def test_a_mostly_empty_id_column_is_still_refused(tmp_path: Path) -> None:
    ids = [""] * 10
    ids[0] = str(GAIA_IDS[0])
    path = tmp_path / "wrong_id_column.csv"
    path.write_text(_stars_csv(ids))
    with pytest.raises(OcdecError) as err:
        read_stars(path)
    assert "is empty in 9 of 10 rows" in str(err.value) and "\n" not in str(err.value)


def test_exact_repeats_are_dropped_and_conflicting_repeats_refused(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = _stars_csv([str(i) for i in GAIA_IDS]).splitlines()
    path = tmp_path / "repeats.csv"
    path.write_text("\n".join(lines + lines[1:4] + lines[1:2]) + "\n")
    frame = read_stars(path)
    assert frame["source_id"].tolist() == GAIA_IDS
    assert "dropped 4 exact duplicate row(s)" in caplog.text
    changed = lines[2].rsplit(",", 1)[0] + ",-99"
    path.write_text("\n".join([*lines, changed]) + "\n")
    with pytest.raises(OcdecError) as err:
        read_stars(path)
    message = str(err.value)
    assert f"source_id {GAIA_IDS[1]} is in rows 1 and 10 with different values" in message
    assert "repeats.csv" in message and "\n" not in message


VIZIER_ALIGNED = """\
#   VizieR Astronomical Server vizier.cds.unistra.fr
#Title: Gaia DR3 (Gaia Collaboration, 2022)

RA_ICRS        DE_ICRS         Source                 Plx      pmRA      pmDE     Gmag
deg            deg                                    mas      mas/yr    mas/yr   mag
-------------- -------------- -------------------- --------- --------- --------- -------
130.0012345678 +19.6012345678  661297901272035456    5.4321  -36.012   -12.918   12.3456
130.0112345678 +19.6112345678  661297901272035457    5.1234  -35.912             13.1111
130.0212345678 +19.6212345678  661297901272035458   -0.1234   -1.234     2.345   19.9876
"""


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("stars.dat", "csv"),
        ("stars.txt", "csv"),
        ("stars", "csv"),
        ("stars.dat", "aligned"),
        ("stars.txt.gz", "aligned"),
        ("stars.tsv", "tabs"),
    ],
)
def test_format_is_told_by_content_when_the_suffix_says_nothing(
        tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    if content == "csv":
        text = _stars_csv([str(i) for i in GAIA_IDS[:3]])
    elif content == "aligned":
        text = VIZIER_ALIGNED
    else:
        lines = VIZIER_ALIGNED.splitlines()
        rows = [lines[3].split(), ["deg", "deg", "", "mas", "mas/yr", "mas/yr", "mag"],
                ["-" * 8] * 7] + [line.split() for line in lines[6:]]
        rows[4].insert(5, "")  # the empty pmDE cell of the second star
        text = "#INFO\tTSV from VizieR\n" + "\n".join("\t".join(r) for r in rows) + "\n"
    data = text.encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    frame = read_stars(path)
    assert len(frame) == 3
    if content == "csv":
        assert frame["source_id"].tolist() == GAIA_IDS[:3]
        assert frame["pmdec"].tolist() == pytest.approx([-13.0, -14.0, -15.0])
    else:
        assert frame["source_id"].tolist() == [661297901272035456 + k for k in range(3)]
        assert frame["parallax"].tolist() == pytest.approx([5.4321, 5.1234, -0.1234])
        pmdec = frame["pmdec"].to_numpy()
        assert pmdec[0] == pytest.approx(-12.918) and np.isnan(pmdec[1])  # empty cell
        assert pmdec[2] == pytest.approx(2.345)
        assert frame["phot_g_mean_mag"].tolist() == pytest.approx([12.3456, 13.1111, 19.9876])


def test_real_vizier_pipe_separated_export_is_read(shared_data: Path) -> None:
    frame = read_stars(shared_data / "babusiaux2018_A10" / "GaiaHRD_tab1a.tsv")
    assert len(frame) == 5378 and frame["source_id"].iloc[0] > 2**53
    assert frame["parallax"].notna().all()


def test_binary_file_without_a_telling_suffix_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "stars.dat"
    path.write_bytes(b"\x00\x01\x02 binary")
    with pytest.raises(OcdecError, match="stars.dat: cannot tell the format"):
        read_stars(path)


def test_normalising_never_writes_into_the_callers_table() -> None:
    """The canonical frame takes the columns it made as they are (one copy of the table), but a
    column that is still the caller's is copied: filling BP-RP from the magnitudes leaves the
    caller's table as it was."""
    import numpy as np
    import pandas as pd

    from ocdec.data.columns import normalise

    n = 50
    table = pd.DataFrame({"source_id": np.arange(1, n + 1), "parallax": np.full(n, 1.0),
                          "pmra": np.zeros(n), "pmdec": np.zeros(n),
                          "phot_bp_mean_mag": np.full(n, 15.0),
                          "phot_rp_mean_mag": np.full(n, 14.0), "bp_rp": np.full(n, np.nan)})
    before = table.copy()
    frame = normalise(table, "caller")
    np.testing.assert_array_equal(frame["bp_rp"].to_numpy(), np.full(n, 1.0))
    pd.testing.assert_frame_equal(table, before)


def test_a_parquet_table_reads_as_pandas_reads_it(tmp_path) -> None:
    """read_stars reads Parquet with pyarrow, freeing each column as it converts it: the canonical
    table is the one from pandas' own reader, and read_table (all the file's columns, for the
    caller to use) stays pandas' frame, writable."""
    import numpy as np
    import pandas as pd

    from ocdec.data import columns

    n = 40
    table = pd.DataFrame({"source_id": np.arange(1, n + 1), "parallax": np.linspace(1, 2, n),
                          "pmra": np.zeros(n), "pmdec": np.ones(n), "name": ["star"] * n,
                          "kind": pd.Categorical(["a", "b"] * (n // 2)),
                          "flag": pd.array([1, None] * (n // 2), dtype="Int64")},
                         index=pd.Index(np.arange(n) * 3, name="row"))
    path = tmp_path / "stars.parquet"
    table.to_parquet(path, index=True)
    expected = columns.normalise(pd.read_parquet(path), str(path))
    pd.testing.assert_frame_equal(columns.read_stars(path), expected)
    raw = columns.read_table(path)
    pd.testing.assert_frame_equal(raw, pd.read_parquet(path))
    raw.loc[raw.index[0], "parallax"] = 5.0  # the caller's to change
    assert raw["parallax"].iloc[0] == 5.0


def test_ascending_ids_skip_the_duplicate_hash_but_adjacent_repeats_do_not() -> None:
    from ocdec.data.columns import drop_duplicate_stars

    plain = pd.DataFrame({"source_id": np.array([3, 5, 9], np.int64), "parallax": [1.0, 2.0, 3.0]})
    assert drop_duplicate_stars(plain, "t") is plain  # ascending: returned as it is
    repeat = pd.DataFrame({"source_id": np.array([3, 5, 5, 9], np.int64),
                           "parallax": [1.0, 2.0, 2.0, 3.0]})
    assert drop_duplicate_stars(repeat, "t")["source_id"].tolist() == [3, 5, 9]
    unsorted = pd.DataFrame({"source_id": np.array([9, 5, 3, 5], np.int64),
                             "parallax": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(OcdecError, match="source_id 5 is in rows 1 and 3"):
        drop_duplicate_stars(unsorted, "t")
