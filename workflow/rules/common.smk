# Helpers shared by the rules: the regions table, file names per source and method, resource
# requests. Rules refer to these named functions (no lambdas inside rules).

import math
import os
import re
import sys
from pathlib import Path

from jsonschema.exceptions import ValidationError
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The library lives in scripts/ (installed with pip, but usable from a plain checkout too), and
# this checkout's comes first, here and (PYTHONPATH) in every job's process, whose script
# Snakemake writes under .snakemake/scripts and runs with scripts/ appended to its path: the
# Snakefile, the warm interpreter and every job run the same ocdec, never another one installed
# in the environment (a release, another clone's editable install). (Snakemake's lint reads
# the word for a workflow step followed by a name, even in a comment, as a step defined here.)
SCRIPTS = str(Path(str(workflow.current_basedir)).parents[1] / "scripts")
sys.path.insert(0, SCRIPTS)

from ocdec import products
from ocdec.checkout import put_first_on_pythonpath
from ocdec.data.catalogue import read_regions
from ocdec.errors import OcdecError
from ocdec.methods.registry import REGISTRY

put_first_on_pythonpath(SCRIPTS)


def stop(message):
    """End the run as Snakemake reads the workflow, on a mistake in the config or in the files it
    names, with the one-line message alone (a WorkflowError raised here is printed with the lines
    of this file it passed through) and exit status 1."""
    sys.exit(f"Error: {message}")


# --- regions ---------------------------------------------------------------------------------


def regions_schema_error(table, err):
    """One line for a row the regions schema refuses (snakemake.utils.validate names the row and
    carries jsonschema's ValidationError as its context): line, id, column and problem.
    """
    error = err.__context__
    if not isinstance(error, ValidationError):
        return " ".join(str(err).split())
    row = re.search(r"row (\d+)", str(err))
    where = ""
    if row and int(row.group(1)) < len(table):
        index = int(row.group(1))
        where = f"line {index + 2} ({table['id'].iloc[index]}): "
    column = f"column {error.absolute_path[0]!r}: " if error.absolute_path else ""
    return f"{where}{column}{' '.join(error.message.split())}"


def read_regions_table(path):
    """The regions table (samples-sheet pattern): checked by ocdec (one-line errors naming the
    line, id and column), validated by its schema, indexed by id."""
    try:
        table = read_regions(path)
    except OcdecError as err:
        stop(f"{err} (config key 'regions')")
    try:
        validate(table, schema="../schemas/regions.schema.yaml")
    except WorkflowError as err:
        stop(f"{path}: {regions_schema_error(table, err)} (config key 'regions')")
    return table.set_index("id", drop=False)


regions = read_regions_table(config["regions"])
REGIONS = regions["id"].tolist()


# Region ids are slugs; constraining the wildcard keeps paths such as results/summary.tsv from
# matching per-region patterns.
wildcard_constraints:
    region="[A-Za-z0-9_.+-]+",


# --- sources and methods ---------------------------------------------------------------------

SOURCE = config["source"]
METHODS = list(config["characterize"]["methods"])


def raw_stars_pattern():
    """The star file of the configured source (see the contract's per-region layout)."""
    if SOURCE == "gaia":
        return f"resources/gaia/{config['gaia']['release']}/{{region}}.parquet"
    return f"resources/{SOURCE}/{{region}}.parquet"


def local_input_file(wildcards):
    """The user's file for a region (source local), from the path template in config."""
    return config["local"]["path"].format(region=wildcards.region)


def table_formats():
    """Formats the members tables and the summary are also written in (tables.formats)."""
    return list(config.get("tables", {}).get("formats", []))


def method_outputs(method):
    """characterize outputs of one method: members, summary, history and its own tables
    (names from ocdec.products and the method registry), and members in tables.formats.
    """
    files = products.method_files(REGISTRY[method].tables)
    outputs = {key: products.method_file(method, name) for key, name in files.items()}
    for fmt in table_formats():
        if fmt != "parquet":
            outputs[f"members_{fmt}"] = products.table_file(outputs["members"], fmt)
    return outputs


def region_stars():
    """The quality gate's outputs, every method's input."""
    return {
        "stars": products.region_file(products.STARS),
        "status": products.region_file(products.STATUS),
    }


# Physical parameters are fitted to the members of one method (the default method unless
# configured).
PARAMETERS_METHOD = config.get("parameters", {}).get("method") or "default"
if PARAMETERS_METHOD not in METHODS:
    stop(
        f"parameters.method {PARAMETERS_METHOD!r} is not among characterize.methods "
        f"({', '.join(METHODS)})"
    )


