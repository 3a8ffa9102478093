"""The Snakemake workflow: dry runs of the shipped configs, inspection commands, config and region
table errors, resources, and a small offline end-to-end run with its HTML report."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ocdec.io import read_provenance

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
RULES = (
    "download",
    "quality",
    "characterize_default",
    "characterize_thesis",
    "reference",
    "compare",
    "plots",
    "parameters",
    "summary",
)
PER_REGION_RULES = RULES[:-1]
PLOTS = ("overview", "methods", "silhouette", "training", "groups")


def snakemake(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    """Run the venv's snakemake on the repository's Snakefile (never the network: every config
    used here is offline or a dry run)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--nolock", *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        shown = f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        raise AssertionError(f"{' '.join(args)} failed:\n{shown}")
    return proc


def dry_run_jobs(*args: str) -> list[dict[str, str]]:
    """Jobs of a dry run as dicts: rule, output, wildcards, priority, resources (as printed).
    Every job, whatever results the checkout holds (``--forceall``): the README's quick start runs
    the workflow, then these tests, in the same checkout."""
    out = snakemake("-n", "--forceall", "--cores", "1", *args).stdout
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if not head:
            continue
        job = {"rule": head.group(1)}
        for key in ("input", "output", "wildcards", "priority", "resources"):
            found = re.search(rf"^\s+{key}: (.*)$", block, re.MULTILINE)
            if found:
                job[key] = found.group(1)
        jobs.append(job)
    return jobs


def region_ids(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        return [row["id"] for row in csv.DictReader(handle, delimiter="\t")]


def resources(job: dict[str, str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in job.get("resources", "").split(", ") if "=" in item)


# --- dry runs and inspection -------------------------------------------------------------------


@pytest.mark.slow
def test_dry_run_of_default_config_lists_every_region_and_stage() -> None:
    regions = region_ids(REPO / "config" / "regions.tsv")
    assert len(regions) == 243, "config/regions.tsv should hold the 243 Dias regions"
    jobs = dry_run_jobs()
    by_rule: dict[str, set[str]] = {}
    for job in jobs:
        region = re.search(r"region=([^,\s]+)", job.get("wildcards", ""))
        by_rule.setdefault(job["rule"], set()).add(region.group(1) if region else "")
    for rule in PER_REGION_RULES:
        assert by_rule.get(rule) == set(regions), f"{rule}: not one job per region"
    assert len(by_rule["summary"]) == 1 and len(by_rule["all"]) == 1
    assert len(by_rule["parameters_catalogue"]) == 1
    downloads = [j["output"] for j in jobs if j["rule"] == "download"]
    assert sorted(downloads) == sorted(f"resources/gaia/dr3/{r}.parquet" for r in regions)
    # Archive jobs are throttled by a resource, and sized by the cone: the Hyades cone (r = 4.1 deg)
    # asks for more memory and time than M 67's neighbour cones.
    sizes = {
        re.search(r"region=(\S+)", j["wildcards"]).group(1): resources(j)
        for j in jobs
        if j["rule"] == "download"
    }
    assert all(r["gaia_jobs"] == "1" for r in sizes.values())
    assert int(sizes["Melotte_25"]["mem_mb"]) > int(sizes["NGC_2516"]["mem_mb"])
    assert int(sizes["Melotte_25"]["runtime"]) > int(sizes["NGC_2516"]["runtime"])


def test_dry_run_of_offline_default_simulates_the_five_thesis_clusters() -> None:
    jobs = dry_run_jobs("--configfile", "config/offline.yaml")
    rules = {j["rule"] for j in jobs}
    assert "download" not in rules and "simulate" in rules
    simulated = sorted(j["output"] for j in jobs if j["rule"] == "simulate")
    expected = ["Melotte_22", "Melotte_25", "NGC_2516", "NGC_2632", "NGC_2682"]
    assert simulated == [f"resources/simulate/{r}.parquet" for r in expected]
    thesis = {
        re.search(r"region=(\S+)", j["wildcards"]).group(1): resources(j)
        for j in jobs
        if j["rule"] == "characterize_thesis"
    }
    # No GPU unless the config asks for one; bigger cones ask for more.
    assert {r["gpu"] for r in thesis.values()} == {"0"}
    assert int(thesis["Melotte_25"]["mem_mb"]) > int(thesis["NGC_2682"]["mem_mb"])
    # physical parameters from the default method's members, per region, then one catalogue
    fitted = sorted(j["output"] for j in jobs if j["rule"] == "parameters")
    assert fitted == sorted(f"results/{r}/default/parameters.json, "
                            f"results/{r}/default/parameters.png" for r in expected)
    catalogue = [j["output"] for j in jobs if j["rule"] == "parameters_catalogue"]
    assert len(catalogue) == 1
    # among ready jobs, a region's next stage first (depth first), the figures, comparison and
    # references in the gaps; within a stage, the largest regions first. The stages lie 100
    # times apart: the ilp scheduler maximises the sum of the priorities it starts, which dozens
    # of lower-stage jobs must not outweigh.
    priority = {(j["rule"], re.sub(r".*region=", "", j.get("wildcards", ""))):
                float(j.get("priority", 0)) for j in jobs}
    by_rule: dict[str, list[float]] = {}
    for (rule, _), value in priority.items():
        by_rule.setdefault(rule, []).append(value)
    order = ["parameters", "characterize_default", "quality", "simulate", "plots"]
    for above, below in zip(order, order[1:], strict=False):
        assert min(by_rule[above]) > 50 * max(by_rule[below]), (above, below)
    assert max(by_rule["compare"]) == max(by_rule["summary"]) == 0
    for region in expected:
        assert priority["characterize_default", region] == priority["characterize_thesis", region]
    assert (priority["characterize_default", "Melotte_25"]
            > priority["characterize_default", "NGC_2516"]
            > priority["characterize_default", "NGC_2682"])


def test_parameters_method_must_be_a_configured_method(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"parameters": {"method": "hdbscan"}}))
    proc = snakemake("-n", "--cores", "1", "--configfile", "config/offline.yaml", str(path),
                     check=False)
    assert proc.returncode != 0
    assert "parameters.method 'hdbscan' is not among characterize.methods" in (proc.stdout
                                                                               + proc.stderr)


