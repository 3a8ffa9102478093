"""Rule adapter (quality): quality filter and star-count gate of one region.

Writes the kept stars and a status record; a region with too few usable stars is "skipped", not
an error, and both files are still written.
"""

from ocdec.warm import delegate

# in a local run, this job forks from the workflow's warm interpreter (ocdec.warm), or runs
# here at once while it still imports: this job's own imports are light
delegate(wait=False)

from typing import Any

from ocdec.data.quality import quality_region
from ocdec.logs import configure_logging
from ocdec.runner import run_rule


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    quality_region(smk.input.stars, smk.output.stars, smk.output.status, smk.params.quality,
                   region=smk.wildcards.region)


if __name__ == "__main__":
    run_rule(main, snakemake)  # noqa: F821 (injected by Snakemake's script directive)