def parameters_inputs():
    """The parameters rule's inputs: its method's members and summary of the region."""
    return {
        "members": products.method_file(PARAMETERS_METHOD, products.MEMBERS),
        "summary": products.method_file(PARAMETERS_METHOD, products.SUMMARY),
    }


def method_summaries(wildcards):
    return {
        method: products.method_file(method, products.SUMMARY, wildcards.region)
        for method in METHODS
    }


# --- settings handed to the library ----------------------------------------------------------


def _plain(value):
    return None if isinstance(value, float) and math.isnan(value) else value


# The region rows as plain dicts (NaN as None), built once: rules ask for them per job.
REGION_INFO = {
    row["id"]: {key: _plain(value) for key, value in row.items()}
    for row in regions.to_dict("records")
}


def region_settings(wildcards):
    """The region's row as a plain dict (id, name, centre, radius, priors)."""
    return REGION_INFO[wildcards.region]


def reference_inputs(wildcards):
    """The offline reference table (when config names a file) and published cluster tables."""
    inputs = {"cluster_tables": list(config["reference"].get("cluster_tables", []))}
    table = config["reference"].get("table")
    if isinstance(table, str):
        inputs["table"] = table
    return inputs


def known_tables():
    """Published cluster tables that name each cone's groups (groups.tsv known_as)."""
    return list(config["reference"].get("cluster_tables", []))


def simbad_cache_path(wildcards):
    # Kept apart from the rule's output, which Snakemake removes before a rerun.
    return f"resources/reference/simbad/{wildcards.region}.json"


# --- the input files the config names --------------------------------------------------------

# Snakemake reruns nothing for an input that has gone missing while the outputs made from it
# remain ("Nothing to be done"): a config pointed at a wrong path would keep the old results and
# exit 0. So the files the user names are checked as the run starts (the regions table above);
# not the files the workflow makes, and not in a cluster job, whose run has checked them.
MISSING_SHOWN = 3


def configured_inputs():
    """The files the config names that the workflow reads, by config key: each region's file of
    the local source, the offline reference table (a path) and the published cluster tables.
    """
    inputs = {}
    if SOURCE == "local":
        pattern = config["local"]["path"]
        inputs[f"'local.path' ({pattern})"] = [
            pattern.format(region=region) for region in REGIONS
        ]
    table = config["reference"].get("table")
    if isinstance(table, str):
        inputs["'reference.table'"] = [table]
    inputs["'reference.cluster_tables'"] = known_tables()
    return inputs


def missing_inputs_message(inputs):
    """None where every file exists, else one line naming each config key with missing files
    and those files (the first few, then a count)."""
    problems = []
    for key, paths in inputs.items():
        missing = [path for path in paths if not os.path.exists(path)]
        if missing:
            shown = ", ".join(missing[:MISSING_SHOWN])
            if len(missing) > MISSING_SHOWN:
                shown += f" and {len(missing) - MISSING_SHOWN} more"
            problems.append(
                f"config key {key}: {len(missing)} of {len(paths)} file(s) missing: {shown}"
            )
    return "; ".join(problems) or None


# Snakemake's modes that read the workflow but run no job (a report of finished results, an
# unlock, a clean-up, a summary, a graph): an input moved away since must not stop them. Told
# from the command line, as the workflow is read before Snakemake settles its mode.
NO_JOB_OPTIONS = {
    "--report",
    "--unlock",
    "--delete-all-output",
    "--delete-temp-output",
    "--summary",
    "-S",
    "--detailed-summary",
    "-D",
    "--list-rules",
    "-l",
    "--list-target-rules",
    "--lt",
    "--lint",
    "--cleanup-metadata",
    "--cm",
    "--list-changes",
    "--lc",
    "--dag",
    "--rulegraph",
    "--filegraph",
    "--d3dag",
    "--containerize",
    "--export-cwl",
    "--archive",
    "--list-input-changes",
    "--li",
    "--list-params-changes",
    "--lp",
    "--list-untracked",
    "--lu",
    "--cleanup-shadow",
    "--generate-unit-tests",
    "--print-compilation",
    "--list-conda-envs",
    "--conda-create-envs-only",
    "--conda-cleanup-envs",
}


def runs_jobs(argv):
    """Whether the command line ``argv`` asks Snakemake to run (or dry-run) jobs."""
    return not any(arg.split("=", 1)[0] in NO_JOB_OPTIONS for arg in argv[1:])


if workflow.is_main_process and runs_jobs(sys.argv):
    _missing = missing_inputs_message(configured_inputs())
    if _missing:
        stop(_missing)


