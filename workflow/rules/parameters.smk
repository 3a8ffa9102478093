# Physical parameters of each region's cluster (ocdec.physics), and the catalogue built from them.
# NOT YET INCLUDED by workflow/Snakefile: the lead wires it (include: "rules/parameters.smk",
# add the catalogue outputs to rule all). Uses the default method's members.


rule parameters:
    """Distance, age, extinction, [M/H], King structure, mass and Jacobi radius of one cluster."""
    input:
        stars="results/{region}/stars.parquet",
        members="results/{region}/default/members.parquet",
    output:
        json="results/{region}/default/parameters.json",
        png="results/{region}/default/parameters.png",
    params:
        release=lambda wildcards: config["gaia"]["release"],
        settings=lambda wildcards: config.get("parameters", {}),
        name=lambda wildcards: wildcards.region,
    log:
        "logs/parameters/{region}.log",
    benchmark:
        "benchmarks/parameters/{region}.tsv"
    threads: 2
    conda:
        "../../envs/ml.yaml"
    script:
        "../../scripts/parameters.py"


rule parameters_catalogue:
    """catalogue.fits / catalogue.vot and the two catalogue figures."""
    input:
        parameters=expand("results/{region}/default/parameters.json", region=REGIONS),
    output:
        fits="results/catalogue/catalogue.fits",
        vot="results/catalogue/catalogue.vot",
        age_radius="results/catalogue/age_radius.png",
        literature="results/catalogue/literature.png",
    params:
        regions=lambda wildcards: [REGION_INFO[r] for r in REGIONS],
    log:
        "logs/parameters_catalogue.log",
    script:
        "../../scripts/parameters.py"
