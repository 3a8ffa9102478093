"""Gaia downloads through the real astroquery client against a TAP server on 127.0.0.1.

The server (tests/tap_server.py) serves a real Gaia field (Praesepe, DR2, from ../shared/data) and
injects the faults the archive produces: 5xx, hangs, resets, cut or short VOTables, jobs that end
in phase ERROR, 403s, refused logins. Every download must either equal a clean one exactly or stop
with a one-line error, and an interrupted one must resume without fetching a chunk twice.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from requests.exceptions import HTTPError

from ocdec.cli import download as download_command
from ocdec.data import gaia
from ocdec.data.columns import CANONICAL_COLUMNS, OPTIONAL_COLUMNS
from ocdec.data.gaia import (
    CREDENTIALS_ENV,
    Chunk,
    GaiaSettings,
    cone_query,
    count_query,
    download_cone,
    import_gaia_class,
    parts_dir,
)
from ocdec.data.tap import classify
from ocdec.errors import OcdecError
from ocdec.io import read_provenance

sys.path.insert(0, str(Path(__file__).parent))
from tap_server import TapServer, field_table  # noqa: E402

FIELD = "fields/ngc2632_praesepe_dr2_r2deg_plxcut.csv"
CONE = (130.1, 19.6, 1.2)  # inside the 2-degree Praesepe field: 1220 stars
CHUNK_ROWS = 500  # 1220 stars: three chunks


@pytest.fixture(scope="module")
def field(shared_data: Path) -> Any:
    return field_table(shared_data / FIELD)


@pytest.fixture
def server(field: Any) -> Any:
    with TapServer(field) as tap:
        yield tap


def fast_settings(url: str, **changes: Any) -> GaiaSettings:
    values: dict[str, Any] = dict(
        release="dr3", server=url, chunk_rows=CHUNK_ROWS, timeout_s=1.0, retries=3,
        backoff_s=0.001, poll_interval_s=0.001, poll_limit_s=10.0,
    )
    values.update(changes)
    return GaiaSettings(**values)


def download(tap: TapServer, out: Path, **changes: Any) -> pd.DataFrame:
    factory = changes.pop("client_factory", None)
    return download_cone(fast_settings(tap.url, **changes), *CONE, out, region="NGC_2632",
                         client_factory=factory)


@pytest.fixture(scope="module")
def reference(field: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A clean download, and what the server saw while making it."""
    out = tmp_path_factory.mktemp("clean") / "NGC_2632.parquet"
    with TapServer(field) as tap:
        download(tap, out)
        return {"frame": pd.read_parquet(out), "path": out, "served": tap.served("data"),
                "creates": tap.count("create")}


def assert_one_line(message: str) -> None:
    assert message and "\n" not in message, repr(message)


# -- ADQL and settings ---------------------------------------------------------------------------


