"""The quality filter and the star-count gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ocdec import cli
from ocdec.data.columns import CANONICAL_COLUMNS, normalise, read_stars
from ocdec.data.quality import QualitySettings, apply_quality
from ocdec.errors import OcdecError
from ocdec.io import read_provenance, write_parquet

M67_DR3 = "fields/teachastro_M67_dr3_astrometry_only.csv.gz"


@pytest.fixture
def only_my_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI imports every command module; other helpers' modules may not exist yet.
    monkeypatch.setattr(cli, "COMMANDS", ("regions", "quality"))


def field(n: int = 100, seed: int = 1) -> pd.DataFrame:
    """A complete canonical DR3-like table with no defects."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.uniform(1.0, 2.0, n) for c in CANONICAL_COLUMNS[1:]})
    frame.insert(0, "source_id", np.arange(1000, 1000 + n, dtype=np.int64))
    frame["phot_g_mean_mag"] = rng.uniform(8, 21, n)
    frame["ruwe"] = rng.uniform(0.8, 2.0, n)
    return frame


def test_each_defect_removes_exactly_its_stars() -> None:
    frame = field()
    frame.loc[0, "pmra"] = np.nan
    frame.loc[1, "dec"] = np.nan
    frame.loc[2, "bp_rp"] = np.nan
    frame.loc[3, "parallax"] = -0.5
    frame.loc[4, "parallax"] = 0.0
    frame.loc[5, "parallax_error"] = np.inf
    clean, status = apply_quality(frame, QualitySettings(min_stars=10))
    assert set(frame["source_id"]) - set(clean["source_id"]) == {1000, 1001, 1002, 1003, 1004, 1005}
    assert status["status"] == "ok" and status["n_input"] == 100 and status["n_usable"] == 94
    assert status["removed"]["pmra present"] == 1
    assert status["removed"]["bp_rp present"] == 1
    assert status["removed"]["parallax > 0"] == 2
    assert sum(status["removed"].values()) == 6
    pd.testing.assert_frame_equal(clean, frame.drop(index=range(6)).reset_index(drop=True))


def test_photometry_is_only_required_when_asked() -> None:
    frame = field()
    frame.loc[:9, "bp_rp"] = np.nan
    clean, _ = apply_quality(frame, QualitySettings(min_stars=0, require_photometry=False))
    assert len(clean) == 100
    clean, _ = apply_quality(frame, QualitySettings(min_stars=0))
    assert len(clean) == 90


def test_optional_cuts_keep_the_stars_on_the_right_side() -> None:
    frame = field(500)
    settings = QualitySettings(min_stars=0, ruwe_max=1.4, parallax_over_error_min=1.2, g_max=18.0)
    clean, status = apply_quality(frame, settings)
    expected = frame[
        (frame["ruwe"] <= 1.4)
        & (frame["parallax"] / frame["parallax_error"] >= 1.2)
        & (frame["phot_g_mean_mag"] <= 18.0)
    ]
    assert clean["source_id"].tolist() == expected["source_id"].tolist()
    assert 0 < len(clean) < 500
    assert status["removed"]["ruwe <= 1.4"] == int((frame["ruwe"] > 1.4).sum())


def test_gate_is_inclusive_at_min_stars_and_says_why_it_skips() -> None:
    frame = field(50)
    frame.loc[:4, "pmdec"] = np.nan  # 45 usable
    _, ok = apply_quality(frame, QualitySettings(min_stars=45), region="NGC_2682")
    assert ok["status"] == "ok" and ok["n_usable"] == 45
    assert list(ok)[:5] == ["region", "status", "n_input", "n_usable", "reason"]
    clean, skipped = apply_quality(frame, QualitySettings(min_stars=46), region="NGC_2682")
    assert skipped["status"] == "skipped" and skipped["region"] == "NGC_2682"
    assert "45" in skipped["reason"] and "46" in skipped["reason"]
    assert len(clean) == 45  # the usable stars are still handed on


