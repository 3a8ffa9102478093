"""Reference values: SIMBAD through a test double and a loopback TAP server, the offline table,
published cluster tables."""

from __future__ import annotations

import io
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import pytest
from astropy.table import Table

from ocdec.cli import main
from ocdec.errors import OcdecError
from ocdec.results import reference

REPO = Path(__file__).resolve().parents[1]

# SIMBAD's basic table for M 45 (values shaped like SIMBAD's; the ellipse gives the errors).
PLEIADES = {
    "main_id": "M  45",
    "pmra": 19.997,
    "pmdec": -45.548,
    "pm_err_maj": 0.127,
    "pm_err_min": 0.101,
    "pm_err_angle": 90,
    "pm_bibcode": "2018A&A...616A..10G",
    "plx_value": 7.364,
    "plx_err": 0.005,
    "plx_bibcode": "2018A&A...616A..10G",
}


def simbad_table(rows: list[dict]) -> Table:
    names = [*reference.SIMBAD_COLUMNS, "matched_id"]
    return Table(rows=[[r[n] for n in names] for r in rows], names=names)


class FakeSimbad:
    """Stands in for astroquery's SimbadClass: answers query_tap from an identifier table the way
    SIMBAD does (identifiers compared without regard to spacing or case)."""

    def __init__(
        self, objects: dict[str, dict], fail_first: int = 0, error: Exception | None = None
    ):
        self.objects = objects
        self.queries: list[str] = []
        self.fail_first = fail_first
        self.error = error or ConnectionResetError("connection reset by peer")

    def query_tap(self, query: str, **kwargs) -> Table:
        self.queries.append(query)
        if len(self.queries) <= self.fail_first:
            raise self.error
        asked = [
            a.replace("''", "'")
            for a in __import__("re").findall(r"ident\.id = '((?:[^']|'')*)'", query)
        ]
        rows = []
        for ident, obj in self.objects.items():
            if any(
                " ".join(a.split()).casefold() == " ".join(ident.split()).casefold() for a in asked
            ):
                rows.append({**obj, "matched_id": ident})
        return simbad_table(rows)


def test_candidate_names_try_name_then_cl_then_aliases() -> None:
    assert reference.candidate_names("Melotte_22") == [
        "Melotte 22",
        "Cl Melotte 22",
        "M 45",
        "Pleiades",
    ]
    assert reference.candidate_names("NGC 2632")[:3] == ["NGC 2632", "Cl NGC 2632", "M 44"]
    assert reference.candidate_names("Cl Melotte 22")[0] == "Cl Melotte 22"


@pytest.mark.parametrize(
    "a,b",
    [
        ("NGC_2632", "NGC 2632"),
        ("ngc2632", "NGC  2632"),
        ("NGC_0188", "NGC 188"),
        ("Cl Melotte 22", "Melotte_22"),
        ("M45", "M  45"),
    ],
)
def test_name_key_matches_spellings(a: str, b: str) -> None:
    assert reference.name_key(a) == reference.name_key(b)


def test_name_key_keeps_different_clusters_apart() -> None:
    assert reference.name_key("NGC 188") != reference.name_key("NGC 1883")
    assert reference.name_key("Melotte 22") != reference.name_key("Melotte 25")


def test_simbad_alias_resolved_in_one_request_and_cached(tmp_path: Path) -> None:
    # SIMBAD knows the Pleiades only as "M 45" here: the alias table must find it.
    client = FakeSimbad({"M  45": PLEIADES})
    cache = tmp_path / "Melotte_22.json"
    row = reference.simbad_reference("Melotte 22", cache, client=client, wait_s=0)
    assert len(client.queries) == 1
    assert "'Melotte 22'" in client.queries[0] and "'Cl Melotte 22'" in client.queries[0]
    assert row["source"] == "SIMBAD"
    assert row["pmra"] == pytest.approx(19.997) and row["parallax"] == pytest.approx(7.364)
    # angle 90 deg: the major axis lies along RA
    assert row["pmra_error"] == pytest.approx(0.127) and row["pmdec_error"] == pytest.approx(0.101)
    assert "M 45" in row["detail"]
    again = reference.simbad_reference("Melotte 22", cache, client=client, wait_s=0)
    assert len(client.queries) == 1, "the second call must read the cache, not ask SIMBAD"
    assert again["pmra"] == row["pmra"]


def test_simbad_prefers_the_name_over_an_alias() -> None:
    other = {**PLEIADES, "main_id": "NGC  2632", "pmra": -36.0}
    client = FakeSimbad({"M  44": {**other, "pmra": 99.0}, "NGC  2632": other})
    row = reference.fetch_simbad("NGC_2632", client=client, wait_s=0)
    assert row["pmra"] == -36.0


