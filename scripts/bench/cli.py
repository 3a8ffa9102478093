"""The benchmark's command line, its modes ``region`` and ``scaling`` and the dispatch to the
others (``workflow``, ``catalogue``, ``flops``; ``report``: see :func:`bench.report.report_main`).
The package docstring says what each measures."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bench
from bench import (
    DEFAULT_JOBS,
    FULL_JOBS,
    GOAL_CATALOGUE_S,
    GOAL_REGION_RSS_MB,
    GOAL_REGION_S,
    GOAL_STARS_PER_S,
    PIPELINES,
    REGION_ROWS,
    REPO,
    THESIS_FIGURES,
    THESIS_MIN_STARS,
)
from bench.fits import catalogue_counts, finish_scaling, power_law, predict
from bench.flops import FLOPS_ROWS, MATMUL_REPEATS, MATMUL_SIZES, PROBE_BATCHES
from bench.jobs import (
    load_region,
    members_f1,
    pipeline_blocks,
    pipeline_run,
    run_job,
    simulated_field,
    warm_jobs,
    write_reference,
)
from bench.report import emit, report_main
from bench.workflow import RUNS as WORKFLOW_RUNS
from bench.workflow import SIZES as WORKFLOW_SIZES
from bench.workflow import catalogue_rerun, run_workflow

log = logging.getLogger("benchmark")

DEFAULT_REGIONS = REPO / "config" / "regions.tsv"
HYADES = "Melotte_25"
HYADES_MEMBERS = 927
SCALING_SIZES = (10_000, 30_000, 100_000, 300_000, 1_000_000)
QUICK_SIZES = (10_000, 30_000, 100_000)
HDBSCAN_SIZES = (10_000, 20_000, 40_000)


# ----------------------------------------------------------------------------- the modes


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
    n_usable = (results["quality"].get("info") or {}).get("n_usable")  # None: it timed out
    report: dict[str, Any] = {
        "mode": "region", "region": args.region, "n_rows": args.rows, "n_usable": n_usable,
        "n_members_true": args.n_members, "n_seeds": args.n_seeds, "jobs": results,
        **pipeline_blocks(results, ["default", "full"] if args.full else ["default"], args.rows),
        "loadavg": {"before": list(load0), "after": list(os.getloadavg())},
    }
    if "default" in results and not results["default"].get("timed_out"):
        report["f1_default"] = members_f1(out)
    total = report["default"]["total"]
    if total:
        report["goals"] = {"region_le_60s": total["wall_s"] <= GOAL_REGION_S,
                           "region_le_4GB": total["peak_rss_mb"] <= GOAL_REGION_RSS_MB}
    if not args.no_hdbscan and n_usable is not None:
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
            "n_rows": n, "n_usable": (results["quality"].get("info") or {}).get("n_usable"),
            "jobs": results,
            "loadavg": {"before": list(load0), "after": list(os.getloadavg())}}
        entry.update(pipeline_blocks(results, reported, n))
        if results.get("default") and not results["default"].get("timed_out"):
            entry["f1_default"] = members_f1(out)
        fields.append(entry)
    counts = catalogue_counts(args.regions, "dr2", THESIS_MIN_STARS)
    report = {"mode": "scaling", "region": args.region, "sizes": list(args.sizes),
              "pipeline": pipeline, "n_seeds": args.n_seeds, "fields": fields,
              "catalogue": {k: v for k, v in counts.items() if k != "rows"}}
    report["catalogue"]["rows_by_region"] = {k: round(v) for k, v in counts["rows"].items()}
    return finish_scaling(report)


# ----------------------------------------------------------------------------- command line


def _positive_int(text: str) -> int:
    values = _ints(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"expected one positive integer, got {text!r}")
    return values[0]


def _ints(text: str) -> list[int]:
    try:
        values = [int(float(v)) for v in text.split(",") if v.strip()]
    except (ValueError, OverflowError) as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from err
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _runs(text: str) -> list[tuple[int, int]]:
    """REGIONSxFIELD_STARS,... (bench workflow --runs): positive whole numbers, each run once."""
    runs = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        try:
            values = [float(v) for v in item.lower().split("x")]
            if len(values) != 2 or not all(v.is_integer() for v in values):
                raise ValueError(item)
            regions, stars = (int(v) for v in values)
        except (ValueError, OverflowError) as err:
            raise argparse.ArgumentTypeError(
                f"expected REGIONSxFIELD_STARS in whole numbers (e.g. 4x2000), got {item!r}"
            ) from err
        if regions < 1 or stars < 1:
            raise argparse.ArgumentTypeError(f"expected positive counts, got {item!r}")
        if (regions, stars) in runs:
            raise argparse.ArgumentTypeError(f"{item!r} given twice (each run once)")
        runs.append((regions, stars))
    if not runs:
        raise argparse.ArgumentTypeError("expected at least one REGIONSxFIELD_STARS")
    return runs


def read_report(path: Path, what: str, rerun: bool = False) -> dict[str, Any]:
    """A catalogue run's JSON report (with its rerun where ``rerun``), or a one-line error
    naming the file."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"{what}: cannot read {path}: {err}") from err
    if not isinstance(report, dict) or report.get("mode") != "catalogue":
        raise SystemExit(f"{what}: {path} is not a bench catalogue report")
    if rerun:
        catalogue_rerun(report, f"{what}: {path}")
    return report


