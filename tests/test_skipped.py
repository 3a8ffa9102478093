"""A region the quality gate skipped: each rule adapter (run as Snakemake runs it, in a fresh
process) writes the skipped products and imports none of the heavy modules it does not need; most
of such a job is start-up, paid by every skipped region of a catalogue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import REPO
from ocdec.data.quality import quality_region
from ocdec.io import write_parquet
from synthetic_field import synthetic_field

# Imported by no skipped job: DEC and the isochrone fit (JAX, Flax, Optax), HDBSCAN and K-Means
# (scikit-learn), the physics fits (SciPy's optimizer), SIMBAD (astroquery), pyplot.
NEVER = ("jax", "flax", "optax", "sklearn", "scipy.optimize", "astroquery", "matplotlib.pyplot")
# ... and by these jobs, which draw nothing (parameters draws its "skipped" figure and reads no
# table, so it needs no pandas either).
NOT_IMPORTED = {
    "characterize": NEVER + ("matplotlib",),
    "parameters": NEVER + ("pandas",),
    "plots": NEVER,
    "compare": NEVER + ("matplotlib",),
    "reference": NEVER + ("matplotlib",),
}
REGION = {"id": "Tiny_1", "name": "Tiny 1", "ra": 120.0, "dec": -30.0, "radius_deg": 1.0}

# Runs one adapter as Snakemake's script directive would (a fresh interpreter, a `snakemake`
# object with the rule's input, output, params, log), then prints the modules it loaded.
CHILD = """
import json, runpy, sys, types
spec = json.loads(sys.argv[1])
ns = types.SimpleNamespace
smk = ns(rule=spec["rule"], log=[spec["log"]], input=ns(**spec["input"]),
         output=ns(**spec["output"]), params=ns(**spec["params"]),
         wildcards=ns(region=spec["region"]), config=spec["config"])
runpy.run_path(spec["script"], init_globals={"snakemake": smk}, run_name="__main__")
print(json.dumps(sorted(sys.modules)))
"""


def run_adapter(script: str, rule: str, work: Path, **spec: Any) -> set[str]:
    """Run scripts/{script}.py for ``rule`` in a fresh process; the modules it imported."""
    spec |= {"rule": rule, "script": str(REPO / "scripts" / f"{script}.py"),
             "log": str(work / "logs" / f"{rule}.log"), "region": REGION["id"],
             "config": {"characterize": {"jax_cache_dir": str(work / "jax")}}}
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts")}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def skipped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A skipped region's files, every job run in order; {rule: modules it imported}."""
    work = tmp_path_factory.mktemp("skipped")
    res = work / "results" / REGION["id"]
    raw = work / "raw.parquet"
    write_parquet(raw, synthetic_field(n_field=200, n_cluster=20), {"source": "simulate"})
    status = quality_region(raw, res / "stars.parquet", res / "status.json",
                            {"min_stars": 40_000}, region=REGION["id"])
    assert status["status"] == "skipped"
    reference = work / "resources" / "reference" / f"{REGION['id']}.json"
    methods = ["default", "thesis"]
    summaries = {m: str(res / m / "summary.json") for m in methods}
    loaded = {"reference": run_adapter(
        "reference", "reference", work, input={"cluster_tables": []},
        output={"reference": str(reference)},
        params={"region": REGION, "simbad": False, "table": None,
                "simbad_cache": str(work / "simbad.json")})}
    for method in methods:
        loaded[f"characterize_{method}"] = run_adapter(
            "characterize", f"characterize_{method}", work,
            input={"stars": str(res / "stars.parquet"), "status": str(res / "status.json"),
                   "known": []},
            output={"summary": summaries[method], "members": str(res / method / "members.parquet")},
            params={"method": method, "region": REGION, "settings": {}})
    loaded["parameters"] = run_adapter(
        "parameters", "parameters", work,
        input={"members": str(res / "default" / "members.parquet"),
               "summary": summaries["default"]},
        output={"json": str(res / "default" / "parameters.json"),
                "png": str(res / "default" / "parameters.png")},
        params={"region": REGION, "release": "dr3", "settings": {}})
    loaded["plots"] = run_adapter(
        "plots", "plots", work,
        input={"status": str(res / "status.json"), "reference": str(reference),
               **{f"{m}_summary": summaries[m] for m in methods}},
        output={"overview": str(res / "plots" / "overview.png")},
        params={"region": REGION, "formats": ["png"], "methods": methods})
    loaded["compare"] = run_adapter(
        "compare", "compare", work, input={**summaries, "reference": str(reference)},
        output={"table": str(res / "comparison.tsv")}, params={"methods": methods})
    return {"dir": res, "status": status, "loaded": loaded}


