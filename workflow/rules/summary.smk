# Catalogue-wide table (one row per region: done, skipped or failed and why) and figures.


rule summary:
    """Catalogue table (every region: found, not_found, skipped or failed, and why) and figures."""
    input:
        unpack(summary_inputs),
    output:
        **catalogue_outputs(),
    log:
        "logs/summary/summary.log",
    benchmark:
        "benchmarks/summary/summary.tsv"
    conda:
        "../../envs/plot.yaml"
    params:
        regions=[REGION_INFO[region] for region in REGIONS],
        formats=plot_formats(),
        methods=METHODS,
    script:
        "../../scripts/summary.py"
