"""The catalogue summary: one row per region that says what happened, with the numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ocdec.io import write_json
from ocdec.results import summary
from reference_values import M67_SIMBAD

REGION = {"id": "NGC_2682", "name": "NGC 2682"}
REF = M67_SIMBAD
DEFAULT = {
    "n_stars": 50000,
    "n_members": 700,
    "pmra": -10.96,
    "pmra_error": 0.01,
    "pmdec": -2.95,
    "pmdec_error": 0.01,
    "parallax": 1.135,
    "parallax_error": 0.002,
    "ra": 132.85,
    "dec": 11.81,
    "r50_deg": 0.17,
    "seeds": [0, 1, 2],
    "seed_jaccard": 0.97,
    "seed_jaccard_min": 0.95,
    "method": "default",
    "runtime_s": 21.5,
    "status": "found",
    "parameters": {"pmra_std": 0.3, "pmdec_std": 0.3, "parallax_std": 0.05},
}
FILTERED = {
    "n_members": 500,
    "pmra": -11.2,
    "pmra_error": 0.05,
    "pmdec": -2.9,
    "pmdec_error": 0.05,
    "parallax": 1.10,
    "parallax_error": 0.01,
}
THESIS = {
    **FILTERED,
    "status": "found",
    "method": "thesis",
    "kmeans_k": 3,
    "runtime_s": 300.0,
    "selections": {"kmeans": {}, "dec": {}, "dec_filtered": FILTERED},
}
STATUS_OK = {
    "region": "NGC_2682",
    "status": "ok",
    "n_input": 60000,
    "n_usable": 50000,
    "reason": "",
}


def test_done_row_has_numbers_and_offsets() -> None:
    row = summary.summary_row(
        REGION, status=STATUS_OK, summaries={"default": DEFAULT, "thesis": THESIS}, references=[REF]
    )
    assert row["status"] == "found" and row["reason"] == ""
    assert row["n_input"] == 60000 and row["n_stars"] == 50000 and row["n_members"] == 700
    assert row["pmra_offset_sigma"] == pytest.approx((-10.96 + 10.9737) / math.hypot(0.01, 0.0064))
    assert row["thesis_parallax_offset_sigma"] == pytest.approx(
        (1.10 - 1.1325) / math.hypot(0.01, 0.0011)
    )
    assert row["thesis_n_members"] == 500 and row["thesis_kmeans_k"] == 3
    assert row["seed_jaccard"] == 0.97 and row["seeds"] == "0 1 2" and row["runtime_s"] == 21.5
    assert row["pmra_std"] == 0.3 and row["reference_source"] == "SIMBAD"


def test_skipped_row_says_why() -> None:
    status = {
        "region": "NGC_1",
        "status": "skipped",
        "n_input": 900,
        "n_usable": 850,
        "reason": "850 usable stars < min_stars 40000",
    }
    skipped_summary = {"status": "skipped", "reason": status["reason"]}
    row = summary.summary_row(
        {"id": "NGC_1"},
        status=status,
        summaries={"default": skipped_summary, "thesis": skipped_summary},
        references=[REF],
    )
    assert row["status"] == "skipped" and "min_stars" in row["reason"]
    assert row["n_stars"] == 850
    assert math.isnan(row["pmra"]) and math.isnan(row["pmra_offset_sigma"])
    assert row["name"] == "NGC 1"


def test_failed_row_names_missing_files(tmp_path: Path) -> None:
    write_json(tmp_path / "status.json", STATUS_OK)
    row = summary.summary_row_from_files(
        REGION,
        status_path=tmp_path / "status.json",
        summary_paths={"default": tmp_path / "default" / "summary.json",
                       "thesis": tmp_path / "thesis" / "summary.json"},
    )
    assert row["status"] == "failed"
    assert "default/summary.json" in row["reason"] and "thesis/summary.json" in row["reason"]


def test_failed_method_reason_is_kept() -> None:
    failed = {"status": "failed", "reason": "DEC diverged (loss NaN)"}
    row = summary.summary_row(
        REGION, status=STATUS_OK, summaries={"default": failed, "thesis": THESIS}, references=[]
    )
    assert row["status"] == "failed" and row["reason"] == "default: DEC diverged (loss NaN)"
    assert row["thesis_n_members"] == 500  # the other method's result still shows


def test_skipped_region_needs_no_method_files(tmp_path: Path) -> None:
    write_json(tmp_path / "status.json", {"status": "skipped", "reason": "too few stars"})
    row = summary.summary_row_from_files(
        REGION,
        status_path=tmp_path / "status.json",
        summary_paths={"default": tmp_path / "absent.json"},
    )
    assert row["status"] == "skipped" and row["reason"] == "too few stars"


def test_summary_table_roundtrip(tmp_path: Path) -> None:
    from ocdec.results.reference import write_references

    d = tmp_path / "NGC_2682"
    write_json(d / "status.json", STATUS_OK)
    write_json(d / "default" / "summary.json", DEFAULT)
    write_json(d / "thesis" / "summary.json", THESIS)
    write_references(d / "ref.json", "NGC_2682", "NGC 2682", [REF])
    rows = [
        summary.summary_row_from_files(
            REGION,
            status_path=d / "status.json",
            summary_paths={"default": d / "default" / "summary.json",
                           "thesis": d / "thesis" / "summary.json"},
            reference_path=d / "ref.json",
        ),
        summary.summary_row(
            {"id": "NGC_1"}, status={"status": "skipped", "reason": "too few stars"}
        ),
    ]
    summary.write_summary(tmp_path / "summary.tsv", rows)
    back = summary.read_summary_table(tmp_path / "summary.tsv")
    assert list(back.columns) == list(summary.COLUMNS)
    assert list(back["status"]) == ["found", "skipped"]
    assert back.loc[0, "n_members"] == 700 and back.loc[1, "reason"] == "too few stars"
    assert back.loc[0, "reference_pmra"] == pytest.approx(REF["pmra"])
    assert json.loads(json.dumps(rows[0]["seeds"])) == "0 1 2"


def test_catalogue_summary_from_rule_inputs(tmp_path: Path) -> None:
    """The summary rule's call: lists of per-region files in, table and figures out."""
    from ocdec.results.comparison import comparison_table, write_comparison

    res = tmp_path / "results"
    write_json(res / "NGC_2682" / "status.json", STATUS_OK)
    write_json(res / "NGC_2682" / "default" / "summary.json", DEFAULT)
    write_json(res / "NGC_2682" / "thesis" / "summary.json", THESIS)
    write_comparison(
        res / "NGC_2682" / "comparison.tsv",
        comparison_table([REF], {"default": DEFAULT, "thesis": THESIS}),
    )
    skipped = {"status": "skipped", "reason": "10 usable stars < min_stars 40000"}
    write_json(res / "NGC_1" / "status.json", skipped)
    write_json(res / "NGC_1" / "default" / "summary.json", skipped)
    write_json(res / "NGC_1" / "thesis" / "summary.json", skipped)
    write_comparison(
        res / "NGC_1" / "comparison.tsv",
        comparison_table([], {"default": skipped, "thesis": skipped}),
    )
    regions = ["NGC_2682", "NGC_1"]
    inputs = {
        "status": [str(res / r / "status.json") for r in regions],
        "comparison": [str(res / r / "comparison.tsv") for r in regions],
        "default": [str(res / r / "default" / "summary.json") for r in regions],
        "thesis": [str(res / r / "thesis" / "summary.json") for r in regions],
    }
    outputs = {
        "table": str(res / "summary.tsv"),
        "offsets": str(res / "offsets.png"),
        "recovered": str(res / "recovered.png"),
    }
    table = summary.catalogue_summary(inputs, outputs)
    assert list(table["region"]) == regions
    assert list(table["status"]) == ["found", "skipped"]
    assert table.loc[0, "reference_source"] == "SIMBAD"
    assert table.loc[0, "pmra_offset_sigma"] == pytest.approx(
        (DEFAULT["pmra"] - REF["pmra"]) / math.hypot(DEFAULT["pmra_error"], REF["pmra_error"])
    )
    assert "min_stars" in table.loc[1, "reason"]
    assert (res / "offsets.png").stat().st_size > 0 and (res / "recovered.png").stat().st_size > 0


def test_method_fields_keep_their_fractions(monkeypatch: pytest.MonkeyPatch) -> None:
    # a method's own summary field (docs/adding-a-method.md) with fractions stays as it is; a
    # whole-number one (thesis mode's kmeans_k) is written as an integer
    from ocdec.results import summary as S

    monkeypatch.setattr(S, "COLUMNS", (*S.COLUMNS, "toy_sigma_pm"))
    monkeypatch.setattr(S, "METHOD_FIELD_COLUMNS", (*S.METHOD_FIELD_COLUMNS, "toy_sigma_pm"))
    rows = [{"region": "A", "thesis_kmeans_k": 3.0, "toy_sigma_pm": 6.63},
            {"region": "B", "thesis_kmeans_k": None, "toy_sigma_pm": 8.27}]
    table = S.summary_table(rows)
    assert list(table["toy_sigma_pm"]) == [6.63, 8.27]
    assert str(table["thesis_kmeans_k"].dtype) == "Int64" and table["thesis_kmeans_k"][0] == 3
