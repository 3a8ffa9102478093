"""Rule adapter (plots): the per-region figures; a skipped region's figures say why."""

from ocdec.warm import delegate

delegate()  # in a local run, this job forks from the workflow's warm interpreter (ocdec.warm)

from pathlib import Path
from typing import Any

from ocdec.logs import configure_logging
from ocdec.products import read_json
from ocdec.results.figures import region_plots
from ocdec.results.reference import read_references
from ocdec.runner import run_rule


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    region_plots(
        Path(smk.output.overview).parent,
        smk.params.region,
        method_dirs={m: Path(getattr(smk.input, f"{m}_summary")).parent
                     for m in smk.params.methods},
        references=read_references(smk.input.reference),
        status=read_json(smk.input.status),
        formats=smk.params.formats,
    )


if __name__ == "__main__":
    run_rule(main, snakemake)  # noqa: F821 (injected by Snakemake's script directive)