def test_columns_absent_from_the_export_are_not_cuts() -> None:
    # VizieR exports without positions or errors; DR2 without RUWE.
    frame = field(30)
    frame[["ra", "dec", "pmra_error", "pmdec_error", "ruwe"]] = np.nan
    clean, status = apply_quality(frame, QualitySettings(min_stars=0, ruwe_max=1.4))
    assert len(clean) == 30
    assert status["missing_columns"] == ["dec", "pmdec_error", "pmra_error", "ra", "ruwe"]


def test_a_field_without_proper_motions_is_skipped_with_the_reason() -> None:
    frame = field(30)
    frame[["pmra", "pmdec"]] = np.nan
    clean, status = apply_quality(frame, QualitySettings(min_stars=1))
    assert clean.empty and status["status"] == "skipped"
    assert "no proper motions" in status["reason"]


@pytest.mark.parametrize(
    "kwargs", [{"min_stars": -1}, {"ruwe_max": 0.0}, {"g_max": float("nan")}]
)
def test_bad_settings_are_user_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(OcdecError):
        QualitySettings(**kwargs)  # type: ignore[arg-type]


@pytest.mark.realdata
def test_real_dr3_field_counts_match_an_independent_count(shared_data: Path) -> None:
    raw = pd.read_csv(shared_data / M67_DR3)
    usable = raw[["Plx", "pmRA", "pmDE", "Gmag", "BP-RP"]].notna().all(axis=1) & (raw["Plx"] > 0)
    frame = read_stars(shared_data / M67_DR3)
    clean, status = apply_quality(frame, QualitySettings())
    assert status["n_input"] == len(raw) and status["n_usable"] == int(usable.sum()) == len(clean)
    assert status["status"] == ("ok" if usable.sum() >= 40000 else "skipped")
    assert set(status["missing_columns"]) == {"ra", "dec", "parallax_error", "pmra_error",
                                              "pmdec_error"}


def test_quality_command_writes_stars_status_and_provenance(
    tmp_path: Path, only_my_commands: None
) -> None:
    frame = field(60)
    frame.loc[:19, "parallax"] = -1.0
    frame["true_member"] = np.arange(60) % 3 == 0
    source = tmp_path / "NGC_2516.parquet"
    write_parquet(source, frame, {"source": "simulate", "seed": 3})
    out, status_path = tmp_path / "r" / "stars.parquet", tmp_path / "r" / "status.json"
    args = ["quality", str(source), "--out", str(out), "--status", str(status_path)]
    assert cli.main([*args, "--min-stars", "40"]) == 0
    status = json.loads(status_path.read_text())
    assert status["region"] == "NGC_2516" and status["status"] == "ok"
    assert status["n_input"] == 60 and status["n_usable"] == 40
    stars = pd.read_parquet(out)
    assert (stars["parallax"] > 0).all() and len(stars) == 40
    assert stars["true_member"].tolist() == frame["true_member"].iloc[20:].tolist()
    provenance = read_provenance(out)
    assert provenance["source"] == "simulate" and provenance["quality"]["n_usable"] == 40

    # Below the gate: still both files, marked skipped, with a non-error exit.
    assert cli.main([*args, "--min-stars", "41", "--region", "X"]) == 0
    status = json.loads(status_path.read_text())
    assert status["status"] == "skipped" and status["region"] == "X"
    assert len(pd.read_parquet(out)) == 40


def test_quality_command_rejects_bad_option_value_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], only_my_commands: None
) -> None:
    source = tmp_path / "stars.parquet"
    write_parquet(source, normalise(field(5), "test"))
    code = cli.main(["quality", str(source), "--out", str(tmp_path / "o.parquet"),
                     "--status", str(tmp_path / "s.json"), "--min-stars", "-3"])
    err = capsys.readouterr().err
    assert code != 0 and "min_stars" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.parquet").exists()


# -- a missing column is an error, not a skip; duplicates are noticed -------------------------