def test_simbad_retries_transient_errors() -> None:
    client = FakeSimbad({"Cl Melotte   22": PLEIADES}, fail_first=2)
    row = reference.fetch_simbad("Melotte 22", client=client, retries=3, wait_s=0)
    assert len(client.queries) == 3
    assert row["pmdec"] == pytest.approx(-45.548)


def test_simbad_gives_up_after_retries_with_one_line_error() -> None:
    client = FakeSimbad({"M  45": PLEIADES}, fail_first=10)
    with pytest.raises(OcdecError, match="after 3 attempt") as info:
        reference.fetch_simbad("Melotte 22", client=client, retries=2, wait_s=0)
    assert "\n" not in str(info.value)
    assert len(client.queries) == 3


def test_simbad_does_not_retry_a_bad_query() -> None:
    client = FakeSimbad({}, fail_first=5, error=ValueError("Query string contains an odd number"))
    with pytest.raises(OcdecError):
        reference.fetch_simbad("NGC 2682", client=client, retries=3, wait_s=0)
    assert len(client.queries) == 1


def test_simbad_does_not_retry_a_client_error() -> None:
    import requests

    response = requests.Response()
    response.status_code = 404
    client = FakeSimbad(
        {}, fail_first=5, error=requests.exceptions.HTTPError("404", response=response)
    )
    with pytest.raises(OcdecError, match="HTTPError"):
        reference.fetch_simbad("NGC 2682", client=client, retries=3, wait_s=0)
    assert len(client.queries) == 1


def test_simbad_unknown_cluster_is_an_error() -> None:
    with pytest.raises(OcdecError, match="knows none"):
        reference.fetch_simbad("Nonexistent 1", client=FakeSimbad({}), wait_s=0)


def test_pm_component_errors_project_the_ellipse() -> None:
    ra, dec = reference.pm_component_errors(0.2, 0.1, 0.0)  # major axis north-south
    assert ra == pytest.approx(0.1) and dec == pytest.approx(0.2)
    ra, dec = reference.pm_component_errors(0.2, 0.1, 45.0)
    assert ra == pytest.approx(dec) and 0.1 < ra < 0.2
    assert reference.pm_component_errors(0.2, math.nan, math.nan) == (0.2, 0.2)


# --- loopback TAP server: astroquery's real SimbadClass against 127.0.0.1 ------------------------


class _TapHandler(BaseHTTPRequestHandler):
    server_version = "FakeSimbadTAP/1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length).decode()
        query = {k.lower(): v for k, v in parse_qs(body).items()}.get("query", [""])[0]
        self.server.queries.append(query)
        if len(self.server.queries) <= self.server.fail_first:
            self.send_response(503)
            self.end_headers()
            return
        buf = io.BytesIO()
        table = simbad_table([{**PLEIADES, "matched_id": "Cl Melotte   22"}])
        table.write(buf, format="votable")
        payload = buf.getvalue()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-votable+xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def tap_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TapHandler)
    server.queries = []
    server.fail_first = 1
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_simbad_against_loopback_tap_server(tap_server, tmp_path: Path) -> None:
    from astroquery.simbad import SimbadClass
    from pyvo.dal import TAPService

    url = f"http://127.0.0.1:{tap_server.server_address[1]}/simbad/sim-tap"

    class LoopbackSimbad(SimbadClass):
        # the real client, pointed at the test server (SIMBAD's URL is https on its own host)
        hardlimit = 2_000_000

        @property
        def tap(self):
            if self._tap is None:
                self._tap = TAPService(baseurl=url)
            return self._tap

    SimbadClass.clear_cache()
    row = reference.simbad_reference(
        "Melotte 22",
        tmp_path / "ref.json",
        client=LoopbackSimbad(),
        retries=2,
        wait_s=0,
        timeout_s=10,
    )
    assert len(tap_server.queries) == 2, "one 503, then one successful retry"
    assert "Melotte 22" in tap_server.queries[-1]
    assert row["parallax"] == pytest.approx(7.364)
    assert json.loads((tmp_path / "ref.json").read_text())["simbad"]["pmra"] == pytest.approx(
        19.997
    )


# --- offline table ------------------------------------------------------------------------------


def test_shipped_reference_table_has_the_thesis_values() -> None:
    table = reference.load_reference_table(REPO / "config" / "references.tsv")
    assert set(table["id"]) == {"NGC_2516", "NGC_2632", "NGC_2682", "Melotte_22", "Melotte_25"}
    row = reference.table_reference(table, "Melotte_25")
    assert row["pmra"] == pytest.approx(104.92) and row["parallax_error"] == pytest.approx(0.065)
    # found by name too
    assert reference.table_reference(table, "whatever", "NGC 2682")["parallax"] == pytest.approx(
        1.1325
    )
    assert reference.table_reference(table, "NGC_188") is None