def test_the_workflow_runs_its_own_checkout_s_library(tmp_path: Path) -> None:
    """Another ocdec earlier on the path (a release installed in the environment, another
    clone's editable install) is imported neither by the Snakefile nor by a job in its own
    process, whose script Snakemake runs from .snakemake/scripts with scripts/ appended."""
    other = tmp_path / "other" / "ocdec"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text('raise ImportError("another ocdec was imported")\n')
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "fresh.yaml").write_text(yaml.safe_dump({"warm_interpreter": False}))
    configs = [str(REPO / "config" / "config.yaml"), str(REPO / "config" / "offline.yaml"),
               str(small_config(tmp_path)), str(tmp_path / "fresh.yaml")]
    env = {**os.environ, "PYTHONPATH": str(other.parent)}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--nolock",
                           "--cores", "1", "resources/reference/NGC_2682.json", "--configfile",
                           *configs], cwd=work, capture_output=True, text=True, timeout=300,
                          env=env)
    logs = "".join(p.read_text() for p in (work / "logs").rglob("*.log"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + logs
    assert "another ocdec" not in proc.stdout + proc.stderr + logs
    assert json.loads((work / "resources" / "reference" / "NGC_2682.json").read_text())


def test_the_checkout_goes_first_on_pythonpath_once() -> None:
    from ocdec.checkout import put_first_on_pythonpath

    env = {"PYTHONPATH": os.pathsep.join(["/elsewhere", "/scripts"])}
    put_first_on_pythonpath("/scripts", env)
    assert env["PYTHONPATH"].split(os.pathsep) == ["/scripts", "/elsewhere", "/scripts"]
    put_first_on_pythonpath("/scripts", env)  # the Snakefile read again: no second entry
    assert env["PYTHONPATH"].split(os.pathsep) == ["/scripts", "/elsewhere", "/scripts"]
    empty: dict[str, str] = {}
    put_first_on_pythonpath("/scripts", empty)
    assert empty == {"PYTHONPATH": "/scripts"}
    cwd = {"PYTHONPATH": os.pathsep + "/x"}  # an empty entry: the working directory, kept
    put_first_on_pythonpath("/scripts", cwd)
    assert cwd["PYTHONPATH"].split(os.pathsep) == ["/scripts", "", "/x"]


def test_regions_thesis_matches_the_catalogue_cones() -> None:
    with (REPO / "config" / "regions_thesis.tsv").open(newline="") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert set(rows) == {"NGC_2516", "NGC_2632", "NGC_2682", "Melotte_22", "Melotte_25"}
    for row in rows.values():
        # the thesis's cone: 1.5 x the Dias radius
        assert float(row["radius_deg"]) == pytest.approx(1.5 * float(row["diameter_arcmin"]) / 120)
    assert float(rows["Melotte_25"]["radius_deg"]) == pytest.approx(4.125)


def test_characterize_writes_groups_and_reads_the_known_cluster_tables(tmp_path: Path) -> None:
    """Issue 10: every characterize job writes groups.tsv (products.method_files) and reads the
    published cluster tables (reference.cluster_tables) that name the groups."""
    table = tmp_path / "HUNT2023.csv"
    table.write_text("Name,RA_ICRS,DE_ICRS,pmRA,pmDE,Plx,r50\nNGC 2682,132.8,11.8,-11,-3,1.1,0.1\n")
    overlay = tmp_path / "known.yaml"
    overlay.write_text(yaml.safe_dump({"reference": {"cluster_tables": [str(table)]}}))
    jobs = dry_run_jobs("--configfile", "config/offline.yaml", str(overlay))
    characterize = [j for j in jobs if j["rule"].startswith("characterize")]
    assert characterize and all("groups.tsv" in j["output"] for j in characterize)
    assert all(str(table) in j["input"] for j in characterize)
    plots = [j for j in jobs if j["rule"] == "plots"]
    assert plots and all("plots/groups.png" in j["output"] for j in plots)


def test_gpu_is_requested_when_config_asks(tmp_path: Path) -> None:
    overlay = tmp_path / "gpu.yaml"
    overlay.write_text(yaml.safe_dump({"characterize": {"gpu": True}}))
    jobs = dry_run_jobs("--configfile", "config/offline.yaml", str(overlay))
    gpus = {resources(j).get("gpu") for j in jobs if j["rule"].startswith("characterize")}
    assert gpus == {"1"}


def test_region_figures_can_be_left_to_a_request(tmp_path: Path) -> None:
    """plots.regions: false leaves the per-region figures out of a catalogue run (every other
    job stays); one region's figures are still made when asked for by name."""
    overlay = tmp_path / "plots.yaml"
    overlay.write_text(yaml.safe_dump({"plots": {"regions": False}}))
    base = ("--configfile", "config/offline.yaml")
    every = dry_run_jobs(*base)
    jobs = dry_run_jobs(*base, str(overlay))
    rules = [j["rule"] for j in jobs]
    assert "plots" not in rules and "plots" in [j["rule"] for j in every]
    assert sorted(rules) == sorted(j["rule"] for j in every if j["rule"] != "plots")
    asked = dry_run_jobs("results/NGC_2682/plots/overview.png", *base, str(overlay))
    plots = [j for j in asked if j["rule"] == "plots"]
    assert len(plots) == 1 and "region=NGC_2682" in plots[0]["wildcards"]


def test_table_formats_add_members_and_summary_outputs(tmp_path: Path) -> None:
    overlay = tmp_path / "tables.yaml"
    overlay.write_text(yaml.safe_dump({"tables": {"formats": ["fits", "votable", "csv"]}}))
    jobs = dry_run_jobs("--configfile", "config/offline.yaml", str(overlay))
    thesis = next(j for j in jobs if j["rule"] == "characterize_thesis")
    for name in ("members.parquet", "members.fits", "members.vot", "members.csv"):
        assert f"/thesis/{name}" in thesis["output"]
    table = next(j for j in jobs if j["rule"] == "summary")["output"]
    assert all(f"results/summary.{s}" in table for s in ("tsv", "fits", "vot", "csv"))


def test_rulegraph_lint_and_inspection_commands() -> None:
    graph = snakemake("--configfile", "config/offline.yaml", "--rulegraph").stdout
    for rule in ("simulate", *RULES[1:], "all"):
        assert f'label = "{rule}"' in graph
    labels = dict(re.findall(r'(\d+)\[label = "(\w+)"', graph))
    edges = {(labels[a], labels[b]) for a, b in re.findall(r"(\d+) -> (\d+)", graph)}
    assert {("simulate", "quality"), ("quality", "characterize_thesis"),
            ("characterize_thesis", "compare"), ("reference", "compare"),
            ("compare", "summary"), ("characterize_default", "parameters"),
            ("parameters", "parameters_catalogue"), ("parameters", "summary")} <= edges

    lint = snakemake("--lint")
    assert "Congratulations" in lint.stdout + lint.stderr

    listed = snakemake("--list-rules").stdout.split()
    assert set(RULES) | {"all", "simulate", "read_local", "parameters_catalogue"} <= set(listed)

    # targets go first: --configfile takes every word after it
    dag = snakemake("results/NGC_2682/comparison.tsv", "--dag", "--configfile",
                    "config/offline.yaml").stdout
    assert "region: NGC_2682" in dag and "region: Melotte_25" not in dag

    summary = snakemake("--configfile", "config/offline.yaml", "--summary").stdout
    assert "results/NGC_2682/thesis/summary.json" in summary


def resource_helpers(config: dict, regions: dict[str, dict]) -> dict:
    """The resource section of workflow/rules/common.smk (plain Python), run on its own."""
    import math

    text = (REPO / "workflow" / "rules" / "common.smk").read_text()
    section = text[text.index("# --- resources"): text.index("# --- targets")]
    from ocdec.methods.registry import REGISTRY

    namespace = {"math": math, "config": config, "REGION_INFO": regions, "REGISTRY": REGISTRY,
                 "REGIONS": list(regions), "SOURCE": config["source"]}
    exec(compile(section, "common.smk", "exec"), namespace)
    return namespace


def test_resource_requests_grow_with_stars_and_attempt() -> None:
    from astropy.coordinates import SkyCoord

    regions = {
        "small": {"ra": 132.825, "dec": 11.8, "radius_deg": 0.3125, "expected_stars": None},
        "hyades": {"ra": 66.725, "dec": 15.867, "radius_deg": 4.125, "expected_stars": None},
        "given": {"ra": 66.725, "dec": 15.867, "radius_deg": 4.125, "expected_stars": 1000},
    }
    helpers = resource_helpers(merged_config(), regions)
    b = SkyCoord(ra=66.725, dec=15.867, unit="deg").galactic.b.deg
    assert helpers["galactic_latitude"](66.725, 15.867) == pytest.approx(b, abs=0.01)
    stars = helpers["EXPECTED_STARS"]
    # the Hyades cone holds ~434,000 DR3 stars; the estimate only needs the right size
    assert 2e5 < stars["hyades"] < 1e6 and stars["small"] < stars["hyades"] / 20
    assert stars["given"] == 1000

    class Wildcards:
        def __init__(self, region: str) -> None:
            self.region = region

    # scheduling: a region's next stage first, the largest regions first within a stage
    priority = helpers["priority_for"]
    assert priority("characterize")(Wildcards("hyades")) > priority("characterize")(
        Wildcards("small")) > 50 * priority("quality")(Wildcards("hyades"))
    for rule in ("download", "quality", "characterize_thesis", "plots", "parameters"):
        mem, runtime = helpers["mem_mb_for"](rule), helpers["runtime_for"](rule)
        big, small = Wildcards("hyades"), Wildcards("small")
        assert mem(big, 1) > mem(small, 1) and runtime(big, 1) > runtime(small, 1)
        assert mem(big, 2) == pytest.approx(2 * mem(big, 1), abs=2)
        assert runtime(small, 3) == pytest.approx(3 * runtime(small, 1), abs=3)  # ceil

    offline = yaml.safe_load((REPO / "config" / "offline.yaml").read_text())
    capped = resource_helpers(merged_config(offline, {"simulate": {"max_field_stars": 5000}}),
                              regions)
    assert capped["EXPECTED_STARS"]["hyades"] == 5000
    assert capped["gpu_request"]("default") == 0
    # HDBSCAN's request grows as n^2.1: capped at max_runtime_min, attempts included
    hdbscan = helpers["runtime_for"]("characterize_hdbscan")
    assert hdbscan(Wildcards("hyades"), 1) < helpers["MAX_RUNTIME_MIN"] == 2880
    uncapped = resource_helpers(merged_config({"max_runtime_min": None}), regions)
    huge = {"huge": {"ra": 246.53, "dec": -26.25, "radius_deg": 6.25,
                     "expected_stars": 10_000_000}}
    assert resource_helpers(merged_config(), huge)["runtime_for"]("characterize_hdbscan")(
        Wildcards("huge"), 2) == 2880
    assert resource_helpers(merged_config({"max_runtime_min": None}), huge)["runtime_for"](
        "characterize_hdbscan")(Wildcards("huge"), 1) > 7 * 24 * 60
    assert uncapped["MAX_RUNTIME_MIN"] is None
    gpu = resource_helpers(merged_config({"characterize": {"gpu": True}}), regions)["gpu_request"]
    assert gpu("default") == 1 and gpu("thesis") == 1
    assert gpu("hdbscan") == 0  # no JAX: a GPU would sit idle


def test_requests_follow_the_stars_a_job_reads(tmp_path) -> None:
    """Once a job's star table is written its rows size the request, not the sky-density
    estimate (up to four times short in the plane); before (a dry run), the estimate."""
    import pandas as pd

    regions = {"plane": {"ra": 246.53, "dec": -26.25, "radius_deg": 6.25, "expected_stars": None}}
    helpers = resource_helpers(merged_config(), regions)
    estimate = helpers["EXPECTED_STARS"]["plane"]
    rows = estimate // 250  # far from the estimate: the request must follow the table
    stars = tmp_path / "stars.parquet"
    pd.DataFrame({"source_id": range(rows)}).to_parquet(stars)

    class Wildcards:
        region = "plane"

    from snakemake.iocontainers import InputFiles

    def Input(**named: str) -> InputFiles:  # noqa: N802 (a job's named inputs, as Snakemake's)
        return InputFiles(fromdict=named)

    base, per = helpers["RESOURCE_MODEL"]["quality"][:2]
    mem = helpers["mem_mb_for"]("quality")
    written = Input(stars=str(stars), status=str(tmp_path / "status.json"))
    assert mem(Wildcards(), 1, input=written) == math.ceil(base + per * rows / 1000)
    not_yet = Input(stars=str(tmp_path / "missing.parquet"))
    assert mem(Wildcards(), 1, input=not_yet) == mem(Wildcards(), 1) == math.ceil(
        base + per * estimate / 1000)
    # a figure job reads a method's members table
    plots = helpers["mem_mb_for"]("plots")
    base, per = helpers["RESOURCE_MODEL"]["plots"][:2]
    assert plots(Wildcards(), 2, input=Input(default_members=str(stars))) == math.ceil(
        2 * (base + per * rows / 1000))

# --- errors -------------------------------------------------------------------------------------


def merged_config(*overlays: dict) -> dict:
    """config.yaml with overlays merged key by key, as Snakemake merges --configfile files."""
    from snakemake.utils import update_config

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for overlay in overlays:
        update_config(config, overlay)
    return config


def test_shipped_configs_are_valid() -> None:
    from snakemake.utils import validate

    schema = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
    offline = yaml.safe_load((REPO / "config" / "offline.yaml").read_text())
    validate(merged_config(), schema)
    validate(merged_config(offline), schema)


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        ({"source": "gaiax"}, "'gaiax' is not one of ['gaia', 'local', 'simulate']"),
        ({"quality": {"min_stars": "many"}}, "'many' is not of type 'integer'"),
        ({"gaia": {"release": "dr4"}}, "'dr4' is not one of ['dr2', 'dr3']"),
        ({"characterize": {"methods": ["kmeans"]}}, "'kmeans' is not one of"),
        ({"quality": {"min_star": 5}}, "('min_star' was unexpected)"),
        ({"source": "local", "local": {"path": "data/stars.csv"}}, "does not match"),
        ({"characterize": {"thesis": {"dec": {"pretrain_epoch": 3}}}},
         "('pretrain_epoch' was unexpected)"),
        ({"parameters": {"cmd": {"fe_h": 0.0}}}, "('fe_h' was unexpected)"),
        ({"parameters": {"min_probability": 2}}, "2 is greater than the maximum of 1"),
    ],
)
def test_config_schema_rejects_mistakes_by_name(overlay: dict, message: str) -> None:
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
    with pytest.raises(WorkflowError) as err:
        validate(merged_config(overlay), schema)
    assert message in str(err.value) + "".join(str(a) for a in err.value.args)


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """A failed run's output but Snakemake's notes on the profile and the config files it read:
    a user's mistake should leave one line, no schema, config or trace."""
    assert proc.returncode != 0
    notes = ("Using workflow specific profile", "Config file config/config.yaml is extended")
    return [line for line in (proc.stdout + proc.stderr).splitlines()
            if line.strip() and not line.startswith(notes)]


