"""Rule adapter (simulate): a synthetic Gaia-like cone around one region with its members known
(the ``true_member`` column)."""

import logging
from typing import Any

import numpy as np
import pandas as pd

from ocdec.data.simulate import provenance, settings_from_mapping, simulate_field
from ocdec.io import check_writable, write_parquet
from ocdec.logs import configure_logging
from ocdec.runner import run_rule

log = logging.getLogger("ocdec.rules.simulate")


def thin_field(frame: pd.DataFrame, max_field: int, seed: int) -> pd.DataFrame:
    """Keep every member and a random ``max_field`` of the field stars (as a lower field density
    would give), in the original order."""
    field = np.flatnonzero(~frame["true_member"].to_numpy())
    if field.size <= max_field:
        return frame
    drop = np.random.default_rng(seed).choice(field, field.size - max_field, replace=False)
    keep = np.ones(len(frame), dtype=bool)
    keep[drop] = False
    log.info("field thinned from %d to %d stars (max_field_stars)", field.size, max_field)
    return frame.loc[keep].reset_index(drop=True)


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    check_writable(smk.output.stars, "stars")
    values = dict(smk.params.simulate)
    seed = int(values.pop("seed"))
    max_field = values.pop("max_field_stars", None)
    settings = settings_from_mapping({k: v for k, v in values.items() if v is not None})
    region = smk.params.region
    frame = simulate_field(region, settings, seed)
    meta = provenance(region, settings, seed, frame)
    if max_field is not None:
        frame = thin_field(frame, int(max_field), seed)
        meta.update(max_field_stars=int(max_field), rows=len(frame))
    write_parquet(smk.output.stars, frame, meta)


run_rule(main, snakemake)  # noqa: F821 (injected by Snakemake's script directive)
