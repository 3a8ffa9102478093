"""The ``workflow`` mode: time real Snakemake runs, jobs side by side, as a catalogue runs.

The other modes time each job in turn and add them up; a catalogue run overlaps jobs on the
cores and pays, per job, the interpreter start, the imports and Snakemake's own bookkeeping. This
mode runs the repository's workflow on simulated regions (``source: simulate``) at two field
sizes and measures what a user sees:

1. a cold run (simulation included), then
2. a rerun of everything after the simulation (``--forcerun quality``), timed from the
   ``snakemake`` start to its end; each job's own seconds and peak memory come from the rules'
   ``benchmark:`` files.

From the reruns it fits each region's job seconds (the rules' benchmark files: quality, the
method, comparison, parameters, figures) as a fixed cost plus a cost per star, over every region
of every run, and the run's own cost (Snakemake's start, the warm interpreter's imports, the
catalogue-wide jobs, the cores idle at the start and the end) as what each run's wall time
leaves over the region jobs shared by the cores: ``wall = k + sum_i (c + s n_i) / cores``. Runs
of small regions at two region counts show whether ``k`` holds as a run grows; a run of large
regions gives the cost per star at the sizes of the catalogue's regions (40,000 to 1.5 M rows,
444,000 stars on average in the thesis's), where a figure or a map costs what it costs at a
million stars, not what it costs at 2,000. It projects the thesis catalogue with the fit, sets
each measured run's projection beside its measured wall time and, given a catalogue run's report
(``bench catalogue --rerun``), that run's projection beside its measured rerun: the check that
the model agrees with a real run.
"""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from bench import REPO, THESIS_REGIONS, THESIS_STARS
from bench.measure import MemorySampler

log = logging.getLogger("benchmark.workflow")

SIZES = (2_000, 40_000)
#: The default runs, (regions, field stars a region): see the module's docstring.
RUNS = ((4, 2_000), (12, 2_000), (4, 500_000))


def _regions_table(source: Path, n: int, out: Path, min_rows: float = 0.0) -> list[str]:
    """The first ``n`` regions of ``source`` (the Dias regions) whose cones hold at least
    ``min_rows`` stars by the simulator's Galactic model, as the run's region table: a run of
    200,000 field stars a region has that many in each (a region of 7,000 would be simulated at
    7,000)."""
    from bench.fits import expected_rows

    with source.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        rows = []
        for row in reader:
            if len(rows) == n:
                break
            if min_rows <= 0 or expected_rows(row) >= min_rows:
                rows.append(row)
        fields = reader.fieldnames or []
    if len(rows) < n:
        raise SystemExit(f"bench workflow: {source} has {len(rows)} regions of at least "
                         f"{min_rows:,.0f} model rows, not {n}")
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return [row["id"] for row in rows]


def _snakemake(work: Path, configs: Sequence[Path], cores: int, *extra: str) -> float:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores",
           str(cores), "--directory", str(work), "--configfile", *map(str, configs), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake failed ({' '.join(extra)}):\n{proc.stderr[-3000:]}")
    return wall


def read_benchmark(path: Path, since: float = 0.0) -> dict[str, str] | None:
    """The row of one Snakemake ``benchmark:`` file, None where it is missing, empty or older
    than ``since``."""
    if not path.exists() or path.stat().st_mtime < since:
        return None
    with path.open(newline="") as handle:
        return next(csv.DictReader(handle, delimiter="\t"), None)


def _job_benchmarks(work: Path, since: float) -> dict[str, dict[str, float]]:
    """Per rule: jobs, total and mean seconds, peak max_rss (MB), from the benchmark files written
    after ``since`` (the rerun's jobs only)."""
    out: dict[str, dict[str, float]] = {}
    for path in sorted((work / "benchmarks").glob("*/*.tsv")):
        row = read_benchmark(path, since)
        if row is None:
            continue
        rule = path.parent.name
        entry = out.setdefault(rule, {"jobs": 0, "seconds": 0.0, "max_rss_mb": 0.0})
        entry["jobs"] += 1
        entry["seconds"] += float(row["s"])
        rss = row.get("max_rss") or "nan"
        entry["max_rss_mb"] = max(entry["max_rss_mb"], float(rss) if rss != "NA" else 0.0)
    for entry in out.values():
        entry["mean_s"] = entry["seconds"] / entry["jobs"]
    return out


