#!/usr/bin/env python
"""Throughput benchmark of ocdec (issue 3 "Benchmark", issue 5 item 4).

Two modes:

``region``
    A field simulated at the Hyades region's size (434,000 rows by default) characterized with the
    default method's 5-seed ensemble: per-stage wall and CPU seconds, stars per second, peak
    memory, F1 of the members against the simulated truth; and the same field through
    scikit-learn's HDBSCAN (timed on subsamples, extrapolated to the whole field unless the
    extrapolation fits in ``--hdbscan-limit``, in which case the whole field is run too).
``scaling``
    Simulated fields from 10,000 to 1,000,000 rows through one pipeline's jobs (``--pipeline``,
    below), a power-law fit (time = a n^b) per stage and end to end, and the projected time of the
    thesis catalogue (regions of config/regions.tsv with >= 40,000 rows in Gaia DR2 by the
    simulator's Galactic model; and scaled to the thesis's 75 million stars).

Pipelines (the jobs of one region, as the workflow's rules run them):

``default``
    quality + the default method (``characterize_default``): the method alone.
``catalogue``
    what a workflow run with ``characterize.methods: [default]`` runs per region: quality, the
    default method, the region figures and the comparison table.
``full``
    every method: quality, default method, thesis mode (K-Means sweep, DEC on every star), the
    figures of both and the comparison table. A run of ``catalogue`` or ``full`` also reports
    ``default`` (its first two jobs).

Every measured job runs in a fresh Python process, as a workflow rule does, so its peak memory
(``ru_maxrss``, plus a sampled per-stage peak) is that job's alone, not the simulation's, and its
time includes the interpreter start and imports that each workflow job pays. Simulated fields are
cached under ``--workdir``. DEC jobs use JAX's persistent compilation cache as the workflow does
(``--jax-cache``, by default ``WORKDIR/jax-cache``): a run over an empty cache shows what the first
region of a catalogue pays, a second run with the same workdir what the later ones pay (the
report says how many cache entries there were at the start).

Run ``python scripts/benchmark.py region --json bench.json --markdown bench.md`` or
``python scripts/benchmark.py scaling --quick``; ``python scripts/benchmark.py report A.json
[B.json ...] --markdown out.md`` redoes the fits and projections of saved scaling runs (merging
their fields, e.g. a full-pipeline run to 300,000 rows and a default-only run at 1,000,000).
This is a script, not a test: nothing here asserts a time; tests/test_benchmark.py only checks
that it runs and what it writes.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("benchmark")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REGIONS = REPO / "config" / "regions.tsv"
HYADES = "Melotte_25"
REGION_ROWS = 434_000  # the Hyades region's DR2 cone (issue 3)
HYADES_MEMBERS = 927
SCALING_SIZES = (10_000, 30_000, 100_000, 300_000, 1_000_000)
QUICK_SIZES = (10_000, 30_000, 100_000)
HDBSCAN_SIZES = (10_000, 20_000, 40_000)

# Goals (issue 5 item 4, issue 3 benchmark) and the thesis's figures for comparison.
GOAL_CATALOGUE_S = 3600.0
GOAL_STARS_PER_S = 21_000.0
GOAL_REGION_S = 60.0
GOAL_REGION_RSS_MB = 4096.0
THESIS_STARS = 75_000_000
THESIS_REGIONS = 169
THESIS_MIN_STARS = 40_000
THESIS_FIGURES = ("a few minutes per cluster, about an hour for the 434,000-star Hyades region, "
                  "on a 12-core Xeon with two GPUs (thesis)")

# Canonical stages (issue 5) and the job stages that make them up.
CANONICAL = ("startup", "read", "quality", "features", "kmeans", "dec", "plots", "write", "other")
STAGE_MAP: dict[str, dict[str, str]] = {
    "quality": {"import": "startup", "read": "read", "quality": "quality", "write": "write"},
    # default method: peak search + mixture fit are its pre-selection ("features"); the bootstrap
    # ensemble and DEC per seed are its "DEC ensemble".
    "default": {"import": "startup", "read": "read", "peaks": "features", "mixture": "features",
                "ensemble": "dec", "dec": "dec", "write": "write", "other": "other"},
    "thesis": {"import": "startup", "read": "read", "features": "features", "kmeans": "kmeans",
               "dec": "dec", "selection": "other", "write": "write", "other": "other"},
    "plots": {"import": "startup", "read": "read", "plots": "plots"},
    "compare": {"import": "startup", "read": "read", "compare": "other", "write": "write"},
}
DEFAULT_JOBS = ("quality", "default")
CATALOGUE_JOBS = ("quality", "default", "plots", "compare")
FULL_JOBS = ("quality", "default", "thesis", "plots", "compare")
PIPELINES: dict[str, tuple[str, ...]] = {"default": DEFAULT_JOBS, "catalogue": CATALOGUE_JOBS,
                                         "full": FULL_JOBS}


# ----------------------------------------------------------------------------- measuring


class RssSampler:
    """Resident set size of this process sampled every ``interval`` s in a thread; ``peak()``
    gives the highest value since the last ``reset()``. /proc/self/statm, so Linux only; elsewhere
    the peaks are NaN and only ru_maxrss is reported."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 0.0
        self._peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.available = Path("/proc/self/statm").exists()

    def rss_mb(self) -> float:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * self.page_mb
        except (OSError, ValueError, IndexError):
            return math.nan

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, self.rss_mb())

    def start(self) -> RssSampler:
        if self.available:
            self._thread.start()
        return self

    def reset(self) -> None:
        self._peak = self.rss_mb() if self.available else math.nan

    def peak(self) -> float:
        return max(self._peak, self.rss_mb()) if self.available else math.nan

    def stop(self) -> None:
        self._stop.set()


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _maxrss_mb() -> float:
    # Linux reports kilobytes, macOS bytes.
    scale = 1.0 / 2**20 if sys.platform == "darwin" else 1.0 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class StageClock:
    """Wall seconds, CPU seconds and sampled peak RSS of named stages of one job."""

    def __init__(self) -> None:
        self.sampler = RssSampler().start()
        self.stages: dict[str, dict[str, float]] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.sampler.reset()
        w0, c0 = time.perf_counter(), _cpu_s()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - w0, _cpu_s() - c0, self.sampler.peak())

    def add(self, name: str, wall: float, cpu: float = math.nan, rss: float = math.nan) -> None:
        entry = self.stages.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0.0})
        entry["wall_s"] += wall
        entry["cpu_s"] += cpu
        entry["peak_rss_mb"] = max(entry["peak_rss_mb"], rss) if math.isfinite(rss) else rss


