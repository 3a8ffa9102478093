"""Rule adapter (quality): quality filter and star-count gate of one region.

Writes the kept stars and a status record; a region with too few usable stars is "skipped", not
an error, and both files are still written.
"""

from typing import Any

from ocdec.data.columns import read_stars
from ocdec.data.quality import QualitySettings, apply_quality
from ocdec.io import check_writable, read_provenance, write_json, write_parquet
from ocdec.logs import configure_logging
from ocdec.runner import run_rule


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    settings = QualitySettings(**smk.params.quality)
    check_writable(smk.output.stars, "stars")
    check_writable(smk.output.status, "status")
    frame = read_stars(smk.input.stars)
    clean, status = apply_quality(frame, settings, region=smk.wildcards.region)
    provenance = read_provenance(smk.input.stars)
    provenance.setdefault("source_id_is_row", bool(frame.attrs.get("source_id_is_row", False)))
    provenance["quality"] = status
    write_parquet(smk.output.stars, clean, provenance)
    write_json(smk.output.status, status)


run_rule(main, snakemake)  # noqa: F821 (injected by Snakemake's script directive)