def timed_run(root: Path, configs: Sequence[Path], cores: int, *args: str
              ) -> tuple[float, dict[str, Any]]:
    """One ``snakemake`` run, timed from its start to its end: the clock when it began (benchmark
    files written later are this run's) and its wall time, its jobs (their benchmark files, per
    rule) and the machine's memory in use at the peak above the start."""
    start = time.time()
    with MemorySampler() as memory:
        wall = _snakemake(root, configs, cores, *args)
    jobs = _job_benchmarks(root, start - 1)
    return start, {"wall_s": wall, "jobs": sum(int(e["jobs"]) for e in jobs.values()),
                   "job_seconds": sum(e["seconds"] for e in jobs.values()), "rules": jobs,
                   "memory_peak_mb": memory.peak_mb - memory.base_mb}


# The rule that stands in for the download (a real run downloads instead of simulating).
SIMULATION_RULE = "simulate"


def region_seconds(root: Path, ids: list[str], since: float = 0.0) -> dict[str, dict[str, float]]:
    """Per region: the job seconds of its per-region rules (``benchmarks/<rule>/<region>.tsv``
    written after ``since``), the simulation (``simulate``) and the rest (``pipeline``) apart."""
    out = {rid: {"simulate": 0.0, "pipeline": 0.0} for rid in ids}
    for rule_dir in sorted(p for p in (root / "benchmarks").iterdir() if p.is_dir()):
        part = "simulate" if rule_dir.name == SIMULATION_RULE else "pipeline"
        for rid in ids:
            row = read_benchmark(rule_dir / f"{rid}.tsv", since)
            if row is not None:
                out[rid][part] += float(row["s"])
    return out


def _star_rows(work: Path, ids: Sequence[str]) -> int:
    import pyarrow.parquet as pq

    total = 0
    for rid in ids:
        path = work / "results" / rid / "stars.parquet"
        if path.exists():
            total += pq.ParquetFile(path).metadata.num_rows
    return total


def run_size(root: Path, n_regions: int, stars: int, cores: int, methods: Sequence[str],
             regions: Path, extra: Sequence[Path] = ()) -> dict[str, Any]:
    """One cold run and one rerun after the simulation at ``stars`` field stars per region;
    ``extra``: config files laid over the benchmark's (a setting to measure)."""
    work = root / f"r{n_regions}_n{stars}"
    work.mkdir(parents=True, exist_ok=True)
    ids = _regions_table(regions, n_regions, work / "regions.tsv", stars)
    overlay = {
        "regions": str(work / "regions.tsv"),
        "source": "simulate",
        "simulate": {"seed": 2023, "max_field_stars": int(stars)},
        "quality": {"min_stars": 100},
        "characterize": {"methods": list(methods)},
        "reference": {"simbad": False, "table": str(REPO / "config" / "references.tsv")},
    }
    (work / "bench.yaml").write_text(yaml.safe_dump(overlay))
    configs = [REPO / "config" / "config.yaml", work / "bench.yaml", *extra]
    cold = _snakemake(work, configs, cores)
    since, rerun = timed_run(work, configs, cores, "--forcerun", "quality")
    seconds = region_seconds(work, ids, since - 1)
    per_region = {rid: {"stars": _star_rows(work, [rid]), "job_s": seconds[rid]["pipeline"]}
                  for rid in ids}
    log.info("%d regions x %d field stars: cold %.1f s, rerun %.1f s (%d jobs)", n_regions, stars,
             cold, rerun["wall_s"], rerun["jobs"])
    return {"regions": n_regions, "field_stars": stars,
            "stars": sum(r["stars"] for r in per_region.values()), "cores": cores,
            "cold_s": cold, "rerun_s": rerun["wall_s"],
            "rerun_per_region_s": rerun["wall_s"] / n_regions, "jobs": rerun["jobs"],
            "job_seconds": rerun["job_seconds"], "rules": rerun["rules"],
            "per_region": per_region}


