"""scripts/bench (the benchmark): that it runs and what it writes (never how fast anything is)."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "scripts" / "bench"


if str(BENCH.parent) not in sys.path:
    sys.path.insert(0, str(BENCH.parent))


@pytest.fixture(scope="module")
def bench():
    """bench.fits (the fits and projections), imported from scripts/ as the command line does."""
    from bench import fits

    return fits


def test_stage_clock_nests_stages_and_times_library_calls():
    """A job times the functions a library entry point calls without changing the entry point:
    the wrapped call is a stage of its own, excluded from the enclosing one, and the original
    function is back afterwards."""
    import time
    from types import ModuleType

    from bench.measure import StageClock, split_stage

    def slow(x):
        time.sleep(0.05)
        return x * 2

    lib = ModuleType("lib")
    lib.slow = slow

    def entry_point(x):
        time.sleep(0.02)
        return lib.slow(x) + 1

    clock = StageClock()
    with clock.stage("rule"), clock.timing({(lib, "slow"): "inner"}):
        assert entry_point(3) == 7
    clock.sampler.stop()
    assert lib.slow is slow
    assert clock.stages["inner"]["wall_s"] >= 0.05
    assert 0.02 <= clock.stages["rule"]["wall_s"] < 0.05
    split_stage(clock, "inner", {"a": 0.03})
    assert set(clock.stages) == {"rule", "a", "other"}
    assert clock.stages["a"]["wall_s"] == pytest.approx(0.03)
    assert clock.stages["other"]["wall_s"] >= 0.01


def test_command_line_runs_as_a_folder_and_as_a_module():
    for cmd, cwd in (([sys.executable, str(BENCH), "--help"], REPO),
                     ([sys.executable, "-m", "bench", "report", "--help"], REPO / "scripts")):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=cwd)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "usage: bench" in proc.stdout


def test_power_law_recovers_exponent(bench):
    n = np.array([1e4, 3e4, 1e5, 3e5])
    fit = bench.power_law(n, 2.5e-4 * n**1.3)
    assert fit["b"] == pytest.approx(1.3, abs=1e-9)
    assert fit["a"] == pytest.approx(2.5e-4, rel=1e-6)
    assert float(bench.predict(fit, 1e6)) == pytest.approx(2.5e-4 * 1e6**1.3, rel=1e-6)
    # non-positive or missing times are left out; one point is no fit
    assert bench.power_law([1e4, 2e4], [1.0, None]) is None


def test_affine_fit_separates_fixed_cost_and_clips_negative_slopes(bench):
    n = np.array([1e4, 1e5, 1e6])
    fit = bench.affine(n, 20.0 + n / 50_000.0)
    assert fit["c"] == pytest.approx(20.0) and fit["s"] == pytest.approx(1 / 50_000.0)
    assert fit["s_err"] == pytest.approx(0.0, abs=1e-12) and not fit["clamped"]
    # a time that falls with n (noise, or a step skipped on large fields) is a fixed cost; the
    # slope as fitted and its error stay on record
    flat = bench.affine(n, [30.0, 20.0, 10.0])
    assert flat["s"] == 0.0 and flat["c"] == pytest.approx(20.0) and flat["clamped"]
    assert flat["s_fitted"] < 0 and flat["s_err"] > 0
    assert float(bench.predict(flat, 1e7)) == pytest.approx(20.0)


def test_affine_projection_of_the_thesis_catalogue(bench):
    fits = {"default_wall_affine": {"c": 10.0, "s": 1e-5},
            "default_cpu_affine": {"c": 10.0, "s": 1e-5}}
    proj = bench.project(fits, {"rows": {"a": 100_000.0}}, "affine")["default"]
    assert proj["wall_s"] == pytest.approx(11.0)
    assert proj["scaled_to_75M_wall_s"] == pytest.approx(169 * 10.0 + 75e6 * 1e-5)
    assert proj["scaled_to_75M_cpu_s_over_2"] == pytest.approx((169 * 10.0 + 75e6 * 1e-5) / 2)


def test_catalogue_wall_model_from_benchmark_files_predicts_another_run(tmp_path, caplog):
    """A catalogue run's model: each region's job seconds from its rules' benchmark files (the
    simulation apart), fitted as a fixed cost plus a cost per model row, and the packing of the
    jobs onto the cores; it projects the thesis catalogue and predicts another run's wall."""
    from bench.catalogue import predicted_wall, region_seconds, wall_model

    rows = {"r1": 50_000.0, "r2": 100_000.0, "r3": 200_000.0}
    for rule, per_row in (("simulate", 1e-5), ("characterize_default", 4e-5), ("plots", 0.0)):
        (tmp_path / "benchmarks" / rule).mkdir(parents=True)
        for rid, n in rows.items():
            (tmp_path / "benchmarks" / rule / f"{rid}.tsv").write_text(
                f"s\th:m:s\tmax_rss\n{2.0 + per_row * n}\t0:00:01\t100\n")
    (tmp_path / "benchmarks" / "summary.tsv").write_text("s\n99\n")  # not a region's
    seconds = region_seconds(tmp_path, sorted(rows))
    assert seconds["r3"] == pytest.approx({"simulate": 4.0, "pipeline": 10.0 + 2.0})
    job_seconds = sum(v["simulate"] + v["pipeline"] for v in seconds.values())
    counts = {"rows": {**rows, "r4": 1_000_000.0}}
    model = wall_model(seconds, rows, 1.25 * job_seconds / 2, job_seconds, 2, counts)
    assert model["packing"] == pytest.approx(1.25)
    assert model["per_region"]["c"] == pytest.approx(6.0)
    assert model["per_region"]["s"] == pytest.approx(5e-5)
    assert model["per_region_pipeline"]["s"] == pytest.approx(4e-5)
    # the thesis catalogue is downloaded: its projection leaves the simulation out
    assert model["thesis_catalogue_s"] == pytest.approx(1.25 * (169 * 4.0 + 75e6 * 4e-5) / 2)
    # a region the quality gate skipped costs little and is left out of the thesis's fit
    cheap = {**seconds, "r4": {"simulate": 1.0, "pipeline": 3.0}}
    statuses = {"r1": "found", "r2": "not_found", "r3": "found", "r4": "skipped"}
    gated = wall_model(cheap, {**rows, "r4": 1_000_000.0}, 100.0, 100.0, 2, counts, statuses)
    assert gated["regions_ran"] == 3 and gated["thesis_fit"] == "ran"
    assert gated["per_region_ran"]["s"] == pytest.approx(4e-5)
    assert gated["per_region"]["s"] < 1e-5  # the mixed fit is dragged down by the skipped one
    assert model["simulated_catalogue_s"] == pytest.approx(
        1.25 * sum(6.0 + 5e-5 * n for n in counts["rows"].values()) / 2)
    # an exact line: no error on the cost per row
    assert model["thesis_fit"] == "ran" and abs(model["thesis_catalogue_err_s"]) < 1e-6
    # a run of other regions, predicted by this one's model (not on other cores)
    assert predicted_wall(model, {"x": 400_000.0}, 2) == pytest.approx(1.25 * 26.0 / 2)
    assert predicted_wall(model, {"x": 400_000.0}, 4) is None
    # another memory budget: predicted all the same, with a warning that the packing may differ
    with caplog.at_level(logging.WARNING, logger="benchmark.catalogue"):
        assert predicted_wall(model, {"x": 400_000.0}, 2, 20_000) == pytest.approx(1.25 * 13.0)
    assert "memory budget was None MB, this one's 20000 MB" in caplog.text
    assert predicted_wall({"packing": 1.0, "cores": 2}, {"x": 1.0}, 2) is None


