"""``ocdec regions``: build the region table from the Dias et al. (2002) catalogue."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ocdec.data.catalogue import (
    DEFAULT_MIN_DIAMETER_ARCMIN,
    DEFAULT_RADIUS_FACTOR,
    fetch_dias_catalogue,
    read_dias_catalogue,
    read_regions,
    regions_from_catalogue,
    unknown_columns,
    write_regions,
)
from ocdec.errors import OcdecError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "regions",
        help="select regions from the B/ocl catalogue and write the region table",
        description="Read B/ocl (clusters.dat with its CDS ReadMe, or a table fetched from "
        "VizieR), keep clusters larger than --min-diameter and write the region table (TSV).",
    )
    parser.add_argument(
        "--catalogue",
        help="directory with clusters.dat and ReadMe (or ReadMe.txt), the ReadMe itself, or a "
        "fetched table; with --fetch, the directory to download into",
    )
    parser.add_argument("--out", help="region table to write (TSV)")
    parser.add_argument(
        "--min-diameter",
        type=float,
        default=DEFAULT_MIN_DIAMETER_ARCMIN,
        help="keep clusters with apparent diameter above this (arcmin; default %(default)s)",
    )
    parser.add_argument(
        "--radius-factor",
        type=float,
        default=DEFAULT_RADIUS_FACTOR,
        help="cone radius = factor x diameter / 2 (default %(default)s)",
    )
    parser.add_argument(
        "--fetch", action="store_true", help="download B/ocl from VizieR into --catalogue first"
    )
    parser.add_argument(
        "--check",
        metavar="TABLE",
        help="only validate an existing region table (ids unique, radius > 0, numbers numeric, "
        "no misspelt column names) and name the columns ocdec ignores",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.check:
        frame = read_regions(args.check)
        log.info("%s: %d regions, valid", args.check, len(frame))
        ignored = unknown_columns(frame.columns)
        if ignored:
            log.info(
                "%s: %d column(s) ocdec does not read, kept and ignored: %s",
                args.check, len(ignored), ", ".join(ignored),
            )
        return 0
    if not args.catalogue or not args.out:
        raise OcdecError("--catalogue and --out are required (or --check TABLE)")
    location = Path(args.catalogue)
    if args.fetch:
        if location.exists() and not location.is_dir():
            raise OcdecError(f"{location}: --fetch needs a directory to download into")
        location = fetch_dias_catalogue(location)
    table = read_dias_catalogue(location)
    frame = regions_from_catalogue(table, args.min_diameter, args.radius_factor)
    if frame.empty:
        raise OcdecError(f"{location}: no cluster has a diameter above {args.min_diameter} arcmin")
    write_regions(frame, args.out)
    return 0