def test_config_error_stops_the_workflow_with_the_schema_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"source": "gaiax"}))
    proc = snakemake("-n", "--cores", "1", "--configfile", str(path), check=False)
    assert error_lines(proc) == [
        f"Error: config: source: 'gaiax' is not one of ['gaia', 'local', 'simulate'] "
        f"(set in {path})"
    ]


@pytest.mark.parametrize(
    ("overlay", "expected"),
    [
        # printed the whole schema and config before: 1,633 lines
        ({"qualty": {"min_stars": 5}}, "Error: config: qualty: unknown key, did you mean "
         "'quality'? (known: regions, source, gaia, "),
        # 37 lines before
        ({"quality": {"min_star": 5}}, "Error: config: quality.min_star: unknown key, did you "
         "mean 'min_stars'? (known: min_stars, ruwe_max, parallax_over_error_min, g_max, "
         "require_photometry; set in "),
        ({"characterize": {"methods": ["default", "kmeans"]}}, "Error: config: "
         "characterize.methods[1]: 'kmeans' is not one of ['default', 'thesis', 'hdbscan'] (set "
         "in "),
        ({"parameters": {"method": "hdbscan"}}, "Error: parameters.method 'hdbscan' is not "
         "among characterize.methods (default, thesis)"),
    ],
)
def test_config_mistakes_are_one_line_naming_the_key(
    tmp_path: Path, overlay: dict, expected: str
) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(overlay))
    proc = snakemake("-n", "--cores", "1", "--configfile", "config/offline.yaml", str(path),
                     check=False)
    lines = error_lines(proc)
    assert len(lines) == 1 and lines[0].startswith(expected), lines[:20]
    if "set in" in expected:
        assert lines[0].endswith(f"set in {path})")


