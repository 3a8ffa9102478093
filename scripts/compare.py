"""Rule adapter (compare): the per-region comparison table, references against each method."""

from ocdec.warm import delegate

delegate()  # in a local run, this job forks from the workflow's warm interpreter (ocdec.warm)

from typing import Any

from ocdec.logs import configure_logging
from ocdec.results.comparison import comparison_table, read_summary, write_comparison
from ocdec.results.reference import read_references
from ocdec.runner import run_rule


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    summaries = {method: read_summary(getattr(smk.input, method)) for method in smk.params.methods}
    table = comparison_table(read_references(smk.input.reference), summaries)
    write_comparison(smk.output.table, table)


if __name__ == "__main__":
    run_rule(main, snakemake)  # noqa: F821 (injected by Snakemake's script directive)