# --- resources -------------------------------------------------------------------------------

# Gaia DR3 source density (stars per square degree) as a function of Galactic latitude: a rough
# fit (poles ~4,000, plane ~120,000) used only to size memory and runtime requests where the regions
# table gives no expected star count. The Hyades cone (r = 4.1 deg, b = -22 deg) comes out at
# ~0.5 million, against ~434,000 observed.
DENSITY_POLE = 4_000.0
DENSITY_PLANE = 120_000.0
DENSITY_SCALE_DEG = 7.0
# North Galactic pole (ICRS), for the latitude of a region's centre.
NGP_RA, NGP_DEC = math.radians(192.85948), math.radians(27.12825)


def galactic_latitude(ra_deg, dec_deg):
    ra, dec = math.radians(ra_deg), math.radians(dec_deg)
    sin_b = math.sin(dec) * math.sin(NGP_DEC) + math.cos(dec) * math.cos(
        NGP_DEC
    ) * math.cos(ra - NGP_RA)
    return math.degrees(math.asin(max(-1.0, min(1.0, sin_b))))


def cone_star_estimate(row):
    radius = float(row["radius_deg"])
    area = (
        2.0 * math.pi * (1.0 - math.cos(math.radians(radius))) * (180.0 / math.pi) ** 2
    )
    b = galactic_latitude(float(row["ra"]), float(row["dec"]))
    density = DENSITY_POLE + DENSITY_PLANE * math.exp(-abs(b) / DENSITY_SCALE_DEG)
    return area * density


def expected_stars(region):
    """Stars expected in a region: the table's `expected_stars` where given, else from the cone
    area; a simulated field is scaled and capped as configured."""
    row = REGION_INFO[region]
    given = row.get("expected_stars")
    n = float(given) if given is not None else cone_star_estimate(row)
    if SOURCE == "simulate":
        simulate = config["simulate"]
        n *= float(simulate.get("field_density_scale") or 1.0)
        for cap in (simulate.get("n_field"), simulate.get("max_field_stars")):
            if cap is not None:
                n = min(n, float(cap))
    return int(n)


EXPECTED_STARS = {region: expected_stars(region) for region in REGIONS}


# Per rule: base memory (MB), memory per 1,000 stars (MB), base runtime (min), runtime per
# 100,000 stars (min); each retry (attempt) multiplies the request. Calibrated on the offline
# default (2 shared cores): the 362,000-star simulated Hyades cone peaked at 0.9 GB and ~3 min in
# thesis mode, 0.6 GB and ~1 min in the default method, 0.35 GB for its figures; requests keep
# about a factor of three in hand for real cones (more columns, denser fields).
RESOURCE_MODEL = {
    "download": (1000, 2.0, 30, 10.0),
    "local": (1000, 2.0, 10, 1.0),
    "simulate": (1000, 1.5, 10, 1.0),
    "quality": (1000, 1.5, 10, 1.0),
    "plots": (1000, 2.0, 10, 2.0),
    # the members table holds every star of the cone; the fit itself is ~10 s and ~0.5 GB
    "parameters": (1500, 1.0, 10, 1.0),
}
# Each method declares its own (ocdec.methods.registry.MethodSpec: mem_mb, runtime); HDBSCAN's
# runtime grows about as n^2.1.
RUNTIME_POWER = {}
for _name, _spec in REGISTRY.items():
    RESOURCE_MODEL[f"characterize_{_name}"] = (*_spec.mem_mb, *_spec.runtime[:2])
    RUNTIME_POWER[f"characterize_{_name}"] = _spec.runtime[2]


# Snakemake's priority among the jobs that are ready: a region's next stage first (parameters,
# then characterization, quality, stars), so each region goes through its chain as soon as it
# can and the short figure, comparison and reference jobs fill the gaps; within a stage, the
# regions expected to hold the most stars first, so that the run does not end on one large
# region alone. Depth first, the parameters' isochrone fit (JAX, on every core) runs beside
# another region's characterization rather than beside another fit, whose threads would
# contend with its own (breadth first, the regions' fits all ran at the end, two at a time). The
# stages are 100 times apart because the default (ilp) scheduler maximises the sum of the
# priorities it starts: dozens of lower-stage jobs must not outweigh one job of the stage above.
PRIORITY = {"parameters": 1_000_000, "characterize": 10_000, "quality": 100, "stars": 1}
_MOST_STARS = max(EXPECTED_STARS.values(), default=0) + 1
# A priority function (per region) needs a Snakemake that expands it; older ones take numbers.
# (Imported here: tests/test_workflow.py runs this resources section on its own.)
from snakemake.rules import Rule as _SnakemakeRule

