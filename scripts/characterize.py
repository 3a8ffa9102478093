"""Rule adapter (characterize_{method}): run one method on one region.

A region the quality gate skipped gets the same files, marked skipped with the gate's reason; the
others end found or not_found, their groups named from reference.cluster_tables.
"""

from ocdec.warm import delegate

delegate()  # in a local run, this job forks from the workflow's warm interpreter (ocdec.warm)

import os
from pathlib import Path
from typing import Any

# Several DEC jobs may share one GPU: allocate memory as needed, not 75 % up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from ocdec.characterize import characterize_region
from ocdec.logs import configure_logging
from ocdec.runner import run_rule
from ocdec.tables import export_members


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    characterize_region(
        smk.input.stars,
        smk.input.status,
        Path(smk.output.summary).parent,
        method=smk.params.method,
        region=smk.params.region,
        config=smk.params.settings,
        # From the config, not params: moving the cache must not rerun finished regions.
        jax_cache_dir=smk.config["characterize"].get("jax_cache_dir", ".cache/jax"),
        provenance={"region": smk.wildcards.region},
        known_tables=list(smk.input.known),
    )
    # tables.formats: members.fits / .vot / .csv beside members.parquet
    formats = smk.config.get("tables", {}).get("formats", [])
    export_members(smk.output.members, formats,
                   {"method": smk.params.method, "region": smk.wildcards.region})


if __name__ == "__main__":
    run_rule(main, snakemake)  # noqa: F821 (injected by Snakemake's script directive)