def test_catalogue_reads_the_warm_interpreters_jobs(tmp_path):
    """The jobs forked from the warm interpreter, per rule script, from its log (their benchmark
    files count only the adapter's memory); no log: none."""
    from bench.catalogue import warm_jobs

    log = tmp_path / "warm.log"
    log.write_text(
        "2026-12-01 18:20:43,251 ocdec.warm: job 1 started: tmp6cdasgw2.compare.py\n"
        "2026-12-01 18:20:43,409 ocdec.warm: job 1 ended: tmp6cdasgw2.compare.py, status 0, "
        "0.2 s, peak memory 610 MB\n"
        "2026-12-01 18:20:47,040 ocdec.warm: job 2 ended: tmpw_j60zfo.characterize.py, status 0,"
        " 11.4 s, peak memory 1450 MB\n"
        "2026-12-01 18:20:50,861 ocdec.warm: job 3 ended: tmpmih28t50.characterize.py, status 1,"
        " 3.0 s, peak memory 900 MB\n")
    jobs = warm_jobs(log)
    assert jobs["characterize"] == {"jobs": 2, "seconds": pytest.approx(14.4),
                                    "max_rss_mb": 1450.0}
    assert jobs["compare"]["jobs"] == 1 and jobs["compare"]["max_rss_mb"] == 610.0
    assert warm_jobs(tmp_path / "none.log") == {}