def workflow_runs(args: argparse.Namespace) -> list[tuple[int, int]]:
    """bench workflow's runs: --runs, or --n-regions at each of --sizes, or the default."""
    if args.runs is not None and (args.sizes is not None or args.n_regions is not None):
        raise SystemExit("bench workflow: --runs, or --sizes with --n-regions, not both")
    if args.sizes is not None or args.n_regions is not None:
        runs = [(args.n_regions or 8, n) for n in dict.fromkeys(args.sizes or WORKFLOW_SIZES)]
    else:
        runs = list(args.runs or WORKFLOW_RUNS)
    if args.check is not None and len({stars for _, stars in runs}) < 2:
        raise SystemExit("bench workflow: --check needs a model, fitted to runs of two field "
                         "sizes or more")
    return runs


def _epochs(text: str) -> list[int]:
    values = [int(v) for v in text.split(",")]
    if len(values) != 2 or min(values) < 0:
        raise argparse.ArgumentTypeError("--dec-epochs takes PRETRAIN,CLUSTER, e.g. 2,2")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=bench.__doc__.split("\n\n")[0],
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
    warm_help = ("fork each job from a warm interpreter that imported the libraries once, as a "
                 "local workflow run does (default: each job a fresh Python, as a cluster job)")
    region.add_argument("--warm", action="store_true", help=warm_help)
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
    scaling.add_argument("--warm", action="store_true", help=warm_help)

    flow = sub.add_parser("workflow", parents=[common],
                          help="real Snakemake runs (jobs side by side) of small and large "
                               "regions: the cost per run, per region and per star, and the "
                               "catalogue projected from them")
    default_runs = ",".join(f"{r}x{n}" for r, n in WORKFLOW_RUNS)
    flow.add_argument("--runs", type=_runs, default=None,
                      help=f"the runs, REGIONSxFIELD_STARS each, comma-separated (default "
                           f"{default_runs})")
    flow.add_argument("--n-regions", type=_positive_int, default=None,
                      help="with --sizes: regions per run (default 8)")
    flow.add_argument("--sizes", type=_ints, default=None,
                      help="field stars per region, one run each at --n-regions regions (instead "
                           "of --runs; the cost per run is then not told from a region's)")
    flow.add_argument("--cores", type=int, default=2)
    flow.add_argument("--methods", default="default",
                      help="comma-separated methods (default: default)")
    flow.add_argument("--configfile", type=Path, action="append", default=[],
                      help="a config file laid over each run's (repeatable), e.g. one setting "
                           "characterize.default.groups.n_resamples to measure it")
    flow.add_argument("--check", type=Path, default=None,
                      help="a bench catalogue --rerun JSON report: the model's projection of "
                           "that run beside its measured rerun")

    cat = sub.add_parser("catalogue", parents=[common],
                         help="the simulated thesis catalogue (regions past the 40,000-star gate "
                              "at their model star counts) through one real Snakemake run")
    cat.add_argument("--max-rows", type=float, default=None,
                     help="only regions of at most this many model rows (default: all)")
    cat.add_argument("--min-rows", type=int, default=THESIS_MIN_STARS,
                     help="the gate (default 40,000, the thesis's)")
    cat.add_argument("--cores", type=int, default=2)
    cat.add_argument("--methods", default="default",
                     help="comma-separated methods (default: default; default,thesis for the "
                          "thesis comparison)")
    cat.add_argument("--no-warm", action="store_true",
                     help="warm_interpreter: false (every job a fresh Python, for before/after)")
    cat.add_argument("--mem-mb", type=_positive_int, default=None,
                     help="Snakemake's --resources mem_mb: memory the jobs side by side may ask "
                          "for in all (default: no limit); size it to the machine for regions "
                          "of millions of stars")
    cat.add_argument("--rerun", action="store_true",
                     help="then rerun everything after the simulation, timed apart (what the "
                          "catalogue costs downloaded; bench workflow --check reads it)")
    cat.add_argument("--model", type=Path, default=None,
                     help="an earlier catalogue run's JSON report: its wall-time model predicts "
                          "this run's, and the report sets the prediction beside the measurement")

    flops = sub.add_parser("flops", parents=[common],
                           help="the FLOP rate thesis mode's DEC achieves against the machine's "
                                "matrix-multiply rate and nominal peak")
    flops.add_argument("--rows", type=int, default=FLOPS_ROWS,
                       help=f"rows of the simulated field (default {FLOPS_ROWS:,})")
    flops.add_argument("--matmul-sizes", type=_ints, default=list(MATMUL_SIZES),
                       help="sides of the square float32 matrices multiplied (default "
                            f"{','.join(map(str, MATMUL_SIZES))})")
    flops.add_argument("--repeats", type=int, default=MATMUL_REPEATS,
                       help="timed repeats of each multiply and warm epoch "
                            f"(default {MATMUL_REPEATS})")
    flops.add_argument("--probe-batches", type=_ints, default=list(PROBE_BATCHES),
                       help="pretraining batch sizes timed besides the thesis's, to separate a "
                            "step's fixed cost from its cost per sample (default "
                            f"{','.join(map(str, PROBE_BATCHES))})")
    flops.add_argument("--no-probe", action="store_true", help="no batch-size probe")
    return parser


