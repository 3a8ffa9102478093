"""The ``catalogue`` mode: the simulated counterpart of the thesis catalogue, run end to end.

Every region of the regions table whose cone holds at least ``--min-rows`` stars by the
simulator's Galactic model (the thesis's 40,000-star gate) and at most ``--max-rows`` (so that
the run fits a session; None: all), each simulated at its model star count, through one real
``snakemake`` run with ``methods: [default]`` (or the methods given, e.g. ``default,thesis``
for the thesis comparison): simulation, quality, the method(s),
comparison, physical parameters, figures and the catalogue summary. Timed from the
``snakemake`` start to ``results/summary.tsv``; each rule's job seconds and peak memory come from
the rules' benchmark files, the machine's memory in use is sampled every second, and the disk
the run leaves is measured at the end.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench import REPO, THESIS_MIN_STARS, THESIS_REGIONS, THESIS_STARS
from bench.fits import affine, catalogue_counts, predict
from bench.jobs import f1_scores
from bench.workflow import _star_rows, region_seconds, timed_run

log = logging.getLogger("benchmark.catalogue")


def _disk_mb(root: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for sub in ("resources", "results", "logs", "benchmarks", ".cache"):
        path = root / sub
        out[sub] = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20 \
            if path.exists() else 0.0
    out["total"] = sum(out.values())
    return out


# The magnitude limit of the published member lists ocdec is validated against (Cantat-Gaudin
# et al. 2018 to G = 18): fainter simulated members (to G = 21 in DR2) have errors that swamp a
# cluster's width and are members by the simulator's word only.
TRUTH_G_LIMIT = 18.0


def truth_scores(root: Path) -> dict[str, Any]:
    """How the regions found compare with the simulated truth (the stars' ``true_member``): per
    region F1 of the members, over every star and over those brighter than
    :data:`TRUTH_G_LIMIT`, and how many found regions recover their cluster (F1 >= 0.5)."""
    import json

    import pandas as pd

    per_region: dict[str, float] = {}
    bright: dict[str, float] = {}
    for summary in sorted((root / "results").glob("*/default/summary.json")):
        if json.loads(summary.read_text()).get("status") != "found":
            continue
        # members.parquet holds every star of the region with its member flag and truth
        table = pd.read_parquet(summary.with_name("members.parquet"),
                                columns=["member", "true_member", "phot_g_mean_mag"])
        member = table["member"].to_numpy(bool)
        truth = table["true_member"].to_numpy(bool)
        rid = summary.parents[1].name
        per_region[rid] = f1_scores(member, truth)["f1"]
        keep = table["phot_g_mean_mag"].to_numpy(float) < TRUTH_G_LIMIT
        bright[rid] = f1_scores(member[keep], truth[keep])["f1"]
    f1, f1_bright = np.array(list(per_region.values())), np.array(list(bright.values()))
    return {"found": len(per_region), "recovered": int((f1 >= 0.5).sum()),
            "median_f1": float(np.median(f1)) if f1.size else None, "f1": per_region,
            "g_limit": TRUTH_G_LIMIT, "recovered_bright": int((f1_bright >= 0.5).sum()),
            "median_f1_bright": float(np.median(f1_bright)) if f1_bright.size else None,
            "f1_bright": bright}


def run_catalogue(root: Path, regions: Path, cores: int, min_rows: int = THESIS_MIN_STARS,
                  max_rows: float | None = None, release: str = "dr2",
                  previous: dict[str, Any] | None = None,
                  methods: tuple[str, ...] = ("default",), warm: bool = True,
                  mem_mb: int | None = None, rerun: bool = False) -> dict[str, Any]:
    """One cold run of the selected regions (module docstring); ``root`` is emptied first.
    ``previous``: an earlier catalogue report, whose :func:`wall_model` predicts this run's wall
    time before it starts (the check that a projection agrees with an actual run). ``warm``:
    the workflow's ``warm_interpreter`` (False: every job a fresh Python, as before it).
    ``mem_mb``: Snakemake's ``--resources mem_mb``: the jobs side by side stay within the rules'
    memory requests, and a job asking for more has its request cut to the budget, so it runs
    beside none that asks for memory (the warm interpreter's own is not counted). On the command
    line it replaces the workstation profile's ``resources`` list (the archive throttles, which a
    simulated run does not use). ``rerun``: then everything after the simulation again
    (``--forcerun quality``), timed apart: what the same catalogue costs downloaded, the run
    ``bench workflow --check`` sets its projection against."""
    os.environ.setdefault("PYTHONHASHSEED", "0")
    counts = catalogue_counts(regions, release, min_rows)
    chosen = {k: v for k, v in counts["rows"].items() if max_rows is None or v <= max_rows}
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    with regions.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        rows = [row for row in reader if row["id"] in chosen]
        fields = reader.fieldnames or []
    with (root / "regions.tsv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    overlay = {
        "regions": str(root / "regions.tsv"),
        "source": "simulate",
        "simulate": {"seed": 2023, "release": release},
        "characterize": {"methods": list(methods)},
        "reference": {"simbad": False, "table": str(REPO / "config" / "references.tsv")},
        "warm_interpreter": warm,
    }
    (root / "bench.yaml").write_text(yaml.safe_dump(overlay))
    configs = [REPO / "config" / "config.yaml", root / "bench.yaml"]
    log.info("catalogue run: %d regions (%s to %s model rows), %.1f M model rows, %d cores",
             len(rows), f"{min_rows:,}", "any" if max_rows is None else f"{max_rows:,.0f}",
             sum(chosen.values()) / 1e6, cores)
    predicted = None
    if previous is not None and previous.get("model"):
        predicted = predicted_wall(previous["model"], chosen, cores, mem_mb)
        if predicted is not None:
            log.info("predicted by the earlier run's model: %.1f min", predicted / 60)
    extra = () if mem_mb is None else ("--resources", f"mem_mb={mem_mb}")
    start, run = timed_run(root, configs, cores, *extra)
    wall, jobs = run["wall_s"], run["rules"]
    status_of = region_statuses(root / "results" / "summary.tsv")
    statuses = list(status_of.values())
    ids = [row["id"] for row in rows]
    report = {
        "mode": "catalogue", "methods": list(methods), "regions": len(rows),
        "min_rows": min_rows, "max_rows": max_rows,
        "release": release, "model_rows": sum(chosen.values()), "stars": _star_rows(root, ids),
        "cores": cores, "mem_mb": mem_mb, "wall_s": wall, "summary_rows": len(statuses),
        "statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
        "memory_peak_mb": run["memory_peak_mb"], "disk_mb": _disk_mb(root),
        "truth": truth_scores(root),
        "jobs": run["jobs"], "job_seconds": run["job_seconds"], "rules": jobs,
        "catalogue_available": {"regions": counts["n_regions"],
                                "model_rows": counts["total_rows"]},
        "warm_interpreter": warm, "warm_jobs": warm_jobs(root / "logs" / "warm.log"),
    }
    report["model"] = wall_model(region_seconds(root, ids, start - 1),
                                 {k: chosen[k] for k in ids}, wall, report["job_seconds"], cores,
                                 counts, status_of)
    report["model"]["mem_mb"] = mem_mb
    if rerun:  # everything after the simulation again
        _, report["rerun"] = timed_run(root, configs, cores, *extra, "--forcerun", "quality")
        log.info("catalogue rerun after the simulation: %.1f min wall",
                 report["rerun"]["wall_s"] / 60)
    if predicted is not None:
        report["prediction"] = {"predicted_wall_s": predicted, "actual_wall_s": wall,
                                "ratio": predicted / wall, "model_from": previous_label(previous)}
    log.info("catalogue run: %.1f min wall, %d summary rows", wall / 60, len(statuses))
    return report


def warm_jobs(path: Path) -> dict[str, dict[str, float]]:
    """The jobs the warm interpreter ran (:func:`ocdec.warm.ended_jobs`), per rule script: how
    many, their seconds and largest peak memory (a rule's benchmark file counts the job's own
    process where Snakemake's process sent it, ocdec.warm_direct, its adapter's where the
    adapter did)."""
    from ocdec.warm import ended_jobs

    out: dict[str, dict[str, float]] = {}
    for job in ended_jobs(path):
        # Snakemake runs each rule's script as .snakemake/scripts/tmpXXXX.<script>.py
        script = job["script"].removesuffix(".py").rsplit(".", 1)[-1]
        e = out.setdefault(script, {"jobs": 0, "seconds": 0.0, "max_rss_mb": 0.0})
        e["jobs"] += 1
        e["seconds"] += job["seconds"]
        e["max_rss_mb"] = max(e["max_rss_mb"], job["peak_mb"])
    return out


def previous_label(report: dict[str, Any] | None) -> str:
    """An earlier report, in words (its regions, rows, wall)."""
    if not report:
        return ""
    return (f"{report.get('regions')} regions to {report.get('max_rows') or 'any'} model rows, "
            f"{report.get('wall_s', 0) / 60:.1f} min")


def region_statuses(summary: Path) -> dict[str, str]:
    """Each region's status in the catalogue summary (found, not_found, skipped, failed)."""
    with summary.open(newline="") as handle:
        return {row["region"]: row.get("status", "") for row in csv.DictReader(handle,
                                                                               delimiter="\t")}


# Regions whose default method ran (the quality gate passed): every region of the thesis's
# catalogue, which kept only regions of at least 40,000 stars with complete astrometry.
RAN_STATUSES = ("found", "not_found")


def wall_model(seconds: dict[str, dict[str, float]], rows: dict[str, float], wall: float,
               job_seconds: float, cores: int, counts: dict[str, Any],
               statuses: dict[str, str] | None = None) -> dict[str, Any]:
    """The run's wall time as a model a later run can be checked against: each region's job
    seconds fitted as a fixed cost plus a cost per model row (:func:`bench.fits.affine`), with
    and without the simulation, and the packing of jobs onto the cores that this run achieved
    (``packing``: wall x cores / all job seconds; 1 would be both cores busy throughout, the
    catalogue-wide rules and scheduling gaps push it up). ``per_region`` mixes the regions as
    this run had them (those the quality gate skips cost a few seconds); ``per_region_ran``,
    without the simulation, only those whose method ran (``statuses``:
    :data:`RAN_STATUSES`), as every region of the thesis's catalogue would. Projected: the
    thesis's catalogue (its 169 regions and 75 M stars, downloaded: no simulation, every region
    run; ``thesis_fit`` says which fit) and every region of the simulated catalogue past the gate
    (simulated and gated, as this run)."""
    ids = sorted(seconds)
    n = [rows[r] for r in ids]
    with_sim = affine(n, [seconds[r]["simulate"] + seconds[r]["pipeline"] for r in ids])
    mixed = affine(n, [seconds[r]["pipeline"] for r in ids])
    ran = [r for r in ids if statuses is None or statuses.get(r) in RAN_STATUSES]
    ran_fit = affine([rows[r] for r in ran], [seconds[r]["pipeline"] for r in ran])
    packing = wall * cores / job_seconds if job_seconds > 0 else float("nan")
    out: dict[str, Any] = {"cores": cores, "packing": packing, "per_region": with_sim,
                           "per_region_pipeline": mixed, "per_region_ran": ran_fit,
                           "regions_ran": len(ran)}
    # the thesis from the regions that ran; from the mix only where fewer than two ran
    thesis_fit, out["thesis_fit"] = (ran_fit, "ran") if ran_fit is not None else (mixed, "mixed")
    if thesis_fit is not None:
        out["thesis_catalogue_s"] = packing * (THESIS_REGIONS * thesis_fit["c"]
                                               + THESIS_STARS * thesis_fit["s"]) / cores
        # one standard error of the cost per row, at the thesis's 75 M stars
        out["thesis_catalogue_err_s"] = packing * THESIS_STARS * thesis_fit["s_err"] / cores
    if with_sim is not None:
        every = np.array(list(counts["rows"].values()), dtype=float)
        out["simulated_catalogue_s"] = packing * float(np.sum(predict(with_sim, every))) / cores
        out["simulated_catalogue"] = {"regions": int(every.size), "model_rows": float(every.sum())}
    return out


def predicted_wall(model: dict[str, Any], rows: dict[str, float], cores: int,
                   mem_mb: int | None = None) -> float | None:
    """This run's wall time by an earlier run's :func:`wall_model` (simulation included); None
    without a fit, or where the earlier run had other cores (its packing would not hold). A
    memory budget other than the earlier run's is only warned of: it holds back the largest
    regions' jobs, so the packing may differ."""
    fit = model.get("per_region")
    if fit is None:
        return None
    if model.get("cores") != cores:
        log.warning("the earlier run had %s cores, this one %d: no prediction",
                    model.get("cores"), cores)
        return None
    if model.get("mem_mb") != mem_mb:
        log.warning("the earlier run's memory budget was %s MB, this one's %s MB: its packing "
                    "may not hold", model.get("mem_mb"), mem_mb)
    n = np.array(list(rows.values()), dtype=float)
    return float(model["packing"] * np.sum(predict(fit, n)) / cores)


def catalogue_text(report: dict[str, Any]) -> str:
    disk, available = report["disk_mb"], report["catalogue_available"]["regions"]
    lines = [
        f"Simulated catalogue run: {report['regions']} of {available} regions passing the "
        f"{report['min_rows']:,}-star gate"
        + ("" if report["max_rows"] is None else f" (those up to {report['max_rows']:,.0f} stars)")
        + f", {report['stars']:,} stars, methods [{', '.join(report.get('methods', ['default']))}]"
        f", {report['cores']} cores"
        + ("" if report.get("mem_mb") is None else f", --resources mem_mb={report['mem_mb']}")
        + ": "
        f"{report['wall_s'] / 60:.1f} min wall from the snakemake start to the last summary row "
        f"({report['summary_rows']} rows: "
        + ", ".join(f"{k or '?'} {v}" for k, v in report["statuses"].items()) + ")",
        f"  {report['jobs']} jobs, {report['job_seconds'] / 60:.1f} job-minutes; memory in use at "
        f"peak {report['memory_peak_mb']:,.0f} MB above the start; disk {disk['total']:,.0f} MB "
        f"(resources {disk['resources']:,.0f}, results {disk['results']:,.0f})",
    ]
    truth = report.get("truth")
    if truth and truth["found"]:
        lines.append(f"  against the simulated truth: {truth['recovered']} of {truth['found']} "
                     f"regions found recover their cluster (members F1 >= 0.5; median F1 "
                     f"{truth['median_f1']:.2f})")
        if truth.get("median_f1_bright") is not None:
            lines.append(f"    stars brighter than G = {truth['g_limit']:g} (the published lists' "
                         f"limit): {truth['recovered_bright']} of {truth['found']}, median F1 "
                         f"{truth['median_f1_bright']:.2f}")
    model = report.get("model") or {}
    fit, ran = model.get("per_region"), model.get("per_region_ran")
    if fit and ran:
        lines.append(
            f"  per region as run: {fit['c']:.1f} job-s + {fit['s'] * 1e6:.1f} job-s per M model "
            f"rows; per region whose method ran ({model['regions_ran']}), without the "
            f"simulation: {ran['c']:.1f} + {ran['s'] * 1e6:.1f}; jobs packed onto the "
            f"{model['cores']} cores at {model['packing']:.2f} x the ideal")
        err = model.get("thesis_catalogue_err_s", float("nan"))
        clamped = ", whose fitted slope was negative and set to 0" if ran.get("clamped") else ""
        lines.append(
            f"  projected: the thesis catalogue ({THESIS_REGIONS} regions, "
            f"{THESIS_STARS / 1e6:.0f} M stars, downloaded) "
            f"{model['thesis_catalogue_s'] / 3600:.2f} h (+- {err / 3600:.2f} h from the cost "
            f"per row{clamped}); the whole simulated catalogue "
            f"({model['simulated_catalogue']['regions']} regions, "
            f"{model['simulated_catalogue']['model_rows'] / 1e6:.1f} M model rows) "
            f"{model['simulated_catalogue_s'] / 3600:.2f} h")
    pred = report.get("prediction")
    if pred:
        lines.append(f"  this run predicted by the model of an earlier run ({pred['model_from']}): "
                     f"{pred['predicted_wall_s'] / 60:.1f} min, measured "
                     f"{pred['actual_wall_s'] / 60:.1f} min (ratio {pred['ratio']:.2f})")
    again = report.get("rerun")
    if again:
        lines.append(f"  rerun after the simulation (as the catalogue runs downloaded): "
                     f"{again['wall_s'] / 60:.1f} min wall, {again['jobs']} jobs, "
                     f"{again['job_seconds'] / 60:.1f} job-minutes")
    warm = report.get("warm_jobs") or {}
    lines.append(f"  warm interpreter: {sum(int(e['jobs']) for e in warm.values())} of "
                 f"{report['jobs']} jobs forked from it" if report.get("warm_interpreter", False)
                 else "  warm interpreter off: every job a fresh Python")
    for rule, e in sorted(report["rules"].items(), key=lambda kv: -kv[1]["seconds"]):
        lines.append(f"    {rule:<22} {int(e['jobs']):4d} jobs, {e['mean_s']:6.2f} s each, "
                     f"peak {e['max_rss_mb']:,.0f} MB (benchmark file)")
    for script, e in sorted(warm.items()):
        lines.append(f"    forked {script + '.py':<15} {int(e['jobs']):4d} jobs, peak "
                     f"{e['max_rss_mb']:,.0f} MB (the warm interpreter's log)")
    return "\n".join(lines)
