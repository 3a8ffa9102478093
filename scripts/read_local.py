"""Rule adapter (read_local): normalise a user's star file for one region to the canonical
columns and units, and keep it as Parquet with provenance."""

from pathlib import Path
from typing import Any

from ocdec.data.columns import read_stars
from ocdec.io import check_writable, write_parquet
from ocdec.logs import configure_logging
from ocdec.runner import run_rule


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    path = Path(smk.input[0])
    check_writable(smk.output.stars, "stars")
    frame = read_stars(path)
    provenance = {
        "source": "local",
        "path": str(path.resolve()),
        "rows": len(frame),
        "source_id_is_row": bool(frame.attrs.get("source_id_is_row", False)),
    }
    write_parquet(smk.output.stars, frame, provenance)


run_rule(main, snakemake)  # noqa: F821 (injected by Snakemake's script directive)