def test_projection_sums_fitted_region_times(bench):
    fits = {"default_wall": {"a": 1e-4, "b": 1.0}, "default_cpu": {"a": 2e-4, "b": 1.0}}
    counts = {"rows": {"a": 50_000.0, "b": 150_000.0}}
    proj = bench.project(fits, counts, "power")["default"]
    assert proj["wall_s"] == pytest.approx(20.0)
    assert proj["stars_per_s"] == pytest.approx(10_000.0)
    assert proj["cpu_s_over_2"] == pytest.approx(20.0)
    assert proj["scaled_to_75M_wall_s"] == pytest.approx(20.0 * 75e6 / 200_000)
    assert not proj["meets_21k_per_s"]


def test_expected_rows_matches_the_simulator(bench):
    """The catalogue projection's star counts are the simulator's own: a cone simulated with the
    model's count (n_field=None) holds that many field stars, to Poisson and pilot noise."""
    from ocdec.data.simulate import SimulateSettings, simulate_field

    region = {"id": "test", "ra": 120.0, "dec": -30.0, "radius_deg": 0.2}
    expected = bench.expected_rows(region, release="dr3")
    frame = simulate_field(region, SimulateSettings(n_members=0, release="dr3"), seed=3)
    assert expected > 1000
    assert len(frame) == pytest.approx(expected, rel=0.05)