def test_a_value_from_the_command_line_is_named_as_such() -> None:
    proc = snakemake("-n", "--cores", "1", "--config", "source=gaiax", check=False)
    assert error_lines(proc) == [
        "Error: config: source: 'gaiax' is not one of ['gaia', 'local', 'simulate'] "
        "(set with --config)"
    ]


def test_defaults_left_behind_by_directory_are_named(tmp_path: Path) -> None:
    """--directory elsewhere: Snakemake looks for config/config.yaml there and, a --configfile
    given, goes on without it; the line on the missing keys says so."""
    proc = snakemake("-n", "--cores", "1", "--directory", str(tmp_path), "--configfile",
                     str(REPO / "config" / "offline.yaml"), check=False)
    [line] = error_lines(proc)
    assert line.startswith("Error: config: 'gaia' is a required property (config/config.yaml, "
                           f"the defaults, is not in the working directory {tmp_path}")


def test_a_config_yaml_that_does_not_parse_is_named_with_its_line(tmp_path: Path) -> None:
    # config/config.yaml is read by the workflow (a --configfile by Snakemake, before it)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("source: simulate\nquality: [\n  x: 1\n")
    proc = snakemake("-n", "--cores", "1", "--directory", str(tmp_path), check=False)
    assert error_lines(proc) == [
        "Error: config/config.yaml: line 4, column 1: not valid YAML: expected ',' or ']', but "
        "got '<stream end>'"
    ]