def split_stage(clock: StageClock, total: str, parts: dict[str, float]) -> None:
    """Replace stage ``total`` by ``parts`` (seconds measured inside the library, e.g. the
    summary's ``stages``) plus ``other`` for the rest; CPU seconds are shared in proportion."""
    whole = clock.stages.pop(total)
    inner = sum(max(v, 0.0) for v in parts.values())
    rest = max(whole["wall_s"] - inner, 0.0)
    for name, wall in {**parts, "other": rest}.items():
        share = wall / whole["wall_s"] if whole["wall_s"] > 0 else 0.0
        clock.add(name, wall, whole["cpu_s"] * share, whole["peak_rss_mb"])


# ----------------------------------------------------------------------------- child jobs


def _settings(spec: dict[str, Any], method: str) -> Any:
    """MemberSettings / ThesisSettings with the benchmark's overrides (DEC epochs, k values).
    Imports only what ``method`` needs, as scripts/characterize.py does: thesis mode's modules
    (scikit-learn) are a second and a half of a default-method job's start-up otherwise."""
    epochs = spec.get("dec_epochs")

    def dec(base: Any) -> Any:
        if not epochs:
            return base
        pre, clu = epochs
        return replace(base, pretrain_epochs=pre, cluster_epochs=clu,
                       min_cluster_epochs=min(base.min_cluster_epochs, clu))

    if method == "default":
        from ocdec.methods.default.method import MemberSettings, default_dec_settings

        return MemberSettings(dec=dec(default_dec_settings()))
    from ocdec.methods.dec import DecSettings
    from ocdec.methods.thesis import ThesisSettings

    k_values = tuple(spec.get("k_values") or ThesisSettings().k_values)
    return ThesisSettings(dec=dec(DecSettings()), k_values=k_values,
                          dec_max_stars=spec.get("thesis_dec_max_stars"))


def region_priors(region: dict[str, Any]) -> Any:
    """The catalogue priors the workflow hands the default method (as scripts/characterize.py)."""
    from ocdec.methods.default.method import ClusterPriors

    def num(key: str) -> float | None:
        value = region.get(key)
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None

    pm = (num("pmra_prior"), num("pmdec_prior"))
    if None in pm:
        pm = (None, None)
    plx = num("parallax_prior")
    return ClusterPriors(ra=num("ra"), dec=num("dec"), radius_deg=num("radius_deg"), pmra=pm[0],
                         pmdec=pm[1], parallax=plx if plx and plx > 0 else None)


def job_quality(spec: dict[str, Any], clock: StageClock) -> dict[str, Any]:
    with clock.stage("import"):
        from ocdec.data.columns import read_stars
        from ocdec.data.quality import QualitySettings, apply_quality
        from ocdec.io import write_json, write_parquet
    with clock.stage("read"):
        frame = read_stars(spec["field"])
    with clock.stage("quality"):
        clean, status = apply_quality(frame, QualitySettings(min_stars=0))
    with clock.stage("write"):
        write_parquet(spec["stars"], clean, {"source": "simulate", "quality": status})
        write_json(Path(spec["stars"]).with_name("status.json"), status)
    return {"n_input": len(frame), "n_usable": len(clean)}


def job_characterize(spec: dict[str, Any], clock: StageClock, method: str) -> dict[str, Any]:
    with clock.stage("import"):
        import pandas as pd

        from ocdec.characterize import characterize
        from ocdec.compilation_cache import enable_compilation_cache
        from ocdec.methods.dec import fit_dec  # noqa: F401 (JAX's import belongs to start-up)

        enable_compilation_cache(spec.get("jax_cache"))
    with clock.stage("read"):
        stars = pd.read_parquet(spec["stars"])
    out = Path(spec["out"]) / method
    with clock.stage("characterize"):
        summary = characterize(stars, out, method=method, priors=region_priors(spec["region"]),
                               seed=int(spec.get("seed", 0)), n_seeds=int(spec["n_seeds"]),
                               settings=_settings(spec, method))
    # characterize's runtime_s covers the method; the rest of the call wrote the files
    inner = {k: float(v) for k, v in (summary.get("stages") or {}).items()}
    runtime = float(summary.get("runtime_s") or sum(inner.values()))
    total = clock.stages["characterize"]["wall_s"]
    inner["write"] = max(total - runtime, 0.0)
    split_stage(clock, "characterize", inner)
    return {"n_stars": summary.get("n_stars"), "n_members": summary.get("n_members"),
            "seed_jaccard": summary.get("seed_jaccard"), "library_stages": summary.get("stages"),
            "diagnostics": summary.get("diagnostics"),
            "dec_history_rows": _rows(out / "history.tsv")}


def _rows(path: Path) -> int:
    """Data rows of a TSV (0 when DEC did not run: the history has its header only)."""
    with open(path) as fh:
        return max(sum(1 for _ in fh) - 1, 0)


def _method_dirs(spec: dict[str, Any]) -> dict[str, Path | None]:
    """The characterize output folders of the methods this pipeline ran (None for the others)."""
    out = Path(spec["out"])
    methods = spec.get("methods") or ("default", "thesis")
    return {m: out / m if m in methods and (out / m).exists() else None
            for m in ("default", "thesis")}


def job_plots(spec: dict[str, Any], clock: StageClock) -> dict[str, Any]:
    """The plots rule (scripts/plots.py): status, references and the methods' outputs in, the
    four region figures out."""
    with clock.stage("import"):
        from ocdec.results.figures import region_plots
        from ocdec.results.reference import read_references
    out = Path(spec["out"])
    dirs = _method_dirs(spec)
    with clock.stage("read"):
        status = json.loads((out / "status.json").read_text())
        references = read_references(spec["reference"]) if spec.get("reference") else []
    with clock.stage("plots"):
        written = region_plots(out / "plots", spec["region"], default_dir=dirs["default"],
                               thesis_dir=dirs["thesis"], references=references, status=status)
    return {"n_files": len(written)}


def job_compare(spec: dict[str, Any], clock: StageClock) -> dict[str, Any]:
    """The compare rule (scripts/compare.py): references against each method's summary."""
    with clock.stage("import"):
        from ocdec.results.comparison import comparison_table, read_summary, write_comparison
        from ocdec.results.reference import read_references
    out = Path(spec["out"])
    dirs = _method_dirs(spec)
    with clock.stage("read"):
        references = read_references(spec["reference"]) if spec.get("reference") else []
        summaries = {m: read_summary(d / "summary.json" if d else None) for m, d in dirs.items()}
    with clock.stage("compare"):
        table = comparison_table(references, summaries["default"], summaries["thesis"])
    with clock.stage("write"):
        write_comparison(out / "comparison.tsv", table)
    return {"n_rows": len(table)}