@pytest.mark.slow
def test_scaling_smallest_configuration_runs(tmp_path):
    """One 4,000-row field through the catalogue pipeline's jobs (quality, default method with 1
    seed and one DEC epoch each, figures, comparison), each in its own process: the JSON and
    markdown come out with positive stage times, for the default method alone and the whole
    pipeline, and the jobs write what the workflow's rules write."""
    from ocdec.data.catalogue import read_regions

    # three regions keep the catalogue projection's star counts cheap
    regions = read_regions(REPO / "config" / "regions.tsv")
    regions = regions[regions["id"].isin(["Melotte_25", "Blanco_1", "Alessi_20"])]
    regions_path = tmp_path / "regions.tsv"
    regions.to_csv(regions_path, sep="\t", index=False)
    out_json, out_md = tmp_path / "bench.json", tmp_path / "bench.md"
    cmd = [sys.executable, str(BENCH), "scaling", "--regions", str(regions_path),
           "--sizes", "4000", "--pipeline", "catalogue",
           "--n-seeds", "1", "--dec-epochs", "1,1", "--workdir", str(tmp_path / "work"),
           "--json", str(out_json), "--markdown", str(out_md)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out_json.read_text())
    assert report["mode"] == "scaling"
    assert {"nproc", "cpu", "ram_gb", "loadavg_start", "loadavg_end"} <= set(report["machine"])
    (field,) = report["fields"]
    assert field["n_rows"] == 4000
    assert 0 < field["n_usable"] <= 4000
    assert set(field["jobs"]) == {"quality", "default", "plots", "compare"}
    assert report["pipeline"] == "catalogue"
    total = field["default"]["total"]
    assert total["wall_s"] > 0 and total["cpu_s"] > 0 and total["peak_rss_mb"] > 0
    assert total["stars_per_s"] == pytest.approx(4000 / total["wall_s"])
    stages = field["default"]["stages"]
    assert set(stages) == set(report["fields"][0]["default"]["stages"])
    for name in ("startup", "read", "quality", "features", "dec"):
        assert stages[name]["wall_s"] > 0, name
    # the stages account for the jobs' wall time (start-up included)
    assert sum(s["wall_s"] for s in stages.values()) == pytest.approx(total["wall_s"], rel=0.02)
    assert 0.0 <= field["f1_default"]["f1"] <= 1.0
    # the catalogue pipeline: the default method's jobs plus the figures and the comparison
    whole = field["catalogue"]["total"]
    assert whole["wall_s"] == pytest.approx(sum(field["jobs"][j]["wall_s"] for j in field["jobs"]))
    assert whole["wall_s"] > total["wall_s"]
    assert field["catalogue"]["stages"]["plots"]["wall_s"] > 0
    assert field["default"]["stages"]["plots"]["wall_s"] == 0
    run = tmp_path / "work" / "runs" / "scaling_4000"
    assert {p.name for p in (run / "plots").iterdir()} == {
        "overview.png", "methods.png", "silhouette.png", "training.png", "groups.png"}
    assert not (run / "thesis").exists()
    table = (run / "comparison.tsv").read_text().splitlines()
    assert table[0].startswith("method\t") and any(r.startswith("default\t") for r in table)
    cat = report["catalogue"]
    assert cat["n_regions_all"] == 3
    assert cat["n_regions"] > 0 and cat["total_rows"] >= cat["n_regions"] * 40_000
    assert set(cat["rows_by_region"]) <= {"Melotte_25", "Blanco_1", "Alessi_20"}
    # one field size: no exponent, hence no projection, but the keys are there
    assert report["fits"]["default_wall"] is None and report["fits"]["catalogue_wall"] is None
    assert report["projection"] == {}
    # report redoes the fits from the saved JSON
    again = tmp_path / "again.md"
    proc = subprocess.run([sys.executable, str(BENCH), "report", str(out_json), "--markdown",
                           str(again)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| pipeline | rows |" in again.read_text()
    md = out_md.read_text()
    assert "| pipeline | rows |" in md and "Machine:" in md
    assert not math.isnan(report["machine"]["ram_gb"])
    # the DEC job compiled into the run's own compilation cache, empty at the start
    cache = report["machine"]["jax_cache"]
    assert cache["dir"] == str(tmp_path / "work" / "jax-cache") and cache["entries_at_start"] == 0
    assert any((tmp_path / "work" / "jax-cache").iterdir())
    assert "JAX compilation cache:" in md and "cold" in md


def _workflow_run(regions: int, stars: int, run_s: float, job_s) -> dict:
    """A rerun of ``regions`` regions of ``stars`` stars each, whose jobs take ``job_s(stars)``
    job-seconds a region on 2 cores, and ``run_s`` more seconds of its own."""
    per_region = {f"r{i}": {"stars": stars, "job_s": job_s(stars)} for i in range(regions)}
    wall = run_s + regions * job_s(stars) / 2
    return {"regions": regions, "stars": regions * stars, "rerun_s": wall, "field_stars": stars,
            "cores": 2, "cold_s": 1.0, "rerun_per_region_s": wall / regions, "jobs": 32,
            "job_seconds": 1.0, "rules": {}, "per_region": per_region}


def test_workflow_model_parts_the_run_cost_from_a_region_s_and_checks_itself():
    """Runs of 4 and 12 small regions and one of large ones: a run's own 7 s, 4 job-s a region
    and 1 job-s per 25,000 stars come back; the old two-term fit of wall time put the 7 s into
    every region of a run."""
    from bench.workflow import catalogue_check, fit_and_project, workflow_text

    def job_s(stars):
        return 4.0 + stars / 25_000

    runs = [_workflow_run(r, n, 7.0, job_s) for r, n in ((4, 1_800), (12, 1_800),
                                                         (4, 370_000))]
    model = fit_and_project(runs)
    assert math.isclose(model["run_s"], 7.0, rel_tol=1e-6)
    assert all(math.isclose(k, 7.0, rel_tol=1e-6) for k in model["run_s_each"])
    assert math.isclose(model["fixed_job_s_per_region"], 4.0, rel_tol=1e-6)
    assert math.isclose(model["fixed_s_per_region"], 2.0, rel_tol=1e-6)  # on 2 cores
    assert math.isclose(model["stars_per_s"], 50_000, rel_tol=1e-6)
    assert math.isclose(model["thesis_catalogue_s"], 7.0 + 169 * 2.0 + 75e6 / 50_000,
                        rel_tol=1e-6)
    assert all(math.isclose(c["measured_s"], c["projected_s"]) for c in model["checks"])
    # a catalogue run's rerun, measured 10 % slower than the model says
    catalogue = {"mode": "catalogue", "regions": 24, "stars": 11_300_000,
                 "statuses": {"found": 19, "not_found": 2, "skipped": 2, "failed": 1},
                 "rerun": {"wall_s": 1.1 * (7.0 + 24 * 2.0 + 11_300_000 / 50_000)}}
    check = catalogue_check(model, catalogue)
    assert math.isclose(check["ratio"], 1 / 1.1, rel_tol=1e-6)
    assert check["regions_gated"] == 2 and check["regions_failed"] == 1
    model["catalogue_check"] = check
    text = workflow_text({"methods": ["default"], "runs": runs, "model": model})
    assert "a region's jobs 4.00 job-s + 40.00 job-s per M stars; the run's own 7.0 s" in text
    assert "2.00 s fixed per region + 1 s per 50,000 stars" in text
    assert "24 regions, 11,300,000 stars" in text and "(0.91 times)" in text
    assert "2 of its regions skipped at the quality gate" in text and "; 1 failed" in text
    same = [_workflow_run(4, 2_000, 7.0, job_s), _workflow_run(12, 2_000, 7.0, job_s)]
    with pytest.raises(SystemExit, match="no cost per star"):
        fit_and_project(same)
    with pytest.raises(SystemExit, match="no rerun"):
        catalogue_check(model, {"mode": "catalogue", "regions": 24, "stars": 1})


def test_workflow_model_shows_a_run_cost_that_does_not_hold():
    """Where the cores idle longer in a larger run, the runs' own costs differ and say so."""
    from bench.workflow import fit_and_project

    def job_s(stars):
        return 3.0 + stars / 100_000

    runs = [_workflow_run(4, 2_000, 6.0, job_s), _workflow_run(12, 2_000, 9.0, job_s),
            _workflow_run(4, 400_000, 6.0, job_s)]
    model = fit_and_project(runs)
    assert [round(k, 6) for k in model["run_s_each"]] == [6.0, 9.0, 6.0]
    assert math.isclose(model["run_s"], 7.0, rel_tol=1e-6)
    measured = [c["measured_s"] - c["projected_s"] for c in model["checks"]]
    assert [round(d, 6) for d in measured] == [-1.0, 2.0, -1.0]


def test_workflow_runs_from_the_command_line(tmp_path):
    from bench.cli import build_parser, read_report, workflow_runs

    parse = build_parser().parse_args
    assert workflow_runs(parse(["workflow"])) == [(4, 2_000), (12, 2_000), (4, 500_000)]
    assert workflow_runs(parse(["workflow", "--runs", "2x1000, 6X3e3"])) == [(2, 1_000),
                                                                             (6, 3_000)]
    # the interface of earlier sessions: --n-regions at each of --sizes
    assert workflow_runs(parse(["workflow", "--sizes", "2000,40000"])) == [(8, 2_000),
                                                                           (8, 40_000)]
    assert workflow_runs(parse(["workflow", "--n-regions", "3"])) == [(3, 2_000), (3, 40_000)]
    with pytest.raises(SystemExit, match="not both"):
        workflow_runs(parse(["workflow", "--runs", "2x1000", "--sizes", "5"]))
    for bad in ("4", "4x", "0x2000", "ax2", "4.7x2000", "4x1e999", "4x2000,4x2000"):
        with pytest.raises(SystemExit):
            parse(["workflow", "--runs", bad])
    for bad in (["--n-regions", "0"], ["--n-regions", "-3"], ["--sizes", "1e999"]):
        with pytest.raises(SystemExit):
            parse(["workflow", *bad])
    for runs in ("4x2000", "4x2000,12x2000"):  # no cost per star without two field sizes
        with pytest.raises(SystemExit, match="two field sizes"):
            workflow_runs(parse(["workflow", "--runs", runs, "--check", "cat.json"]))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(SystemExit, match="cannot read .*broken.json"):
        read_report(broken, "bench workflow --check")
    other = tmp_path / "region.json"
    other.write_text('{"mode": "region"}')
    with pytest.raises(SystemExit, match="not a bench catalogue report"):
        read_report(other, "bench workflow --check")
    cold = tmp_path / "cold.json"
    cold.write_text('{"mode": "catalogue", "regions": 3, "stars": 10}')
    assert read_report(cold, "bench catalogue --model")["regions"] == 3
    with pytest.raises(SystemExit, match="has no rerun"):
        read_report(cold, "bench workflow --check", rerun=True)


def test_catalogue_truth_scores_and_text(tmp_path):
    """The catalogue mode scores each region found against the simulated truth and says so."""
    import pandas as pd

    from bench.catalogue import catalogue_text, truth_scores

    # "faint": the bright true members found, the faint one (G = 20) missed
    for region, chosen in (("good", [1, 1, 1, 0]), ("flipped", [0, 0, 0, 1]),
                           ("faint", [1, 1, 0, 0]), ("none", None)):
        out = tmp_path / "results" / region / "default"
        out.mkdir(parents=True)
        status = "not_found" if chosen is None else "found"
        (out / "summary.json").write_text(json.dumps({"status": status}))
        truth = [True, True, True, False]
        pd.DataFrame({"true_member": truth}).to_parquet(out.parent / "stars.parquet")
        pd.DataFrame({"member": [bool(c) for c in (chosen or [0, 0, 0, 0])],
                      "true_member": truth, "phot_g_mean_mag": [12.0, 15.0, 20.0, 16.0]}
                     ).to_parquet(out / "members.parquet")
    scores = truth_scores(tmp_path)
    assert scores["found"] == 3 and scores["recovered"] == 2
    assert scores["f1"] == pytest.approx({"flipped": 0.0, "good": 1.0, "faint": 0.8})
    # brighter than G = 18 the faint region's members are all there
    assert scores["f1_bright"] == pytest.approx({"flipped": 0.0, "good": 1.0, "faint": 1.0})
    assert scores["recovered_bright"] == 2
    report = {"regions": 3, "catalogue_available": {"regions": 174}, "min_rows": 40_000,
              "max_rows": 1e5, "stars": 10, "cores": 2, "wall_s": 60.0, "summary_rows": 3,
              "statuses": {"found": 2, "not_found": 1}, "memory_peak_mb": 1.0,
              "disk_mb": {"total": 1.0, "resources": 0.5, "results": 0.5}, "jobs": 9,
              "job_seconds": 90.0, "rules": {}, "truth": scores,
              "model": {"cores": 2, "packing": 1.02, "regions_ran": 2,
                        "per_region": {"c": 5.0, "s": 1e-4},
                        "per_region_ran": {"c": 30.0, "s": 0.0, "clamped": True},
                        "thesis_catalogue_s": 3600.0, "thesis_catalogue_err_s": 360.0,
                        "simulated_catalogue_s": 7200.0,
                        "simulated_catalogue": {"regions": 174, "model_rows": 1.8e8}}}
    text = catalogue_text(report)
    assert "1.00 h (+- 0.10 h from the cost per row, whose fitted slope was negative" in text
    assert "per region whose method ran (2), without the simulation: 30.0 + 0.0" in text
    assert "2 of 3 regions found recover their cluster" in text and "1.0 min wall" in text
    assert "brighter than G = 18" in text
    assert "--resources mem_mb" not in text
    # a run whose jobs side by side were held within a memory budget says so
    assert "2 cores, --resources mem_mb=20000: 1.0 min wall" in catalogue_text(
        {**report, "mem_mb": 20000})


def test_catalogue_memory_budget_is_one_positive_integer(capsys):
    """``bench catalogue --mem-mb``: a budget of 0 would cap every request to nothing, i.e. no
    limit at all, so only a positive number of MB is taken."""
    from bench.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["catalogue", "--mem-mb", "20000"]).mem_mb == 20_000
    assert parser.parse_args(["catalogue"]).mem_mb is None
    for bad in ("0", "-5", "1,2", "lots"):
        with pytest.raises(SystemExit):
            parser.parse_args(["catalogue", "--mem-mb", bad])
        assert "--mem-mb: expected" in capsys.readouterr().err


def test_catalogue_methods_are_registered_and_include_the_default():
    """``bench catalogue --methods``: names stripped, unknown ones and a run without the default
    method (whose products the truth scores and the wall-time model read) refused in one line;
    the workflow mode checks its names the same way."""
    from bench.cli import methods_arg

    assert methods_arg(" default , thesis", "catalogue", ("default",)) == ("default", "thesis")
    with pytest.raises(SystemExit, match="unknown nope"):
        methods_arg("default,nope", "catalogue", ("default",))
    with pytest.raises(SystemExit, match="default must be one of them"):
        methods_arg("thesis", "catalogue", ("default",))
    assert methods_arg("thesis", "workflow") == ("thesis",)
    with pytest.raises(SystemExit, match="bench workflow: --methods 'thesis,nope': unknown nope"):
        methods_arg("thesis,nope", "workflow")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the warm interpreter forks: "
                    "Linux only")
