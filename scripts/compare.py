"""Rule adapter (compare): the per-region comparison table, references against each method."""

from typing import Any

from ocdec.logs import configure_logging
from ocdec.results.comparison import comparison_table, read_summary, write_comparison
from ocdec.results.reference import read_references


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    references = read_references(smk.input.reference)
    default = read_summary(getattr(smk.input, "default", None))
    thesis = read_summary(getattr(smk.input, "thesis", None))
    table = comparison_table(references, default, thesis)
    write_comparison(smk.output.table, table)


main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