def test_queries_name_table_columns_and_cone_explicitly() -> None:
    dr3 = cone_query(GaiaSettings(release="dr3"), 130.1, 19.6, 1.2)
    dr2 = cone_query(GaiaSettings(release="DR2"), 130.1, 19.6, 1.2)
    assert "FROM gaiadr3.gaia_source" in dr3 and "FROM gaiadr2.gaia_source" in dr2
    assert "ruwe" in dr3 and "ruwe" not in dr2
    for name in CANONICAL_COLUMNS[:-1]:
        assert name in dr2
    assert "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 130.1, 19.6, 1.2)) = 1" in dr3
    assert "TOP" not in dr3.upper()
    chunked = count_query(GaiaSettings(table="gaiaedr3.gaia_source"), 1, 2, 3, Chunk(4, 3))
    assert chunked.startswith("SELECT COUNT(*) AS n\nFROM gaiaedr3.gaia_source\n")
    assert chunked.endswith("AND MOD(random_index, 4) = 3")
    assert Chunk(4, 3).split() == (Chunk(8, 3), Chunk(8, 7))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"release": "dr4"}, "unknown Gaia release 'dr4'"),
        ({"table": "gaia_source; DROP"}, "not a schema-qualified name"),
        ({"server": "ftp://x"}, "not an http(s) URL"),
        ({"chunk_rows": 0}, "chunk_rows must be >= 1"),
        ({"timeout_s": 0}, "timeout_s must be > 0"),
        ({"output_format": "csv"}, "output_format 'csv'"),
    ],
)
def test_bad_settings_are_one_line_errors(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(OcdecError, match=expected.replace("(", r"\(").replace(")", r"\)")) as err:
        GaiaSettings(**changes)
    assert_one_line(str(err.value))


def test_settings_from_config_mapping() -> None:
    settings = GaiaSettings.from_mapping({"release": "dr2", "chunk_rows": 5, "table": None})
    assert (settings.release, settings.table, settings.chunk_rows) == ("dr2",
                                                                        "gaiadr2.gaia_source", 5)
    with pytest.raises(OcdecError, match="unknown Gaia setting.*chunk_size"):
        GaiaSettings.from_mapping({"chunk_size": 5})


@pytest.mark.parametrize(("ra", "dec", "radius"), [(400, 0, 1), (10, -91, 1), (10, 0, 0)])
def test_bad_cone_is_rejected_before_any_request(tmp_path: Path, ra: float, dec: float,
                                                 radius: float) -> None:
    def no_client(settings: GaiaSettings) -> Any:
        raise AssertionError("no client should be built for a bad cone")

    with pytest.raises(OcdecError) as err:
        download_cone(GaiaSettings(), ra, dec, radius, tmp_path / "x.parquet",
                      client_factory=no_client)
    assert_one_line(str(err.value))


@pytest.mark.slow
def test_importing_the_gaia_client_touches_no_network() -> None:
    # astroquery.gaia builds a client on import that asks the archive for status messages.
    code = (
        "import socket\n"
        "calls = []\n"
        "real = socket.getaddrinfo\n"
        "socket.getaddrinfo = lambda *a, **k: calls.append(a[0]) or real(*a, **k)\n"
        "from ocdec.data.gaia import import_gaia_class\n"
        "import_gaia_class()\n"
        "print('lookups', calls)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert "lookups []" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("exc", "transient", "label"),
    [
        (HTTPError("Internal Server Error"), True, "HTTP 500"),
        (HTTPError("Error 503:\nback soon"), True, "HTTP 503"),
        (HTTPError("Too Many Requests"), True, "HTTP 429"),
        (HTTPError("Forbidden"), False, "HTTP 403"),
        (HTTPError("Error 400:\n<li>bad ADQL</li>"), False, "HTTP 400: Error 400: bad ADQL"),
        (HTTPError("Login error: Unauthorized"), False, "HTTP 401"),
        (http.client.IncompleteRead(b""), True, "IncompleteRead"),
        (ConnectionResetError(104, "reset"), True, "ConnectionResetError"),
        (TimeoutError(), True, "timed out"),
        (EOFError("Compressed file ended"), True, "EOFError"),
        (SystemError("job failed"), True, "job failed"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_fault_classification(exc: BaseException, transient: bool, label: str) -> None:
    is_transient, description = classify(exc)
    assert is_transient is transient
    assert label in description and "\n" not in description


def test_programming_errors_are_not_mistaken_for_faults() -> None:
    with pytest.raises(KeyError):
        classify(KeyError("x"))


# -- clean download ----------------------------------------------------------------------------


def test_clean_download_equals_the_served_cone(server: TapServer, field: Any,
                                               tmp_path: Path) -> None:
    out = tmp_path / "resources" / "gaia" / "dr3" / "NGC_2632.parquet"
    returned = download(server, out)
    frame = pd.read_parquet(out)
    pd.testing.assert_frame_equal(frame, returned)

    truth = server.truth(*CONE).to_pandas().sort_values("source_id").reset_index(drop=True)
    # DR3 also carries the parallax zero-point inputs (Lindegren et al. 2021)
    assert list(frame.columns) == [*CANONICAL_COLUMNS, *OPTIONAL_COLUMNS]
    assert frame["source_id"].dtype == np.int64
    np.testing.assert_array_equal(frame["source_id"], truth["source_id"])
    for name in CANONICAL_COLUMNS[1:]:
        np.testing.assert_array_equal(frame[name].to_numpy(), truth[name].to_numpy(), name)
    assert frame["bp_rp"].isna().any()  # faint stars without BP/RP arrive as NaN

    provenance = read_provenance(out)
    assert provenance["source"] == "gaia" and provenance["rows"] == len(truth) == 1220
    assert provenance["table"] == "gaiadr3.gaia_source" and provenance["server"] == server.url
    assert provenance["query"] == cone_query(fast_settings(server.url), *CONE)
    assert {"astroquery", "astropy", "pyarrow", "pandas"} <= set(provenance["versions"])
    assert provenance["utc"].endswith("+00:00")
    chunks = provenance["chunks"]
    assert len(chunks) == 3 and all(c["rows"] <= CHUNK_ROWS for c in chunks)
    assert sum(c["rows"] for c in chunks) == 1220

    served = server.served("data")
    assert len(served) == len(set(served)) == 3  # every chunk fetched once
    queries = [r.query for r in server.log if r.kind == "create"]
    assert all("FROM gaiadr3.gaia_source" in q for q in queries)
    assert not parts_dir(out).exists()


def test_small_cone_is_one_chunk_and_dr2_has_no_ruwe(field: Any, tmp_path: Path) -> None:
    with TapServer(field, table_name="gaiadr2.gaia_source") as tap:
        out = tmp_path / "small.parquet"
        frame = download_cone(fast_settings(tap.url, release="dr2"), 130.1, 19.6, 0.3, out)
        assert 0 < len(frame) <= CHUNK_ROWS
        assert frame["ruwe"].isna().all()
        assert read_provenance(out)["chunks"] == [{"where": None, "rows": len(frame)}]
        # one COUNT (the whole cone) and one data job: the COUNT is not repeated
        assert tap.count("create") == 2
        assert all("ruwe" not in (r.query or "") for r in tap.log)


# -- faults ---------------------------------------------------------------------------------------


FAULTS = {
    "500 on job creation": [("create", 500, None, 2)],
    "503 on a phase poll": [("phase", 503, None, 1)],
    "hang on a phase poll": [("phase", "hang", None, 1)],
    "hang on job creation": [("create", "hang", "data", 1)],
    "connection reset": [("create", "reset", None, 1)],
    "cut VOTable": [("result", "truncate", "data", 1)],
    "cut VOTable with a length": [("result", "cut_announced", "data", 1)],
    "VOTable missing rows": [("result", "drop_rows", "data", 1)],
    "job phase ERROR": [("phase", "job_error", "data", 1)],
    "cut COUNT": [("result", "truncate", "count", 1)],
    "several at once": [("create", 502, None, 1), ("phase", "job_error", None, 1),
                        ("result", "drop_rows", "data", 2)],
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_transient_faults_are_retried_to_an_identical_result(
    name: str, server: TapServer, reference: dict[str, Any], tmp_path: Path
) -> None:
    for kind, action, query, times in FAULTS[name]:
        server.inject(kind, action, query=query, times=times)
    out = tmp_path / "NGC_2632.parquet"
    # One chunk keeps these fast (a COUNT and a data job); "several at once" runs chunked, and
    # either way the result must equal the chunked clean download.
    chunked = name == "several at once"
    download(server, out, chunk_rows=CHUNK_ROWS if chunked else 5000)
    assert all(f.times == 0 for f in server.faults), "every injected fault must have fired"
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference["frame"], check_exact=True)
    served = server.served("data")
    assert len(served) == len(set(served)) == (3 if chunked else 1)  # each chunk delivered once
    assert server.count("create") > (reference["creates"] if chunked else 2)  # retries happened


def test_gzip_votable_cut_is_retried(server: TapServer, reference: dict[str, Any],
                                     tmp_path: Path) -> None:
    server.inject("result", "truncate", query="data")
    out = tmp_path / "gz.parquet"
    download(server, out, output_format="votable_gzip", chunk_rows=5000)
    assert server.faults[0].times == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference["frame"], check_exact=True)


@pytest.mark.parametrize("status", [403, 400, 404])
def test_client_errors_stop_at_once_with_one_line(server: TapServer, tmp_path: Path,
                                                  status: int) -> None:
    server.inject("create", status, times=99)
    out = tmp_path / "x.parquet"
    with pytest.raises(OcdecError) as err:
        download(server, out)
    message = str(err.value)
    assert_one_line(message)
    assert f"HTTP {status}" in message and server.url in message
    assert server.count("create") == 1  # not retried
    assert not out.exists()


def test_persistent_5xx_gives_up_after_the_retries(server: TapServer, tmp_path: Path) -> None:
    server.inject("create", 500, times=99)
    with pytest.raises(OcdecError) as err:
        download(server, tmp_path / "x.parquet", retries=2)
    assert_one_line(str(err.value))
    assert "failed after 3 attempts" in str(err.value) and "HTTP 500" in str(err.value)
    assert server.count("create") == 3


def test_unknown_table_ends_as_one_line_error(server: TapServer, tmp_path: Path) -> None:
    with pytest.raises(OcdecError) as err:
        download(server, tmp_path / "x.parquet", table="gaiadr9.gaia_source", retries=1)
    assert_one_line(str(err.value))
    assert "phase ERROR" in str(err.value) and "Table not found: gaiadr9.gaia_source" in str(
        err.value)


def test_job_that_never_finishes_is_abandoned(field: Any, tmp_path: Path) -> None:
    with TapServer(field, executing_polls=10**9) as tap:
        with pytest.raises(OcdecError) as err:
            download(tap, tmp_path / "x.parquet", poll_limit_s=0.05, retries=1)
        assert "still EXECUTING" in str(err.value) and "failed after 2 attempts" in str(err.value)
        assert tap.count("abort") == 2  # each abandoned job is aborted on the server


# -- interruption and resume -------------------------------------------------------------------


class InterruptAfter:
    """Wraps a client; raises KeyboardInterrupt (a user's Ctrl-C) at data job number ``n + 1``."""

    def __init__(self, client: Any, n: int) -> None:
        self._client = client
        self._left = n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def launch_job_async(self, query: str, **kwargs: Any) -> Any:
        if "COUNT(*)" not in query:
            if self._left == 0:
                raise KeyboardInterrupt
            self._left -= 1
        return self._client.launch_job_async(query, **kwargs)


def test_interrupted_download_leaves_no_output_and_resumes(
    server: TapServer, reference: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "NGC_2632.parquet"

    def interrupting(settings: GaiaSettings) -> Any:
        return InterruptAfter(gaia.gaia_client(settings), 2)

    with pytest.raises(KeyboardInterrupt):
        download(server, out, client_factory=interrupting)
    assert not out.exists()
    kept = sorted(p.name for p in parts_dir(out).glob("chunk-*.parquet"))
    assert len(kept) == 2
    assert not [p for p in out.parent.rglob("*") if p.name.endswith(".tmp")]
    first = server.served("data")
    assert len(first) == 2

    download(server, out)
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference["frame"], check_exact=True)
    served = server.served("data")
    assert len(served) == len(set(served)) == 3  # the two kept chunks were not fetched again
    whole_cone = count_query(fast_settings(server.url), *CONE)
    assert sum(r.query == whole_cone for r in server.log if r.kind == "create") == 1
    assert not parts_dir(out).exists()


@pytest.mark.slow
def test_killed_process_leaves_no_output_and_resumes(
    server: TapServer, reference: dict[str, Any], tmp_path: Path
) -> None:
    """A download process killed with SIGKILL while its third chunk is in flight."""
    server.inject("result", "hang", query="data", skip=2)
    out = tmp_path / "NGC_2632.parquet"
    code = (
        "from ocdec.data.gaia import GaiaSettings, download_cone\n"
        f"settings = GaiaSettings(server={server.url!r}, chunk_rows={CHUNK_ROWS}, timeout_s=60,"
        " poll_interval_s=0.001)\n"
        f"download_cone(settings, {CONE[0]!r}, {CONE[1]!r}, {CONE[2]!r}, {str(out)!r})\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not server.faults[0].times == 0:  # the third chunk's result is hanging
            assert process.poll() is None, "the download ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    assert not out.exists()
    assert len(list(parts_dir(out).glob("chunk-*.parquet"))) == 2
    assert len(server.served("data")) == 2

    download(server, out)
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference["frame"], check_exact=True)
    served = server.served("data")
    assert len(served) == len(set(served)) == 3
    assert not [p for p in tmp_path.rglob("*") if p.name != out.name]  # no leftovers


def test_kept_chunks_merge_without_the_network(server: TapServer, tmp_path: Path) -> None:
    out = tmp_path / "NGC_2632.parquet"

    def interrupting(settings: GaiaSettings) -> Any:
        return InterruptAfter(gaia.gaia_client(settings), 3)  # all chunks, then stop

    class NoMerge(Exception):
        pass

    original = gaia._merge

    def stop_before_merge(*args: Any) -> Any:
        raise NoMerge

    gaia._merge = stop_before_merge
    try:
        with pytest.raises(NoMerge):
            download(server, out, client_factory=interrupting)
    finally:
        gaia._merge = original

    def offline(settings: GaiaSettings) -> Any:
        raise AssertionError("all chunks are kept: no client needed")

    frame = download(server, out, client_factory=offline)
    assert len(frame) == 1220 and out.exists()


def test_changed_query_discards_stale_chunks(server: TapServer, tmp_path: Path) -> None:
    out = tmp_path / "NGC_2632.parquet"
    stale = parts_dir(out)
    stale.mkdir(parents=True)
    (stale / "plan.json").write_text(json.dumps({"key": "other", "chunks": []}))
    (stale / "chunk-m4-r0.parquet").write_bytes(b"not ours")
    frame = download(server, out)
    assert len(frame) == 1220 and not stale.exists()


def test_chunk_over_the_limit_is_split(server: TapServer, reference: dict[str, Any],
                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gaia, "CHUNK_FILL", 2.0)  # plan half the chunks needed: each too big
    out = tmp_path / "NGC_2632.parquet"
    download(server, out)
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference["frame"], check_exact=True)
    chunks = read_provenance(out)["chunks"]
    assert {c["where"].split(",")[1].split(")")[0].strip() for c in chunks} == {"4"}
    assert all(c["rows"] <= CHUNK_ROWS for c in chunks)


# -- credentials ---------------------------------------------------------------------------------


class LoopbackConnections:
    """Stands in for astroquery's ConnectionHandler: its login always uses HTTPS on port 443, so
    the test points both plain and 'secure' connections at the loopback server."""

    def __init__(self, port: int) -> None:
        self.port = port

    def get_connection(self, *, ishttps: bool = False, cookie: Any = None,
                       verbose: bool = False) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port)

    def get_connection_secure(self, verbose: bool) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port)


