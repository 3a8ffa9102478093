"""Rule adapter (summary): the catalogue-wide table (one row per region: found, not_found, skipped
or failed, and why) and the catalogue figures."""

from ocdec.warm import delegate

delegate()  # in a local run, this job forks from the workflow's warm interpreter (ocdec.warm)

from typing import Any

from ocdec.logs import configure_logging
from ocdec.results.summary import catalogue_summary
from ocdec.runner import run_rule
from ocdec.tables import export_summary


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    inputs = {name: list(paths) for name, paths in smk.input.items()}
    outputs = {name: path for name, path in smk.output.items()}
    table = catalogue_summary(inputs, outputs, regions=smk.params.regions,
                              methods=smk.params.methods)
    # tables.formats: summary.parquet / .fits / .vot / .csv beside summary.tsv
    export_summary(table, {name.removeprefix("table_"): path for name, path in outputs.items()
                           if name.startswith("table_")})


if __name__ == "__main__":
    run_rule(main, snakemake)  # noqa: F821 (injected by Snakemake's script directive)
