# Reference values per region: SIMBAD (online, one request per region, cached under resources/),
# the offline table named in config, and published cluster tables listed in config.


rule reference:
    """Reference values: SIMBAD (cached), the offline table, published cluster tables."""
    input:
        unpack(reference_inputs),
    output:
        reference="resources/reference/{region}.json",
    log:
        "logs/reference/{region}.log",
    benchmark:
        "benchmarks/reference/{region}.tsv"
    retries: 2
    localrule: True
    conda:
        "../../envs/gaia.yaml"
    resources:
        # SIMBAD requests at once: cap with --resources simbad_jobs=N (profiles/default: 2).
        simbad_jobs=1,
    params:
        region=region_settings,
        simbad=lookup(dpath="reference/simbad", within=config),
        simbad_cache=simbad_cache_path,
        table=lookup(dpath="reference/table", within=config, default=None),
    script:
        "../../scripts/reference.py"
