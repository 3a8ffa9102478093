"""Rule adapter (read_local): normalise a user's star file for one region to the canonical
columns and units, and keep it as Parquet with provenance."""

from ocdec.warm import delegate

# in a local run, this job forks from the workflow's warm interpreter (ocdec.warm), or runs
# here at once while it still imports: this job's own imports are light
delegate(wait=False)

from typing import Any

from ocdec.data.local import local_to_parquet
from ocdec.logs import configure_logging
from ocdec.runner import run_rule


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    local_to_parquet(smk.input[0], smk.output.stars)


if __name__ == "__main__":
    run_rule(main, snakemake)  # noqa: F821 (injected by Snakemake's script directive)
