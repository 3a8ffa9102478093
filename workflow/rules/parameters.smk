# Physical parameters (ocdec.physics): distance, age, extinction, [M/H], King structure, mass and
# Jacobi radius of each region's cluster, from the members of one method (parameters.method), and
# the catalogue built from them (FITS and VOTable with units, two figures). A region skipped or
# without a cluster gets parameters.json with status skipped / not_fitted, not a failed job.


rule parameters:
    """Physical parameters of one region's cluster."""
    input:
        **parameters_inputs(),
    output:
        json=products.method_file(PARAMETERS_METHOD, products.PARAMETERS),
        png=report(
            products.method_file(PARAMETERS_METHOD, products.PARAMETERS_FIGURE),
            caption="../report/parameters.rst",
            category="{region}",
            subcategory="figures",
            labels={"region": "{region}", "figure": "physical parameters"},
        ),
    log:
        "logs/parameters/{region}.log",
    benchmark:
        "benchmarks/parameters/{region}.tsv"
    priority: priority_for("parameters")
    conda:
        "../../envs/ml.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("parameters"),
        runtime=runtime_for("parameters"),
    params:
        region=region_settings,
        release=config["gaia"]["release"],
        settings=parameters_config(),
    script:
        "../../scripts/parameters.py"


rule parameters_catalogue:
    """The physical-parameters catalogue (catalogue.fits, catalogue.vot) and its figures."""
    input:
        parameters=expand(
            products.method_file(PARAMETERS_METHOD, products.PARAMETERS),
            region=REGIONS,
        ),
    output:
        **physics_catalogue_outputs(),
    log:
        "logs/parameters/catalogue.log",
    benchmark:
        "benchmarks/parameters/catalogue.tsv"
    conda:
        "../../envs/ml.yaml"
    params:
        regions=[REGION_INFO[region] for region in REGIONS],
    script:
        "../../scripts/parameters.py"