def test_region_table_errors_are_one_line(tmp_path: Path) -> None:
    lines = (REPO / "config" / "regions_thesis.tsv").read_text().splitlines()
    duplicated = tmp_path / "dup.tsv"
    duplicated.write_text("\n".join([*lines, lines[-1]]) + "\n")
    proc = snakemake("-n", "--cores", "1", "--config", f"regions={duplicated}", check=False)
    # before: the message, then two 'File ".../common.smk", line 42' trace lines
    assert error_lines(proc) == [
        f"Error: {duplicated}: line 7: duplicated id 'Melotte_25' (first on line 6) "
        "(config key 'regions')"
    ]
    misspelt = tmp_path / "typo.tsv"
    misspelt.write_text("\n".join([lines[0].replace("parallax_prior", "parralax_prior"),
                                   *lines[1:]]) + "\n")
    proc = snakemake("-n", "--cores", "1", "--configfile", "config/offline.yaml", "--config",
                     f"regions={misspelt}", check=False)
    [line] = error_lines(proc)
    assert (f"Error: {misspelt}: line 1: unknown column 'parralax_prior': did you mean "
            "parallax_prior?") in line


def test_a_row_the_regions_schema_refuses_is_one_line() -> None:
    """read_regions checks what the regions schema does; a row the schema still refuses (a rule
    added to the schema alone) is named by line, id and column (common.smk's
    regions_schema_error, which reads Snakemake's row number and the ValidationError behind its
    WorkflowError)."""
    import pandas as pd
    from jsonschema.exceptions import ValidationError
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    text = (REPO / "workflow" / "rules" / "common.smk").read_text()
    source = text[text.index("def regions_schema_error"): text.index("def read_regions_table")]
    namespace = {"re": re, "ValidationError": ValidationError}
    exec(compile(source, "common.smk", "exec"), namespace)
    table = pd.DataFrame({"id": ["A", "B"], "name": ["A", "B"], "ra": [1.0, 2.0],
                          "dec": [0.0, 0.0], "radius_deg": [1.0, 45.0]})
    with pytest.raises(WorkflowError) as err:
        validate(table, str(REPO / "workflow" / "schemas" / "regions.schema.yaml"))
    assert namespace["regions_schema_error"](table, err.value) == (
        "line 3 (B): column 'radius_deg': 45.0 is greater than the maximum of 30")


