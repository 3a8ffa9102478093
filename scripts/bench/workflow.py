"""The ``workflow`` mode: time real Snakemake runs, jobs side by side, as a catalogue runs.

The other modes time each job in turn and add them up; a catalogue run overlaps jobs on the
cores and pays, per job, the interpreter start, the imports and Snakemake's own bookkeeping. This
mode runs the repository's workflow on simulated regions (``source: simulate``) at two field
sizes and measures what a user sees:

1. a cold run (simulation included), then
2. a rerun of everything after the simulation (``--forcerun quality``), timed from the
   ``snakemake`` start to its end; each job's own seconds and peak memory come from the rules'
   ``benchmark:`` files.

From the two reruns it fits the wall time per region as fixed + per-star (``wall = N (c + s n)``,
jobs side by side), projects the thesis catalogue with it, and reports the projection of the
measured runs themselves beside their measured wall time, so the model's error is visible.
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

log = logging.getLogger("benchmark.workflow")

SIZES = (2_000, 40_000)


def _regions_table(source: Path, n: int, out: Path) -> list[str]:
    """The first ``n`` regions of ``source`` (the Dias regions), as the run's region table."""
    with source.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        rows = [row for _, row in zip(range(n), reader, strict=False)]
        fields = reader.fieldnames or []
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


def _star_rows(work: Path, ids: Sequence[str]) -> int:
    import pyarrow.parquet as pq

    total = 0
    for rid in ids:
        path = work / "results" / rid / "stars.parquet"
        if path.exists():
            total += pq.ParquetFile(path).metadata.num_rows
    return total


def run_size(root: Path, n_regions: int, stars: int, cores: int, methods: Sequence[str],
             regions: Path) -> dict[str, Any]:
    """One cold run and one rerun after the simulation at ``stars`` field stars per region."""
    work = root / f"n{stars}"
    work.mkdir(parents=True, exist_ok=True)
    ids = _regions_table(regions, n_regions, work / "regions.tsv")
    overlay = {
        "regions": str(work / "regions.tsv"),
        "source": "simulate",
        "simulate": {"seed": 2023, "max_field_stars": int(stars)},
        "quality": {"min_stars": 100},
        "characterize": {"methods": list(methods)},
        "reference": {"simbad": False, "table": str(REPO / "config" / "references.tsv")},
    }
    (work / "bench.yaml").write_text(yaml.safe_dump(overlay))
    configs = [REPO / "config" / "config.yaml", work / "bench.yaml"]
    cold = _snakemake(work, configs, cores)
    since = time.time()
    rerun = _snakemake(work, configs, cores, "--forcerun", "quality")
    jobs = _job_benchmarks(work, since)
    n_stars = _star_rows(work, ids)
    n_jobs = sum(int(e["jobs"]) for e in jobs.values())
    log.info("%d regions x %d field stars: cold %.1f s, rerun %.1f s (%d jobs)", n_regions, stars,
             cold, rerun, n_jobs)
    return {"regions": n_regions, "field_stars": stars, "stars": n_stars, "cores": cores,
            "cold_s": cold, "rerun_s": rerun, "rerun_per_region_s": rerun / n_regions,
            "jobs": n_jobs, "job_seconds": sum(e["seconds"] for e in jobs.values()),
            "rules": jobs}


def fit_and_project(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """wall = N c + s n_stars (jobs side by side) from the reruns; the thesis catalogue with it,
    and each measured run's own projection for comparison."""
    import numpy as np

    a = np.array([[r["regions"], r["stars"]] for r in runs], dtype=float)
    t = np.array([r["rerun_s"] for r in runs], dtype=float)
    (c, s), *_ = np.linalg.lstsq(a, t, rcond=None)
    c, s = float(max(c, 0.0)), float(max(s, 0.0))
    checks = [{"regions": r["regions"], "stars": r["stars"], "measured_s": r["rerun_s"],
               "projected_s": c * r["regions"] + s * r["stars"]} for r in runs]
    return {"fixed_s_per_region": c, "stars_per_s": (1.0 / s) if s > 0 else None,
            "thesis_catalogue_s": c * THESIS_REGIONS + s * THESIS_STARS,
            "thesis": {"regions": THESIS_REGIONS, "stars": THESIS_STARS}, "checks": checks}


def run_workflow(root: Path, n_regions: int, sizes: Sequence[int], cores: int,
                 methods: Sequence[str], regions: Path) -> dict[str, Any]:
    os.environ.setdefault("PYTHONHASHSEED", "0")
    runs = [run_size(root, n_regions, n, cores, methods, regions) for n in sizes]
    return {"mode": "workflow", "methods": list(methods), "runs": runs,
            "model": fit_and_project(runs) if len(runs) >= 2 else None}


def workflow_text(report: dict[str, Any]) -> str:
    """The runs, the rules' job seconds of each rerun, and the model's projection."""
    lines = [f"Snakemake runs, methods {', '.join(report['methods'])}, jobs side by side:"]
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
        lines.append(f"Model (reruns): {model['fixed_s_per_region']:.2f} s fixed per region + "
                     + (f"1 s per {rate:,.0f} stars" if rate else "no measurable per-star cost")
                     + f"; thesis catalogue ({model['thesis']['regions']} regions, "
                     f"{model['thesis']['stars']:,} stars): {model['thesis_catalogue_s'] / 60:.1f}"
                     " min projected.")
        for c in model["checks"]:
            lines.append(f"    check: {c['regions']} regions, {c['stars']:,} stars: measured "
                         f"{c['measured_s']:.1f} s, model {c['projected_s']:.1f} s")
    return "\n".join(lines)
