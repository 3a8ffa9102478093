# Quality filter and the star-count gate: a region with fewer usable stars than min_stars gets an
# explicit "skipped" status that every downstream rule carries through.


rule quality:
    """Quality cuts and the star-count gate: status ok, or skipped with the count and reason."""
    input:
        stars=raw_stars_pattern(),
    output:
        **region_stars(),
    log:
        "logs/quality/{region}.log",
    benchmark:
        "benchmarks/quality/{region}.tsv"
    priority: priority_for("quality")
    conda:
        "../../envs/gaia.yaml"
    resources:
        mem_mb=mem_mb_for("quality"),
        runtime=runtime_for("quality"),
    params:
        quality=lookup(dpath="quality", within=config),
    script:
        "../../scripts/quality.py"
