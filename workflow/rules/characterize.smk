# Characterization of each usable region, once per configured method (characterize.methods; the
# methods and their products, settings and resources come from ocdec.methods.registry): one rule
# per method, characterize_{method}. Skipped regions get skipped outputs; every region ends found or
# not_found, with groups.tsv naming its groups from the published cluster tables
# (reference.cluster_tables).

for method in METHODS:

    rule:
        name:
            f"characterize_{method}"
        input:
            **region_stars(),
            known=known_tables(),
        output:
            **method_outputs(method),
        log:
            f"logs/characterize_{method}/{{region}}.log",
        benchmark:
            f"benchmarks/characterize_{method}/{{region}}.tsv"
        priority: priority_for("characterize")
        conda:
            "../../envs/ml.yaml"
        threads: characterize_threads()
        resources:
            mem_mb=mem_mb_for(f"characterize_{method}"),
            runtime=runtime_for(f"characterize_{method}"),
            gpu=gpu_request(method),
        params:
            method=method,
            region=region_settings,
            settings=method_config(method),
        script:
            "../../scripts/characterize.py"