def test_missing_input_files_the_config_names_stop_the_run(tmp_path: Path) -> None:
    """Snakemake keeps the outputs made from an input that went missing ("Nothing to be done"):
    the run checks the files the config names as it starts, naming the key and the first few."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "NGC_2516.csv").write_text("")
    overlay = {"source": "local", "local": {"path": str(data / "{region}.csv")},
               "reference": {"cluster_tables": [str(tmp_path / "cg2020.csv")]}}
    (tmp_path / "local.yaml").write_text(yaml.safe_dump(overlay))
    configs = ("--configfile", "config/offline.yaml", str(tmp_path / "local.yaml"))
    proc = snakemake("-n", "--cores", "1", *configs, check=False)
    assert error_lines(proc) == [
        f"Error: config key 'local.path' ({data}/{{region}}.csv): 4 of 5 file(s) missing: "
        f"{data}/NGC_2632.csv, {data}/NGC_2682.csv, {data}/Melotte_22.csv and 1 more; config "
        f"key 'reference.cluster_tables': 1 of 1 file(s) missing: {tmp_path}/cg2020.csv"
    ]
    # a mode that runs no job (here a listing of the rules; a report, an unlock) is not stopped
    listing = snakemake("--list-rules", *configs, check=False)
    assert listing.returncode == 0 and "characterize_default" in listing.stdout
    # every file there: a dry run goes on (the files the workflow makes are not checked)
    for name in ("NGC_2632", "NGC_2682", "Melotte_22", "Melotte_25"):
        (data / f"{name}.csv").write_text("")
    (tmp_path / "cg2020.csv").write_text("")
    jobs = {job["rule"] for job in dry_run_jobs(*configs)}
    assert {"read_local", "quality", "summary"} <= jobs
    # the offline reference table too, where it is a path
    (tmp_path / "table.yaml").write_text(yaml.safe_dump(
        {"reference": {"table": "no/references.tsv"}}))
    proc = snakemake("-n", "--cores", "1", *configs, str(tmp_path / "table.yaml"), check=False)
    assert error_lines(proc) == [
        "Error: config key 'reference.table': 1 of 1 file(s) missing: no/references.tsv"]


# --- a small offline run ------------------------------------------------------------------------


SMALL_REGIONS = """\
id\tname\tra\tdec\tdiameter_arcmin\tradius_deg\tdistance_pc\tparallax_prior\tpmra_prior\tpmdec_prior
NGC_2682\tNGC 2682\t132.825\t11.8\t25.0\t0.3125\t808.0\t1.2376\t-9.4\t-4.87
Tiny_1\tTiny 1\t200.0\t-50.0\t1.0\t0.0125\t800.0\t1.25\t\t
"""


def small_config(tmp_path: Path) -> Path:
    """Two simulated regions with few stars and tiny DEC epochs; Tiny_1's cone is too small to
    pass the star-count gate, so it is skipped and must carry through."""
    (tmp_path / "regions.tsv").write_text(SMALL_REGIONS)
    tiny_dec = {"pretrain_epochs": 2, "cluster_epochs": 2, "min_cluster_epochs": 1}
    config = {
        "regions": str(tmp_path / "regions.tsv"),
        "source": "simulate",
        "simulate": {"seed": 7, "n_members": 300, "max_field_stars": 1500},
        "quality": {"min_stars": 400},
        "characterize": {
            "n_seeds": 2,
            "threads": 1,
            "default": {"dec": tiny_dec},
            "thesis": {"k_values": [2, 3, 4], "dec": tiny_dec},
        },
        "reference": {"simbad": False, "table": str(REPO / "config" / "references.tsv")},
    }
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_small_offline_run_produces_every_file_and_the_report(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    configs = [str(REPO / "config" / "config.yaml"), str(REPO / "config" / "offline.yaml"),
               str(small_config(tmp_path))]
    args = ("--directory", str(work), "--configfile", *configs)
    run = snakemake("--cores", "2", *args, cwd=work)
    assert "characterize.threads" not in run.stderr  # one thread a job fits in 2 cores

    for region in ("NGC_2682", "Tiny_1"):
        base = work / "results" / region
        expected = [
            base / "stars.parquet",
            base / "status.json",
            base / "comparison.tsv",
            *(base / m / f for m in ("default", "thesis")
              for f in ("members.parquet", "summary.json", "history.tsv")),
            base / "thesis" / "silhouette.tsv",
            *(base / "plots" / f"{p}.png" for p in PLOTS),
            base / "default" / "parameters.json",
            base / "default" / "parameters.png",
            work / "resources" / "simulate" / f"{region}.parquet",
            work / "resources" / "reference" / f"{region}.json",
        ]
        missing = [str(p) for p in expected if not p.is_file()]
        assert not missing, f"missing outputs: {missing}"
        for rule in ("simulate", "quality", "characterize_thesis", "plots"):
            assert (work / "logs" / rule / f"{region}.log").is_file()
            assert (work / "benchmarks" / rule / f"{region}.tsv").is_file()
    for name in ("summary.tsv", "offsets.png", "recovered.png", "catalogue.fits",
                 "catalogue.vot", "age_radius.png", "parameters_literature.png"):
        assert (work / "results" / name).is_file()

    ok = json.loads((work / "results" / "NGC_2682" / "status.json").read_text())
    skipped = json.loads((work / "results" / "Tiny_1" / "status.json").read_text())
    assert ok["status"] == "ok" and ok["n_usable"] >= 400
    assert skipped["status"] == "skipped" and skipped["n_usable"] < 400
    for method in ("default", "thesis"):
        summary = json.loads((work / "results" / "Tiny_1" / method / "summary.json").read_text())
        assert summary["status"] == "skipped"
        done = json.loads((work / "results" / "NGC_2682" / method / "summary.json").read_text())
        assert done["status"] == "found" and done["n_members"] > 0
    with (work / "results" / "summary.tsv").open(newline="") as handle:
        rows = {row["region"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert set(rows) == {"NGC_2682", "Tiny_1"}
    assert rows["Tiny_1"]["status"].startswith("skipped")
    # physical parameters: skipped where the region was, fitted (or failed, saying why) elsewhere
    fitted = json.loads((work / "results" / "NGC_2682" / "default" / "parameters.json")
                        .read_text())
    assert fitted["status"] == "ok", fitted["reason"]
    assert rows["NGC_2682"]["parameters_status"] == "ok"
    assert float(rows["NGC_2682"]["log_age"]) == pytest.approx(fitted["log_age"], abs=1e-4)
    assert rows["Tiny_1"]["parameters_status"] == "skipped"
    assert rows["Tiny_1"]["parameters_reason"]
    from astropy.table import Table

    table = Table.read(work / "results" / "catalogue.fits")
    assert list(table["id"]) == ["NGC_2682", "Tiny_1"]
    assert list(table["status"]) == ["ok", "skipped"]
    assert str(table["distance_pc"].unit) == "pc"

    report = work / "report.html"
    snakemake("--report", str(report), *args, cwd=work)
    html = report.read_text(errors="replace")
    categories = embedded_json(html, "categories")
    results = embedded_json(html, "results")
    for region in ("NGC_2682", "Tiny_1"):
        paths = {p for sub in categories[region].values() for p in sub}
        expected = {f"results/{region}/plots/{p}.png" for p in PLOTS}
        expected.add(f"results/{region}/comparison.tsv")
        expected.add(f"results/{region}/default/parameters.png")
        assert paths == expected
    catalogue = {p for sub in categories["Catalogue"].values() for p in sub}
    assert catalogue == {"results/summary.tsv", "results/offsets.png", "results/recovered.png",
                         "results/age_radius.png", "results/parameters_literature.png"}
    for path, entry in results.items():
        assert entry["caption"].strip(), f"{path}: no caption"
        if path.endswith(".png"):
            assert entry["data_uri"].startswith("data:image/png"), f"{path} is not embedded"


def embedded_json(html: str, name: str) -> dict:
    """A JSON object the Snakemake report embeds as `var NAME = {...};`."""
    found = re.search(rf"var {name} = (\{{.*?\}});\s*\n", html, re.DOTALL)
    assert found, f"no {name} in the report"
    return json.loads(found.group(1))


@pytest.mark.slow
@pytest.mark.realdata
def test_local_source_normalises_a_real_export(tmp_path: Path, shared_data: Path) -> None:
    """source: local reads a user's CSV per region (here a real Gaia DR2 export around NGC 188,
    which lacks the pm errors and the photometric columns but BP-RP) through to the gate."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "NGC_188.csv").symlink_to(shared_data / "fields" / "ngc188_dr2_r1deg_plx0.4-0.7.csv")
    (tmp_path / "regions.tsv").write_text(
        "id\tname\tra\tdec\tdiameter_arcmin\tradius_deg\n"
        "NGC_188\tNGC 188\t11.798\t85.244\t15.0\t1.0\n"
    )
    overlay = {
        "regions": str(tmp_path / "regions.tsv"),
        "source": "local",
        "local": {"path": str(data / "{region}.csv")},
        "quality": {"min_stars": 1000},
        # every file the config names is checked as the run starts, from the working directory
        "reference": {"table": str(REPO / "config" / "references.tsv")},
    }
    (tmp_path / "local.yaml").write_text(yaml.safe_dump(overlay))
    snakemake("results/NGC_188/status.json", "--cores", "1", "--directory", str(tmp_path),
              "--configfile", str(REPO / "config" / "config.yaml"), str(tmp_path / "local.yaml"),
              cwd=tmp_path)
    status = json.loads((tmp_path / "results" / "NGC_188" / "status.json").read_text())
    rows = sum(1 for _ in (data / "NGC_188.csv").open()) - 1
    assert status["status"] == "ok" and status["n_input"] == rows
    assert 1000 <= status["n_usable"] <= rows
    normalised = tmp_path / "resources" / "local" / "NGC_188.parquet"
    assert read_provenance(normalised)["source"] == "local"