def test_file_without_a_proper_motion_column_is_an_error_not_a_skip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], only_my_commands: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import logging

    # Earlier tests' cli.main() left a handler on a stream that capsys has closed since.
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    frame = field(50).rename(columns={"pmra": "pm_ra"})  # a misnamed column
    source = tmp_path / "NGC_1.csv"
    frame.to_csv(source, index=False)
    with pytest.raises(OcdecError) as err:
        apply_quality(read_stars(source), QualitySettings(min_stars=1))
    assert "no column pmra" in str(err.value) and "NGC_1.csv" in str(err.value)
    assert "\n" not in str(err.value)
    out, status = tmp_path / "o.parquet", tmp_path / "s.json"
    code = cli.main(["quality", str(source), "--out", str(out), "--status", str(status)])
    err_lines = capsys.readouterr().err.strip().splitlines()  # log lines may precede the error
    assert code == 2 and err_lines[-1].startswith("ocdec quality: error: ")
    assert "no column pmra" in err_lines[-1] and not [x for x in err_lines if "Traceback" in x]
    assert not out.exists() and not status.exists()
    # The star-count gate is still a skip, with a zero exit.
    frame.rename(columns={"pm_ra": "pmra"}).to_csv(source, index=False)
    assert cli.main(["quality", str(source), "--out", str(out), "--status", str(status),
                     "--min-stars", "51"]) == 0
    assert json.loads(status.read_text())["status"] == "skipped"


def test_repeated_stars_are_counted_once_and_conflicts_refused(
    caplog: pytest.LogCaptureFixture
) -> None:
    frame = field(100)
    repeated = pd.concat([frame, frame.iloc[:30]], ignore_index=True)
    clean, status = apply_quality(repeated, QualitySettings(min_stars=0))
    assert status["n_input"] == 100 and len(clean) == 100
    assert "dropped 30 exact duplicate row(s)" in caplog.text
    conflicting = repeated.copy()
    conflicting.loc[100, "pmra"] += 1.0
    with pytest.raises(OcdecError, match="source_id 1000 is in rows 0 and 100 with different"):
        apply_quality(conflicting, QualitySettings(min_stars=0))


def test_rule_adapter_log_ends_with_the_one_line(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import logging
    import runpy
    import sys
    import types

    source = tmp_path / "NGC_1.parquet"
    write_parquet(source, field(20).drop(columns=["pmdec"]), {"source": "local"})
    log = tmp_path / "logs" / "quality" / "NGC_1.log"
    smk = types.SimpleNamespace(
        rule="quality", log=[str(log)], params=types.SimpleNamespace(quality={"min_stars": 1}),
        input=types.SimpleNamespace(stars=str(source)),
        wildcards=types.SimpleNamespace(region="NGC_1"),
        output=types.SimpleNamespace(stars=str(tmp_path / "q" / "stars.parquet"),
                                     status=str(tmp_path / "q" / "status.json")),
    )
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    script = Path(__file__).resolve().parents[1] / "scripts" / "quality.py"
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(script), init_globals={"snakemake": smk}, run_name="__main__")
    assert stop.value.code == 1
    last = log.read_text().strip().splitlines()[-1]
    assert "ERROR" in last and "no column pmdec" in last and "Traceback" not in log.read_text()


def test_full_disk_while_writing_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], only_my_commands: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import errno

    from ocdec.cli import quality as quality_command

    source = tmp_path / "stars.parquet"
    write_parquet(source, field(5))

    def full(path: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(quality_command, "write_parquet", full)
    out = tmp_path / "o.parquet"
    code = cli.main(["quality", str(source), "--out", str(out), "--status",
                     str(tmp_path / "s.json"), "--min-stars", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not [x for x in err if "Traceback" in x]
    assert err[-1] == (f"ocdec quality: error: {out}: No space left on device; free some space, "
                       "or write elsewhere")
    # An output path that is a directory is found before the input is read.
    (tmp_path / "adir").mkdir()
    code = cli.main(["quality", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "adir"),
                     "--status", str(tmp_path / "s.json")])
    assert code == 2 and "adir: the --out path is an existing directory" in capsys.readouterr().err
