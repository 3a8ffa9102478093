"""``ocdec simulate``: a synthetic Gaia cone with a known cluster, written as Parquet."""

from __future__ import annotations

import argparse
from typing import Any

from ocdec.cli.options import add_cone_options
from ocdec.data.simulate import LITERATURE, SimulateSettings, simulate_to_parquet
from ocdec.errors import OcdecError
from ocdec.io import check_writable


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = SimulateSettings()
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a Gaia cone holding an open cluster with known members",
        description="Write a synthetic Gaia cone (canonical columns plus true_member) around a "
        "position (--ra, --dec, --radius) or a region of a region table (--regions with "
        "--region). Cluster parameters not given fall back to the literature values of the five "
        "thesis clusters (by --region name), then the region's catalogue priors.",
    )
    where = parser.add_argument_group("where")
    add_cone_options(where, "cone centre, deg (ICRS), [0, 360)", "cone centre, deg (ICRS), "
                     "[-90, 90]", "cone radius, deg, > 0")
    where.add_argument("--regions", help="region table (TSV) to take the region from, e.g. "
                       "config/regions.tsv")
    where.add_argument(
        "--region",
        help="region id (e.g. NGC_2682): with --regions, that row (its centre, radius and "
        "priors); alone, only the name, whose literature cluster parameters are the defaults "
        f"for the five thesis clusters ({', '.join(LITERATURE)}): give --ra, --dec and "
        "--radius too",
    )
    parser.add_argument("--out", required=True, help="Parquet file to write")
    cluster = parser.add_argument_group("cluster")
    cluster.add_argument("--n-members", type=int, help="members in the cone")
    cluster.add_argument("--pmra", type=float, help="mean pmra, mas/yr")
    cluster.add_argument("--pmdec", type=float, help="mean pmdec, mas/yr")
    cluster.add_argument("--parallax", type=float, help="mean parallax, mas")
    cluster.add_argument("--distance", type=float, help="distance, pc (instead of --parallax)")
    cluster.add_argument("--r50-deg", type=float, help="Plummer half-number radius, deg")
    cluster.add_argument("--age-myr", type=float, help="age (sets the turn-off), Myr")
    cluster.add_argument("--velocity-dispersion", type=float, help="internal, km/s")
    parser.add_argument("--n-field", type=int, help="field stars (default: the Galactic model's)")
    parser.add_argument(
        "--release", default=defaults.release, help="error model: dr2 or dr3 (default %(default)s)"
    )
    parser.add_argument(
        "--g-limit", type=float, default=defaults.g_limit, help="faint limit (default %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    region = _region(args)
    settings = SimulateSettings(
        n_members=args.n_members,
        n_field=args.n_field,
        distance_pc=args.distance,
        parallax=args.parallax,
        pmra=args.pmra,
        pmdec=args.pmdec,
        r50_deg=args.r50_deg,
        age_myr=args.age_myr,
        velocity_dispersion=args.velocity_dispersion,
        release=args.release,
        g_limit=args.g_limit,
    )
    check_writable(args.out, "--out")
    simulate_to_parquet(args.out, region, settings, args.seed)
    return 0


def _region(args: argparse.Namespace) -> dict[str, Any]:
    region: dict[str, Any] = {}
    if args.regions:
        from ocdec.data.catalogue import read_regions

        if not args.region:
            raise OcdecError("--regions needs --region ID to pick a row")
        table = read_regions(args.regions)
        rows = table[table["id"] == args.region]
        if rows.empty:
            raise OcdecError(f"{args.regions}: no region with id {args.region!r}")
        region = rows.iloc[0].to_dict()
    elif args.region:
        region["id"] = args.region
    for key, value in (("ra", args.ra), ("dec", args.dec), ("radius_deg", args.radius)):
        if value is not None:
            region[key] = value
    missing = [name for name in ("ra", "dec", "radius_deg") if name not in region]
    if missing:
        flags = {"ra": "--ra", "dec": "--dec", "radius_deg": "--radius"}
        alone = (f"; --region {args.region} alone names the cluster, not where it is"
                 if args.region and not args.regions else "")
        raise OcdecError(
            "give " + ", ".join(flags[m] for m in missing)
            + " (or --regions TABLE with --region ID, e.g. --regions config/regions.tsv)" + alone
        )
    return region