def test_reference_table_errors_name_file_row_column(tmp_path: Path) -> None:
    bad = tmp_path / "refs.tsv"
    bad.write_text(
        "id\tname\tpmra\tpmra_error\tpmdec\tpmdec_error\tparallax\tparallax_error\tsource\n"
        "A_1\tA 1\t1.0\t0.1\tx\t0.1\t1.0\t0.1\tt\n"
    )
    with pytest.raises(OcdecError, match=r"row 2, column pmdec"):
        reference.load_reference_table(bad)
    bad.write_text("id\tname\tpmra\n")
    with pytest.raises(OcdecError, match="lacks column"):
        reference.load_reference_table(bad)


def test_reference_table_from_config_mapping() -> None:
    table = reference.reference_table_from_mapping(
        {"NGC_2682": {"pmra": -10.9737, "pmra_error": 0.0064, "parallax": 1.1325}}
    )
    row = reference.table_reference(table, "NGC_2682")
    assert row["pmra"] == pytest.approx(-10.9737) and math.isnan(row["pmdec"])
    with pytest.raises(OcdecError, match="unknown key"):
        reference.reference_table_from_mapping({"X": {"pmar": 1.0}})


def test_region_references_fall_back_offline_when_simbad_fails(tmp_path: Path) -> None:
    table = reference.load_reference_table(REPO / "config" / "references.tsv")
    client = FakeSimbad({}, fail_first=99)
    rows = reference.region_references(
        "NGC_2632", simbad=True, client=client, reference_table=table, retries=0, wait_s=0
    )
    assert [r["source"] for r in rows] == ["thesis table"]
    with pytest.raises(OcdecError):
        reference.region_references("NGC_2632", simbad=True, client=client, retries=0, wait_s=0)


def test_write_and_read_references_roundtrip(tmp_path: Path) -> None:
    rows = [
        {
            "source": "SIMBAD",
            "pmra": 1.0,
            "pmra_error": 0.1,
            "pmdec": 2.0,
            "pmdec_error": 0.2,
            "parallax": 3.0,
            "parallax_error": 0.3,
            "n_stars": math.nan,
        }
    ]
    reference.write_references(tmp_path / "r.json", "A_1", "A 1", rows)
    back = reference.read_references(tmp_path / "r.json")
    assert back[0]["pmdec"] == 2.0 and math.isnan(back[0]["n_stars"])


# --- published cluster tables (real VizieR exports) ----------------------------------------------


@pytest.mark.realdata
def test_cluster_tables_from_vizier_exports(shared_data: Path) -> None:
    tables = shared_data / "cluster_tables"
    cg18 = reference.read_cluster_table(tables / "cantat-gaudin2018_table1_vizier.tsv")
    assert len(cg18) == 1229 and cg18["source"].iloc[0] == "CG2018"
    row = reference.cluster_table_reference(cg18, "NGC_2682")
    assert row["pmra"] == pytest.approx(-10.986) and row["n_stars"] == 691
    assert reference.cluster_table_reference(cg18, "Melotte_25") is None  # not in CG2018
    hr = reference.read_cluster_table(tables / "ucc_curated" / "HUNT2023.csv")
    hyades = reference.cluster_table_reference(hr, "Melotte_25", "Melotte 25")
    assert hyades["source"] == "HR2023" and hyades["parallax"] == pytest.approx(21.232, abs=1e-3)
    assert 0 < hyades["pmra_error"] < 1  # e_pmRA, an error of the mean
    praesepe = reference.cluster_table_reference(hr, "NGC 2632")
    assert praesepe["pmra"] == pytest.approx(-35.943, abs=1e-3)
    # CG2020 CSV names its dispersions e_: the error must become dispersion / sqrt(N)
    cg20 = reference.read_cluster_table(tables / "cantat-gaudin2020_table1_full.csv")
    ple = reference.cluster_table_reference(cg20, "Melotte_22")
    assert ple["pmra_error"] == pytest.approx(1.062 / np.sqrt(952), rel=1e-6)


@pytest.fixture
def only_reference_command(monkeypatch):
    # the other subcommands belong to other modules; the CLI path under test is the same
    import ocdec.cli

    monkeypatch.setattr(ocdec.cli, "COMMANDS", ("reference",))


def test_cli_reference_offline(tmp_path: Path, capsys, only_reference_command) -> None:
    out = tmp_path / "ref.json"
    code = main(
        [
            "reference",
            "Melotte_25",
            "--no-simbad",
            "--table",
            str(REPO / "config" / "references.tsv"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert data["references"][0]["pmra"] == pytest.approx(104.92)
    assert "thesis table" in capsys.readouterr().out


def test_cli_reference_bad_table_exits_2(tmp_path: Path, capsys, only_reference_command) -> None:
    code = main(["reference", "NGC_2682", "--no-simbad", "--table", str(tmp_path / "absent.tsv")])
    assert code == 2
    assert "absent.tsv" in capsys.readouterr().err
