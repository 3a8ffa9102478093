# Per-region comparison table: references against every method, offsets in combined sigma.


rule compare:
    """Comparison table: references and methods, offsets in combined sigma."""
    input:
        unpack(method_summaries),
        reference="resources/reference/{region}.json",
    output:
        table=report(
            products.region_file(products.COMPARISON),
            caption="../report/comparison.rst",
            category="{region}",
            subcategory="tables",
            labels={"region": "{region}", "figure": "comparison table"},
        ),
    log:
        "logs/compare/{region}.log",
    benchmark:
        "benchmarks/compare/{region}.tsv"
    conda:
        "../../envs/plot.yaml"
    params:
        methods=METHODS,
    script:
        "../../scripts/compare.py"