_PRIORITY_FUNCTIONS = hasattr(_SnakemakeRule, "expand_priority")


def priority_for(stage):
    """The stage's PRIORITY, raised by up to half for the regions expected to hold most stars."""
    if not _PRIORITY_FUNCTIONS:
        return PRIORITY[stage]

    def priority(wildcards):
        share = EXPECTED_STARS.get(wildcards.region, 0) / _MOST_STARS
        return PRIORITY[stage] * (1.0 + 0.5 * share)

    return priority


# minutes: no runtime request exceeds it (null: none is capped)
MAX_RUNTIME_MIN = config.get("max_runtime_min", 2880)


def input_rows(input):
    """Rows of the region's star table among a job's named inputs (``stars``, ``members``, or a
    method's ``<method>_members``), read from the Parquet footer, not the data; None where there
    is none or it is not written yet (a dry run before its producer)."""
    if input is None:
        return None
    import os

    import pyarrow.parquet as pq

    for name, path in input.items():
        if name in ("stars", "members") or name.endswith("_members"):
            if (
                isinstance(path, str)
                and path.endswith(".parquet")
                and os.path.isfile(path)
            ):
                try:
                    return pq.read_metadata(path).num_rows
                except (OSError, ValueError):
                    return None
    return None


def _scaled(rule_name, wildcards, attempt, index, input=None):
    base, per = RESOURCE_MODEL[rule_name][index : index + 2]
    # the stars a job reads once they exist (Snakemake evaluates a job's resources again as it
    # schedules it); the sky-density estimate before: in the dense plane it is up to four times
    # short (a simulated cone of 18.2 M rows in the plane was estimated at 4.2 M). A method reads
    # the stars left after the quality cuts (about 55 % of a deep cone's rows): the default
    # method's 3 MB per 1,000 still keeps three times its measured 0.85 KB a star in hand.
    n = input_rows(input)
    if n is None:
        n = EXPECTED_STARS[wildcards.region]
    if index == 0:
        return int(math.ceil((base + per * n / 1_000) * attempt))
    power = RUNTIME_POWER.get(rule_name, 1.0)
    minutes = int(math.ceil((base + per * (n / 100_000) ** power) * attempt))
    # a request beyond a scheduler's longest allowed is refused outright (HDBSCAN's n^2.1 asks
    # for weeks at 10 M stars): capped, the job at least runs for as long as a job may
    return minutes if MAX_RUNTIME_MIN is None else min(minutes, MAX_RUNTIME_MIN)


def mem_mb_for(rule_name):
    """A resource callable: memory in MB for this rule and region (the stars it reads where they
    exist, else the region's estimate), growing with attempt."""

    def mem_mb(wildcards, attempt, input=None):
        return _scaled(rule_name, wildcards, attempt, 0, input)

    mem_mb.__name__ = f"mem_mb_{rule_name}"
    return mem_mb


def runtime_for(rule_name):
    """A resource callable: runtime in minutes for this rule and region (sized as
    :func:`mem_mb_for`), growing with attempt."""

    def runtime(wildcards, attempt, input=None):
        return _scaled(rule_name, wildcards, attempt, 2, input)

    runtime.__name__ = f"runtime_{rule_name}"
    return runtime


def method_config(method):
    """The characterize settings one method uses (its own section and the shared keys it
    declares), so that changing another method's settings does not rerun it."""
    section = config["characterize"]
    values = {
        key: section[key] for key in REGISTRY[method].shared_settings if key in section
    }
    values[method] = dict(section.get(method) or {})
    return values


def parameters_config():
    """The parameters section (ocdec.physics.region reads it), so other sections' changes do not
    rerun the fits."""
    return dict(config.get("parameters") or {})


def gpu_request(method):
    """GPUs for DEC training: one when the config asks for it and the method runs JAX."""
    return (
        1
        if config["characterize"].get("gpu", False) and REGISTRY[method].uses_jax
        else 0
    )


def characterize_threads():
    return int(config["characterize"].get("threads", 1))


def warn_capped_threads():
    """Snakemake caps every rule's threads at the run's cores without a word (--cores; on SLURM
    with OCDEC_SLURM_GROUPS=1, OCDEC_SLURM_CORES): say so where it cuts the methods' threads.
    Called from onstart: a dry run counts 1 core where none is given."""
    cores = workflow.resource_settings.cores
    if isinstance(cores, int) and characterize_threads() > cores:
        from snakemake.logging import logger

        logger.warning(
            f"characterize.threads is {characterize_threads()} but a job of this run gets at "
            f"most {cores} core(s) (--cores; on SLURM with OCDEC_SLURM_GROUPS=1, "
            f"OCDEC_SLURM_CORES): the methods run with {cores}"
        )


