"""Rule adapter (simulate): a synthetic Gaia-like cone around one region with its members known
(the ``true_member`` column)."""

from ocdec.warm import delegate

delegate()  # in a local run, this job forks from the workflow's warm interpreter (ocdec.warm)

from typing import Any

from ocdec.data.simulate import simulate_region
from ocdec.logs import configure_logging
from ocdec.runner import run_rule


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    simulate_region(smk.output.stars, smk.params.region, smk.params.simulate)


if __name__ == "__main__":
    run_rule(main, snakemake)  # noqa: F821 (injected by Snakemake's script directive)
