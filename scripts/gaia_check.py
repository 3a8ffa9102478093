"""Rule adapter (gaia_check): ask the Gaia archive once per run, with one cheap query, whether the
configured table and its columns exist (and the login works), before any region is downloaded.

Writes the check's record (JSON) to ``output[0]``; the download rule can take it as an input so
that a mistyped ``gaia.table`` stops the run in seconds instead of failing every region.
"""

from ocdec.warm import delegate

delegate()  # in a local run, this job forks from the workflow's warm interpreter (ocdec.warm)

from typing import Any

from ocdec.data.gaia import GaiaSettings, check_query
from ocdec.logs import configure_logging
from ocdec.runner import run_rule


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    settings = GaiaSettings.from_mapping(smk.params.gaia)
    check_query(settings, out=smk.output[0])


if __name__ == "__main__":
    run_rule(main, snakemake)  # noqa: F821 (injected by Snakemake's script directive)
