"""Rule adapter (download): one region's cone from the Gaia archive (async TAP jobs, chunked,
resumable: chunks finished by an interrupted run are kept and reused)."""

from ocdec.warm import delegate

# in a local run, this job forks from the workflow's warm interpreter (ocdec.warm), or runs
# here at once while it still imports: this job's own imports are light
delegate(wait=False)

from typing import Any

from ocdec.data.gaia import GaiaSettings, download_cone
from ocdec.logs import configure_logging
from ocdec.runner import run_rule


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    region = smk.params.region
    settings = GaiaSettings.from_mapping(smk.params.gaia)
    download_cone(
        settings,
        float(region["ra"]),
        float(region["dec"]),
        float(region["radius_deg"]),
        smk.output.stars,
        region=region["id"],
    )


if __name__ == "__main__":
    run_rule(main, snakemake)  # noqa: F821 (injected by Snakemake's script directive)
