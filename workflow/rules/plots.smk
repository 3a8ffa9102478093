# Per-region figures (one row of panels per method), embedded in the report under the region.


rule plots:
    """Per-region figures (one row of panels per method), for the report."""
    input:
        unpack(plot_inputs),
    output:
        **plot_outputs(),
    log:
        "logs/plots/{region}.log",
    benchmark:
        "benchmarks/plots/{region}.tsv"
    conda:
        "../../envs/plot.yaml"
    resources:
        mem_mb=mem_mb_for("plots"),
        runtime=runtime_for("plots"),
    params:
        region=region_settings,
        formats=plot_formats(),
        methods=METHODS,
    script:
        "../../scripts/plots.py"
