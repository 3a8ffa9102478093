"""The workflow's side of ocdec.physics: parameters_region (skipped and not-found regions give a
parameters.json, not a failed job; simulated truth kept), parameters_catalogue, the summary
columns, the lazy API and the rule adapter."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from ocdec.io import write_json, write_parquet
from ocdec.physics.isochrones import load_grid
from ocdec.physics.region import parameters_catalogue, parameters_region
from ocdec.physics.synthetic import synthetic_members
from ocdec.results.summary import COLUMNS, PHYSICS_COLUMNS, summary_row

FAST = {"n_boot": 20}
TRUTH = {"age_myr": 100.0, "a_v": 0.3, "distance_pc": 400.0}


def _method_folder(tmp_path: Path, name: str, members: pd.DataFrame, summary: dict,
                   source: str = "simulate") -> tuple[Path, Path]:
    folder = tmp_path / name / "default"
    folder.mkdir(parents=True)
    write_parquet(folder / "members.parquet", members,
                  {"source": source, "cluster": TRUTH, "settings": {"release": "dr3"}})
    write_json(folder / "summary.json", {"method": "default", **summary})
    return folder / "members.parquet", folder / "summary.json"


@pytest.fixture(scope="module")
def cluster() -> pd.DataFrame:
    members = synthetic_members(load_grid(), 8.0, 0.3, 400.0, n_stars=800, seed=5)
    field = members.iloc[:50].assign(p_member=0.0)  # non-members in the same table are ignored
    return pd.concat([members.assign(p_member=0.9), field], ignore_index=True)


@pytest.mark.parametrize(
    ("summary", "status", "reason"),
    [
        ({"status": "skipped", "reason": "120 usable stars < min_stars 400", "n_members": 0},
         "skipped", "min_stars"),
        ({"status": "not_found", "reason": "no significant peak", "n_members": 0},
         "not_fitted", "no significant peak"),
        ({"status": "done", "n_members": 0}, "not_fitted", "no cluster found"),
    ],
)
def test_regions_without_a_cluster_say_why(tmp_path: Path, summary: dict, status: str,
                                           reason: str) -> None:
    empty = pd.DataFrame({"source_id": pd.Series(dtype="int64"),
                          "p_member": pd.Series(dtype=float)})
    members, summary_path = _method_folder(tmp_path, "R", empty, summary)
    out = tmp_path / "R" / "default"
    values = parameters_region(members, summary_path, out / "parameters.json",
                               out / "parameters.png", region={"id": "R", "name": "R 1"})
    assert values["status"] == status and reason in values["reason"]
    written = json.loads((out / "parameters.json").read_text())
    assert written["status"] == status and written["region"] == "R"
    assert math.isnan(float("nan" if written["log_age"] is None else written["log_age"]))
    assert (out / "parameters.png").stat().st_size > 0


def test_region_fit_then_catalogue_with_the_simulated_truth(tmp_path: Path,
                                                            cluster: pd.DataFrame) -> None:
    motion = {"pmra": -4.6, "pmra_error": 0.011, "pmdec": 11.2, "pmdec_error": 0.013}
    members, summary = _method_folder(tmp_path, "SIM", cluster,
                                      {"status": "done", "n_members": 800, **motion})
    out = tmp_path / "SIM" / "default"
    values = parameters_region(members, summary, out / "parameters.json", None,
                               region={"id": "SIM"}, config=FAST)
    assert values["status"] == "ok", values["reason"]
    # the method's proper motion travels with the parameters; the King fit says how it went
    assert {k: values[k] for k in motion} == motion
    assert values["king_fit"] in ("ok", "extrapolated", "unconstrained")
    assert values["n_members"] == len(cluster) - 50
    # simulated stars: no zero point subtracted (the simulator adds none)
    assert values["parallax_zero_point_method"] == "none"
    assert values["truth"]["log_age"] == pytest.approx(8.0)
    assert abs(values["log_age"] - 8.0) < 0.3 and abs(values["distance_pc"] - 400.0) < 20.0

    skipped_members, skipped_summary = _method_folder(
        tmp_path, "EMPTY", cluster.iloc[:0], {"status": "skipped", "reason": "too few stars"})
    skipped_out = tmp_path / "EMPTY" / "default" / "parameters.json"
    parameters_region(skipped_members, skipped_summary, skipped_out, region={"id": "EMPTY"})

    outputs = {"fits": tmp_path / "catalogue.fits", "vot": tmp_path / "catalogue.vot",
               "age_radius": tmp_path / "age_radius.png",
               "parameters_literature": tmp_path / "parameters_literature.png"}
    table = parameters_catalogue([out / "parameters.json", skipped_out], outputs,
                                 regions=[{"id": "SIM", "name": "Sim 1"}, {"id": "EMPTY"}])
    assert list(table["status"]) == ["ok", "skipped"]
    assert table["pmra"][0] == pytest.approx(-4.6) and np.isnan(table["pmra"][1])
    assert str(table["pmdec_error"].unit) == "mas / yr"
    assert table["king_fit"][0] == values["king_fit"] and table["king_fit"][1] == ""
    assert table["lit_log_age"][0] == pytest.approx(8.0)
    assert str(table["lit_distance_pc"].unit) == "pc"
    assert all(Path(p).stat().st_size > 0 for p in outputs.values())


def test_settings_keys_are_checked(tmp_path: Path, cluster: pd.DataFrame) -> None:
    from ocdec.errors import OcdecError

    members, summary = _method_folder(tmp_path, "X", cluster.iloc[:20],
                                      {"status": "done", "n_members": 20})
    with pytest.raises(OcdecError, match="'parameters.n_bot'"):
        parameters_region(members, summary, tmp_path / "p.json", config={"n_bot": 3})


def test_summary_row_carries_the_physical_columns() -> None:
    params = {"status": "ok", "reason": None, **{c: 1.5 for c in PHYSICS_COLUMNS},
              "king_fit": "extrapolated"}
    row = summary_row({"id": "A"}, status={"status": "ok"},
                      summaries={"default": {"status": "done"}}, parameters=params)
    assert set(row) == set(COLUMNS)
    assert row["king_fit"] == "extrapolated" and row["rt_pc"] == 1.5
    assert row["parameters_status"] == "ok" and row["jacobi_radius_pc"] == 1.5
    # the distance's own (zero-point corrected) parallax sits beside the measured one
    assert row["parallax_mas"] == 1.5 and {"parallax", "parallax_zero_point_mas"} <= set(row)
    none = summary_row({"id": "A"}, status={"status": "ok"}, summaries={"default": None})
    assert none["parameters_status"] == "" and np.isnan(none["log_age"])
    skipped = summary_row({"id": "B"}, status={"status": "skipped"},
                          parameters={"status": "skipped", "reason": "too few stars"})
    assert skipped["parameters_reason"] == "too few stars"


def test_lazy_api_and_adapter() -> None:
    import ocdec
    from ocdec.physics.parameters import fit_parameters

    assert ocdec.fit_parameters is fit_parameters and "fit_parameters" in ocdec.__all__
    spec = importlib.util.spec_from_file_location("_adapter_parameters",
                                                  REPO / "scripts" / "parameters.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # no Snakemake object: must not run anything
    assert callable(module.main)


def test_adapter_writes_the_catalogue(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("_adapter_parameters2",
                                                  REPO / "scripts" / "parameters.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = tmp_path / "A" / "default" / "parameters.json"
    write_json(path, {"status": "not_fitted", "reason": "no cluster found", "n_members": 0})
    outputs = {"fits": str(tmp_path / "c.fits"), "vot": str(tmp_path / "c.vot")}
    module.main(SimpleNamespace(rule="parameters_catalogue", log=[str(tmp_path / "log.txt")],
                                input=SimpleNamespace(parameters=[str(path)]),
                                output=SimpleNamespace(items=outputs.items),
                                params=SimpleNamespace(regions=[{"id": "A"}])))
    assert Path(outputs["fits"]).is_file() and Path(outputs["vot"]).is_file()


def test_catalogue_after_failure_marks_the_missing_region(tmp_path: Path) -> None:
    from astropy.table import Table

    from ocdec.physics.region import catalogue_after_failure

    good = tmp_path / "A" / "default" / "parameters.json"
    write_json(good, {"status": "not_fitted", "reason": "no cluster found", "n_members": 0})
    missing = tmp_path / "B" / "default" / "parameters.json"
    outputs = {"fits": tmp_path / "c.fits", "vot": tmp_path / "c.vot",
               "age_radius": tmp_path / "age_radius.png"}
    catalogue_after_failure([good], outputs, regions=[{"id": "A"}])
    assert not outputs["fits"].exists()  # nothing failed: the rule writes it
    catalogue_after_failure([good, missing], outputs, regions=[{"id": "A"}, {"id": "B"}])
    table = Table.read(outputs["fits"])
    assert list(table["status"]) == ["not_fitted", "failed"]
    assert "jobs failed" in table["reason"][1] and outputs["age_radius"].is_file()
    # never raises, even when the regions do not match the files
    catalogue_after_failure([missing], outputs, regions=[])