@pytest.mark.slow
@pytest.mark.realdata
def test_gaia_source_downloads_through_the_workflow(tmp_path: Path, shared_data: Path) -> None:
    """source: gaia runs the download rule against a TAP server on 127.0.0.1 (serving a real DR2
    field around Praesepe) in chunks, and the quality rule reads what arrived."""
    sys.path.insert(0, str(REPO / "tests"))
    from tap_server import TapServer, field_table

    cone = (130.1, 19.6, 1.2)
    (tmp_path / "regions.tsv").write_text(
        "id\tname\tra\tdec\tdiameter_arcmin\tradius_deg\n"
        f"NGC_2632\tNGC 2632\t{cone[0]}\t{cone[1]}\t96.0\t{cone[2]}\n"
    )
    field = field_table(shared_data / "fields" / "ngc2632_praesepe_dr2_r2deg_plxcut.csv")
    with TapServer(field) as tap:
        overlay = {
            "regions": str(tmp_path / "regions.tsv"),
            "gaia": {"release": "dr3", "server": tap.url, "chunk_rows": 500, "timeout_s": 5,
                     "retries": 2},
            "quality": {"min_stars": 100},
            "reference": {"table": str(REPO / "config" / "references.tsv")},
        }
        (tmp_path / "gaia.yaml").write_text(yaml.safe_dump(overlay))
        snakemake("results/NGC_2632/status.json", "--cores", "1", "--directory", str(tmp_path),
                  "--configfile", str(REPO / "config" / "config.yaml"),
                  str(tmp_path / "gaia.yaml"), cwd=tmp_path)
        expected = len(tap.truth(*cone))
        assert tap.count("create") > 2  # a count, then several chunks
    stars = tmp_path / "resources" / "gaia" / "dr3" / "NGC_2632.parquet"
    provenance = read_provenance(stars)
    assert provenance["source"] == "gaia" and provenance["rows"] == expected
    assert "gaiadr3.gaia_source" in provenance["table"]
    status = json.loads((tmp_path / "results" / "NGC_2632" / "status.json").read_text())
    assert status["n_input"] == expected and status["status"] == "ok"


