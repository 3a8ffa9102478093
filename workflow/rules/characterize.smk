# Characterization of each usable region, once per method: ocdec's default method and the thesis
# pipeline (K-Means silhouette sweep, DEC, quantile filter). Skipped regions get skipped outputs.


rule characterize_default:
    """ocdec's default method: members, mean astrometry, seed agreement."""
    input:
        stars="results/{region}/stars.parquet",
        status="results/{region}/status.json",
    output:
        **method_outputs("default"),
    params:
        method="default",
        region=region_settings,
        settings=method_config("default"),
    log:
        "logs/characterize_default/{region}.log",
    benchmark:
        "benchmarks/characterize_default/{region}.tsv"
    threads: characterize_threads()
    resources:
        mem_mb=mem_mb_for("characterize_default"),
        runtime=runtime_for("characterize_default"),
        gpu=gpu_request(),
    conda:
        "../../envs/ml.yaml"
    script:
        "../../scripts/characterize.py"


rule characterize_thesis:
    """The thesis's pipeline: K-Means silhouette sweep, DEC, quantile filter."""
    input:
        stars="results/{region}/stars.parquet",
        status="results/{region}/status.json",
    output:
        **method_outputs("thesis"),
    params:
        method="thesis",
        region=region_settings,
        settings=method_config("thesis"),
    log:
        "logs/characterize_thesis/{region}.log",
    benchmark:
        "benchmarks/characterize_thesis/{region}.tsv"
    threads: characterize_threads()
    resources:
        mem_mb=mem_mb_for("characterize_thesis"),
        runtime=runtime_for("characterize_thesis"),
        gpu=gpu_request(),
    conda:
        "../../envs/ml.yaml"
    script:
        "../../scripts/characterize.py"
