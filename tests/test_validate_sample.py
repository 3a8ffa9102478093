"""scripts/validate_sample.py: every sample field gets its Dias entry and its Hunt & Reffert row."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import validate_sample  # noqa: E402

pytestmark = pytest.mark.realdata

# B/ocl v3.5 lacks FSR 1212; the UCC-curated HR2023 table lacks these (non-OC types dropped).
NOT_IN_DIAS = {"FSR 1212"}
NOT_IN_HUNT = {"Arp-Madore 2", "ESO 093-08", "Saurer 1", "vdBergh-Hagen 4"}


def test_every_cluster_field_has_its_dias_priors_and_reference(shared_data: Path) -> None:
    manifest = pd.read_csv(validate_sample.SAMPLE / "MANIFEST.tsv", sep="\t").fillna("")
    clusters = manifest[manifest["kind"] == "cluster"]
    assert len(clusters) == 46
    regions, hunt = validate_sample.dias_regions(), validate_sample.hunt_table()
    stars = pd.DataFrame({"ra": [10.0], "dec": [20.0]})
    for name in clusters["cluster"]:
        priors, dias_name = validate_sample.priors_for(name, regions, stars)
        assert priors.has_centre, name
        if name not in NOT_IN_DIAS:
            assert not dias_name.startswith("("), name
        row = validate_sample.score({"kind": "cluster", "cluster": name, "status": "not_found"},
                                    hunt)
        assert (row["verdict"] == "no_reference") == (name in NOT_IN_HUNT), (name, row)


def test_set_overrides_nest_dotted_keys_and_read_yaml_values() -> None:
    assert validate_sample.overrides(["groups.n_resamples=2", "bagging=true",
                                      "groups.seed=7"]) == {
        "groups": {"n_resamples": 2, "seed": 7}, "bagging": True}
    with pytest.raises(SystemExit, match="give KEY=VALUE"):
        validate_sample.overrides(["groups.n_resamples"])
    with pytest.raises(SystemExit, match="use --dec"):  # --dec decides it
        validate_sample.overrides(["run_dec=false"])


def test_a_set_override_reaches_the_method_settings() -> None:
    from ocdec.characterize import method_settings

    settings = method_settings("default", {"default": validate_sample.overrides(
        ["groups.n_resamples=2"])})
    assert settings.groups.n_resamples == 2


def test_data_option_names_a_missing_folder_in_one_line(tmp_path: Path, capsys) -> None:
    """--data points the script at the shared data wherever it lies; a folder that is not there,
    or is not the shared data, is one line naming it and exit 2 (nothing run, nothing written)."""
    out = tmp_path / "sample.tsv"
    missing = tmp_path / "nowhere"
    assert validate_sample.main(["--data", str(missing), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"validate_sample.py: error: --data {missing}: no such directory (the shared "
                   "data folder)"]
    assert validate_sample.main(["--data", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"validate_sample.py: error: --data {tmp_path}: no "
                   "fields/catalogue_sample/MANIFEST.tsv there (is it the shared data folder?)"]
    assert not out.exists()


def test_data_option_reads_the_shared_data_from_elsewhere(shared_data: Path,
                                                          tmp_path: Path) -> None:
    """The script copied into another checkout, where ../shared/data is absent, runs a sample
    field from the shared data given by --data (a link in yet another folder). A subprocess: its
    workers are forked, which must not happen in a test process that has started JAX."""
    import shutil
    import subprocess

    script = tmp_path / "checkout" / "scripts" / "validate_sample.py"
    script.parent.mkdir(parents=True)
    shutil.copy(validate_sample.__file__, script)
    elsewhere = tmp_path / "data" / "shared_copy"
    elsewhere.parent.mkdir()
    elsewhere.symlink_to(shared_data, target_is_directory=True)
    out = tmp_path / "sample.tsv"
    run = [sys.executable, str(script), "--out", str(out), "--only", "ber29", "--jobs", "1"]
    without = subprocess.run(run, capture_output=True, text=True, timeout=120, check=False)
    assert without.returncode == 2 and "no such directory" in without.stderr
    assert str(tmp_path / "shared" / "data") in without.stderr  # the default, beside the copy
    done = subprocess.run([*run, "--data", str(elsewhere)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out, sep="\t")
    assert len(table) == 1 and table["file"].iloc[0].endswith("ber29.csv.gz")
    assert table["status"].iloc[0] in ("found", "not_found")