@pytest.mark.slow
def test_failed_region_still_gives_the_catalogue_summary_and_reruns_alone(tmp_path: Path) -> None:
    """One region's refused file (no pmra column) fails its job; with --keep-going the other
    region finishes and the error handler writes the summary table and figures with the failed
    row and the log's one-line reason. After the fix, a rerun redoes only that region."""
    sys.path.insert(0, str(REPO / "tests"))
    from synthetic_field import synthetic_field

    work = tmp_path / "work"
    data = tmp_path / "data"
    data.mkdir(parents=True)
    work.mkdir()
    field = synthetic_field(n_field=1500, n_cluster=200, centre=(120.0, -30.0))
    field.to_csv(data / "Good_1.csv", index=False)
    field.drop(columns=["pmra"]).to_csv(data / "Bad_1.csv", index=False)
    (tmp_path / "regions.tsv").write_text(
        "id\tname\tra\tdec\tdiameter_arcmin\tradius_deg\n"
        "Good_1\tGood 1\t120.0\t-30.0\t60.0\t1.0\n"
        "Bad_1\tBad 1\t120.0\t-30.0\t60.0\t1.0\n"
    )
    overlay = {
        "regions": str(tmp_path / "regions.tsv"),
        "source": "local",
        "local": {"path": str(data / "{region}.csv")},
        "quality": {"min_stars": 400},
        "characterize": {"methods": ["default"], "n_seeds": 1, "threads": 1,
                         "default": {"run_dec": False}},
        "reference": {"simbad": False, "table": str(REPO / "config" / "references.tsv")},
    }
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    args = ("--cores", "2", "--keep-going", "--directory", str(work), "--configfile",
            str(REPO / "config" / "config.yaml"), str(tmp_path / "overlay.yaml"))
    first = snakemake(*args, cwd=work, check=False)
    assert first.returncode != 0, f"the bad region's job should fail:\n{first.stderr[-3000:]}"

    def rows() -> dict[str, dict[str, str]]:
        with (work / "results" / "summary.tsv").open(newline="") as handle:
            return {row["region"]: row for row in csv.DictReader(handle, delimiter="\t")}

    table = rows()
    assert table["Bad_1"]["status"] == "failed"
    assert "pmra" in table["Bad_1"]["reason"], table["Bad_1"]["reason"]
    assert table["Good_1"]["status"] != "failed"
    for name in ("offsets.png", "recovered.png", "catalogue.fits", "age_radius.png"):
        assert (work / "results" / name).is_file()
    from astropy.table import Table

    physics = Table.read(work / "results" / "catalogue.fits")
    assert list(physics["status"])[list(physics["id"]).index("Bad_1")] == "failed"
    report = work / "report.html"
    snakemake("--report", str(report), *args[2:], cwd=work)
    catalogue = embedded_json(report.read_text(errors="replace"), "categories")["Catalogue"]
    assert "results/summary.tsv" in {p for sub in catalogue.values() for p in sub}
    good_members = work / "results" / "Good_1" / "default" / "members.parquet"
    before = good_members.stat().st_mtime_ns

    field.to_csv(data / "Bad_1.csv", index=False)  # the fix
    dry = snakemake("-n", *args, cwd=work).stdout
    # the catalogue-wide jobs list every region's inputs; the per-region jobs come before them
    per_region = re.split(r"rule (?:summary|parameters_catalogue):", dry)[0]
    assert "Good_1" not in per_region, "only the fixed region should rerun"
    snakemake(*args, cwd=work)
    assert good_members.stat().st_mtime_ns == before
    assert rows()["Bad_1"]["status"] != "failed"


@pytest.mark.slow
@pytest.mark.realdata
def test_mistyped_gaia_table_stops_the_catalogue_before_any_download(
    tmp_path: Path, shared_data: Path
) -> None:
    """The downloads of all 243 regions with a typo in gaia.table: the once-per-run check fails
    with one line, no region is downloaded, and the summary names the reason for every region."""
    sys.path.insert(0, str(REPO / "tests"))
    from tap_server import TapServer, field_table

    field = field_table(shared_data / "fields" / "ngc2632_praesepe_dr2_r2deg_plxcut.csv")
    with TapServer(field) as tap:
        overlay = {
            "regions": str(REPO / "config" / "regions.tsv"),
            "gaia": {"release": "dr3", "server": tap.url, "table": "gaiadr3.gaia_sourc",
                     "timeout_s": 5, "retries": 2},
            "characterize": {"methods": ["default"]},
            "reference": {"simbad": False, "table": str(REPO / "config" / "references.tsv")},
        }
        (tmp_path / "typo.yaml").write_text(yaml.safe_dump(overlay))
        proc = snakemake("--until", "download", "--cores", "2", "--keep-going", "--directory",
                         str(tmp_path),
                         "--configfile", str(REPO / "config" / "config.yaml"),
                         str(tmp_path / "typo.yaml"), cwd=tmp_path, check=False)
        assert proc.returncode != 0
        assert tap.count("create") == 1, "only the check may reach the archive"
    assert not list((tmp_path / "resources" / "gaia" / "dr3").glob("*.parquet"))
    assert "gaia_sourc" in (tmp_path / "logs" / "download" / "gaia_check.log").read_text()
    with (tmp_path / "results" / "summary.tsv").open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == 243 and all(r["status"] == "failed" for r in rows)
    assert all("gaia_sourc" in r["reason"] for r in rows), rows[0]["reason"]


@pytest.mark.slow
def test_a_run_says_when_its_cores_cut_the_methods_threads(tmp_path: Path) -> None:
    """Snakemake caps a rule's threads at the run's cores without a word; the workflow says so
    (on SLURM the grouped profile's OCDEC_SLURM_CORES caps them the same way), in a real run
    only: a dry run counts one core where none is given."""
    work = tmp_path / "work"
    work.mkdir()
    threads = tmp_path / "threads.yaml"
    threads.write_text("characterize: {threads: 3}\n")
    configs = [str(REPO / "config" / "config.yaml"), str(REPO / "config" / "offline.yaml"),
               str(small_config(tmp_path)), str(threads)]
    args = ("--directory", str(work), "--configfile", *configs)
    dry = snakemake("-n", *args, cwd=work)
    assert "characterize.threads" not in dry.stderr
    run = snakemake("--until", "quality", "--cores", "2", *args, cwd=work)
    assert "characterize.threads is 3 but a job of this run gets at most 2 core(s)" in run.stderr