def methods_arg(text: str, mode: str, required: Sequence[str] = ()) -> tuple[str, ...]:
    """A mode's ``--methods``: comma-separated registered names, ``required`` among them (the
    catalogue mode's scores against the truth and wall-time model read the default method's
    products); a one-line error otherwise."""
    from ocdec.methods.registry import method_names

    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in methods if m not in method_names()]
    missing = [m for m in required if m not in methods]
    if unknown or missing:
        raise SystemExit(f"bench {mode}: --methods {text!r}: "
                         + (f"unknown {', '.join(unknown)} (known: {', '.join(method_names())})"
                            if unknown else f"{', '.join(missing)} must be one of them"))
    return methods


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        return report_main(argv[1:])
    if argv[:1] == ["parameters"]:
        from bench.parameters import parameters_main

        return parameters_main(argv[1:])
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
        if args.mode == "flops":
            from bench.flops import run_flops

            # in-process (its timers wrap DEC's programs), no compilation cache: the first epoch
            # of each phase shows the compilation, the warm figures leave it out
            info.pop("jax_cache")
            if args.no_probe:
                args.probe_batches = []
            report = run_flops(args)
        elif args.mode == "catalogue":
            from bench.catalogue import run_catalogue

            previous = None
            if args.model is not None:
                previous = read_report(args.model, "bench catalogue --model")
            report = run_catalogue(args.workdir / "catalogue", args.regions, args.cores,
                                   args.min_rows, args.max_rows, args.release, previous,
                                   methods_arg(args.methods, "catalogue", ("default",)),
                                   warm=not args.no_warm, mem_mb=args.mem_mb,
                                   rerun=args.rerun)
        elif args.mode == "workflow":
            catalogue = None
            if args.check is not None:
                catalogue = read_report(args.check, "bench workflow --check", rerun=True)
                if catalogue.get("cores") != args.cores:
                    raise SystemExit(f"bench workflow --check: {args.check} ran on "
                                     f"{catalogue.get('cores')} cores, these runs on {args.cores}")
            for path in args.configfile:
                if not path.is_file():
                    raise SystemExit(f"bench workflow --configfile: {path}: no such file")
            report = run_workflow(args.workdir, workflow_runs(args), args.cores,
                                  methods_arg(args.methods, "workflow"), args.regions, catalogue,
                                  args.configfile)
        else:
            with contextlib.ExitStack() as stack:
                if args.warm:  # region and scaling only
                    info["warm"] = stack.enter_context(warm_jobs(args.workdir / "warm.log"))
                report = run_region(args) if args.mode == "region" else run_scaling(args)
    info["loadavg_end"] = list(os.getloadavg())
    report = {"machine": info, **report,
              "goals_stated": {"catalogue_s": GOAL_CATALOGUE_S, "stars_per_s": GOAL_STARS_PER_S,
                               "region_s": GOAL_REGION_S, "region_rss_mb": GOAL_REGION_RSS_MB},
              "thesis": THESIS_FIGURES}
    return emit(report, args.json, args.markdown)
