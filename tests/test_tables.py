"""Members tables and the catalogue summary in FITS, VOTable, ECSV and Parquet, read back with
astropy: units, descriptions and values survive."""

from __future__ import annotations

import math
from pathlib import Path

import astropy.units as u
import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from ocdec import products
from ocdec.cli import main
from ocdec.errors import OcdecError
from ocdec.results import summary
from ocdec.tables import describe, export_members, export_summary, table_path
from synthetic_field import synthetic_field

READERS = {"fits": "fits", "votable": "votable", "csv": "ascii.ecsv", "parquet": "parquet"}


@pytest.fixture(scope="module")
def field() -> pd.DataFrame:
    return synthetic_field(n_field=2000, n_cluster=150)


def _read(path: Path, fmt: str) -> Table:
    return Table.read(path, format=READERS[fmt])


def test_cli_writes_members_in_every_format(field: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "field.parquet"
    field.to_parquet(path)
    out = tmp_path / "out"
    code = main(["characterize", str(path), "--out", str(out), "--ra", "120", "--dec", "-30",
                 "--radius", "0.5", "--n-seeds", "1", "--no-dec",
                 "--format", "parquet", "fits", "votable", "csv"])
    assert code == 0
    members = pd.read_parquet(out / products.MEMBERS)  # always there: validate reads it
    for fmt, name in (("fits", "members.fits"), ("votable", "members.vot"),
                      ("csv", "members.csv")):
        table = _read(out / name, fmt)
        assert len(table) == len(members), fmt
        assert table["pmra"].unit == u.mas / u.yr, fmt
        assert table["parallax"].unit == u.mas and table["ra"].unit == u.deg, fmt
        assert table["phot_g_mean_mag"].unit == u.mag, fmt
        assert table["p_member"].unit is None, fmt
        np.testing.assert_allclose(np.asarray(table["pmra"], float), members["pmra"])
        assert np.array_equal(np.asarray(table["member"], bool), members["member"].to_numpy())
        assert np.array_equal(np.asarray(table["source_id"]), members["source_id"].to_numpy())
        if fmt != "fits":  # FITS keeps descriptions as TCOMM cards astropy does not read back
            assert "membership probability" in table["p_member"].description, fmt
    header = Table.read(out / "members.fits").meta
    assert header["METHOD"] == "default"
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporary file


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    pd.DataFrame({"pmra": [1.0]}).to_parquet(tmp_path / "members.parquet")
    with pytest.raises(OcdecError, match="unknown table format 'hdf5'"):
        export_members(tmp_path / "members.parquet", ["hdf5"])


def test_summary_in_every_format(tmp_path: Path) -> None:
    row = {c: math.nan for c in summary.COLUMNS}
    row.update({"region": "NGC_2682", "name": "NGC 2682", "status": "done", "reason": None,
                "n_input": 60000, "n_stars": 50000, "n_members": 700, "pmra": -10.97,
                "pmra_error": 0.01, "parallax": 1.13, "r50_deg": 0.12, "runtime_s": 12.5,
                "thesis_pmra": -11.0, "pmra_offset_sigma": 1.1, "seeds": "0 1 2"})
    skipped = {c: math.nan for c in summary.COLUMNS}
    skipped.update({"region": "NGC_1", "status": "skipped", "reason": "too few stars"})
    table = summary.summary_table([row, skipped])
    paths = {fmt: tmp_path / f"summary.{products.TABLE_FORMATS[fmt]}" for fmt in READERS}
    export_summary(table, paths)
    for fmt, path in paths.items():
        back = _read(path, fmt)
        assert list(back["region"]) == ["NGC_2682", "NGC_1"], fmt
        assert back["pmra"].unit == u.mas / u.yr and back["pmra_error"].unit == u.mas / u.yr
        assert back["thesis_pmra"].unit == u.mas / u.yr and back["r50_deg"].unit == u.deg
        assert back["runtime_s"].unit == u.s and back["pmra_offset_sigma"].unit is None
        assert back["pmra"][0] == pytest.approx(-10.97)
        assert str(back["reason"][1]) == "too few stars"


def test_every_summary_column_is_described() -> None:
    assert all(describe(col)[1] for col in summary.COLUMNS)
    assert describe("thesis_parallax_error") == (
        "mas", "thesis mode (DEC filtered): standard error of the members' mean parallax")


def test_table_path() -> None:
    assert table_path("results/X/default/members.parquet", "votable").name == "members.vot"
    assert products.table_file("results/summary.tsv", "csv") == "results/summary.csv"