def fit_and_project(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The model of the module's docstring from the reruns: each region's job seconds fitted as
    ``c + s n`` (:func:`bench.fits.affine`), and ``k`` the mean over the runs of the wall time
    the region jobs on the cores leave over (each run's own in ``run_s_each``). The thesis
    catalogue with it, and each measured run's projection beside its wall time.

    Assumed: one thread a job (the workflow's default; jobs of more threads would share the
    cores otherwise). A job's seconds include any wait for the warm interpreter's imports (its
    benchmark file counts them), which the first jobs of a run spend on idle cores: the fit
    counts them in a region's fixed cost, the runs' own costs without them."""
    from bench.fits import affine

    points = [(r["stars"], r["job_s"]) for run in runs for r in run["per_region"].values()]
    if len({n for n, _ in points}) < 2:
        raise SystemExit("bench workflow: every region had the same stars: no cost per star")
    fit = affine([n for n, _ in points], [t for _, t in points])
    if fit is None:
        raise SystemExit("bench workflow: no region's jobs were measured")
    cores = runs[0]["cores"]
    left = [run["rerun_s"] - sum(r["job_s"] for r in run["per_region"].values()) / cores
            for run in runs]
    model = {"cores": cores, "fixed_job_s_per_region": fit["c"], "job_s_per_star": fit["s"],
             "run_s": sum(left) / len(left), "run_s_each": left, "fit": fit}
    # wall-time equivalents, jobs side by side on the cores
    model["fixed_s_per_region"] = fit["c"] / cores
    model["stars_per_s"] = cores / fit["s"] if fit["s"] > 0 else None
    model["thesis_catalogue_s"] = project_wall(model, THESIS_REGIONS, THESIS_STARS)
    model["thesis"] = {"regions": THESIS_REGIONS, "stars": THESIS_STARS}
    model["checks"] = [{"regions": r["regions"], "stars": r["stars"], "measured_s": r["rerun_s"],
                        "projected_s": project_wall(model, r["regions"], r["stars"])}
                       for r in runs]
    return model


def project_wall(model: dict[str, Any], regions: int, stars: float) -> float:
    """The wall time of a run of ``regions`` regions and ``stars`` stars by the model."""
    return float(model["run_s"] + (model["fixed_job_s_per_region"] * regions
                                   + model["job_s_per_star"] * stars) / model["cores"])


def catalogue_rerun(catalogue: dict[str, Any], what: str) -> dict[str, Any]:
    """A catalogue report's rerun after the simulation (``bench catalogue --rerun``), or a
    one-line error saying ``what`` has none."""
    rerun = catalogue.get("rerun")
    if not isinstance(rerun, dict):
        raise SystemExit(f"{what} has no rerun (run bench catalogue with --rerun)")
    return rerun


def catalogue_check(model: dict[str, Any], catalogue: dict[str, Any]) -> dict[str, Any]:
    """The model's projection of a catalogue run (a ``bench catalogue --rerun`` report: its
    rerun after the simulation, as a downloaded catalogue runs) beside its measured wall time."""
    rerun = catalogue_rerun(catalogue, "bench workflow --check: the catalogue report")
    projected = project_wall(model, catalogue["regions"], catalogue["stars"])
    # regions the quality gate skipped (or that failed) cost a few seconds there, a whole
    # region's fixed cost here
    statuses = catalogue.get("statuses") or {}
    return {"regions": catalogue["regions"], "stars": catalogue["stars"],
            "measured_s": rerun["wall_s"], "projected_s": projected,
            "ratio": projected / rerun["wall_s"], "regions_gated": statuses.get("skipped", 0),
            "regions_failed": statuses.get("failed", 0)}


def run_workflow(root: Path, runs: Sequence[tuple[int, int]], cores: int,
                 methods: Sequence[str], regions: Path,
                 catalogue: dict[str, Any] | None = None,
                 extra: Sequence[Path] = ()) -> dict[str, Any]:
    """The runs (regions, field stars a region), the model fitted to them and, given a catalogue
    report, the model's check against it; ``extra``: config files laid over each run's."""
    os.environ.setdefault("PYTHONHASHSEED", "0")
    extra = [Path(p).resolve() for p in extra]
    done = [run_size(root, n_regions, n, cores, methods, regions, extra)
            for n_regions, n in runs]
    model = fit_and_project(done) if len(done) >= 2 else None
    if model is not None and catalogue is not None:
        model["catalogue_check"] = catalogue_check(model, catalogue)
    return {"mode": "workflow", "methods": list(methods), "runs": done, "model": model,
            "configfiles": [str(p) for p in extra]}


def workflow_text(report: dict[str, Any]) -> str:
    """The runs, the rules' job seconds of each rerun, and the model's projection."""
    lines = [f"Snakemake runs, methods {', '.join(report['methods'])}, jobs side by side"
             + "".join(f"; with {p}" for p in report.get("configfiles") or []) + ":"]
    for r in report["runs"]:
        lines.append(f"- {r['regions']} regions x {r['field_stars']:,} field stars ({r['stars']:,}"
                     f" stars in all), {r['cores']} cores: cold run {r['cold_s']:.1f} s; rerun "
                     f"after the simulation {r['rerun_s']:.1f} s ({r['rerun_per_region_s']:.2f} s"
                     f" a region, {r['jobs']} jobs, {r['job_seconds']:.1f} job-seconds)")
        for rule, e in sorted(r["rules"].items(), key=lambda kv: -kv[1]["seconds"]):
            lines.append(f"    {rule:<22} {int(e['jobs']):4d} jobs, {e['mean_s']:6.2f} s each, "
                         f"peak {e['max_rss_mb']:,.0f} MB")
    model = report.get("model")
    if model:
        rate = model["stars_per_s"]
        lines.append(
            f"Model (reruns): a region's jobs {model['fixed_job_s_per_region']:.2f} job-s + "
            f"{model['job_s_per_star'] * 1e6:.2f} job-s per M stars; the run's own "
            f"{model['run_s']:.1f} s ("
            + ", ".join(f"{k:.1f}" for k in model["run_s_each"]) + " in the runs); on "
            f"{model['cores']} cores {model['fixed_s_per_region']:.2f} s fixed per region + "
            + (f"1 s per {rate:,.0f} stars" if rate else "no measurable per-star cost")
            + f"; thesis catalogue ({model['thesis']['regions']} regions, "
            f"{model['thesis']['stars']:,} stars): {model['thesis_catalogue_s'] / 60:.1f} min "
            "projected.")
        for c in model["checks"]:
            lines.append(f"    check: {c['regions']} regions, {c['stars']:,} stars: measured "
                         f"{c['measured_s']:.1f} s, model {c['projected_s']:.1f} s")
        cat = model.get("catalogue_check")
        if cat:
            lines.append(f"    catalogue run (its rerun after the simulation): {cat['regions']} "
                         f"regions, {cat['stars']:,} stars: measured {cat['measured_s']:.1f} s, "
                         f"model {cat['projected_s']:.1f} s ({cat['ratio']:.2f} times)"
                         + (f"; {cat['regions_gated']} of its regions skipped at the quality "
                            "gate, each projected at a whole region's fixed cost"
                            if cat.get("regions_gated") else "")
                         + (f"; {cat['regions_failed']} failed" if cat.get("regions_failed")
                            else ""))
    return "\n".join(lines)
