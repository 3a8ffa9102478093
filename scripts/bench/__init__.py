"""Throughput benchmark of ocdec (issue 3 "Benchmark", issue 5 item 4).

Five modes (and ``parameters``: ``fit_parameters`` timed on one real cluster's members,
:mod:`bench.parameters`):

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
``workflow``
    real Snakemake runs of the repository's workflow on simulated regions, jobs side by side as a
    catalogue runs them (:mod:`bench.workflow`): wall time from start to end, each rule's job
    seconds and memory, the fixed cost per region, and the catalogue projected from them.
``catalogue``
    the simulated counterpart of the thesis catalogue run end to end (:mod:`bench.catalogue`):
    every region past the 40,000-star gate (``--max-rows`` for a subset that fits), at its model
    star count, through one Snakemake run; wall time, rules, memory and disk.
``flops``
    thesis mode's DEC on a simulated field (``--rows``, every star) in this process
    (:mod:`bench.flops`): the FLOPs XLA counts for its compiled training and predict programs
    (checked against an analytic dense-layer count) over the seconds they took, against the
    machine's measured float32 matrix-multiply rate (numpy and JAX) and its nominal peak, and
    what bounds it (time per step against FLOPs per step, the step's fixed cost).

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

Every measured job runs in a fresh Python process, as a workflow rule on a cluster node does, so
its peak memory (``VmHWM`` on Linux, which starts afresh at exec, plus a sampled per-stage peak)
is that job's alone, not the simulation's nor the benchmark's, and its time includes the
interpreter start and imports that each such job pays.
With ``--warm`` (``region``, ``scaling``) each job is forked instead from a warm interpreter that
imported the libraries once, as a local workflow run forks its rule jobs (:mod:`ocdec.warm`): its
start-up is then the fork, and the report gives the imports' seconds, paid once per run, apart;
its peak memory counts the interpreter's pages it maps, as a fresh job counts its imports.
Simulated fields are cached under ``--workdir``. DEC jobs use JAX's persistent compilation cache
as the workflow does (``--jax-cache``, by default ``WORKDIR/jax-cache``): a run over an empty cache
shows what the first region of a catalogue pays, a second run with the same workdir what the later
ones pay (the report says how many cache entries there were at the start).

Every job calls the library entry point of its workflow rule (``quality_region``,
``characterize_region``, ``region_plots``, ``comparison_table``); the benchmark only adds timers
around the functions those call (reading, the method, writing).

Run ``python scripts/bench region --json bench.json --markdown bench.md`` or
``python scripts/bench scaling --quick`` (``python -m bench ...`` from ``scripts/`` is the same);
``python scripts/bench report A.json [B.json ...] --markdown out.md`` redoes the fits and
projections of saved scaling runs (merging their fields, e.g. a full-pipeline run to 300,000 rows
and a default-only run at 1,000,000). This is a tool, not a test: nothing here asserts a time;
tests/test_benchmark.py only checks that it runs and what it writes.

Modules: :mod:`bench.measure` (clocks), :mod:`bench.jobs` (the jobs, each in its own process),
:mod:`bench.fits` (scaling fits, catalogue projection), :mod:`bench.report` (text and markdown),
:mod:`bench.cli` (the command line and the two modes).
"""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parents[1]

# Goals (issue 5 item 4, issue 3 benchmark) and the thesis's figures for comparison.
GOAL_CATALOGUE_S = 3600.0
GOAL_STARS_PER_S = 21_000.0
GOAL_REGION_S = 60.0
GOAL_REGION_RSS_MB = 4096.0
REGION_ROWS = 434_000  # the Hyades region's DR2 cone (issue 3)
THESIS_STARS = 75_000_000
THESIS_REGIONS = 169
THESIS_MIN_STARS = 40_000
THESIS_FIGURES = ("a few minutes per cluster, about an hour for the 434,000-star Hyades region, "
                  "on a 12-core Xeon with two GPUs (thesis)")

# Canonical stages (issue 5); bench.jobs.STAGE_MAP says which job stages make them up.
CANONICAL = ("startup", "read", "quality", "features", "kmeans", "dec", "plots", "write", "other")
DEFAULT_JOBS = ("quality", "default")
CATALOGUE_JOBS = ("quality", "default", "plots", "compare")
FULL_JOBS = ("quality", "default", "thesis", "plots", "compare")
PIPELINES: dict[str, tuple[str, ...]] = {"default": DEFAULT_JOBS, "catalogue": CATALOGUE_JOBS,
                                         "full": FULL_JOBS}