# --- targets ---------------------------------------------------------------------------------

# Per-region and catalogue figures (always all of them, so the DAG is static), with the labels the
# report shows; captions: workflow/report/<name>.rst.
REGION_FIGURES = products.REGION_FIGURES
CATALOGUE_FIGURES = products.CATALOGUE_FIGURES


def plot_formats():
    return list(config.get("plots", {}).get("formats", ["png"]))


def plot_outputs():
    """Named outputs of the plots rule: PNGs embedded in the report under their region, and PDFs
    when config asks for them."""
    outputs = {
        name: report(
            products.figure_file(name),
            caption=f"../report/{name}.rst",
            category="{region}",
            subcategory="figures",
            labels={"region": "{region}", "figure": label},
        )
        for name, label in REGION_FIGURES.items()
    }
    if "pdf" in plot_formats():
        outputs.update(
            {
                f"{name}_pdf": products.figure_file(name, "pdf")
                for name in REGION_FIGURES
            }
        )
    return outputs


def catalogue_outputs():
    """Named outputs of the summary rule: the table and the catalogue-wide figures."""
    outputs = {
        "table": report(
            products.catalogue_file(products.CATALOGUE_TABLE),
            caption="../report/summary.rst",
            category="Catalogue",
            subcategory="tables",
            labels={"figure": "summary table"},
        )
    }
    for name, label in CATALOGUE_FIGURES.items():
        outputs[name] = report(
            products.catalogue_file(f"{name}.png"),
            caption=f"../report/{name}.rst",
            category="Catalogue",
            subcategory="figures",
            labels={"figure": label},
        )
        if "pdf" in plot_formats():
            outputs[f"{name}_pdf"] = products.catalogue_file(f"{name}.pdf")
    for fmt in table_formats():
        outputs[f"table_{fmt}"] = products.table_file(
            products.catalogue_file(products.CATALOGUE_TABLE), fmt
        )
    return outputs


def physics_catalogue_outputs():
    """Named outputs of the parameters_catalogue rule: FITS and VOTable, and its figures."""
    outputs = {
        kind: products.catalogue_file(name)
        for kind, name in products.PHYSICS_CATALOGUE.items()
    }
    for name, label in products.PHYSICS_FIGURES.items():
        outputs[name] = report(
            products.catalogue_file(f"{name}.png"),
            caption=f"../report/{name}.rst",
            category="Catalogue",
            subcategory="physical parameters",
            labels={"figure": label},
        )
    return outputs


def plot_inputs(wildcards):
    region = wildcards.region
    inputs = {
        "status": products.region_file(products.STATUS, region),
        "reference": f"resources/reference/{region}.json",
    }
    for method in METHODS:
        for kind, path in method_outputs(method).items():
            inputs[f"{method}_{kind}"] = path.format(region=region)
    return inputs


def summary_inputs(wildcards):
    return {
        "status": expand(products.region_file(products.STATUS), region=REGIONS),
        "comparison": expand(products.region_file(products.COMPARISON), region=REGIONS),
        **{
            method: expand(
                products.method_file(method, products.SUMMARY), region=REGIONS
            )
            for method in METHODS
        },
        "parameters": expand(
            products.method_file(PARAMETERS_METHOD, products.PARAMETERS), region=REGIONS
        ),
    }


def all_outputs():
    per_region = [
        products.region_file(products.STATUS),
        products.region_file(products.COMPARISON),
    ]
    per_region += [products.method_file(method, products.SUMMARY) for method in METHODS]
    if config.get("plots", {}).get("regions", True):
        per_region += [products.figure_file(name) for name in REGION_FIGURES]
    catalogue = [products.catalogue_file(products.CATALOGUE_TABLE)]
    catalogue += [products.catalogue_file(f"{name}.png") for name in CATALOGUE_FIGURES]
    per_region.append(
        products.method_file(PARAMETERS_METHOD, products.PARAMETERS_FIGURE)
    )
    catalogue += [
        products.catalogue_file(name) for name in products.PHYSICS_CATALOGUE.values()
    ]
    catalogue += [
        products.catalogue_file(f"{name}.png") for name in products.PHYSICS_FIGURES
    ]
    return expand(per_region, region=REGIONS) + catalogue
