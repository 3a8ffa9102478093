"""The benchmark's jobs: one region's workflow rules, each in a fresh Python process, or with
``--warm`` forked from a warm interpreter as a local workflow run forks them (:func:`warm_jobs`).

Each job calls the library entry point its rule's adapter calls (``scripts/quality.py``:
:func:`ocdec.data.quality.quality_region`; ``scripts/characterize.py``:
:func:`ocdec.characterize.characterize_region`; ``scripts/plots.py``:
:func:`ocdec.results.figures.region_plots`; ``scripts/compare.py``:
:func:`ocdec.results.comparison.comparison_table`) with the files the workflow would give it, and
times the functions those call as stages (:meth:`bench.measure.StageClock.timing`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np

from bench import BENCH_DIR, CANONICAL, PIPELINES
from bench.measure import StageClock, cpu_s, maxrss_mb, split_stage

log = logging.getLogger("benchmark")

# The job stages that make up each canonical stage (anything else: "other").
STAGE_MAP: dict[str, dict[str, str]] = {
    "quality": {"import": "startup", "read": "read", "quality": "quality", "write": "write"},
    # default method: peak search + mixture fit are its pre-selection ("features"); the bootstrap
    # ensemble and DEC per seed are its "DEC ensemble".
    "default": {"import": "startup", "read": "read", "peaks": "features", "mixture": "features",
                "ensemble": "dec", "dec": "dec", "write": "write"},
    "thesis": {"import": "startup", "read": "read", "features": "features", "kmeans": "kmeans",
               "dec": "dec", "write": "write"},
    "plots": {"import": "startup", "read": "read", "plots": "plots"},
    "compare": {"import": "startup", "read": "read", "write": "write"},
}


# ----------------------------------------------------------------------------- the jobs


def job_quality(spec: dict[str, Any], clock: StageClock) -> dict[str, Any]:
    """The quality rule: the simulated field in, the kept stars and status.json out (min_stars 0:
    the benchmark measures every field)."""
    with clock.stage("import"):
        columns = import_module("ocdec.data.columns")
        io = import_module("ocdec.io")
        quality = import_module("ocdec.data.quality")
    stars = Path(spec["stars"])
    calls = {(columns, "read_stars"): "read", (io, "read_provenance"): "read",
             (quality, "apply_quality"): "quality", (io, "write_parquet"): "write",
             (io, "write_json"): "write"}
    with clock.stage("rule"), clock.timing(calls):
        status = quality.quality_region(spec["field"], stars, stars.with_name("status.json"),
                                        {"min_stars": 0}, region=str(spec["region"]["id"]))
    return {"n_input": status["n_input"], "n_usable": status["n_usable"]}


def characterize_config(spec: dict[str, Any], method: str) -> dict[str, Any]:
    """The workflow's ``characterize`` config section for this run: seeds and the benchmark's
    overrides (DEC epochs in both methods; thesis mode's k values and DEC sample)."""
    from ocdec.characterize import method_settings

    section: dict[str, Any] = {}
    if spec.get("dec_epochs"):
        pre, clu = spec["dec_epochs"]
        base = method_settings(method).dec
        section["dec"] = {"pretrain_epochs": pre, "cluster_epochs": clu,
                          "min_cluster_epochs": min(base.min_cluster_epochs, clu)}
    if method == "thesis":
        if spec.get("k_values"):
            section["k_values"] = list(spec["k_values"])
        section["dec_max_stars"] = spec.get("thesis_dec_max_stars")
    return {"seed": int(spec.get("seed", 0)), "n_seeds": int(spec["n_seeds"]), method: section}


def job_characterize(spec: dict[str, Any], clock: StageClock, method: str) -> dict[str, Any]:
    """The characterize_{method} rule: the quality rule's files in, the method's products out.
    Imports only what ``method`` needs, as the rule does (thesis mode's scikit-learn would be a
    second and a half of a default-method job's start-up otherwise)."""
    with clock.stage("import"):
        import pandas as pd

        from ocdec.methods.registry import method_spec

        # the modules (``ocdec.characterize`` the attribute is the function of that name)
        characterize = import_module("ocdec.characterize")
        io = import_module("ocdec.io")

        if method_spec(method).uses_jax:
            import ocdec.methods.dec  # noqa: F401 (JAX's import belongs to start-up)
        config = characterize_config(spec, method)
    stars = Path(spec["stars"])
    out = Path(spec["out"]) / method
    calls = {(pd, "read_parquet"): "read", (io, "read_provenance"): "read",
             (characterize, "find_members"): "method",
             (characterize, "write_outputs"): "write"}
    with clock.stage("rule"), clock.timing(calls):
        summary = characterize.characterize_region(
            stars, stars.with_name("status.json"), out, method=method, region=spec["region"],
            config=config, jax_cache_dir=spec.get("jax_cache"),
            provenance={"region": str(spec["region"]["id"])})
    # the method's own stages (peaks, mixture, dec, ...); the rest of the call is "other"
    split_stage(clock, "method", {k: float(v) for k, v in (summary.get("stages") or {}).items()})
    return {"n_stars": summary.get("n_stars"), "n_members": summary.get("n_members"),
            "seed_jaccard": summary.get("seed_jaccard"), "library_stages": summary.get("stages"),
            "diagnostics": summary.get("diagnostics"),
            "dec_history_rows": _rows(out / "history.tsv")}


def _rows(path: Path) -> int:
    """Data rows of a TSV (0 when DEC did not run: the history has its header only)."""
    with open(path) as fh:
        return max(sum(1 for _ in fh) - 1, 0)


def method_dirs(spec: dict[str, Any]) -> dict[str, Path]:
    """The characterize output folders of the methods this pipeline runs (the plots and compare
    rules get those of the configured methods)."""
    out = Path(spec["out"])
    return {m: out / m for m in spec.get("methods") or ("default", "thesis")}


def job_plots(spec: dict[str, Any], clock: StageClock) -> dict[str, Any]:
    """The plots rule: status, references and the methods' outputs in, the region figures out."""
    with clock.stage("import"):
        from ocdec.products import read_json
        from ocdec.results.figures import region_plots
        from ocdec.results.reference import read_references
    out = Path(spec["out"])
    with clock.stage("read"):
        status = read_json(out / "status.json")
        references = read_references(spec["reference"])
    with clock.stage("plots"):
        written = region_plots(out / "plots", spec["region"], method_dirs=method_dirs(spec),
                               references=references, status=status, formats=("png",))
    return {"n_files": len(written)}


def job_compare(spec: dict[str, Any], clock: StageClock) -> dict[str, Any]:
    """The compare rule: references against each method's summary."""
    with clock.stage("import"):
        from ocdec.results.comparison import comparison_table, read_summary, write_comparison
        from ocdec.results.reference import read_references
    out = Path(spec["out"])
    with clock.stage("read"):
        references = read_references(spec["reference"])
        summaries = {m: read_summary(d / "summary.json") for m, d in method_dirs(spec).items()}
    with clock.stage("compare"):
        table = comparison_table(references, summaries)
    with clock.stage("write"):
        write_comparison(out / "comparison.tsv", table)
    return {"n_rows": len(table)}


def job_hdbscan(spec: dict[str, Any], clock: StageClock) -> dict[str, Any]:
    """scikit-learn's HDBSCAN on (pmra, pmdec, parallax), robust-scaled, of a seeded subsample of
    the quality-filtered stars; F1 of the best-matching HDBSCAN cluster (an oracle's choice). A
    yardstick of the clustering's cost, not a workflow rule (the ``hdbscan`` method picks its
    group without the truth)."""
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


# ----------------------------------------------------------------------------- running them


def child_main(spec_path: str, result_path: str) -> int:
    """The job process: run the job its spec names, write its stages and info as JSON. Its
    allocator is set as a rule job's (ocdec.allocator)."""
    from ocdec.allocator import keep_freed_memory

    keep_freed_memory()
    spec = json.loads(Path(spec_path).read_text())
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    clock = StageClock()
    w0 = time.perf_counter()
    info = JOBS[spec["job"]](spec, clock)
    clock.sampler.stop()
    result = {"job": spec["job"], "stages": clock.stages, "info": info,
              "inner_wall_s": time.perf_counter() - w0, "cpu_s": cpu_s(),
              "maxrss_mb": maxrss_mb()}
    Path(result_path).write_text(json.dumps(result, default=plain))
    return 0


def plain(value: Any) -> Any:
    """JSON for numpy scalars and arrays (and the string of anything else)."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


# The warm interpreter's socket and the environment it was started with, while warm_jobs() runs
# (None: every job a fresh process). The jobs get that environment: the server refuses a job
# whose environment differs, and this process's later imports (JAX's set a few variables) must
# not make it differ.
_warm_socket: Path | None = None
_warm_env: dict[str, str] = {}
WARM_START_S = 300.0  # the longest wait for the warm interpreter's imports


@contextmanager
def warm_jobs(log_file: Path) -> Iterator[dict[str, Any]]:
    """Inside, each job is forked from a warm interpreter (:mod:`ocdec.warm`, started here with
    the workflow's imports, which it pays once) as a local workflow run forks its rule jobs;
    yields ``{"imports_s": ...}``, the seconds from its start until it listened. A one-line exit
    where it cannot start (not Linux), ends during its imports or takes over
    :data:`WARM_START_S`."""
    global _warm_socket, _warm_env
    from ocdec import warm

    if not sys.platform.startswith("linux"):
        raise SystemExit("benchmark: --warm: the warm interpreter forks its jobs: Linux only")
    t0 = time.perf_counter()
    path = warm.start(log_file)
    if path is None:
        raise SystemExit(f"benchmark: --warm: the warm interpreter did not start (see {log_file})")
    try:
        env = dict(os.environ)  # as start() gave it to the server
        warm._await_imports(path, WARM_START_S)  # as a job waits for them
        if not path.exists():
            raise SystemExit(f"benchmark: --warm: the warm interpreter is not listening "
                             f"(see {log_file})")
        info = {"imports_s": time.perf_counter() - t0, "log": str(log_file)}
        log.info("warm interpreter listening after %.1f s", info["imports_s"])
        _warm_socket, _warm_env = path, env
        yield info
    finally:
        _warm_socket, _warm_env = None, {}
        warm.stop()


def _forked(cmd: list[str], output: Path, timeout: float | None) -> int | None:
    """Run ``cmd`` (``python SCRIPT ARGS``) in a child of the warm interpreter, its standard
    output and error into ``output``; its exit status, or None past ``timeout``, once the child
    has been killed and has ended (as a fresh job's process is)."""
    from ocdec import warm

    assert _warm_socket is not None
    with open(os.devnull, "rb") as stdin, open(output, "wb") as out:
        sent = warm.send_job(_warm_socket, cmd[1], cmd[1:], dict(_warm_env), None,
                             [stdin.fileno(), out.fileno(), out.fileno()])
    if sent is None:
        raise RuntimeError("the warm interpreter refused the job (see its log)")
    sock, pid = sent
    with sock:
        sock.settimeout(timeout)
        try:
            status = warm.child_status(sock)
        except TimeoutError:
            # killed at once, as subprocess.run kills a fresh job past its limit: a job inside a
            # long C call would see a polite SIGINT only when it returns, still using a core
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            sock.settimeout(None)
            warm.child_status(sock)  # the server has reaped it
            return None
    if status is None:
        raise RuntimeError("the warm interpreter stopped while running the job")
    return status


def run_job(job: str, spec: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    """Run one job in a fresh interpreter (or forked from the warm one, :func:`warm_jobs`); its
    result with the wall seconds seen from outside (interpreter start or fork included, as
    ``startup``). A job past ``timeout`` is killed and reported with ``timed_out``."""
    with tempfile.TemporaryDirectory(prefix="ocdec-bench-") as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps({**spec, "job": job}, default=plain))
        cmd = [sys.executable, str(BENCH_DIR), "_job", str(spec_path), str(result_path)]
        w0 = time.perf_counter()
        if _warm_socket is not None:  # runpy runs the folder's __main__.py by its file
            status = _forked([cmd[0], str(BENCH_DIR / "__main__.py"), *cmd[2:]],
                             Path(tmp) / "output", timeout)
            stderr = (Path(tmp) / "output").read_text(errors="replace")
        else:
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                status = None
            else:
                status, stderr = proc.returncode, proc.stderr
        wall = time.perf_counter() - w0
        if status is None:
            return {"job": job, "timed_out": True, "wall_s": wall, "limit_s": timeout}
        if status != 0 or not result_path.exists():
            raise RuntimeError(f"benchmark job {job} failed (exit {status}):\n"
                               f"{stderr[-3000:]}")
        result = json.loads(result_path.read_text())
    result["wall_s"] = wall
    result["forked"] = _warm_socket is not None
    # interpreter start (or fork) and module imports: everything outside the job's own stages
    result["stages"].setdefault("import", {"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0.0})
    result["stages"]["import"]["wall_s"] += max(wall - result["inner_wall_s"], 0.0)
    return result


def pipeline_run(spec: dict[str, Any], jobs: Sequence[str], timeout: float | None
                 ) -> dict[str, Any]:
    """The jobs one after another, as the workflow runs one region's rules."""
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
    """Wall, CPU, stars per second and peak memory of ``jobs`` end to end ({} if one timed out)."""
    if any(results.get(j) is None or results[j].get("timed_out") for j in jobs):
        return {}
    wall = sum(results[j]["wall_s"] for j in jobs)
    cpu = sum(results[j]["cpu_s"] for j in jobs)
    return {"wall_s": wall, "cpu_s": cpu, "stars_per_s": n_rows / wall if wall > 0 else None,
            "peak_rss_mb": max(results[j]["maxrss_mb"] for j in jobs),
            "jobs": {j: {"wall_s": results[j]["wall_s"], "cpu_s": results[j]["cpu_s"],
                         "peak_rss_mb": results[j]["maxrss_mb"]} for j in jobs}}


def pipeline_blocks(results: dict[str, Any], pipelines: Sequence[str], n_rows: int
                    ) -> dict[str, Any]:
    """``{pipeline: {"stages": ..., "total": ...}}`` for each of ``pipelines``."""
    return {p: {"stages": canonical(results, PIPELINES[p]),
                "total": totals(results, PIPELINES[p], n_rows)} for p in pipelines}


# ----------------------------------------------------------------------------- fields and scores


def load_region(regions_path: Path, region_id: str) -> dict[str, Any]:
    """The region's row of the regions table, as plain values (NaN as None)."""
    from ocdec.data.catalogue import read_regions

    regions = read_regions(regions_path)
    match = regions[regions["id"] == region_id]
    if match.empty:
        raise SystemExit(f"benchmark: region {region_id!r} is not in {regions_path}")
    row = match.iloc[0].to_dict()
    return {k: (None if isinstance(v, float) and math.isnan(v) else plain(v))
            for k, v in row.items()}


def simulated_field(workdir: Path, region: dict[str, Any], n_rows: int, n_members: int,
                    seed: int, release: str) -> Path:
    """A cached simulated field of exactly ``n_rows`` rows (``n_members`` of them members), made
    by the simulate rule's entry point."""
    path = workdir / "fields" / f"{region['id']}_{release}_{n_rows}_{n_members}_{seed}.parquet"
    if not path.exists():
        # imported only to simulate: a cached field needs neither astropy nor PyGaia
        from ocdec.data.simulate import simulate_region

        members = min(n_members, n_rows // 2)
        t0 = time.perf_counter()
        simulate_region(path, region, {"seed": seed, "n_members": members,
                                       "n_field": n_rows - members, "release": release})
        log.info("simulated %d rows in %.1f s -> %s", n_rows, time.perf_counter() - t0, path)
    return path


def write_reference(path: Path, region: dict[str, Any]) -> Path:
    """The region's reference values for the plots and compare jobs (the workflow's
    resources/reference/{region}.json): the catalogue priors of config/regions.tsv."""
    from ocdec.results.reference import write_references

    row = {"source": "catalogue", "pmra": region.get("pmra_prior"),
           "pmdec": region.get("pmdec_prior"), "parallax": region.get("parallax_prior")}
    write_references(path, str(region["id"]), str(region.get("name") or region["id"]), [row])
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
