"""Scores against published member lists: id and position matching, magnitude range, offsets."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from ocdec.cli import main
from ocdec.errors import OcdecError
from ocdec.results.validation import read_published, score_members


def _members(n: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({
        "source_id": np.arange(100, 100 + n, dtype=np.int64),
        "p_member": np.linspace(0.0, 1.0, n),
        "member": np.linspace(0.0, 1.0, n) >= 0.5,
        "group": np.zeros(n, dtype=np.int64),
        "ra": 10.0 + rng.uniform(0, 1, n),
        "dec": 20.0 + rng.uniform(0, 1, n),
        "pmra": np.arange(n, dtype=float),
        "pmdec": -np.arange(n, dtype=float),
        "parallax": np.full(n, 2.0),
        "phot_g_mean_mag": np.full(n, 15.0),
    })


def test_scores_by_source_id_count_only_listed_stars_in_the_field() -> None:
    members = _members()  # p >= 0.5 for rows 5..9
    published = pd.DataFrame({"source_id": pd.array([104, 105, 106, 999], dtype="Int64"),
                              "prob": [1.0, 1.0, 0.6, 1.0]})
    s = score_members(members, published)
    assert s["match"] == "source_id"
    # 999 is not in the field; truth = {104, 105, 106}; ours = {105..109}: TP 2.
    assert (s["n_truth"], s["n_members"], s["true_positives"]) == (3, 5, 2)
    assert s["precision"] == pytest.approx(2 / 5)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 * 2 / (5 + 3))
    # Offsets: our members' mean minus the listed stars' mean, both from the field table.
    assert s["offset_pmra_all"] == pytest.approx(np.mean([5, 6, 7, 8, 9]) - np.mean([4, 5, 6]))


def test_magnitude_range_and_published_probability_cut() -> None:
    members = _members()
    members.loc[members.index[-2:], "phot_g_mean_mag"] = 19.0  # rows 8, 9 too faint
    published = pd.DataFrame({"source_id": pd.array([105, 106, 107, 108], dtype="Int64"),
                              "prob": [1.0, 1.0, 0.3, 1.0]})
    s = score_members(members, published, g_max=18.0)
    # 107 is below the list's own threshold, 108 too faint: truth {105, 106}; ours {105, 106, 107}.
    assert (s["n_truth"], s["n_members"], s["true_positives"]) == (2, 3, 2)
    s_all = score_members(members, published, g_max=None)
    assert s_all["n_truth"] == 3 and s_all["n_members"] == 5


def test_position_match_within_one_arcsec_when_ids_differ() -> None:
    members = _members()
    near = members.iloc[[6, 7]]
    published = pd.DataFrame({
        "source_id": pd.array([1, 2, 3], dtype="Int64"),  # DR3-like ids unknown to the field
        "ra": [near.ra.iloc[0] + 0.5 / 3600, near.ra.iloc[1], 50.0],
        "dec": [near.dec.iloc[0], near.dec.iloc[1] + 3.0 / 3600, 50.0],  # second is 3" off
        "prob": [1.0, 1.0, 1.0],
    })
    s = score_members(members, published)
    assert s["match"] == "position"
    assert s["n_truth"] == 1 and s["true_positives"] == 1


def test_read_vizier_tsv_selects_cluster(tmp_path) -> None:
    text = (
        "#Title: test\n#Column\tSource\n\n"
        "_RAJ2000|_DEJ2000|Source|Cluster|RAdeg|DEdeg|Gmag\n"
        "deg|deg| | |deg|deg|mag\n"
        "-----------|-----------|------|--------|---------|---------|------\n"
        "289.1|-16.3|   4183932530156643712|NGC6774 |289.1|-16.3|12.0\n"
        "011.6|+84.7|    573550482464869248|NGC0188 | 11.6| 84.7|18.1\n"
    )
    path = tmp_path / "tab1b.tsv"
    path.write_text(text)
    pub = read_published(path, "NGC 6774")
    assert list(pub["source_id"]) == [4183932530156643712]
    assert pub["phot_g_mean_mag"].iloc[0] == 12.0
    with pytest.raises(OcdecError, match="no rows with Cluster"):
        read_published(path, "Melotte 25")


def test_cli_validate_prints_scores_and_writes_json(tmp_path, capsys) -> None:
    members = _members()
    mpath = tmp_path / "members.parquet"
    members.to_parquet(mpath)
    lpath = tmp_path / "list.csv"
    pd.DataFrame({"Source": [105, 106, 107], "PMemb": [1.0, 0.9, 0.7]}).to_csv(lpath)
    out = tmp_path / "scores.json"
    assert main(["validate", str(mpath), "--published", str(lpath), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "F1 0.750" in printed  # ours {105..109}, truth {105, 106, 107}: 2*3/(5+3)
    scores = json.loads(out.read_text())
    assert scores["true_positives"] == 3 and math.isclose(scores["f1"], 0.75)


def test_cli_validate_bad_inputs_exit_non_zero(tmp_path, capsys) -> None:
    assert main(["validate", str(tmp_path / "none.parquet"), "--published",
                 str(tmp_path / "none.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # log lines may precede the error
    assert err[-1].startswith("ocdec validate: error:")
    assert not any("Traceback" in line for line in err)
    members = _members().drop(columns=["p_member"])
    mpath = tmp_path / "m.parquet"
    members.to_parquet(mpath)
    lpath = tmp_path / "l.csv"
    pd.DataFrame({"Source": [105]}).to_csv(lpath)
    assert main(["validate", str(mpath), "--published", str(lpath)]) == 2
    assert "p_member" in capsys.readouterr().err


# -- repeated stars, empty lists, text probabilities, outputs -----------------------------------


def test_repeated_members_are_counted_once(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(5)
    n = 2000
    members = _members(n)
    members["p_member"] = (rng.uniform(size=n) < 0.3).astype(float)
    truth = members["source_id"][(members["p_member"] > 0.5) ^ (rng.uniform(size=n) < 0.05)]
    published = pd.DataFrame({"source_id": pd.array(truth.to_numpy(), dtype="Int64"),
                              "prob": 1.0})
    clean = score_members(members, published)
    repeats = members[members["p_member"] > 0.5].sample(300, replace=True, random_state=1)
    skewed = score_members(pd.concat([members, repeats], ignore_index=True), published)
    assert "dropped 300 exact duplicate row(s)" in caplog.text
    for key in ("precision", "recall", "f1", "n_members", "true_positives"):
        assert skewed[key] == clean[key], key
    conflicting = pd.concat([members, members.iloc[[7]].assign(p_member=0.3)], ignore_index=True)
    with pytest.raises(OcdecError, match="members table: source_id 107 is in rows 7 and 2000"):
        score_members(conflicting, published)


def test_repeats_in_the_published_list(tmp_path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("Source,PMemb\n105,1.0\n106,0.9\n105,1.0\n")
    assert read_published(path)["source_id"].tolist() == [105, 106]
    path.write_text("Source,PMemb\n105,1.0\n106,0.9\n105,0.2\n")
    with pytest.raises(OcdecError, match="source_id 105 is in rows 0 and 2 with different"):
        read_published(path)


def test_header_only_list_and_text_probabilities_are_refused(tmp_path, capsys) -> None:
    mpath = tmp_path / "members.parquet"
    _members().to_parquet(mpath)
    lpath = tmp_path / "list.csv"
    lpath.write_text("Source,PMemb\n")
    assert main(["validate", str(mpath), "--published", str(lpath)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "header but no rows" in err[-1] and "list.csv" in err[-1]
    lpath.write_text("Source,PMemb\n105,1.0\n106,high\n107,\n")
    assert main(["validate", str(mpath), "--published", str(lpath)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "column 'PMemb' row 1: 'high' is not a number" in err[-1]


def test_json_into_a_directory_fails_before_scoring(tmp_path, capsys) -> None:
    mpath = tmp_path / "members.parquet"
    _members().to_parquet(mpath)
    lpath = tmp_path / "list.csv"
    lpath.write_text("Source,PMemb\n105,1.0\n")
    (tmp_path / "scores").mkdir()
    code = main(["validate", str(mpath), "--published", str(lpath), "--json",
                 str(tmp_path / "scores")])
    captured = capsys.readouterr()
    assert code == 2 and "precision" not in captured.out
    assert "the --json path is an existing directory" in captured.err.strip().splitlines()[-1]
    assert "Traceback" not in captured.err


def test_another_clusters_list_warns_and_the_command_refuses_it(
        tmp_path, capsys, caplog: pytest.LogCaptureFixture) -> None:
    """A published list none of whose members is in the field (another cluster's list): the
    scores warn, naming the likely mistake, and ``ocdec validate`` exits 2 with one line instead
    of printing "0 published members in the field ... recall nan" and exiting 0."""
    members = _members()
    published = pd.DataFrame({"source_id": pd.array([901, 902, 903], dtype="Int64"),
                              "ra": [200.0, 200.1, 200.2], "dec": [-60.0, -60.1, -60.2],
                              "prob": [1.0, 1.0, 1.0]})
    with caplog.at_level("WARNING", logger="ocdec"):
        s = score_members(members, published)
    assert s["n_published_in_field"] == 0 and math.isnan(s["recall"])
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert ("none of the 3 published members lies in the field (matched by position within 1 "
            "arcsec): the list is probably for another cluster, or the field is wrong"
            ) == warnings[0].getMessage()

    mpath = tmp_path / "members.parquet"
    members.to_parquet(mpath)
    lpath = tmp_path / "other.csv"
    pd.DataFrame({"Source": [901, 902, 903], "PMemb": [1.0, 0.9, 0.8],
                  "Cluster": ["NGC 188", "NGC 188", "Blanco 1"]}).to_csv(lpath, index=False)
    out = tmp_path / "scores.json"
    assert main(["validate", str(mpath), "--published", str(lpath), "--json", str(out)]) == 2
    captured = capsys.readouterr()
    assert "recall" not in captured.out and not out.exists()
    err = captured.err.strip().splitlines()
    assert err[-1] == (f"ocdec validate: error: {lpath}: none of its 3 published members lies in "
                       f"the field of {mpath} (matched by source_id): the list is probably for "
                       "another cluster, or the field is wrong; --cluster picks one cluster of a "
                       "list of several")
    # one listed star in the field is enough to score (the rest may lie outside the cone)
    pd.DataFrame({"Source": [105, 902], "PMemb": [1.0, 0.9]}).to_csv(lpath, index=False)
    assert main(["validate", str(mpath), "--published", str(lpath)]) == 0
    assert "1 published members in the field" in capsys.readouterr().out
    # a probability cut above every listed star leaves nothing to score either
    assert main(["validate", str(mpath), "--published", str(lpath),
                 "--published-min-prob", "1.5"]) == 2
    assert "no published member has probability >= 1.5" in capsys.readouterr().err
