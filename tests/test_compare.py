"""The per-region comparison table: rows, values and offsets in units of the combined error."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ocdec.methods.astrometry import cluster_parameters
from ocdec.results import comparison as compare
from reference_values import M67_SIMBAD

REF = M67_SIMBAD
CG18 = {
    "source": "CG2018",
    "pmra": -10.986,
    "pmra_error": math.nan,
    "pmdec": -2.964,
    "pmdec_error": math.nan,
    "parallax": 1.135,
    "parallax_error": math.nan,
    "n_stars": 691,
}


def synthetic_stars(n: int = 400, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    member = np.zeros(n, dtype=bool)
    member[: n // 4] = True
    stars = pd.DataFrame(
        {
            "ra": 132.8 + rng.normal(0, 0.2, n),
            "dec": 11.8 + rng.normal(0, 0.2, n),
            "pmra": np.where(member, -10.95, 0.0) + rng.normal(0, np.where(member, 0.3, 5), n),
            "pmdec": np.where(member, -2.95, 0.0) + rng.normal(0, np.where(member, 0.3, 5), n),
            "parallax": np.where(member, 1.13, 0.6) + rng.normal(0, np.where(member, 0.05, 0.5), n),
        }
    )
    return stars, member


def summaries() -> tuple[dict, dict]:
    stars, member = synthetic_stars()
    default = cluster_parameters(stars, member)
    default.update(
        n_stars=len(stars),
        method="default",
        status="found",
        seeds=[0, 1, 2],
        seed_jaccard=0.98,
        seed_jaccard_min=0.96,
        runtime_s=3.2,
    )
    km = member | (np.arange(len(stars)) % 5 == 0)
    dec = member.copy()
    dec[:10] = False
    filt = dec.copy()
    filt[10:20] = False
    sel = {
        "kmeans": cluster_parameters(stars, km),
        "dec": cluster_parameters(stars, dec),
        "dec_filtered": cluster_parameters(stars, filt),
    }
    thesis = dict(sel["dec_filtered"])
    thesis.update(n_stars=len(stars), method="thesis", status="found", selections=sel, kmeans_k=4)
    return default, thesis


def test_offset_sigma_uses_combined_error() -> None:
    assert compare.offset_sigma(1.5, 0.3, 1.1, 0.4) == pytest.approx(0.4 / 0.5)
    assert compare.offset_sigma(1.0, math.nan, 0.0, 0.5) == pytest.approx(2.0)
    assert math.isnan(compare.offset_sigma(1.0, math.nan, 0.0, math.nan))
    assert math.isnan(compare.offset_sigma(math.nan, 0.1, 0.0, 0.1))


def test_comparison_rows_and_offsets() -> None:
    default, thesis = summaries()
    table = compare.comparison_table([REF, CG18], {"default": default, "thesis": thesis})
    assert list(table.columns) == list(compare.COLUMNS)
    assert list(table["method"]) == [
        "SIMBAD",
        "CG2018",
        "K-Means",
        "DEC",
        "DEC filtered",
        "default",
    ]
    assert list(table["kind"]) == [
        "reference",
        "literature",
        "method",
        "method",
        "method",
        "method",
    ]
    d = table.set_index("method")
    assert d.loc["default", "n_stars"] == default["n_members"]
    assert d.loc["DEC filtered", "n_stars"] == thesis["selections"]["dec_filtered"]["n_members"]
    assert d.loc["K-Means", "n_stars"] > d.loc["DEC", "n_stars"] > d.loc["DEC filtered", "n_stars"]
    for col in ("pmra", "pmdec", "parallax"):
        expected = (default[col] - REF[col]) / math.hypot(
            default[f"{col}_error"], REF[f"{col}_error"]
        )
        assert d.loc["default", f"{col}_offset_sigma"] == pytest.approx(expected)
        # the literature row has no errors: only the reference's error counts
        lit = (CG18[col] - REF[col]) / REF[f"{col}_error"]
        assert d.loc["CG2018", f"{col}_offset_sigma"] == pytest.approx(lit)
        assert math.isnan(d.loc["SIMBAD", f"{col}_offset_sigma"])
    assert d.loc["K-Means", "note"] == "k = 4"


def test_comparison_keeps_rows_for_methods_that_did_not_run() -> None:
    default, _ = summaries()
    skipped = {"status": "skipped", "reason": "12 usable stars < min_stars 40000"}
    table = compare.comparison_table([REF], {"default": skipped, "thesis": None})
    table = table.set_index("method")
    assert list(table.index) == ["SIMBAD", "K-Means", "DEC", "DEC filtered", "default"]
    assert pd.isna(table.loc["default", "pmra"])
    assert "12 usable stars" in table.loc["default", "note"]
    assert table.loc["DEC", "note"] == "thesis not run"


def test_comparison_without_references_has_no_offsets() -> None:
    default, thesis = summaries()
    table = compare.comparison_table([], {"default": default, "thesis": thesis})
    assert table["pmra_offset_sigma"].isna().all()
    assert table.loc[table["method"] == "default", "pmra"].iloc[0] == pytest.approx(default["pmra"])


def test_comparison_tsv_roundtrip(tmp_path: Path) -> None:
    default, thesis = summaries()
    table = compare.comparison_table([REF, CG18], {"default": default, "thesis": thesis})
    compare.write_comparison(tmp_path / "comparison.tsv", table)
    back = compare.read_comparison(tmp_path / "comparison.tsv")
    assert list(back["method"]) == list(table["method"])
    np.testing.assert_allclose(
        back["parallax_offset_sigma"].to_numpy(dtype=float),
        table["parallax_offset_sigma"].to_numpy(dtype=float),
        atol=0.005,  # written to 2 decimals for people to read
        equal_nan=True,
    )
    np.testing.assert_allclose(back["parallax"], table["parallax"], atol=5e-6)
    assert compare.reference_row(back)["method"] == "SIMBAD"


def test_rounded_keeps_small_probabilities() -> None:
    from ocdec.results.comparison import rounded

    table = pd.DataFrame({"false_alarm_probability": [1.23456e-20, 0.5, np.nan],
                          "pmra": [1.2345678, 2.0, 3.0], "pmra_offset_sigma": [1.234, 0.0, 1.0]})
    out = rounded(table)
    assert out["false_alarm_probability"][0] == 1.235e-20
    assert out["false_alarm_probability"][1] == 0.5
    assert np.isnan(out["false_alarm_probability"][2])
    assert out["pmra"][0] == 1.23457 and out["pmra_offset_sigma"][0] == 1.23