def job_hdbscan(spec: dict[str, Any], clock: StageClock) -> dict[str, Any]:
    """scikit-learn's HDBSCAN on (pmra, pmdec, parallax), robust-scaled, of a seeded subsample of
    the quality-filtered stars; F1 of the best-matching HDBSCAN cluster (an oracle's choice)."""
    with clock.stage("import"):
        import pandas as pd
        from sklearn.cluster import HDBSCAN
        from sklearn.preprocessing import RobustScaler
    with clock.stage("read"):
        stars = pd.read_parquet(spec["stars"], columns=["pmra", "pmdec", "parallax",
                                                        "true_member"])
    n = int(spec["n"])
    if n < len(stars):
        idx = np.sort(np.random.default_rng(spec.get("seed", 0)).choice(len(stars), n,
                                                                       replace=False))
        stars = stars.iloc[idx]
    truth = stars["true_member"].to_numpy(bool)
    with clock.stage("hdbscan"):
        x = RobustScaler().fit_transform(stars[["pmra", "pmdec", "parallax"]].to_numpy(float))
        labels = HDBSCAN(min_cluster_size=int(spec["min_cluster_size"]), copy=True).fit_predict(x)
    best = {"f1": 0.0, "precision": 0.0, "recall": 0.0, "label": -1, "size": 0}
    for lab in np.unique(labels[labels >= 0]):
        score = f1_scores(labels == lab, truth)
        if score["f1"] > best["f1"]:
            best = {**score, "label": int(lab), "size": int((labels == lab).sum())}
    return {"n": len(stars), "n_true": int(truth.sum()), "n_clusters": int(labels.max() + 1),
            "oracle": best}


JOBS: dict[str, Callable[[dict[str, Any], StageClock], dict[str, Any]]] = {
    "quality": job_quality,
    "default": lambda spec, clock: job_characterize(spec, clock, "default"),
    "thesis": lambda spec, clock: job_characterize(spec, clock, "thesis"),
    "plots": job_plots,
    "compare": job_compare,
    "hdbscan": job_hdbscan,
}


def child_main(spec_path: str, result_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    clock = StageClock()
    w0 = time.perf_counter()
    info = JOBS[spec["job"]](spec, clock)
    clock.sampler.stop()
    result = {"job": spec["job"], "stages": clock.stages, "info": info,
              "inner_wall_s": time.perf_counter() - w0, "cpu_s": _cpu_s(),
              "maxrss_mb": _maxrss_mb()}
    Path(result_path).write_text(json.dumps(result, default=_plain))
    return 0


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def run_job(job: str, spec: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    """Run one job in a fresh interpreter; its result with the wall seconds seen from outside
    (interpreter start included, as ``startup``). A job past ``timeout`` is killed and reported
    with ``timed_out``."""
    with tempfile.TemporaryDirectory(prefix="ocdec-bench-") as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps({**spec, "job": job}, default=_plain))
        cmd = [sys.executable, str(Path(__file__).resolve()), "_job", str(spec_path),
               str(result_path)]
        w0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"job": job, "timed_out": True, "wall_s": time.perf_counter() - w0,
                    "limit_s": timeout}
        wall = time.perf_counter() - w0
        if proc.returncode != 0 or not result_path.exists():
            raise RuntimeError(f"benchmark job {job} failed (exit {proc.returncode}):\n"
                               f"{proc.stderr[-3000:]}")
        result = json.loads(result_path.read_text())
    result["wall_s"] = wall
    # interpreter start and module imports: everything outside the job's own stages but imports
    result["stages"].setdefault("import", {"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0.0})
    result["stages"]["import"]["wall_s"] += max(wall - result["inner_wall_s"], 0.0)
    return result


# ----------------------------------------------------------------------------- fields


def load_region(regions_path: Path, region_id: str) -> dict[str, Any]:
    from ocdec.data.catalogue import read_regions

    regions = read_regions(regions_path)
    match = regions[regions["id"] == region_id]
    if match.empty:
        raise SystemExit(f"benchmark: region {region_id!r} is not in {regions_path}")
    row = match.iloc[0].to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else _plain(v))
            for k, v in row.items()}


