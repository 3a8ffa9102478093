"""``ocdec parameters FIELD [--members MEMBERS] --out DIR``: a cluster's physical parameters."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ocdec.errors import OcdecError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "parameters", help="distance, age, extinction, structure and mass of one cluster",
        description="Fit the physical parameters of the cluster in FIELD and write "
        "DIR/parameters.json and DIR/parameters.png. With --members, MEMBERS is the "
        "members.parquet that characterize wrote for FIELD (FIELD adds the parallax zero-point "
        "columns); without it, FIELD is itself a table of members (ra, dec, parallax, G, BP-RP, "
        "optional p_member or PMemb). A fit that fails still writes both files, with status "
        "'failed' and the reason.")
    p.add_argument("field", metavar="FIELD", help="star table (or member table)")
    p.add_argument("--members", metavar="MEMBERS", help="members.parquet from characterize")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--release", choices=("dr2", "dr3"), default="dr3",
                   help="Gaia release of the photometry and parallaxes (default dr3)")
    p.add_argument("--feh", default="0.0", metavar="FEH",
                   help="[M/H] of the isochrones, or 'free' to fit it on the grid (default 0.0, "
                   "solar)")
    p.add_argument("--name", default="", help="cluster name for the figure title")
    p.add_argument("--no-figure", action="store_true", help="skip parameters.png")
    p.set_defaults(func=run)


def _feh(text: str) -> float | None:
    if text.strip().lower() == "free":
        return None
    try:
        return float(text)
    except ValueError as err:
        raise OcdecError(f"--feh must be a number or 'free', got {text!r}") from err


def read_members(field: str | Path, members: str | Path | None):
    """The member table: MEMBERS joined with FIELD's extra columns, or FIELD itself."""
    import pandas as pd

    from ocdec.data.columns import normalise, read_stars, read_table
    from ocdec.physics.parameters import PROBABILITY_COLUMNS

    if members is None:
        raw = read_table(field)
        frame = normalise(raw, origin=str(field))
        names = list(raw.columns) if isinstance(raw, pd.DataFrame) else raw.colnames
        for want in PROBABILITY_COLUMNS:
            match = [n for n in names if str(n).lower() == want.lower()]
            if match:
                values = raw[match[0]]
                frame["p_member"] = pd.to_numeric(pd.Series(list(values)), errors="coerce")
                break
        return frame
    path = Path(members)
    if not path.is_file():
        raise OcdecError(f"{path}: no such file")
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises many types
        raise OcdecError(f"{path}: cannot read as Parquet: {err}") from err
    if "source_id" not in frame:
        raise OcdecError(f"{path}: no source_id column")
    stars = read_stars(field)
    extra = [c for c in stars.columns if c not in frame.columns]
    if extra and not stars.attrs.get("source_id_is_row"):
        frame = frame.merge(stars[["source_id", *extra]].drop_duplicates("source_id"),
                            on="source_id", how="left")
    # FIELD's every star: the footprint within which the King profile is fitted
    if {"ra", "dec"} <= set(stars.columns):
        frame.attrs["field_positions"] = tuple(
            pd.to_numeric(stars[c], errors="coerce").to_numpy(float) for c in ("ra", "dec"))
    return frame


def run(args: argparse.Namespace) -> int:
    from ocdec.io import write_json
    from ocdec.physics.cmd_fit import CmdSettings
    from ocdec.physics.parameters import ParametersSettings, fit_parameters

    settings = ParametersSettings(cmd=CmdSettings(feh=_feh(args.feh)))
    members = read_members(args.field, args.members)
    # with --members, FIELD's stars bound the King profile (a table of members alone is too
    # sparse to show its field's edges)
    field = members.attrs.get("field_positions")
    result = fit_parameters(members, release=args.release, settings=settings, field=field)
    out = Path(args.out)
    values = result.as_dict()
    values["input"] = {"field": str(args.field), "members": args.members}
    write_json(out / "parameters.json", values)
    if not args.no_figure:
        from ocdec.physics.figures import parameters_figure, save

        save(parameters_figure(result, args.name), out / "parameters.png")
    if result.status == "ok":
        print(f"{values['n_members']} members: d {values['distance_pc']:.1f} pc, log age "
              f"{values['log_age']:.3f}, A_V {values['av']:.3f}, M_J {values['mass_msun']:.0f} "
              f"Msun, r_J {values['jacobi_radius_pc']:.2f} pc -> {out}")
    else:
        print(f"parameters failed: {values['reason']} -> {out}")
    return 0
