# Stars per region, from the source named in config: a Gaia archive download (source gaia), a
# user's file normalised to the canonical columns (source local), or a simulated field (simulate).
# Only the rule of the configured source is reachable from `all`.


rule gaia_check:
    """One cheap query per run: the configured table, its columns and the login work."""
    output:
        f"resources/gaia/{config['gaia']['release']}/check.json",
    log:
        "logs/download/gaia_check.log",
    localrule: True
    conda:
        "../../envs/gaia.yaml"
    params:
        gaia=lookup(dpath="gaia", within=config),
    script:
        "../../scripts/gaia_check.py"


rule download:
    """Cone search of one region in the Gaia archive (async TAP jobs, chunked, resumable)."""
    input:
        # ancient: a repeated check (new settings) must not make finished regions look stale.
        ancient(f"resources/gaia/{config['gaia']['release']}/check.json"),
    output:
        stars=f"resources/gaia/{config['gaia']['release']}/{{region}}.parquet",
    log:
        "logs/download/{region}.log",
    benchmark:
        "benchmarks/download/{region}.tsv"
    priority: priority_for("stars")
    retries: 3
    localrule: True
    conda:
        "../../envs/gaia.yaml"
    resources:
        # Throttles archive jobs at once: cap with --resources gaia_jobs=N (profiles/default: 2).
        gaia_jobs=1,
        mem_mb=mem_mb_for("download"),
        runtime=runtime_for("download"),
    params:
        region=region_settings,
        gaia=lookup(dpath="gaia", within=config),
    script:
        "../../scripts/download.py"


rule read_local:
    """Normalise a user's per-region file (any supported format and column naming)."""
    input:
        local_input_file,
    output:
        stars="resources/local/{region}.parquet",
    log:
        "logs/read_local/{region}.log",
    benchmark:
        "benchmarks/read_local/{region}.tsv"
    priority: priority_for("stars")
    localrule: True
    conda:
        "../../envs/gaia.yaml"
    resources:
        mem_mb=mem_mb_for("local"),
        runtime=runtime_for("local"),
    script:
        "../../scripts/read_local.py"


rule simulate:
    """A synthetic Gaia-like field around the region with its cluster members known."""
    output:
        stars="resources/simulate/{region}.parquet",
    log:
        "logs/simulate/{region}.log",
    benchmark:
        "benchmarks/simulate/{region}.tsv"
    priority: priority_for("stars")
    conda:
        "../../envs/gaia.yaml"
    resources:
        mem_mb=mem_mb_for("simulate"),
        runtime=runtime_for("simulate"),
    params:
        region=region_settings,
        simulate=lookup(dpath="simulate", within=config, default={}),
    script:
        "../../scripts/simulate.py"