def loopback_client(settings: GaiaSettings) -> Any:
    from astroquery.utils.tap.conn.tapconn import TapConn
    from astroquery.utils.tap.core import TapPlus

    port = int(settings.server.rstrip("/").rsplit(":", 1)[1])

    def conn(server_context: str) -> Any:
        return TapConn(ishttps=False, host="127.0.0.1", server_context=server_context,
                       tap_context="tap", upload_context="Upload", table_edit_context="TableTool",
                       data_context="data", datalink_context="datalink", port=port, sslport=port,
                       connhandler=LoopbackConnections(port))

    data = TapPlus(url=settings.server, server_context="data-server", tap_context="tap",
                   connhandler=conn("data-server"), use_names_over_ids=True)
    return import_gaia_class()(tap_plus_conn_handler=conn("tap-server"), datalink_handler=data,
                               gaia_tap_server=settings.server, gaia_data_server=settings.server,
                               show_server_messages=False)


PASSWORD = "pa55-word-xyz"


@pytest.fixture
def private_server(field: Any) -> Any:
    with TapServer(field, users={"alice": PASSWORD}) as tap:
        yield tap


def test_login_from_credentials_file(private_server: TapServer, tmp_path: Path,
                                     caplog: pytest.LogCaptureFixture,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level("DEBUG")
    credentials = tmp_path / "gaia.txt"
    credentials.write_text(f"alice\n{PASSWORD}\n")
    out = tmp_path / "NGC_2632.parquet"
    frame = download(private_server, out, credentials_file=str(credentials),
                     client_factory=loopback_client)
    assert len(frame) == 1220
    assert read_provenance(out)["logged_in"] is True
    assert private_server.count("login") >= 1
    assert private_server.count("deletejobs") >= 1  # a logged-in user's jobs are cleaned up
    captured = capsys.readouterr()
    assert PASSWORD not in caplog.text + captured.out + captured.err
    assert PASSWORD not in out.read_bytes().decode("latin-1")


def test_credentials_from_the_environment(private_server: TapServer, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "gaia.txt"
    credentials.write_text(f"alice\n{PASSWORD}\n")
    monkeypatch.setenv(CREDENTIALS_ENV, str(credentials))
    frame = download(private_server, tmp_path / "x.parquet", client_factory=loopback_client)
    assert len(frame) == 1220


def test_anonymous_download_from_a_private_server_is_a_clear_403(
    private_server: TapServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CREDENTIALS_ENV, raising=False)
    with pytest.raises(OcdecError) as err:
        download(private_server, tmp_path / "x.parquet")
    assert_one_line(str(err.value))
    assert "HTTP 403" in str(err.value)


def test_wrong_password_stops_with_a_clear_message(
    private_server: TapServer, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level("DEBUG")
    credentials = tmp_path / "gaia.txt"
    credentials.write_text("alice\nwrong-secret-123\n")
    with pytest.raises(OcdecError) as err:
        download(private_server, tmp_path / "x.parquet", credentials_file=str(credentials),
                 client_factory=loopback_client)
    message = str(err.value)
    assert_one_line(message)
    assert "login as 'alice' refused (HTTP 401)" in message and str(credentials) in message
    assert private_server.count("login") == 1  # not retried
    assert private_server.count("create") == 0
    captured = capsys.readouterr()
    assert "wrong-secret-123" not in message + caplog.text + captured.out + captured.err


@pytest.mark.parametrize("content", [None, "alice\n", "\nsecret\n"])
def test_unusable_credentials_file_fails_before_any_request(
    server: TapServer, tmp_path: Path, content: str | None
) -> None:
    credentials = tmp_path / "gaia.txt"
    if content is not None:
        credentials.write_text(content)
    with pytest.raises(OcdecError) as err:
        download(server, tmp_path / "x.parquet", credentials_file=str(credentials))
    assert_one_line(str(err.value))
    assert str(credentials) in str(err.value)
    assert server.log == []


# -- command line -------------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ocdec")
    download_command.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_command_line_download(field: Any, reference: dict[str, Any], tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CREDENTIALS_ENV, raising=False)
    with TapServer(field, executing_polls=0) as tap:  # jobs done at once: no 1-s polling waits
        args = parse(["download", "--ra", str(CONE[0]), "--dec", str(CONE[1]), "--radius",
                      str(CONE[2]), "--region", "NGC_2632", "--server", tap.url,
                      "--chunk-rows", str(CHUNK_ROWS), "--timeout", "5"])
        assert args.func(args) == 0
    out = tmp_path / "resources" / "gaia" / "dr3" / "NGC_2632.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference["frame"], check_exact=True)


def test_command_line_errors_are_one_line(server: TapServer, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from ocdec import cli

    monkeypatch.setattr(cli, "COMMANDS", ("download",))  # the other commands are not under test
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # main() reconfigures logging
    monkeypatch.setattr(root, "level", root.level)
    argv = ["download", "--ra", "130", "--dec", "19", "--radius", "1", "--region", "X",
            "--out", str(tmp_path / "x.parquet"), "--server", server.url]
    assert cli.main([*argv, "--release", "dr4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "ocdec download: error: unknown Gaia release 'dr4' (known: dr2, dr3)"
    server.inject("create", 403, times=9)
    assert cli.main([*argv, "--retries", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ocdec download: error: Gaia archive ") and "HTTP 403" in err[-1]
    assert not [line for line in err if "Traceback" in line]
    assert server.count("create") == 1 and not (tmp_path / "x.parquet").exists()


def test_default_client_is_astroquery_gaia_pointed_at_the_server() -> None:
    client = gaia.gaia_client(GaiaSettings(server="http://127.0.0.1:9/"))
    assert type(client).__name__ == "GaiaClass"
    handler = client._Tap__connHandler
    assert handler.get_host_url().startswith("127.0.0.1:9/tap-server/tap")


# -- reliability: permanent errors, the once-per-run check, stuck jobs, one writer ------------


def field_without(field: Any, column: str) -> Any:
    table = field.copy()
    table.remove_column(column)
    return table


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("unknown table", "Table not found: gaiadr3.gaia_sourc"),
        ("unknown column", 'Unknown column "ruwe"'),
    ],
)
def test_wrong_query_stops_at_once_without_retries(field: Any, tmp_path: Path, case: str,
                                                   problem: str) -> None:
    table = field_without(field, "ruwe") if case == "unknown column" else field
    changes = {"table": "gaiadr3.gaia_sourc"} if case == "unknown table" else {}
    with TapServer(table) as tap:
        started = time.monotonic()
        with pytest.raises(OcdecError) as err:
            download(tap, tmp_path / "x.parquet", retries=5, backoff_s=1.0, **changes)
        message = str(err.value)
        assert_one_line(message)
        assert problem in message and "the query is wrong" in message and "phase ERROR" in message
        failed = [r for r in tap.log if r.kind == "create" and r.query and (
            "gaia_sourc\n" in r.query or "ruwe" in r.query)]
        assert len(failed) == 1  # one job, not 6 (nor 6 x the rule's retries)
        assert time.monotonic() - started < 5  # no backoff sleeps
    assert not (tmp_path / "x.parquet").exists()


def test_adql_syntax_error_is_permanent_and_server_faults_stay_transient(
        server: TapServer) -> None:
    from ocdec.data.tap import TapJobRunner, permanent_job_error

    settings = fast_settings(server.url, retries=4)
    runner = TapJobRunner(gaia.gaia_client(settings), server.url, settings.policy,
                          sleep=lambda s: None)
    with pytest.raises(OcdecError) as err:
        runner.count("SELECT COUNT(*) FORM gaiadr3.gaia_source", "typo")
    assert_one_line(str(err.value))
    assert 'Encountered "FORM"' in str(err.value) and runner.attempts == 1
    # The archive's own wording for an unknown table, and the transient ERROR of the test server.
    assert "Unknown table" in permanent_job_error(
        "Cannot parse query 'SELECT ...' for job '1': 1 unresolved identifiers: gaia_sourc "
        '[l.2 c.6 - l.2 c.24] !\n - Unknown table "gaiadr3.gaia_sourc" !')
    assert permanent_job_error("simulated failure: the database connection was lost") is None
    assert classify(SystemError("Unknown column \"pmra2\""))[0] is False


def test_check_query_is_one_cheap_job(server: TapServer, tmp_path: Path) -> None:
    stamp = tmp_path / "checks" / "gaia.json"
    record = gaia.check_query(fast_settings(server.url), out=stamp)
    assert record["ok"] and record["table"] == "gaiadr3.gaia_source"
    assert json.loads(stamp.read_text())["columns"][-1] == "random_index"
    assert server.count("create") == 1 and server.served("data") != []
    assert "TOP 1" in server.log[0].query


@pytest.mark.parametrize("case", ["table", "column"])
def test_check_query_names_a_mistyped_table_or_missing_column_in_seconds(
        field: Any, tmp_path: Path, case: str) -> None:
    table = field_without(field, "random_index") if case == "column" else field
    with TapServer(table) as tap:
        started = time.monotonic()
        with pytest.raises(OcdecError) as err:
            gaia.check_query(fast_settings(
                tap.url, retries=5, backoff_s=5.0,
                **({"table": "gaiadr3.gaia_sourc"} if case == "table" else {})))
        assert time.monotonic() - started < 5 and tap.count("create") == 1
    assert_one_line(str(err.value))
    assert ("gaiadr3.gaia_sourc" if case == "table" else "random_index") in str(err.value)


def test_command_line_check(server: TapServer, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    from ocdec import cli

    monkeypatch.setattr(cli, "COMMANDS", ("download",))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    stamp = tmp_path / "check.json"
    assert cli.main(["download", "--check", "--server", server.url, "--out", str(stamp)]) == 0
    assert "table and columns found" in capsys.readouterr().out and stamp.exists()
    assert cli.main(["download", "--check", "--server", server.url,
                     "--table", "gaiadr3.gaia_sourc", "--retries", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ocdec download: error: Gaia archive ")
    assert "gaiadr3.gaia_sourc" in err[-1] and not [x for x in err if "Traceback" in x]
    assert server.count("create") == 2
    assert cli.main(["download", "--server", server.url]) == 2  # no cone and no --check
    assert "--ra, --dec, --radius, --region required" in capsys.readouterr().err


def test_stuck_job_is_aborted_after_the_total_limit_and_not_retried(
        server: TapServer, reference: dict[str, Any], tmp_path: Path) -> None:
    server.inject("phase", "stuck", query="data")
    out = tmp_path / "NGC_2632.parquet"
    started = time.monotonic()
    with pytest.raises(OcdecError) as err:
        download(server, out, chunk_rows=5000, job_limit_s=0.5, retries=5, poll_limit_s=60)
    assert time.monotonic() - started < 3
    message = str(err.value)
    assert_one_line(message)
    assert "still EXECUTING" in message and "aborted" in message and "job_limit_s" in message
    assert server.count("abort") == 1
    data_jobs = [r for r in server.log if r.kind == "create" and "COUNT" not in (r.query or "")]
    assert len(data_jobs) == 1  # not retried: retries do not multiply the limit

    # A rerun (a rule's retry) does not give the same job its time again: it stops at once.
    creates = server.count("create")
    with pytest.raises(OcdecError) as again:
        download(server, out, chunk_rows=5000, job_limit_s=0.5)
    assert_one_line(str(again.value))
    assert "earlier runs already waited" in str(again.value) and str(parts_dir(out)) in str(
        again.value)
    assert server.count("create") == creates
    # With a larger limit (or the chunk folder deleted) the region downloads as usual.
    download(server, out, chunk_rows=5000, job_limit_s=60)
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference["frame"], check_exact=True)


def test_retries_of_slow_jobs_share_one_time_limit(field: Any, tmp_path: Path) -> None:
    with TapServer(field, executing_polls=10**9) as tap:
        started = time.monotonic()
        with pytest.raises(OcdecError) as err:
            download(tap, tmp_path / "x.parquet", poll_limit_s=0.05, retries=1000,
                     job_limit_s=0.4)
        assert time.monotonic() - started < 3
        assert_one_line(str(err.value))
        assert "job_limit_s" in str(err.value)
        assert tap.count("create") < 100 and tap.count("abort") == tap.count("create")


def test_second_writer_of_a_region_stops_with_one_line(server: TapServer,
                                                       tmp_path: Path) -> None:
    from ocdec.io import exclusive_lock

    out = tmp_path / "NGC_2632.parquet"
    with exclusive_lock(gaia.lock_path(out)):
        with pytest.raises(OcdecError) as err:
            download(server, out)
    assert_one_line(str(err.value))
    assert "another process" in str(err.value) and str(os.getpid()) in str(err.value)
    assert server.log == []  # nothing fetched twice
    assert not gaia.lock_path(out).exists() and not parts_dir(out).exists()


def test_concurrent_downloads_of_a_region_fetch_each_chunk_once(
        server: TapServer, reference: dict[str, Any], tmp_path: Path) -> None:
    import threading

    out = tmp_path / "NGC_2632.parquet"
    results: dict[str, Any] = {}

    def run(name: str) -> None:
        try:
            results[name] = download(server, out, lock_wait_s=60)
        except BaseException as exc:  # reported below
            results[name] = exc

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for value in results.values():
        assert isinstance(value, pd.DataFrame), value
        pd.testing.assert_frame_equal(value, reference["frame"], check_exact=True)
    served = server.served("data")
    assert len(served) == len(set(served)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no orphans


def test_corrupt_kept_chunk_and_orphans_are_discarded_and_refetched(
        server: TapServer, reference: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "NGC_2632.parquet"

    def interrupting(settings: GaiaSettings) -> Any:
        return InterruptAfter(gaia.gaia_client(settings), 2)

    with pytest.raises(KeyboardInterrupt):
        download(server, out, client_factory=interrupting)
    kept = sorted(parts_dir(out).glob("chunk-*.parquet"))
    kept[0].write_bytes(b"PAR1 not really parquet")  # a disk error, a half-copied folder
    (parts_dir(out) / ".chunk-m3-r2.parquet.x1.tmp").write_bytes(b"half")
    (tmp_path / f".{out.name}.x2.tmp").write_bytes(b"half")
    download(server, out)
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference["frame"], check_exact=True)
    served = server.served("data")
    assert len(served) == 4 and len(set(served)) == 3  # only the corrupt chunk came twice
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


@pytest.mark.parametrize("case", ["output is a directory", "parent is a file"])
def test_unwritable_output_fails_before_any_request(server: TapServer, tmp_path: Path,
                                                    case: str) -> None:
    if case == "output is a directory":
        out = tmp_path / "NGC_2632.parquet"
        out.mkdir()
    else:
        (tmp_path / "resources").write_text("a file")
        out = tmp_path / "resources" / "gaia" / "NGC_2632.parquet"
    with pytest.raises(OcdecError) as err:
        download(server, out)
    assert_one_line(str(err.value))
    assert str(out) in str(err.value)
    assert server.log == []


def test_refused_login_message_says_it_once(private_server: TapServer, tmp_path: Path) -> None:
    credentials = tmp_path / "gaia.txt"
    credentials.write_text("alice\nwrong-secret-123\n")
    with pytest.raises(OcdecError) as err:
        download(private_server, tmp_path / "x.parquet", credentials_file=str(credentials),
                 client_factory=loopback_client)
    message = str(err.value).replace(str(credentials), "CREDENTIALS")
    assert message.count("login as 'alice'") == 1 and message.count("refused") == 1, message


def test_download_progress_is_rows_and_chunks_in_a_log(server: TapServer, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Not on a terminal (a rule log): one plain line per chunk with rows so far, no bar."""
    monkeypatch.setenv("OCDEC_PROGRESS", "log")
    with caplog.at_level(logging.INFO, logger="ocdec"):
        download(server, tmp_path / "NGC_2632.parquet")
    lines = [r.getMessage() for r in caplog.records if ": download: " in r.getMessage()]
    assert len(lines) == 3
    assert lines[-1].endswith("1,220/1,220 rows, chunks 3/3")
    assert not any("%|" in r.getMessage() for r in caplog.records)
