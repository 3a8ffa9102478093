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
