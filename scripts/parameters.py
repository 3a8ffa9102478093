"""Rule adapters (parameters, parameters_catalogue): one region's physical parameters from a
method's members, or the catalogue of every region's (ocdec.physics.region)."""

from ocdec.warm import delegate

delegate()  # in a local run, this job forks from the workflow's warm interpreter (ocdec.warm)

import os
from typing import Any

# Several parameters jobs may share one GPU: allocate memory as needed, not 75 % up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from ocdec.logs import configure_logging
from ocdec.runner import run_rule


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    if smk.rule == "parameters_catalogue":
        from ocdec.physics.region import parameters_catalogue

        outputs = {name: path for name, path in smk.output.items()}
        parameters_catalogue(list(smk.input.parameters), outputs, regions=smk.params.regions)
        return
    from ocdec.physics.region import parameters_region

    parameters_region(smk.input.members, smk.input.summary, smk.output.json, smk.output.png,
                      region=smk.params.region, release=smk.params.release,
                      config=smk.params.settings,
                      # From the config, not params: moving the cache must not rerun finished
                      # regions. Turned on only where a fit runs (JAX is a second to import).
                      jax_cache_dir=smk.config["characterize"].get("jax_cache_dir", ".cache/jax"))


if __name__ == "__main__":
    run_rule(main, snakemake)  # noqa: F821 (injected by Snakemake's script directive)