def simulated_field(workdir: Path, region: dict[str, Any], n_rows: int, n_members: int,
                    seed: int, release: str) -> Path:
    """A cached simulated field of exactly ``n_rows`` rows (``n_members`` of them members)."""
    from ocdec.data.simulate import SimulateSettings, simulate_to_parquet

    path = workdir / "fields" / f"{region['id']}_{release}_{n_rows}_{n_members}_{seed}.parquet"
    if not path.exists():
        members = min(n_members, n_rows // 2)
        settings = SimulateSettings(n_members=members, n_field=n_rows - members, release=release)
        t0 = time.perf_counter()
        simulate_to_parquet(path, region, settings, seed)
        log.info("simulated %d rows in %.1f s -> %s", n_rows, time.perf_counter() - t0, path)
    return path


def f1_scores(selected: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int((selected & truth).sum())
    precision = tp / max(int(selected.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}


def members_f1(out: Path) -> dict[str, Any]:
    """F1 of the default method's members against ``true_member`` over the stars it was given."""
    import pandas as pd

    members = pd.read_parquet(out / "default" / "members.parquet",
                              columns=["member", "true_member"])
    truth = members["true_member"].to_numpy(bool)
    return {**f1_scores(members["member"].to_numpy(bool), truth), "n_true": int(truth.sum()),
            "n_members": int(members["member"].sum())}


def pipeline_run(spec: dict[str, Any], jobs: Sequence[str], timeout: float | None
                 ) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for job in jobs:
        log.info("  job %s ...", job)
        res = run_job(job, spec, timeout)
        results[job] = res
        if res.get("timed_out"):
            log.warning("  job %s passed its limit of %.0f s", job, timeout)
            break
        log.info("  job %s: %.1f s wall, %.0f MB peak", job, res["wall_s"], res["maxrss_mb"])
    return results


def canonical(results: dict[str, Any], jobs: Sequence[str]) -> dict[str, Any]:
    """Canonical stages (``CANONICAL``) summed over ``jobs``: wall, CPU, peak RSS (max)."""
    out = {name: {"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0.0} for name in CANONICAL}
    for job in jobs:
        res = results.get(job)
        if res is None or res.get("timed_out"):
            return {}
        for stage, values in res["stages"].items():
            name = STAGE_MAP[job].get(stage, "other")
            out[name]["wall_s"] += values["wall_s"]
            out[name]["cpu_s"] += values["cpu_s"] if math.isfinite(values["cpu_s"]) else 0.0
            rss = values["peak_rss_mb"]
            if rss is not None and math.isfinite(rss):
                out[name]["peak_rss_mb"] = max(out[name]["peak_rss_mb"], rss)
    return out


def totals(results: dict[str, Any], jobs: Sequence[str], n_rows: int) -> dict[str, Any]:
    if any(results.get(j) is None or results[j].get("timed_out") for j in jobs):
        return {}
    wall = sum(results[j]["wall_s"] for j in jobs)
    cpu = sum(results[j]["cpu_s"] for j in jobs)
    return {"wall_s": wall, "cpu_s": cpu, "stars_per_s": n_rows / wall if wall > 0 else None,
            "peak_rss_mb": max(results[j]["maxrss_mb"] for j in jobs),
            "jobs": {j: {"wall_s": results[j]["wall_s"], "cpu_s": results[j]["cpu_s"],
                         "peak_rss_mb": results[j]["maxrss_mb"]} for j in jobs}}


# ----------------------------------------------------------------------------- fits, projection


def power_law(n: Sequence[float], t: Sequence[float]) -> dict[str, float] | None:
    """Least squares of log t = log a + b log n; None with fewer than two usable points."""
    pts = [(x, y) for x, y in zip(n, t, strict=True) if x > 0 and y is not None and y > 0]
    if len(pts) < 2:
        return None
    lx, ly = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    b, log_a = np.polyfit(lx, ly, 1)
    resid = ly - (log_a + b * lx)
    return {"a": float(math.exp(log_a)), "b": float(b), "points": len(pts),
            "rms_log": float(np.sqrt(np.mean(resid**2)))}


def affine(n: Sequence[float], t: Sequence[float]) -> dict[str, float] | None:
    """Least squares of t = c + s n (a fixed cost per region plus a cost per star), with s >= 0
    (a negative slope, which noise or a step such as DEC being skipped on large fields can give,
    becomes s = 0, c = mean). None with fewer than two usable points."""
    pts = [(x, y) for x, y in zip(n, t, strict=True) if x > 0 and y is not None and y > 0]
    if len(pts) < 2:
        return None
    x, y = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    slope, intercept = np.polyfit(x, y, 1)
    if slope < 0:
        slope, intercept = 0.0, float(y.mean())
    if intercept < 0:
        slope, intercept = float((x * y).sum() / (x * x).sum()), 0.0
    return {"c": float(intercept), "s": float(slope), "points": len(pts)}


def predict(fit: dict[str, float] | None, n: np.ndarray | float) -> Any:
    if fit is None:
        return None
    n = np.asarray(n, dtype=float)
    if "s" in fit:
        return fit["c"] + fit["s"] * n
    return fit["a"] * n ** fit["b"]


def expected_rows(region: dict[str, Any], release: str = "dr2", g_limit: float = 21.0,
                  seed: int = 0) -> float:
    """Expected number of rows in the region's cone by the simulator's Galactic model (the count
    ``simulate_field`` draws its Poisson number from when ``n_field`` is not given)."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    from ocdec.data import galactic_model as galaxy
    from ocdec.data import simulate as sim
    from ocdec.data import simulated_errors as gaia_errors

    radius = float(region["radius_deg"])
    centre = SkyCoord(ra=float(region["ra"]) * u.deg, dec=float(region["dec"]) * u.deg)
    frame = centre.skyoffset_frame()
    grid_lon, grid_lat = sim._grid(radius)
    grid = SkyCoord(lon=grid_lon * u.deg, lat=grid_lat * u.deg, frame=frame).galactic
    per_sr = np.array([line.per_sr for line in galaxy.sight_lines(grid, g_limit)])
    lon, lat = sim._uniform_in_cone(np.random.default_rng(seed), 20000, radius)
    share = np.bincount(sim._nearest(lon, lat, radius), minlength=len(grid))
    solid_angle = 2.0 * math.pi * (1.0 - math.cos(math.radians(radius)))
    expected = solid_angle * float(per_sr @ share) / share.sum()
    return expected * gaia_errors.SOURCE_COUNT[release] / gaia_errors.SOURCE_COUNT["dr3"]


def catalogue_counts(regions_path: Path, release: str, min_rows: int) -> dict[str, Any]:
    from ocdec.data.catalogue import read_regions

    regions = read_regions(regions_path)
    counts = {str(r["id"]): expected_rows(r, release) for r in regions.to_dict("records")}
    kept = {k: v for k, v in counts.items() if v >= min_rows}
    return {"release": release, "min_rows": min_rows, "n_regions_all": len(counts),
            "n_regions": len(kept), "total_rows": float(sum(kept.values())),
            "largest": [[k, round(v)] for k, v in sorted(kept.items(), key=lambda kv: -kv[1])[:5]],
            "rows": kept}


def project(fits: dict[str, Any], counts: dict[str, Any], model: str = "affine"
            ) -> dict[str, Any]:
    """Catalogue time from per-region fitted times: jobs one after another (each may use both
    cores), and with two single-core jobs side by side (total CPU seconds / 2, the ideal).
    ``model`` "affine" (fixed cost + cost per star; the default: fixed costs dominate small
    fields) or "power" (a n^b, unreliable outside the measured range when b is far from 1)."""
    rows = np.array(list(counts["rows"].values()), dtype=float)
    scale = THESIS_STARS / rows.sum() if rows.size else math.nan
    out: dict[str, Any] = {}
    suffix = "_affine" if model == "affine" else ""
    for pipeline in PIPELINES:
        wall_fit = fits.get(f"{pipeline}_wall{suffix}")
        cpu_fit = fits.get(f"{pipeline}_cpu{suffix}")
        if wall_fit is None:
            continue
        wall = float(np.sum(predict(wall_fit, rows)))
        cpu_half = float(np.sum(predict(cpu_fit, rows))) / 2 if cpu_fit else None
        if "s" in wall_fit:
            # fixed cost per region, cost per star: the thesis's regions and stars
            wall_75 = THESIS_REGIONS * wall_fit["c"] + THESIS_STARS * wall_fit["s"]
            cpu_75 = ((THESIS_REGIONS * cpu_fit["c"] + THESIS_STARS * cpu_fit["s"]) / 2
                      if cpu_fit else None)
        else:
            wall_75 = wall * scale
            cpu_75 = cpu_half * scale if cpu_half else None
        per_region = {"wall_s": wall, "cpu_s_over_2": cpu_half,
                      "stars_per_s": rows.sum() / wall,
                      "scaled_to_75M_wall_s": wall_75, "scaled_to_75M_cpu_s_over_2": cpu_75,
                      "region_434k_s": float(predict(wall_fit, REGION_ROWS))}
        per_region["meets_1h"] = per_region["scaled_to_75M_wall_s"] <= GOAL_CATALOGUE_S
        per_region["meets_21k_per_s"] = per_region["stars_per_s"] >= GOAL_STARS_PER_S
        out[pipeline] = per_region
    return out


# ----------------------------------------------------------------------------- modes


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    mem_gb = math.nan
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = int(line.split()[1]) / 2**20
                break
    except OSError:
        pass
    versions = {}
    for mod in ("numpy", "jax", "sklearn", "pandas"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    return {"nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity") else None, "cpu": cpu,
            "ram_gb": round(mem_gb, 1), "python": platform.python_version(),
            "versions": versions, "loadavg_start": list(os.getloadavg())}


def _spec(args: argparse.Namespace, region: dict[str, Any], stars: Path, out: Path,
          field: Path, jobs: Sequence[str]) -> dict[str, Any]:
    return {"field": str(field), "stars": str(stars), "out": str(out), "region": region,
            "n_seeds": args.n_seeds, "seed": 0, "dec_epochs": args.dec_epochs,
            "k_values": args.k_values, "jax_cache": jax_cache_dir(args),
            "thesis_dec_max_stars": args.thesis_dec_max_stars,
            "methods": [m for m in ("default", "thesis") if m in jobs],
            "reference": str(write_reference(out / "reference.json", region))}


def write_reference(path: Path, region: dict[str, Any]) -> Path:
    """The region's reference values for the plots and compare jobs (the workflow's
    resources/reference/{region}.json): the catalogue priors of config/regions.tsv."""
    from ocdec.results.reference import write_references

    row = {"source": "catalogue", "pmra": region.get("pmra_prior"),
           "pmdec": region.get("pmdec_prior"), "parallax": region.get("parallax_prior")}
    write_references(path, str(region["id"]), str(region.get("name") or region["id"]), [row])
    return path


def jax_cache_dir(args: argparse.Namespace) -> str | None:
    """The JAX compilation cache the DEC jobs share: --jax-cache, WORKDIR/jax-cache by default,
    None with --no-jax-cache."""
    if args.no_jax_cache:
        return None
    return str(args.jax_cache or Path(args.workdir) / "jax-cache")


def cache_state(args: argparse.Namespace) -> dict[str, Any]:
    path = jax_cache_dir(args)
    entries = len(list(Path(path).glob("*"))) if path and Path(path).is_dir() else 0
    return {"dir": path, "entries_at_start": entries}


def run_region(args: argparse.Namespace) -> dict[str, Any]:
    region = load_region(args.regions, args.region)
    field = simulated_field(args.workdir, region, args.rows, args.n_members, args.seed,
                            args.release)
    out = args.workdir / "runs" / f"region_{args.rows}"
    stars = out / "stars.parquet"
    jobs = FULL_JOBS if args.full else DEFAULT_JOBS
    spec = _spec(args, region, stars, out, field, jobs)
    log.info("region benchmark: %d rows, jobs %s", args.rows, ", ".join(jobs))
    load0 = os.getloadavg()
    results = pipeline_run(spec, jobs, args.job_timeout)
    n_usable = results["quality"]["info"]["n_usable"]
    report: dict[str, Any] = {
        "mode": "region", "region": args.region, "n_rows": args.rows, "n_usable": n_usable,
        "n_members_true": args.n_members, "n_seeds": args.n_seeds, "jobs": results,
        "default": {"stages": canonical(results, DEFAULT_JOBS),
                    "total": totals(results, DEFAULT_JOBS, args.rows)},
        "loadavg": {"before": list(load0), "after": list(os.getloadavg())},
    }
    if args.full:
        report["full"] = {"stages": canonical(results, FULL_JOBS),
                          "total": totals(results, FULL_JOBS, args.rows)}
    if not results["default"].get("timed_out"):
        report["f1_default"] = members_f1(out)
    total = report["default"]["total"]
    if total:
        report["goals"] = {"region_le_60s": total["wall_s"] <= GOAL_REGION_S,
                           "region_le_4GB": total["peak_rss_mb"] <= GOAL_REGION_RSS_MB}
    if not args.no_hdbscan:
        report["hdbscan"] = run_hdbscan(args, spec, n_usable)
    return report


def run_hdbscan(args: argparse.Namespace, spec: dict[str, Any], n_usable: int) -> dict[str, Any]:
    """HDBSCAN on growing subsamples; the whole field only if the power-law extrapolation says
    it ends within the limit (it is killed at the limit anyway)."""
    runs = []
    for n in sorted(s for s in args.hdbscan_sizes if s < n_usable):
        res = run_job("hdbscan", {**spec, "n": n, "min_cluster_size": args.hdbscan_min_cluster},
                      args.hdbscan_limit)
        runs.append(_hdbscan_row(res, n))
        log.info("  HDBSCAN on %d stars: %s", n, runs[-1])
        if res.get("timed_out"):
            break
    fit = power_law([r["n"] for r in runs if not r["timed_out"]],
                    [r["hdbscan_s"] for r in runs if not r["timed_out"]])
    predicted = float(predict(fit, n_usable)) if fit else None
    full = None
    if predicted is not None and predicted <= args.hdbscan_limit:
        res = run_job("hdbscan", {**spec, "n": n_usable,
                                  "min_cluster_size": args.hdbscan_min_cluster},
                      args.hdbscan_limit)
        full = _hdbscan_row(res, n_usable)
        log.info("  HDBSCAN on the whole field: %s", full)
    return {"features": "pmra, pmdec, parallax (robust-scaled)",
            "min_cluster_size": args.hdbscan_min_cluster, "limit_s": args.hdbscan_limit,
            "subsamples": runs, "fit": fit, "n_full": n_usable, "extrapolated_full_s": predicted,
            "full": full,
            "note": "F1 is that of the HDBSCAN cluster that best matches the truth (an oracle "
                    "picks the group); on a subsample the field is thinner than the real one."}


def _hdbscan_row(res: dict[str, Any], n: int) -> dict[str, Any]:
    if res.get("timed_out"):
        return {"n": n, "timed_out": True, "wall_s": res["wall_s"], "hdbscan_s": None}
    info = res["info"]
    return {"n": n, "timed_out": False, "wall_s": res["wall_s"],
            "hdbscan_s": res["stages"]["hdbscan"]["wall_s"],
            "peak_rss_mb": res["maxrss_mb"], "n_clusters": info["n_clusters"],
            "n_true": info["n_true"], "f1_oracle": info["oracle"]["f1"],
            "precision": info["oracle"]["precision"], "recall": info["oracle"]["recall"]}


def run_scaling(args: argparse.Namespace) -> dict[str, Any]:
    region = load_region(args.regions, args.region)
    pipeline = "default" if args.default_only else args.pipeline
    jobs = PIPELINES[pipeline]
    # the default method's jobs come first in every pipeline, so every run reports it too
    reported = ["default"] + ([pipeline] if pipeline != "default" else [])
    fields = []
    for n in args.sizes:
        field = simulated_field(args.workdir, region, n, args.n_members, args.seed, args.release)
        out = args.workdir / "runs" / f"scaling_{n}"
        stars = out / "stars.parquet"
        log.info("scaling: %d rows, jobs %s", n, ", ".join(jobs))
        load0 = os.getloadavg()
        results = pipeline_run(_spec(args, region, stars, out, field, jobs), jobs,
                               args.job_timeout)
        entry: dict[str, Any] = {
            "n_rows": n, "n_usable": results["quality"]["info"]["n_usable"], "jobs": results,
            "loadavg": {"before": list(load0), "after": list(os.getloadavg())}}
        for name in reported:
            entry[name] = {"stages": canonical(results, PIPELINES[name]),
                           "total": totals(results, PIPELINES[name], n)}
        if results.get("default") and not results["default"].get("timed_out"):
            entry["f1_default"] = members_f1(out)
        fields.append(entry)
    counts = catalogue_counts(args.regions, "dr2", THESIS_MIN_STARS)
    report = {"mode": "scaling", "region": args.region, "sizes": list(args.sizes),
              "pipeline": pipeline, "n_seeds": args.n_seeds, "fields": fields,
              "catalogue": {k: v for k, v in counts.items() if k != "rows"}}
    report["catalogue"]["rows_by_region"] = {k: round(v) for k, v in counts["rows"].items()}
    return finish_scaling(report)


def finish_scaling(report: dict[str, Any]) -> dict[str, Any]:
    """Fits and catalogue projections of a scaling report from its fields (also used to redo
    them from saved JSON, or over the fields of several runs, by ``report``)."""
    fields = sorted(report["fields"], key=lambda f: f["n_rows"])
    pipelines = [p for p in PIPELINES if any(p in f for f in fields)]
    report["sizes"] = [f["n_rows"] for f in fields]
    report["fits"] = fits = scaling_fits(fields, pipelines)
    counts = {"rows": {k: float(v) for k, v in report["catalogue"]["rows_by_region"].items()}}
    report["projection"] = project(fits, counts, "affine")
    report["projection_power_law"] = project(fits, counts, "power")
    top = max(report["sizes"])
    beyond = [v for v in counts["rows"].values() if v > top]
    report["catalogue"]["beyond_measured"] = {"largest_measured_rows": top,
                                              "n_regions": len(beyond),
                                              "rows": float(sum(beyond))}
    return report


def scaling_fits(fields: list[dict[str, Any]], pipelines: Sequence[str]) -> dict[str, Any]:
    fits: dict[str, Any] = {}
    for pipeline in pipelines:
        ok = [f for f in fields if f.get(pipeline, {}).get("total")]
        n = [f["n_rows"] for f in ok]
        fits[f"{pipeline}_wall"] = power_law(n, [f[pipeline]["total"]["wall_s"] for f in ok])
        fits[f"{pipeline}_cpu"] = power_law(n, [f[pipeline]["total"]["cpu_s"] for f in ok])
        fits[f"{pipeline}_rss"] = power_law(n, [f[pipeline]["total"]["peak_rss_mb"] for f in ok])
        fits[f"{pipeline}_wall_affine"] = affine(n, [f[pipeline]["total"]["wall_s"] for f in ok])
        fits[f"{pipeline}_cpu_affine"] = affine(n, [f[pipeline]["total"]["cpu_s"] for f in ok])
        fits[f"{pipeline}_stages"] = {
            stage: power_law(n, [f[pipeline]["stages"][stage]["wall_s"] for f in ok])
            for stage in CANONICAL}
    return fits


# ----------------------------------------------------------------------------- reporting


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], markdown: bool) -> str:
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))
                     for r in cells)


STAGE_COLUMNS = ("startup", "read", "quality", "features", "kmeans", "dec", "plots", "write",
                 "other")


def stage_rows(entries: list[tuple[str, int, dict[str, Any]]]) -> list[list[Any]]:
    rows = []
    for label, n, block in entries:
        stages, total = block.get("stages") or {}, block.get("total") or {}
        if not total:
            rows.append([label, n, *(["timed out"] + ["-"] * (len(STAGE_COLUMNS) + 2))])
            continue
        rows.append([label, n, *(stages[s]["wall_s"] for s in STAGE_COLUMNS), total["wall_s"],
                     total["cpu_s"], round(total["stars_per_s"]), total["peak_rss_mb"]])
    return rows


STAGE_HEADER = ("pipeline", "rows", *(f"{s} s" for s in STAGE_COLUMNS), "total s", "cpu s",
                "stars/s", "peak MB")


def render(report: dict[str, Any], markdown: bool) -> str:
    m = report["machine"]
    parts = []
    head = (f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gb']} GB RAM; load average "
            f"{', '.join(f'{x:.2f}' for x in m['loadavg_start'])} at the start, "
            f"{', '.join(f'{x:.2f}' for x in m['loadavg_end'])} at the end; "
            f"jax {m['versions'].get('jax')}, numpy {m['versions'].get('numpy')}, "
            f"scikit-learn {m['versions'].get('sklearn')}. Thesis: {THESIS_FIGURES}.")
    cache = m.get("jax_cache")
    if cache:
        head += (f" JAX compilation cache: {cache['dir']} ({cache['entries_at_start']} entries at "
                 "the start: " + ("warm, as for the later regions of a catalogue)"
                                  if cache["entries_at_start"] else
                                  "cold, as for the first region)") if cache["dir"] else
                 " JAX compilation cache: off.")
    if m.get("thesis_dec_max_stars"):
        head += (f" Thesis mode's DEC trained on a seeded sample of at most "
                 f"{m['thesis_dec_max_stars']:,} stars (opt-in), then assigned every star.")
    parts.append(head)
    if report["mode"] == "region":
        parts.append(_region_text(report, markdown))
    else:
        parts.append(_scaling_text(report, markdown))
    parts.append("Stages: startup = interpreter start and imports of each job; features = the "
                 "default method's peak search and mixture fit (its pre-selection) and thesis "
                 "mode's feature table; dec = the default method's bootstrap ensemble and DEC "
                 "runs, thesis mode's DEC; every job runs in a fresh process, as a workflow rule "
                 "does. Times are wall seconds on a machine shared with other work (see the load "
                 "average); cpu s is user + system time of the jobs.")
    return "\n\n".join(parts) + "\n"


def _region_text(report: dict[str, Any], markdown: bool) -> str:
    out = [f"Region benchmark: {report['n_rows']:,} rows simulated at {report['region']} "
           f"({report['n_usable']:,} after the quality filter), default method, "
           f"{report['n_seeds']} seeds."]
    entries = [("default", report["n_rows"], report["default"])]
    if "full" in report:
        entries.append(("full", report["n_rows"], report["full"]))
    out.append(_table(STAGE_HEADER, stage_rows(entries), markdown))
    f1 = report.get("f1_default")
    if f1:
        out.append(f"ocdec default vs simulated truth: F1 {f1['f1']:.3f} (precision "
                   f"{f1['precision']:.3f}, recall {f1['recall']:.3f}; {f1['n_members']} members, "
                   f"{f1['n_true']} true members after the quality filter).")
    default_info = report["jobs"].get("default", {}).get("info") or {}
    if default_info:
        ran = default_info.get("dec_history_rows", 0) > 0
        out.append("Default method: DEC " + ("ran" if ran else "did not run (no DEC history: "
                   "the candidates form one group)") + f"; seed Jaccard "
                   f"{_fmt(default_info.get('seed_jaccard'), 4)}.")
    goals = report.get("goals")
    if goals:
        total = report["default"]["total"]
        met = "met" if goals["region_le_60s"] else "NOT met"
        out.append(f"Goal <= {GOAL_REGION_S:.0f} s: {met} ({total['wall_s']:.1f} s); <= 4 GB peak: "
                   f"{'met' if goals['region_le_4GB'] else 'NOT met'} "
                   f"({total['peak_rss_mb']:.0f} MB).")
    hdb = report.get("hdbscan")
    if hdb:
        rows = [[r["n"], r.get("hdbscan_s"), r.get("peak_rss_mb"), r.get("n_clusters"),
                 r.get("f1_oracle")] for r in hdb["subsamples"] + ([hdb["full"]] if hdb["full"]
                                                                  else [])]
        out.append("scikit-learn HDBSCAN (" + hdb["features"] + f", min_cluster_size "
                   f"{hdb['min_cluster_size']}):")
        out.append(_table(("stars", "HDBSCAN s", "peak MB", "clusters", "F1 (oracle group)"),
                          [[r[0], r[1], r[2], r[3], None if r[4] is None else f"{r[4]:.3f}"]
                           for r in rows], markdown))
        fit = hdb["fit"]
        if fit:
            ran = " (also run on the whole field, above)" if hdb["full"] else (
                f" (not run on the whole field: over the {hdb['limit_s']:.0f} s limit)")
            out.append(f"HDBSCAN time ~ n^{fit['b']:.2f}: extrapolated to the whole field of "
                       f"{hdb['n_full']:,} stars: {hdb['extrapolated_full_s']:,.0f} s{ran}. "
                       + hdb["note"])
    return "\n\n".join(out)


def _scaling_text(report: dict[str, Any], markdown: bool) -> str:
    out = [f"Scaling benchmark: simulated fields at {report['region']}, "
           f"{report['n_seeds']} seeds."]
    entries = []
    for f in report["fields"]:
        entries += [(p, f["n_rows"], f[p]) for p in PIPELINES if p in f]
    out.append(_table(STAGE_HEADER, stage_rows(entries), markdown))
    f1 = [(f["n_rows"], f["f1_default"]["f1"]) for f in report["fields"] if "f1_default" in f]
    if f1:
        out.append("Default method F1 vs truth: " + ", ".join(f"{n:,}: {v:.3f}" for n, v in f1))
    fits = report["fits"]
    rows = []
    for pipeline in PIPELINES:
        if f"{pipeline}_wall" not in fits:
            continue
        stages = fits[f"{pipeline}_stages"]
        row = [pipeline, *(None if stages[s] is None else f"{stages[s]['b']:.2f}"
                           for s in STAGE_COLUMNS)]
        wall, cpu, rss = (fits[f"{pipeline}_{k}"] for k in ("wall", "cpu", "rss"))
        row += [None if fit is None else f"{fit['b']:.2f}" for fit in (wall, cpu, rss)]
        rows.append(row)
    out.append("Scaling exponents b (time ~ a n^b, least squares in log-log):")
    out.append(_table(("pipeline", *STAGE_COLUMNS, "total", "cpu", "peak MB"), rows, markdown))
    cat = report["catalogue"]
    out.append(f"Catalogue: {cat['n_regions']} of {cat['n_regions_all']} regions have >= "
               f"{cat['min_rows']:,} rows in Gaia DR2 by the simulator's Galactic model, "
               f"{cat['total_rows'] / 1e6:,.1f} M rows in all (thesis: {THESIS_REGIONS} regions, "
               f"{THESIS_STARS / 1e6:.0f} M stars). Largest: "
               + ", ".join(f"{k} {v / 1e6:.1f} M" for k, v in cat["largest"])
               + f". {cat['beyond_measured']['n_regions']} regions "
               f"({cat['beyond_measured']['rows'] / 1e6:.1f} M rows) lie beyond the largest "
               "measured field: their times are extrapolated.")
    rows = []
    for label, key in (("fixed + per star", "projection"), ("a n^b", "projection_power_law")):
        for pipeline, p in (report.get(key) or {}).items():
            cpu2 = p["cpu_s_over_2"]
            rows.append([label, pipeline, p["wall_s"] / 3600, p["scaled_to_75M_wall_s"] / 3600,
                         None if cpu2 is None else cpu2 / 3600,
                         None if cpu2 is None else p["scaled_to_75M_cpu_s_over_2"] / 3600,
                         round(p["stars_per_s"]), p["region_434k_s"],
                         "yes" if p["meets_1h"] else "no",
                         "yes" if p["meets_21k_per_s"] else "no"])
    out.append(_table(("model", "pipeline", "catalogue h", "75 M h", "catalogue cpu/2 h",
                       "75 M cpu/2 h", "stars/s", "434k region s", "75 M <= 1 h", ">= 21k/s"),
                      rows, markdown))
    fits = report["fits"]
    for pipeline in PIPELINES:
        fit = fits.get(f"{pipeline}_wall_affine")
        cpu = fits.get(f"{pipeline}_cpu_affine")
        if fit:
            out.append(f"{pipeline}: wall ~ {fit['c']:.1f} s + n / "
                       f"{(1 / fit['s']) if fit['s'] > 0 else math.inf:,.0f} stars/s"
                       + (f"; CPU ~ {cpu['c']:.1f} s + n / "
                          f"{(1 / cpu['s']) if cpu['s'] > 0 else math.inf:,.0f} stars/s"
                          if cpu else ""))
    out.append("Projection: the fitted time of each region (fixed cost + cost per star, the "
               "model used for the verdict; the power law a n^b is shown too, but fixed costs "
               "make b meaningless here) summed over the regions, jobs one after another (each "
               "free to use both cores); 'cpu/2' divides the fitted CPU seconds by two, what two "
               "single-core jobs side by side could do on an otherwise idle machine; '75 M' is "
               "the thesis's catalogue (169 regions, 75 M stars: fixed cost x 169 + cost per "
               "star x 75 M; for a n^b the catalogue scaled by 75 M / its rows). Verdicts use "
               "wall time. Goal: whole "
               "catalogue <= 1 h on 2 cores (>= 21,000 stars/s end to end), a 434,000-star "
               "region <= 60 s.")
    return "\n\n".join(out)


# ----------------------------------------------------------------------------- command line


def _ints(text: str) -> list[int]:
    try:
        values = [int(float(v)) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from err
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _epochs(text: str) -> list[int]:
    values = [int(v) for v in text.split(",")]
    if len(values) != 2 or min(values) < 0:
        raise argparse.ArgumentTypeError("--dec-epochs takes PRETRAIN,CLUSTER, e.g. 2,2")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--regions", type=Path, default=DEFAULT_REGIONS,
                        help="regions table (default: config/regions.tsv)")
    common.add_argument("--region", default=HYADES, help="region id to simulate (Melotte_25)")
    common.add_argument("--n-members", type=int, default=HYADES_MEMBERS,
                        help="cluster members per simulated field (927, the Hyades')")
    common.add_argument("--release", default="dr2", choices=("dr2", "dr3"))
    common.add_argument("--seed", type=int, default=1, help="simulation seed")
    common.add_argument("--n-seeds", type=int, default=5, help="default method's ensemble size")
    common.add_argument("--dec-epochs", type=_epochs, default=None,
                        help="PRETRAIN,CLUSTER epochs for DEC in both methods (library default)")
    common.add_argument("--k-values", type=_ints, default=None,
                        help="thesis mode's K-Means k values (default 2..10)")
    common.add_argument("--workdir", type=Path, default=None,
                        help="simulated fields (cached) and run outputs; default: a temporary "
                             "folder, removed at the end")
    common.add_argument("--thesis-dec-max-stars", type=int, default=None,
                        help="thesis mode's DEC trains on a seeded sample of at most this many "
                             "stars (default: all, as the thesis)")
    common.add_argument("--jax-cache", type=Path, default=None,
                        help="JAX persistent compilation cache shared by the DEC jobs (default: "
                             "WORKDIR/jax-cache; reuse a workdir to measure with a warm cache)")
    common.add_argument("--no-jax-cache", action="store_true",
                        help="no compilation cache: every DEC job compiles its programs")
    common.add_argument("--job-timeout", type=float, default=3600.0,
                        help="seconds before one job is killed (reported as timed out)")
    common.add_argument("--json", type=Path, help="write the machine-readable results here")
    common.add_argument("--markdown", type=Path, help="write a short markdown report here")
    common.add_argument("-v", "--verbose", action="store_true")

    region = sub.add_parser("region", parents=[common],
                            help="the issue 3 benchmark: one Hyades-sized field, and HDBSCAN")
    region.add_argument("--rows", type=int, default=REGION_ROWS)
    region.add_argument("--full", action="store_true",
                        help="also thesis mode and plots (the whole pipeline)")
    region.add_argument("--no-hdbscan", action="store_true")
    region.add_argument("--hdbscan-sizes", type=_ints, default=list(HDBSCAN_SIZES),
                        help="subsample sizes for HDBSCAN (default 10000,20000,40000)")
    region.add_argument("--hdbscan-limit", type=float, default=600.0,
                        help="seconds: HDBSCAN on the whole field runs only if extrapolated "
                             "within this, and any HDBSCAN run is killed past it")
    region.add_argument("--hdbscan-min-cluster", type=int, default=20)

    scaling = sub.add_parser("scaling", parents=[common],
                             help="fields of growing size, scaling fits, catalogue projection")
    scaling.add_argument("--sizes", type=_ints, default=list(SCALING_SIZES),
                         help="field sizes in rows (default 10000,30000,100000,300000,1000000)")
    scaling.add_argument("--quick", action="store_true",
                         help=f"sizes {','.join(map(str, QUICK_SIZES))} unless --sizes is given")
    scaling.add_argument("--pipeline", choices=tuple(PIPELINES), default="full",
                         help="jobs per region: default (quality + default method), catalogue "
                              "(+ figures and comparison, as a workflow with methods: [default]) "
                              "or full (+ thesis mode; the default)")
    scaling.add_argument("--default-only", action="store_true",
                         help="the same as --pipeline default")
    return parser


def report_main(argv: Sequence[str]) -> int:
    """``report IN.json [IN2.json ...] [--json OUT] [--markdown OUT]``: redo the fits and
    projections of saved scaling runs (their fields merged; a later file's field of the same size
    replaces an earlier one's pipelines it has) and print/write the report again."""
    parser = argparse.ArgumentParser(prog="benchmark.py report")
    parser.add_argument("inputs", nargs="+", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    reports = [json.loads(p.read_text()) for p in args.inputs]
    base = reports[0]
    if base["mode"] == "scaling":
        by_n: dict[int, dict[str, Any]] = {}
        for rep in reports:
            for f in rep["fields"]:
                merged = by_n.setdefault(f["n_rows"], {})
                merged.update({k: v for k, v in f.items() if k in PIPELINES or k not in merged})
        base["fields"] = list(by_n.values())
        base["merged_from"] = [str(p) for p in args.inputs]
        base = finish_scaling(base)
        loads = [rep["machine"] for rep in reports]
        base["machine"]["loadavg_start"] = loads[0]["loadavg_start"]
        base["machine"]["loadavg_end"] = loads[-1]["loadavg_end"]
    return emit(base, args)


def emit(report: dict[str, Any], args: argparse.Namespace) -> int:
    """Print the report and write it as JSON and markdown where asked (atomically)."""
    print(render(report, markdown=False))
    from ocdec.io import write_text

    if args.json:
        write_text(args.json, json.dumps(report, indent=2, default=_plain) + "\n")
    if args.markdown:
        write_text(args.markdown, render(report, markdown=True))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_job"]:
        return child_main(argv[1], argv[2])
    if argv[:1] == ["report"]:
        return report_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    log.setLevel(logging.INFO)
    if args.mode == "scaling" and args.quick and "--sizes" not in argv:
        args.sizes = list(QUICK_SIZES)
    info = machine()
    with tempfile.TemporaryDirectory(prefix="ocdec-benchmark-") as tmp:
        if args.workdir is None:
            args.workdir = Path(tmp)
        args.workdir.mkdir(parents=True, exist_ok=True)
        info["jax_cache"] = cache_state(args)
        info["thesis_dec_max_stars"] = args.thesis_dec_max_stars
        report = run_region(args) if args.mode == "region" else run_scaling(args)
    info["loadavg_end"] = list(os.getloadavg())
    report = {"machine": info, **report,
              "goals_stated": {"catalogue_s": GOAL_CATALOGUE_S, "stars_per_s": GOAL_STARS_PER_S,
                               "region_s": GOAL_REGION_S, "region_rss_mb": GOAL_REGION_RSS_MB},
              "thesis": THESIS_FIGURES}
    return emit(report, args)


if __name__ == "__main__":
    sys.exit(main())
