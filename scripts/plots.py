"""Rule adapter (plots): the per-region figures; a skipped region's figures say why."""

import json
from pathlib import Path
from typing import Any

from ocdec.logs import configure_logging
from ocdec.results.figures import region_plots
from ocdec.results.reference import read_references


def method_dir(smk: Any, method: str) -> Path | None:
    summary = getattr(smk.input, f"{method}_summary", None)
    return Path(summary).parent if summary else None


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    status = json.loads(Path(smk.input.status).read_text())
    region_plots(
        Path(smk.output.overview).parent,
        smk.params.region,
        default_dir=method_dir(smk, "default"),
        thesis_dir=method_dir(smk, "thesis"),
        references=read_references(smk.input.reference),
        status=status,
        formats=smk.params.formats,
    )


main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
