"""Rule adapter (parameters, parameters_catalogue): a cluster's physical parameters, or the
catalogue of all of them. A DRAFT for the lead: workflow/rules/parameters.smk is not included yet.
"""

import json
from pathlib import Path

from ocdec.logs import configure_logging

snakemake = globals()["snakemake"]  # noqa: F821  (injected by Snakemake)
configure_logging(snakemake.log[0] if snakemake.log else None)

if snakemake.rule == "parameters":
    from ocdec.cli.parameters import read_members
    from ocdec.io import write_json
    from ocdec.physics.cmd_fit import CmdSettings
    from ocdec.physics.figures import parameters_figure, save
    from ocdec.physics.parameters import ParametersSettings, fit_parameters

    options = dict(snakemake.params.settings or {})
    cmd = CmdSettings(**options.pop("cmd", {}))
    settings = ParametersSettings(cmd=cmd, **options)
    members = read_members(snakemake.input.stars, snakemake.input.members)
    result = fit_parameters(members, release=snakemake.params.release, settings=settings)
    write_json(snakemake.output.json, result.as_dict())
    save(parameters_figure(result, snakemake.params.name), snakemake.output.png)
else:
    from ocdec.physics.catalogue import build_catalogue, write_catalogue
    from ocdec.physics.figures import age_radius_figure, literature_figure, save

    values = [json.loads(Path(p).read_text()) for p in snakemake.input.parameters]
    table = build_catalogue(values, list(snakemake.params.regions))
    write_catalogue(table, Path(snakemake.output.fits).parent)
    save(age_radius_figure(table), snakemake.output.age_radius)
    save(literature_figure(table), snakemake.output.literature)