@pytest.mark.parametrize("rule", ["characterize_default", "characterize_thesis", "parameters",
                                  "plots", "compare", "reference"])
def test_skipped_jobs_import_no_heavy_module(skipped: dict[str, Any], rule: str) -> None:
    loaded = skipped["loaded"][rule]
    assert "ocdec" in loaded  # the adapter did run here
    heavy = [m for m in NOT_IMPORTED[rule.removesuffix("_default").removesuffix("_thesis")]
             if m in loaded]
    assert heavy == [], f"{rule} imported {heavy} for a skipped region"


def test_skipped_jobs_write_skipped_products(skipped: dict[str, Any]) -> None:
    res, reason = skipped["dir"], skipped["status"]["reason"]
    stars = pd.read_parquet(res / "stars.parquet")
    for method, extra in (("default", {}), ("thesis", {"kmeans_group": -1, "kmeans_member": False,
                                                        "dec_group": -1, "dec_member": False,
                                                        "dec_filtered_member": False})):
        summary = json.loads((res / method / "summary.json").read_text())
        assert summary["status"] == "skipped" and summary["reason"] == reason
        assert summary["n_members"] == 0 and summary["n_stars"] == len(stars)
        members = pd.read_parquet(res / method / "members.parquet")
        head = ["source_id", "p_member", "member", "group", *extra]
        assert list(members.columns) == head + [c for c in stars.columns if c != "source_id"]
        assert len(members) == len(stars) and not members["member"].any()
        for col, value in extra.items():
            assert (members[col] == value).all(), col
        history = pd.read_csv(res / method / "history.tsv", sep="\t")
        assert list(history.columns) == ["seed", "phase", "epoch", "loss", "label_change"]
        assert history.empty
    silhouette = pd.read_csv(res / "thesis" / "silhouette.tsv", sep="\t")
    assert list(silhouette.columns) == ["k", "silhouette"] and silhouette.empty

    parameters = json.loads((res / "default" / "parameters.json").read_text())
    assert parameters["status"] == "skipped" and parameters["reason"] == reason
    assert parameters["region"] == "Tiny_1" and parameters["name"] == "Tiny 1"
    assert (res / "default" / "parameters.png").stat().st_size > 0

    comparison = pd.read_csv(res / "comparison.tsv", sep="\t", index_col="method")
    assert set(comparison.index) >= {"default", "K-Means", "DEC", "DEC filtered"}
    assert comparison.loc["default", "note"] == f"skipped: {reason}"


def test_skipped_figures_are_the_drawn_message(skipped: dict[str, Any], tmp_path: Path) -> None:
    """Drawn once and copied under every name: the same bytes as drawing each."""
    from ocdec.results.figures.style import save_figure, skipped_figure

    plots = skipped["dir"] / "plots"
    drawn = save_figure(skipped_figure(REGION, skipped["status"]["reason"]), tmp_path / "x.png")
    for name in ("overview", "methods", "silhouette", "training", "groups"):
        assert (plots / f"{name}.png").read_bytes() == drawn.read_bytes(), name
