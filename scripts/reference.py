"""Rule adapter (reference): the reference values of one region, SIMBAD first (when enabled and
reachable; cached), then the offline table, then each published cluster table that lists it."""

from ocdec.warm import delegate

# in a local run, this job forks from the workflow's warm interpreter (ocdec.warm), or runs
# here at once while it still imports: this job's own imports are light
delegate(wait=False)

from collections.abc import Mapping
from typing import Any

from ocdec.io import check_writable
from ocdec.logs import configure_logging
from ocdec.results.reference import (
    load_reference_table,
    read_cluster_table,
    reference_table_from_mapping,
    region_references,
    write_references,
)
from ocdec.runner import run_rule


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    check_writable(smk.output.reference, "reference")
    region = smk.params.region
    table = smk.params.table
    if isinstance(table, Mapping):
        reference_table = reference_table_from_mapping(table)
    elif table:
        reference_table = load_reference_table(smk.input.table)
    else:
        reference_table = None
    cluster_tables = [read_cluster_table(path) for path in smk.input.cluster_tables]
    rows = region_references(
        region["id"],
        region["name"],
        simbad=bool(smk.params.simbad),
        simbad_cache=smk.params.simbad_cache,
        reference_table=reference_table,
        cluster_tables=cluster_tables,
    )
    write_references(smk.output.reference, region["id"], region["name"], rows)


if __name__ == "__main__":
    run_rule(main, snakemake)  # noqa: F821 (injected by Snakemake's script directive)