def test_region_jobs_forked_from_the_warm_interpreter_match_fresh_ones(tmp_path):
    """--warm forks each job from a warm interpreter, as a local workflow run does: the same
    members to the byte as fresh processes, the interpreter's log lists the jobs, the report
    says how long its imports took; a job past --job-timeout is stopped and reported."""
    from ocdec.warm import ended_jobs

    work = tmp_path / "work"
    base = [sys.executable, str(BENCH), "region", "--rows", "4000", "--no-hdbscan",
            "--n-seeds", "1", "--dec-epochs", "1,1", "--workdir", str(work)]
    members = work / "runs" / "region_4000" / "default" / "members.parquet"
    outputs = {}
    for mode in ("fresh", "warm"):
        out_json = tmp_path / f"{mode}.json"
        cmd = [*base, "--json", str(out_json), *(["--warm"] if mode == "warm" else [])]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs[mode] = (json.loads(out_json.read_text()), members.read_bytes())
    (fresh, fresh_members), (warm, warm_members) = outputs["fresh"], outputs["warm"]
    assert warm_members == fresh_members
    assert {j["forked"] for j in fresh["jobs"].values()} == {False}
    assert {j["forked"] for j in warm["jobs"].values()} == {True}
    assert warm["machine"]["warm"]["imports_s"] > 0 and "warm" not in fresh["machine"]
    ended = ended_jobs(work / "warm.log")
    assert [(j["script"], j["status"]) for j in ended] == [("__main__.py", 0)] * 2
    # the fork skips the imports a fresh job pays
    assert (warm["default"]["stages"]["startup"]["wall_s"]
            < fresh["default"]["stages"]["startup"]["wall_s"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the warm interpreter forks: "
                    "Linux only")
def test_a_forked_job_past_its_limit_is_stopped(tmp_path):
    """A job forked from the warm interpreter that passes its limit is reported as timed out
    (None) once it has been killed and has ended, even inside a long C call that would see a
    polite SIGINT only when it returns; an exit status and the job's output come back."""
    import time

    from bench.jobs import _forked, warm_jobs
    from ocdec.warm import ended_jobs

    busy = tmp_path / "busy.py"  # one C call of minutes: signal handlers wait for its end
    busy.write_text("print('started', flush=True)\nsum(range(10**12))\n")
    done = tmp_path / "done.py"
    done.write_text("import sys\nprint(sys.argv[1:])\nsys.exit(3)\n")
    log_file = tmp_path / "warm.log"
    with warm_jobs(log_file) as info:
        assert info["imports_s"] > 0
        assert _forked([sys.executable, str(done), "a", "b"], tmp_path / "out1", 30) == 3
        assert (tmp_path / "out1").read_text() == "['a', 'b']\n"
        t0 = time.perf_counter()
        assert _forked([sys.executable, str(busy)], tmp_path / "out2", 1.0) is None
        assert time.perf_counter() - t0 < 5
        # ended (and reaped) by the time it returns: the next job has the cores to itself
        assert [(j["script"], j["status"]) for j in ended_jobs(log_file)] == [
            ("done.py", 3), ("busy.py", -9)]
    assert (tmp_path / "out2").read_text() == "started\n"


def test_a_job_past_its_limit_is_reported_not_a_crash(tmp_path):
    """A region benchmark whose job passes --job-timeout says so in its table and JSON."""
    out_json = tmp_path / "late.json"
    proc = subprocess.run([sys.executable, str(BENCH), "region", "--rows", "4000", "--no-hdbscan",
                           "--job-timeout", "0.05", "--workdir", str(tmp_path / "work"),
                           "--json", str(out_json)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out_json.read_text())
    assert report["jobs"]["quality"]["timed_out"] and "default" not in report["jobs"]
    assert report["n_usable"] is None and report["default"]["total"] == {}
    assert "timed out" in proc.stdout


def test_a_cached_field_needs_no_simulator(tmp_path) -> None:
    """A field simulated elsewhere and brought along (scripts/gpu_report.sh's WORKDIR) is used as
    it is, on a machine without astropy or PyGaia (the GPU machine of session 26 had neither)."""
    fields = tmp_path / "fields"
    fields.mkdir()
    cached = fields / "Melotte_25_dr2_5000_100_1.parquet"
    cached.write_bytes(b"stands in for the field")
    code = ("import sys\n"
            "sys.modules['astropy'] = sys.modules['pygaia'] = None  # importing them fails\n"
            "from pathlib import Path\n"
            "from bench.jobs import simulated_field\n"
            f"path = simulated_field(Path({str(tmp_path)!r}), {{'id': 'Melotte_25'}}, 5000, 100,"
            " 1, 'dr2')\n"
            "print(path, 'ocdec.data.simulate' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO / "scripts")}, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(cached), "False"]


def test_workflow_lays_each_configfile_over_every_run(tmp_path, monkeypatch):
    """bench workflow --configfile (repeatable) reaches each run's Snakemake config list, after
    the benchmark's own, and is named in the report; a missing file is one line."""
    import bench.workflow as wf
    from bench.cli import build_parser, main

    args = build_parser().parse_args(["workflow", "--configfile", "a.yaml",
                                      "--configfile", "b.yaml"])
    assert args.configfile == [Path("a.yaml"), Path("b.yaml")]
    with pytest.raises(SystemExit, match="--configfile: .*missing.yaml: no such file"):
        main(["workflow", "--runs", "1x100,1x200", "--workdir", str(tmp_path),
              "--configfile", str(tmp_path / "missing.yaml")])

    seen = []

    def fake_run_size(root, n_regions, stars, cores, methods, regions, extra=()):
        seen.append(list(extra))
        return {"regions": n_regions, "field_stars": stars, "stars": stars * n_regions,
                "cores": cores, "cold_s": 1.0, "rerun_s": 1.0, "rerun_per_region_s": 1.0,
                "jobs": 1, "job_seconds": 1.0, "rules": {}}

    monkeypatch.setattr(wf, "run_size", fake_run_size)
    monkeypatch.setattr(wf, "fit_and_project", lambda done: None)
    overlay = tmp_path / "n2.yaml"
    overlay.write_text("characterize: {default: {groups: {n_resamples: 2}}}\n")
    report = wf.run_workflow(tmp_path, [(1, 100), (1, 200)], 2, ["default"], Path("r.tsv"),
                             extra=[overlay])
    assert seen == [[overlay.resolve()]] * 2
    assert report["configfiles"] == [str(overlay.resolve())]
    assert f"with {overlay.resolve()}" in wf.workflow_text(report)
