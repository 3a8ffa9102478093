# Quality filter and the star-count gate: a region with fewer usable stars than min_stars gets an
# explicit "skipped" status that every downstream rule carries through.


rule quality:
    """Quality cuts and the star-count gate: status ok, or skipped with the count and reason."""
    input:
        stars=raw_stars_pattern(),
    output:
        **region_stars(),
    params:
        quality=lookup(dpath="quality", within=config),
    log:
        "logs/quality/{region}.log",
    benchmark:
        "benchmarks/quality/{region}.tsv"
    resources:
        mem_mb=mem_mb_for("quality"),
        runtime=runtime_for("quality"),
    conda:
        "../../envs/gaia.yaml"
    script:
        "../../scripts/quality.py"
