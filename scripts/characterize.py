"""Rule adapter (characterize_default, characterize_thesis): run one method on one region.

A region the quality gate skipped gets the same files, marked skipped with the gate's reason.
"""

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

# Several DEC jobs may share one GPU: allocate memory as needed, not 75 % up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import pandas as pd  # noqa: E402

from ocdec.characterize import characterize, write_skipped  # noqa: E402
from ocdec.compilation_cache import DEFAULT_DIR, enable_compilation_cache  # noqa: E402
from ocdec.io import read_provenance  # noqa: E402
from ocdec.logs import configure_logging  # noqa: E402
from ocdec.methods.default.method import ClusterPriors, MemberSettings, default_dec_settings  # noqa: E402


def dec_settings(base: Any, overrides: dict[str, Any]) -> Any:
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return replace(base, **values)


def method_settings(method: str, config: dict[str, Any]) -> Any:
    """MemberSettings (default) or ThesisSettings (thesis) from the characterize config."""
    section = dict(config.get(method) or {})
    dec_overrides = section.pop("dec", None) or {}
    if method == "default":
        dec = dec_settings(default_dec_settings(), dec_overrides)
        return MemberSettings(threshold=float(config.get("threshold", 0.5)), dec=dec, **section)
    from ocdec.methods.dec import DecSettings
    from ocdec.methods.thesis import ThesisSettings

    values = {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}
    return ThesisSettings(dec=dec_settings(DecSettings(), dec_overrides), **values)


def region_priors(region: dict[str, Any]) -> ClusterPriors:
    pm = (region.get("pmra_prior"), region.get("pmdec_prior"))
    if None in pm:
        pm = (None, None)
    parallax = region.get("parallax_prior")
    return ClusterPriors(
        ra=region["ra"], dec=region["dec"], radius_deg=region["radius_deg"], pmra=pm[0],
        pmdec=pm[1], parallax=parallax if parallax and parallax > 0 else None,
    )


def main(smk: Any) -> None:
    configure_logging(smk.log[0])
    method = smk.params.method
    out_dir = Path(smk.output.summary).parent
    status = json.loads(Path(smk.input.status).read_text())
    # Written by the quality rule in canonical columns (possibly empty when skipped).
    stars = pd.read_parquet(smk.input.stars)
    if status.get("status") != "ok":
        write_skipped(out_dir, method, stars, str(status.get("reason") or status.get("status")))
        return
    config = smk.params.settings
    # Read from the config, not params: moving the cache must not rerun finished regions.
    enable_compilation_cache(smk.config["characterize"].get("jax_cache_dir", DEFAULT_DIR))
    characterize(
        stars,
        out_dir,
        method=method,
        priors=region_priors(smk.params.region),
        seed=int(config.get("seed", 0)),
        n_seeds=int(config.get("n_seeds", 5)),
        settings=method_settings(method, config),
        provenance={**read_provenance(smk.input.stars), "region": smk.wildcards.region},
    )


main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
