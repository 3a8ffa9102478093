# Per-region figures (one row of panels per method), embedded in the report under the region.


rule plots:
    """Per-region figures (one row of panels per method), for the report."""
    input:
        unpack(plot_inputs),
    output:
        **plot_outputs(),
    params:
        region=region_settings,
        formats=plot_formats(),
        methods=METHODS,
    log:
        "logs/plots/{region}.log",
    benchmark:
        "benchmarks/plots/{region}.tsv"
    resources:
        mem_mb=mem_mb_for("plots"),
        runtime=runtime_for("plots"),
    conda:
        "../../envs/plot.yaml"
    script:
        "../../scripts/plots.py"
