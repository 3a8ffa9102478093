"""Why a region failed, read back from its rule log for the catalogue summary."""

from __future__ import annotations

import os
from pathlib import Path

from ocdec.results.failures import last_error, region_failures, write_placeholders

REPORTED = """\
2026-12-01 03:10:44,123 INFO ocdec.data.quality: quality cut pmra present removed 0
2026-12-01 03:10:45,001 ERROR ocdec.rules: quality: stars.csv: no column pmra
"""
BUG = """\
2026-12-01 03:10:44,123 INFO ocdec.methods: cluster peak: pm (1.0, 2.0)
2026-12-01 03:10:45,001 ERROR ocdec: uncaught error
Traceback (most recent call last):
  File "scripts/characterize.py", line 34, in <module>
    raise RuntimeError("injected fault in the method")
RuntimeError: injected fault in the method
"""


def test_last_error_reads_the_reported_line_and_a_bugs_exception(tmp_path: Path) -> None:
    (tmp_path / "reported.log").write_text(REPORTED)
    (tmp_path / "bug.log").write_text(BUG)
    (tmp_path / "killed.log").write_text(REPORTED.splitlines()[0] + "\n")
    assert last_error(tmp_path / "reported.log") == "quality: stars.csv: no column pmra"
    assert last_error(tmp_path / "bug.log") == "RuntimeError: injected fault in the method"
    assert last_error(tmp_path / "killed.log") is None
    assert last_error(tmp_path / "absent.log") is None


def test_region_failures_names_only_regions_missing_products(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    (logs / "quality").mkdir(parents=True)
    (logs / "characterize_default").mkdir()
    (logs / "quality" / "A.log").write_text(REPORTED)
    (logs / "characterize_default" / "B.log").write_text("no error here\n")
    done = tmp_path / "done.json"
    done.write_text("{}")
    expected = {"A": [str(tmp_path / "a.json")], "B": [str(tmp_path / "b.json")],
                "C": [str(done)]}
    failures = region_failures(["A", "B", "C"], expected, logs)
    assert set(failures) == {"A", "B"}
    assert failures["A"] == "quality: stars.csv: no column pmra"
    assert failures["B"].startswith("did not finish") and "b.json" in failures["B"]


def test_placeholders_say_why_and_are_older_than_any_input(tmp_path: Path) -> None:
    figure = tmp_path / "plots" / "overview.png"
    table = tmp_path / "comparison.tsv"
    write_placeholders([figure, table], {"id": "A", "name": "A"}, "quality: no column pmra")
    for path in (figure, table):
        assert path.is_file() and os.stat(path).st_mtime == 0
    assert figure.read_bytes().startswith(b"\x89PNG")
    assert table.read_text().startswith("method\t")
